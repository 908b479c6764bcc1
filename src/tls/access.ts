/**
 * Who may call which service, as a Connect interceptor in front of every handler
 * (server.ts), so the services themselves stay unaware of TLS:
 *
 * - Health and reflection: anyone, with or without a certificate (probes carry
 *   none; etcd keeps /health reachable the same way). They reveal the schema and
 *   whether the node serves, no data.
 * - RaftService (peer traffic, with `--peer-ca`): only a peer certificate, and only
 *   for messages from the member it names: a valid certificate of member 2 sending
 *   as member 3 is PERMISSION_DENIED, a client certificate too. So only a member
 *   may open `RaftService/Forward`, on which it forwards the calls it received and
 *   authorized itself (src/server/forward.ts): the calls it carries run as that
 *   member's, as a forwarded call of its own did (see below). Without
 *   `--peer-ca` the node has no peers (flags.ts), and takes no peer traffic.
 * - KVService and ClusterService (with `--client-ca`): a client certificate, then
 *   the policy (authorizer.ts). A peer certificate is let through: it is a member
 *   forwarding a call it received and authorized itself (route.ts), as the issue asks:
 *   authorization happens on the node that receives the call.
 *
 * With TLS off, every call passes: plaintext stays the local try-out it was.
 *
 * @module
 */

import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import type { Authorizer } from "./authorizer.ts";
import { needOf } from "./authorizer.ts";
import { type Caller, callerOfSocket, describeCaller } from "./caller.ts";
import type { CredentialsStore } from "./credentials.ts";
import type { Logger } from "../raft/logger.ts";

/** The caller of a call, set per request by {@link callerOfRequest}. */
export const CALLER = createContextKey<Caller>({ kind: "plaintext" });

const OPEN_SERVICES = new Set([
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
]);
const RAFT_SERVICE = "raftkv.v1.RaftService";

/** Every caller of a node without TLS: one object, not one per call. */
const PLAINTEXT: Caller = Object.freeze({ kind: "plaintext" });

/** A connection's caller, kept while the credentials in use stay the same. */
interface Cached {
  readonly caller: Caller;
  readonly generation: number;
  readonly at: number;
}

/** How long a connection's caller is trusted before its certificate is checked again. */
const RECHECK_MS = 60_000;

/** Tells callers of connections apart, once per connection (and again after a reload). */
export class CallerCache {
  readonly #byConnection = new WeakMap<object, Cached>();
  readonly #store: CredentialsStore | undefined;

  constructor(store: CredentialsStore | undefined) {
    this.#store = store;
  }

  /** The caller of a node:http2 request (its `socket`, and `stream.session` as the key). */
  callerOf(req: { socket?: unknown; stream?: { session?: object } }): Caller {
    const store = this.#store;
    if (store === undefined) return PLAINTEXT;
    const key = req.stream?.session ?? (req.socket as object | undefined);
    const now = Date.now();
    const hit = key === undefined ? undefined : this.#byConnection.get(key);
    if (hit !== undefined && hit.generation === store.generation && now - hit.at < RECHECK_MS) {
      return hit.caller;
    }
    const caller = callerOfSocket(req.socket, store.current);
    if (key !== undefined) {
      this.#byConnection.set(key, { caller, generation: store.generation, at: now });
    }
    return caller;
  }
}

function unauthenticated(caller: Caller, what: string): ConnectError {
  const why = caller.kind === "unauthenticated" ? caller.why : "";
  return new ConnectError(`${what} needs a certificate, refused: ${why}`, Code.Unauthenticated);
}

/** Refuses Raft messages whose sender is not the member `caller`'s certificate names. */
function checkSender(caller: Caller & { kind: "peer" }, from: bigint | undefined): void {
  if (from !== undefined && from !== BigInt(caller.id)) {
    throw new ConnectError(
      `Cannot accept messages claiming to be from node ${from}: the sender's certificate ` +
        `(${caller.subject}) names node ${caller.id}`,
      Code.PermissionDenied,
    );
  }
}

/**
 * Logs each refusal once per (caller, status, service), as the HTTP/2 limits log each
 * hit once per source (src/http2/limit_log.ts): an operator sees every intruder and
 * every misconfigured client, and a client retrying in a loop does not flood the log.
 */
class RefusalLog {
  readonly #seen = new Set<string>();
  readonly #logger: Logger | undefined;

  constructor(logger: Logger | undefined) {
    this.#logger = logger;
  }

  report(caller: Caller, service: string, method: string, err: ConnectError): void {
    const key = `${describeCaller(caller)}|${err.code}|${service}`;
    if (this.#seen.has(key)) return;
    // Bounded: past 10,000 distinct refusals, start over rather than grow.
    if (this.#seen.size >= 10_000) this.#seen.clear();
    this.#seen.add(key);
    this.#logger?.warn("refused a call (logged once per caller, status and service)", {
      caller: describeCaller(caller),
      call: `${service}/${method}`,
      code: Code[err.code],
      reason: err.rawMessage,
    });
  }
}

/** Options of {@link accessInterceptor}. */
export interface AccessOptions {
  /** Whether RaftService needs a peer certificate (`--peer-ca`). */
  readonly peerAuth: boolean;
  /** Whether KVService and ClusterService need a client certificate (`--client-ca`). */
  readonly clientAuth: boolean;
  readonly authorizer: Authorizer;
  /** Where refusals are logged, once per caller, status and service. */
  readonly logger?: Logger;
}

/** The interceptor enforcing the rules of this module. */
export function accessInterceptor(options: AccessOptions): Interceptor {
  const refusals = new RefusalLog(options.logger);
  const inner = checkingInterceptor(options);
  return (next) => {
    const call = inner(next);
    return async (req) => {
      try {
        return await call(req);
      } catch (err) {
        if (err instanceof ConnectError && REFUSAL_CODES.has(err.code)) {
          const caller = req.contextValues.get(CALLER);
          if (caller.kind !== "plaintext") {
            refusals.report(caller, req.service.typeName, req.method.name, err);
          }
        }
        throw err;
      }
    };
  };
}

/**
 * Requests that run a check on each as it arrives, in place of a generator
 * around them: the stream fast lane's (src/server/request_feed.ts), which the
 * handler then still takes pushed, without a generator between socket and handler.
 */
interface CheckableRequests<T> extends AsyncIterable<T> {
  withCheck(check: (request: T) => void): AsyncIterable<T>;
}

function isCheckable<T>(requests: AsyncIterable<T>): requests is CheckableRequests<T> {
  return typeof (requests as { withCheck?: unknown }).withCheck === "function";
}

/** The codes of this module's refusals (a handler's own PERMISSION_DENIED is logged too). */
const REFUSAL_CODES: ReadonlySet<Code> = new Set([Code.Unauthenticated, Code.PermissionDenied]);

function checkingInterceptor(options: AccessOptions): Interceptor {
  return (next) => async (req) => {
    const service = req.service.typeName;
    const caller = req.contextValues.get(CALLER);
    if (caller.kind === "plaintext" || OPEN_SERVICES.has(service)) return await next(req);

    if (service === RAFT_SERVICE) {
      if (!options.peerAuth) {
        throw new ConnectError(
          "peer traffic is refused: this node runs TLS without --peer-ca, so it has no peers",
          Code.PermissionDenied,
        );
      }
      if (caller.kind === "unauthenticated") throw unauthenticated(caller, "peer traffic");
      if (caller.kind !== "peer") {
        throw new ConnectError(
          `peer traffic needs a peer certificate (SAN URI raftkv://node/<id>, signed by the ` +
            `peer CA); ${describeCaller(caller)} presented a client certificate`,
          Code.PermissionDenied,
        );
      }
      if (!req.stream) {
        const messages = (req.message as { messages?: { from: bigint }[] }).messages ?? [];
        for (const m of messages) checkSender(caller, m.from);
        return await next(req);
      }
      // Stream: every request is a batch, checked as a Send's, message by message.
      // InstallSnapshot: its first request holds the header naming the sender.
      const batches = req.method.name === "Stream";
      const inner = req.message as AsyncIterable<{
        part?: { case?: string; value?: unknown };
        batch?: { messages: { from: bigint }[] };
      }>;
      let first = true;
      const check = (m: typeof inner extends AsyncIterable<infer M> ? M : never) => {
        if (batches) {
          for (const pm of m.batch?.messages ?? []) checkSender(caller, pm.from);
        } else if (first && m.part?.case === "header") {
          checkSender(caller, (m.part.value as { from: bigint }).from);
        }
        first = false;
      };
      if (isCheckable(inner)) {
        // The stream fast lane's requests: checked as each arrives, still pushed.
        return await next({ ...req, message: inner.withCheck(check) } as typeof req);
      }
      const checked = (async function* () {
        for await (const m of inner) {
          check(m);
          yield m;
        }
      })();
      return await next({ ...req, message: checked } as typeof req);
    }

    if (!options.clientAuth || caller.kind === "peer") return await next(req);
    if (caller.kind === "unauthenticated") throw unauthenticated(caller, `${service} access`);
    if (req.stream) {
      // Server-streaming KV and Cluster methods (Watch, SnapshotSave) take one
      // request; checked as it arrives, before the handler sees it.
      const inner = req.message as AsyncIterable<unknown>;
      const authorizer = options.authorizer;
      const method = req.method.name;
      const checked = (async function* () {
        for await (const m of inner) {
          const refused = authorizer.refusal(caller.name, needOf(service, method, m));
          if (refused !== undefined) throw new ConnectError(refused, Code.PermissionDenied);
          yield m;
        }
      })();
      return await next({ ...req, message: checked } as typeof req);
    }
    const refused = options.authorizer.refusal(
      caller.name,
      needOf(service, req.method.name, req.message),
    );
    if (refused !== undefined) throw new ConnectError(refused, Code.PermissionDenied);
    return await next(req);
  };
}
