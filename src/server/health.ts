/**
 * The gRPC health service, `grpc.health.v1.Health`, for load balancers, probes
 * and `grpcurl ... grpc.health.v1.Health/Check`.
 *
 * A node is SERVING while it knows a leader (it has joined a cluster that has
 * one, or leads it), and NOT_SERVING while it knows none (an election is under
 * way, or it is cut off from a quorum) and once it stops. Two service names
 * answer: `""` (the server as a whole) and `raftkv.v1.KVService`, which share
 * that one status.
 *
 * - `Check`: the status; an unknown service name fails with NOT_FOUND.
 * - `Watch`: the status at once, then each change, until the client cancels.
 *   Quick flips in between may be coalesced into the latest one, as grpc-go
 *   does. An unknown name gets SERVICE_UNKNOWN and the stream stays open. When
 *   the node stops, streams get NOT_SERVING and end (OK), so that they do not
 *   hold up the server's graceful shutdown; clients retry, as the spec says.
 * - `List`: both names with their status.
 *
 * @module
 */

import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckResponseSchema,
} from "../gen/health/v1/health_pb.ts";
import { KVService } from "../gen/raftkv/v1/kv_pb.ts";
import { type NodeId, NONE } from "../raft/types.ts";
import type { LeaderChange } from "./node.ts";

/** The service names the health service answers for: the whole server, and the public API. */
export const HEALTH_SERVICE_NAMES: readonly string[] = ["", KVService.typeName];

/** What the health service needs of a node ({@link RaftKvNode} has it). */
export interface LeaderSource {
  /** The leader the node knows of, or {@link NONE}. */
  leader(): NodeId;
  /** Subscribes to changes of that leader, and to the node's stop; returns how to unsubscribe. */
  onLeaderChange(listener: (change: LeaderChange) => void): () => void;
}

/**
 * The node's serving status, kept current from its leader changes, with
 * listeners for Watch streams.
 */
export class HealthState {
  #status: ServingStatus;
  #final = false;
  readonly #listeners = new Set<() => void>();

  /** Starts from `source`'s current leader and follows its changes from then on. */
  constructor(source: LeaderSource) {
    this.#status = source.leader() === NONE ? ServingStatus.NOT_SERVING : ServingStatus.SERVING;
    source.onLeaderChange((change) => {
      if (this.#final) return;
      this.#final = change.final;
      this.#status = !change.final && change.leader !== NONE
        ? ServingStatus.SERVING
        : ServingStatus.NOT_SERVING;
      for (const l of [...this.#listeners]) l();
    });
  }

  /** SERVING or NOT_SERVING. */
  get status(): ServingStatus {
    return this.#status;
  }

  /** True once the node has stopped: the status is NOT_SERVING for good. */
  get final(): boolean {
    return this.#final;
  }

  /**
   * Resolves at the next change of status (or stop), or when `signal` aborts;
   * a change that happened before the call does not count.
   */
  changed(signal: AbortSignal): Promise<void> {
    if (signal.aborted || this.#final) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.#listeners.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.#listeners.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }
}

type CheckResponseInit = MessageInitShape<typeof HealthCheckResponseSchema>;

/** The `grpc.health.v1.Health` implementation for a node. */
export function healthService(source: LeaderSource): ServiceImpl<typeof Health> {
  const state = new HealthState(source);
  const known = (service: string): boolean => HEALTH_SERVICE_NAMES.includes(service);
  return {
    check(req) {
      if (!known(req.service)) {
        throw new ConnectError(`unknown service: ${req.service}`, Code.NotFound);
      }
      return { status: state.status };
    },

    async *watch(req, ctx): AsyncGenerator<CheckResponseInit> {
      if (!known(req.service)) {
        yield { status: ServingStatus.SERVICE_UNKNOWN };
        // The set of services never changes: nothing more to say until the end.
        while (!ctx.signal.aborted && !state.final) await state.changed(ctx.signal);
        return;
      }
      let last = state.status;
      yield { status: last };
      while (!ctx.signal.aborted) {
        if (state.status === last) {
          if (state.final) return;
          await state.changed(ctx.signal);
          continue;
        }
        last = state.status;
        yield { status: last };
      }
    },

    list() {
      return {
        statuses: Object.fromEntries(
          HEALTH_SERVICE_NAMES.map((name) => [name, { status: state.status }]),
        ),
      };
    },
  };
}
