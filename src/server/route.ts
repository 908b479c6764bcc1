/**
 * Where a client call is served: here when this node leads, at the leader when
 * another node does (forwarded over gRPC to the address in `--peers`), and not
 * at all, with UNAVAILABLE, when no leader is known before the call's deadline.
 *
 * @module
 */

import {
  type Client,
  Code,
  ConnectError,
  createClient,
  type HandlerContext,
  type Transport,
} from "@connectrpc/connect";
import { ClusterService } from "../gen/raftkv/v1/cluster_pb.ts";
import { KVService } from "../gen/raftkv/v1/kv_pb.ts";
import { RaftService } from "../gen/raftkv/v1/raft_pb.ts";
import type { NodeId } from "../raft/types.ts";
import { forget, HookedAbort, whenAborted } from "./abort_hooks.ts";
import { deadlineTimers } from "./deadline_timers.ts";
import { forwardTransport } from "./forward.ts";
import { NodeError, type RaftKvNode } from "./node.ts";
import { grpcTransportTo } from "./transport.ts";

export { FORWARDED_HEADER } from "./forward.ts";
import { FORWARDED_HEADER } from "./forward.ts";

/** How long a call may wait when the client set no deadline. */
export const DEFAULT_CALL_TIMEOUT_MS = 10_000;

/**
 * How long before the caller's deadline a call gives up, so that a call that
 * cannot be served answers why (UNAVAILABLE: no leader) while the caller still
 * listens, instead of the caller's own timer firing first.
 */
export function answerMarginMs(timeoutMs: number): number {
  return Math.min(500, Math.max(20, Math.floor(timeoutMs / 10)));
}

/**
 * Codes a forwarded call may fail with for reasons of reaching the leader, not
 * of the request: the client hears UNAVAILABLE ("may have happened; retry").
 */
const UNREACHABLE = new Set([
  Code.Unavailable,
  Code.Aborted, // connect-node's code for a connection reset (ECONNRESET)
  Code.DeadlineExceeded,
  Code.Canceled,
  Code.Internal,
  Code.Unknown,
]);

/** Maps a runtime error to the gRPC status a client acts on. */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof NodeError) {
    switch (err.kind) {
      case "deadline":
        return new ConnectError(err.message, Code.DeadlineExceeded);
      case "not_leader":
      case "unavailable":
      case "stopped":
        return new ConnectError(err.message, Code.Unavailable);
    }
  }
  return new ConnectError(
    `internal error: ${err instanceof Error ? err.message : String(err)}`,
    Code.Internal,
  );
}

/** Routes KV calls (and ClusterService's membership changes) to the leader. One per node. */
export class Router {
  readonly #node: RaftKvNode;
  readonly #clients = new Map<NodeId, Client<typeof KVService>>();
  readonly #clusterClients = new Map<NodeId, Client<typeof ClusterService>>();
  readonly #transports = new Map<NodeId, Transport>();

  constructor(node: RaftKvNode) {
    this.#node = node;
  }

  /** One per leader: unary calls on its Forward stream (forward.ts), others as calls of their own. */
  #transportFor(id: NodeId): Transport {
    let t = this.#transports.get(id);
    if (t === undefined) {
      const direct = this.#directTransportFor(id);
      t = forwardTransport(
        createClient(RaftService, direct),
        direct,
        BigInt(this.#node.id),
        BigInt(id),
      );
      this.#transports.set(id, t);
    }
    return t;
  }

  #directTransportFor(id: NodeId): Transport {
    // --peers first, else the address the log recorded when the member was added.
    const address = this.#node.peerAddress(id);
    if (address === undefined) {
      throw new ConnectError(
        `leader ${id} is not in this node's --peers, nor was its address recorded in the log`,
        Code.Unavailable,
      );
    }
    return grpcTransportTo(address, this.#node.options.dialer, id);
  }

  #clientFor(id: NodeId): Client<typeof KVService> {
    let c = this.#clients.get(id);
    if (c === undefined) {
      c = createClient(KVService, this.#transportFor(id));
      this.#clients.set(id, c);
    }
    return c;
  }

  #clusterClientFor(id: NodeId): Client<typeof ClusterService> {
    let c = this.#clusterClients.get(id);
    if (c === undefined) {
      c = createClient(ClusterService, this.#transportFor(id));
      this.#clusterClients.set(id, c);
    }
    return c;
  }

  /** {@link Router.route} for ClusterService calls the leader must serve (membership changes). */
  routeCluster<T>(
    ctx: HandlerContext,
    local: (signal: AbortSignal) => Promise<T>,
    remote: (
      client: Client<typeof ClusterService>,
      options: { signal: AbortSignal; timeoutMs: number; headers: Record<string, string> },
    ) => Promise<T>,
  ): Promise<T> {
    return this.#route(ctx, local, (id, opts) => remote(this.#clusterClientFor(id), opts));
  }

  /**
   * Runs `local` if this node leads, or `remote` against the leader's KVService.
   * Retries when leadership moves between the check and the call.
   */
  route<T>(
    ctx: HandlerContext,
    local: (signal: AbortSignal) => Promise<T>,
    remote: (
      client: Client<typeof KVService>,
      options: { signal: AbortSignal; timeoutMs: number; headers: Record<string, string> },
    ) => Promise<T>,
  ): Promise<T> {
    return this.#route(ctx, local, (id, opts) => remote(this.#clientFor(id), opts));
  }

  async #route<T>(
    ctx: HandlerContext,
    local: (signal: AbortSignal) => Promise<T>,
    remote: (
      leader: NodeId,
      options: { signal: AbortSignal; timeoutMs: number; headers: Record<string, string> },
    ) => Promise<T>,
  ): Promise<T> {
    const timeoutMs = ctx.timeoutMs() ?? DEFAULT_CALL_TIMEOUT_MS;
    const budgetMs = Math.max(1, timeoutMs - answerMarginMs(timeoutMs));
    const deadline = Date.now() + budgetMs;
    // Aborted by the call's end or by the budget, whichever comes first. A plain
    // controller, timer and listener, undone when the call is answered: cheaper per
    // call than AbortSignal.any over AbortSignal.timeout (their weakly held signals
    // and DOMExceptions fed the garbage collector; issue 11's profile), and
    // AbortSignal.timeout's timer cannot be cleared: it kept its signal alive for
    // the whole budget after the call answered (with clients that allow 30 s per
    // put, a leader at 180 puts/s held 5,300 of them: a heap snapshot, issue 9).
    // The budget's timer is one of deadline_timers.ts's: calls' budgets share a
    // runtime timer (a Timeout each was garbage per call: issue 11's heap profile).
    // The controller and the call's signal (a fast lane call's) are hooked ones
    // (abort_hooks.ts): their aborts reach this call and its waiter without an
    // EventTarget listener each (issue 11's heap profile); another signal is listened to.
    const budget = new HookedAbort();
    const signal = budget.signal;
    const onCallEnd = () => budget.abort(ctx.signal.reason);
    const timer = deadlineTimers.start(
      budgetMs,
      () => budget.abort(new DOMException("the call's time budget ran out", "TimeoutError")),
    );
    let listening = false;
    if (ctx.signal.aborted) onCallEnd();
    else if (!whenAborted(ctx.signal, onCallEnd)) {
      ctx.signal.addEventListener("abort", onCallEnd, { once: true });
      listening = true;
    }
    const forwardedBy = ctx.requestHeader.get(FORWARDED_HEADER);
    try {
      for (;;) {
        const lead = await this.#node.waitForLeader(signal);
        if (lead === this.#node.id) {
          try {
            return await local(signal);
          } catch (err) {
            // Leadership moved between the check and the proposal: go again.
            if (err instanceof NodeError && err.kind === "not_leader") continue;
            throw err;
          }
        }
        if (forwardedBy !== null) {
          throw new ConnectError(
            `node ${this.#node.id} is not the leader (call forwarded by node ${forwardedBy}; leader is ${lead})`,
            Code.Unavailable,
          );
        }
        const remaining = Math.max(1, deadline - Date.now());
        try {
          return await remote(lead, {
            signal,
            timeoutMs: remaining,
            headers: { [FORWARDED_HEADER]: String(this.#node.id) },
          });
        } catch (err) {
          if (err instanceof ConnectError && UNREACHABLE.has(err.code)) {
            throw new ConnectError(
              `leader ${lead} could not serve the call (${Code[err.code]}): ${err.rawMessage}`,
              Code.Unavailable,
            );
          }
          throw err;
        }
      }
    } catch (err) {
      throw toConnectError(err);
    } finally {
      timer.cancel();
      if (listening) ctx.signal.removeEventListener("abort", onCallEnd);
      else forget(ctx.signal, onCallEnd);
    }
  }
}
