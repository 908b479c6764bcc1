/**
 * The timing of one call, as an interceptor that reports how each call ended
 * (service, method, gRPC code in snake case, seconds) to a function: the metrics'
 * interceptor (grpc_metrics.ts) and the node's stand-in before its metrics load
 * (src/server/late_metrics.ts) share it. No prom-client here: the stand-in is
 * loaded before the metrics are, so that start-up does not wait for them.
 *
 * A unary call ends with its answer; a streamed answer (SnapshotSave) when its
 * stream ends, with the code it ended with.
 *
 * @module
 */

import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** How a call ended: what the metrics count it under, and how long it took. */
export type CallEnded = (service: string, method: string, code: string, seconds: number) => void;

/** `resource_exhausted` for Code.ResourceExhausted: the gRPC name in snake case, lower. */
export function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** An interceptor that tells `ended` how every call it wraps ended. */
export function callTimingInterceptor(ended: CallEnded): Interceptor {
  return (next) => async (req) => {
    const began = performance.now();
    let res;
    try {
      res = await next(req);
    } catch (err) {
      const code = codeName(ConnectError.from(err).code);
      ended(req.service.typeName, req.method.name, code, (performance.now() - began) / 1000);
      throw err;
    }
    // A unary answer needs no closure to report it: one fewer per call (issue 11's heap profile).
    if (!res.stream) {
      ended(req.service.typeName, req.method.name, "ok", (performance.now() - began) / 1000);
      return res;
    }
    const done = (code: string) =>
      ended(req.service.typeName, req.method.name, code, (performance.now() - began) / 1000);
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
