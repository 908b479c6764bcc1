/**
 * Calls served, by service, method and status code, with their latency: a
 * Connect interceptor, installed on the gRPC server and on the HTTP port's
 * Connect handler alike (names after go-grpc-prometheus's
 * `grpc_server_handled_total` and `grpc_server_handling_seconds`). A streamed
 * answer (SnapshotSave) counts when its stream ends, with the code it ended with.
 *
 * @module
 */

import type { Interceptor } from "@connectrpc/connect";
import { Counter, Histogram, type Registry } from "prom-client";
import { NETWORK_BUCKETS } from "./buckets.ts";
import { PREFIX } from "./registry.ts";
import { type CallEnded, callTimingInterceptor } from "./call_timing.ts";

/** The call metrics of one node. */
export class GrpcMetrics {
  readonly handled: Counter;
  readonly seconds: Histogram;
  /** Counts and times every call it wraps. */
  readonly interceptor: Interceptor;
  /** Counts a call that ended (for calls timed before these metrics existed: late_metrics.ts). */
  readonly record: CallEnded;

  constructor(registry: Registry) {
    const registers = [registry];
    this.handled = new Counter({
      name: `${PREFIX}grpc_requests_total`,
      help: "Calls served (gRPC, or Connect on the HTTP port), by service, method and code",
      labelNames: ["service", "method", "code"],
      registers,
    });
    this.seconds = new Histogram({
      name: `${PREFIX}grpc_request_duration_seconds`,
      help: "Time to serve a call, to its last message, by service, method and code",
      labelNames: ["service", "method", "code"],
      buckets: [...NETWORK_BUCKETS],
      registers,
    });
    // The children of each (service, method, code), made once: prom-client hashes a
    // label object on every inc and observe (sorting its keys), a cost per call that
    // issue 11's profile showed. Found through a map per label rather than by a key
    // string joined per call (a string of garbage per call: issue 11's heap profile).
    type Children = { handled: Counter.Internal; seconds: Histogram.Internal<string> };
    const children = new Map<string, Map<string, Map<string, Children>>>();
    const childrenOf = (service: string, method: string, code: string): Children => {
      let methods = children.get(service);
      if (methods === undefined) children.set(service, methods = new Map());
      let codes = methods.get(method);
      if (codes === undefined) methods.set(method, codes = new Map());
      let c = codes.get(code);
      if (c === undefined) {
        const labels = { service, method, code };
        c = { handled: this.handled.labels(labels), seconds: this.seconds.labels(labels) };
        codes.set(code, c);
      }
      return c;
    };
    this.record = (service, method, code, seconds) => {
      const c = childrenOf(service, method, code);
      c.handled.inc();
      c.seconds.observe(seconds);
    };
    this.interceptor = callTimingInterceptor(this.record);
  }
}
