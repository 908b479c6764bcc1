/**
 * Calls served, by service, method and status code, with their latency: a
 * Connect interceptor, installed on the gRPC server and on the HTTP port's
 * Connect handler alike (names after go-grpc-prometheus's
 * `grpc_server_handled_total` and `grpc_server_handling_seconds`). A streamed
 * answer (SnapshotSave) counts when its stream ends, with the code it ended with.
 * Beside them, how many of the gRPC port's calls took the unary fast lane
 * (src/server/unary_fast_lane.ts) rather than Connect's adapter.
 *
 * @module
 */

import type { Interceptor } from "@connectrpc/connect";
import { Counter, Histogram, type Registry } from "prom-client";
import { NETWORK_BUCKETS } from "./buckets.ts";
import { PREFIX } from "./registry.ts";
import { type CallEnded, callTimingInterceptor } from "./call_timing.ts";

/** What the fast lane's counter reads at scrape time (a GrpcServer, src/server/server.ts). */
export interface FastLaneSource {
  /** Calls the gRPC server's fast lane has taken since it started. */
  readonly fastLaneCalls: number;
}

/** The call metrics of one node. */
export class GrpcMetrics {
  readonly handled: Counter;
  readonly seconds: Histogram;
  /** The fast lane's calls, read from {@link FastLaneSource} at each scrape. */
  readonly fastLaneCalls: Counter;
  readonly #fastLane: { source: FastLaneSource | undefined; counted: number } = {
    source: undefined,
    counted: 0,
  };
  /** Counts and times every call it wraps. */
  readonly interceptor: Interceptor;
  /** Counts a call that ended (for calls timed before these metrics existed: late_metrics.ts). */
  readonly record: CallEnded;

  constructor(registry: Registry) {
    const registers = [registry];
    /** The children of one (service, method, code), and its calls not yet added to `handled`. */
    type Children = {
      handled: Counter.Internal;
      seconds: Histogram.Internal<string>;
      calls: number;
    };
    // Each (service, method, code)'s calls are counted in a plain number and added to
    // the counter at scrape time: a child's inc() hashes its labels into a string and
    // checks them on every call (0.35 KB of garbage per put on the leader: issue 11's
    // heap profile). A scrape (and get()) runs collect first, so it reads every call.
    const all: Children[] = [];
    this.handled = new Counter({
      name: `${PREFIX}grpc_requests_total`,
      help: "Calls served (gRPC, or Connect on the HTTP port), by service, method and code",
      labelNames: ["service", "method", "code"],
      registers,
      collect() {
        for (const c of all) {
          if (c.calls === 0) continue;
          c.handled.inc(c.calls);
          c.calls = 0;
        }
      },
    });
    this.seconds = new Histogram({
      name: `${PREFIX}grpc_request_duration_seconds`,
      help: "Time to serve a call, to its last message, by service, method and code",
      labelNames: ["service", "method", "code"],
      buckets: [...NETWORK_BUCKETS],
      registers,
    });
    // Its own counter rather than a `path` label on the two above: the lane takes a
    // call before the interceptors run (a call it refuses for a bad deadline never
    // reaches them), so they could not label every call it takes; a label would also
    // double their series for a fact of the server's plumbing, not of the call. Read
    // from the lane's own count at each scrape, as proposals_applied_total follows
    // the applied index: nothing per call here (issue 11 measured that cost), and the
    // calls served before the metrics attach (late_metrics.ts) count too.
    const lane = this.#fastLane;
    this.fastLaneCalls = new Counter({
      name: `${PREFIX}grpc_fast_lane_calls_total`,
      help:
        "Unary gRPC calls the server's fast lane took (not Connect's adapter), since it started",
      registers,
      collect() {
        const now = lane.source?.fastLaneCalls ?? 0;
        if (now > lane.counted) this.inc(now - lane.counted);
        lane.counted = Math.max(lane.counted, now);
      },
    });
    // The children of each (service, method, code), made once: prom-client hashes a
    // label object on every inc and observe (sorting its keys), a cost per call that
    // issue 11's profile showed. Found through a map per label rather than by a key
    // string joined per call (a string of garbage per call: issue 11's heap profile).
    const children = new Map<string, Map<string, Map<string, Children>>>();
    const childrenOf = (service: string, method: string, code: string): Children => {
      let methods = children.get(service);
      if (methods === undefined) children.set(service, methods = new Map());
      let codes = methods.get(method);
      if (codes === undefined) methods.set(method, codes = new Map());
      let c = codes.get(code);
      if (c === undefined) {
        const labels = { service, method, code };
        c = {
          handled: this.handled.labels(labels),
          seconds: this.seconds.labels(labels),
          calls: 0,
        };
        codes.set(code, c);
        all.push(c);
      }
      return c;
    };
    this.record = (service, method, code, seconds) => {
      const c = childrenOf(service, method, code);
      c.calls++;
      c.seconds.observe(seconds);
    };
    this.interceptor = callTimingInterceptor(this.record);
  }

  /**
   * Counts the fast lane's calls from `source` at each scrape from now on: all of
   * them since the server started, those taken before this call included.
   */
  countFastLane(source: FastLaneSource): void {
    this.#fastLane.source = source;
  }
}
