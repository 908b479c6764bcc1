/**
 * Calls served, by service, method and status code, with their latency: a
 * Connect interceptor, installed on the gRPC server and on the HTTP port's
 * Connect handler alike (names after go-grpc-prometheus's
 * `grpc_server_handled_total` and `grpc_server_handling_seconds`). A streamed
 * answer (SnapshotSave) counts when its stream ends, with the code it ended with.
 *
 * @module
 */

import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { Counter, Histogram, type Registry } from "prom-client";
import { NETWORK_BUCKETS } from "./buckets.ts";
import { PREFIX } from "./registry.ts";

/** `resource_exhausted` for Code.ResourceExhausted: the gRPC name in snake case, lower. */
function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** The call metrics of one node. */
export class GrpcMetrics {
  readonly handled: Counter;
  readonly seconds: Histogram;
  /** Counts and times every call it wraps. */
  readonly interceptor: Interceptor;

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
    // issue 11's profile showed.
    const children = new Map<
      string,
      { handled: Counter.Internal; seconds: Histogram.Internal<string> }
    >();
    const childrenOf = (service: string, method: string, code: string) => {
      const key = `${service}/${method}/${code}`;
      let c = children.get(key);
      if (c === undefined) {
        const labels = { service, method, code };
        c = { handled: this.handled.labels(labels), seconds: this.seconds.labels(labels) };
        children.set(key, c);
      }
      return c;
    };
    this.interceptor = (next) => async (req) => {
      const began = performance.now();
      const done = (code: string) => {
        const c = childrenOf(req.service.typeName, req.method.name, code);
        c.handled.inc();
        c.seconds.observe((performance.now() - began) / 1000);
      };
      let res;
      try {
        res = await next(req);
      } catch (err) {
        done(codeName(ConnectError.from(err).code));
        throw err;
      }
      if (!res.stream) {
        done("ok");
        return res;
      }
      const messages = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* messages;
            done("ok");
          } catch (err) {
            done(codeName(ConnectError.from(err).code));
            throw err;
          }
        })(),
      };
    };
  }
}
