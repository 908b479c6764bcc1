/**
 * Who leads, as a node knows it, told to whoever listens: the health endpoint,
 * the HTTP timeline, calls waiting for a leader to forward to, a leadership
 * transfer waiting for the new leader. The node reports each change of the
 * leader it knows of (once per change) and a last time when it stops or fails,
 * so that no listener waits on a node that will never hear of a leader again.
 *
 * @module
 */

import type { Logger } from "../raft/logger.ts";
import { type NodeId, NONE } from "../raft/types.ts";
import { NodeError } from "./node_error.ts";
import { abortableWait } from "./waiters.ts";

/** A change of the leader a node knows of, as {@link RaftKvNode.onLeaderChange} reports it. */
export interface LeaderChange {
  /** The leader the node now knows of, or {@link NONE}. */
  readonly leader: NodeId;
  /** True on the last report, when the node stops or fails (`leader` is then NONE). */
  readonly final: boolean;
}

/** The listeners to a node's leader changes, and what they last heard. */
export class LeaderWatch {
  readonly #id: NodeId;
  readonly #log: Logger;
  /** Subscribers to leader changes ({@link RaftKvNode.onLeaderChange}), and what they last heard. */
  readonly #leaderListeners = new Set<(change: LeaderChange) => void>();
  #reportedLeader: NodeId = NONE;
  #leaderFinal = false;

  constructor(id: NodeId, log: Logger) {
    this.#id = id;
    this.#log = log;
  }

  /** Tells the leader listeners of a change of leader (once per change), or of the end. */
  report(lead: NodeId, final: boolean): void {
    if (this.#leaderFinal || (!final && lead === this.#reportedLeader)) return;
    this.#reportedLeader = lead;
    this.#leaderFinal = final;
    const change: LeaderChange = { leader: lead, final };
    for (const l of [...this.#leaderListeners]) {
      try {
        l(change);
      } catch (err) {
        this.#log.error("a leader-change listener threw", { error: String(err) });
      }
    }
    if (final) this.#leaderListeners.clear();
  }

  /**
   * Resolves with the leader's id once one is known (`now`, the leader known at
   * the call, if any), or rejects when `signal` aborts or the node stops.
   */
  waitForLeader(now: NodeId, signal?: AbortSignal): Promise<NodeId> {
    if (now !== NONE) return Promise.resolve(now);
    const none = () =>
      new NodeError("unavailable", "no leader is known: the cluster has no quorum");
    return abortableWait(signal, none, (w) => {
      const off = this.onLeaderChange((change) => {
        if (change.final) {
          off();
          w.reject(new NodeError("stopped", `node ${this.#id} is shutting down`));
        } else if (change.leader !== NONE) {
          off();
          w.resolve(change.leader);
        }
      });
      return off;
    });
  }

  /**
   * Calls `listener` each time the leader this node knows of changes (with NONE
   * when it loses it), and a last time, with `final` set, when the node stops or
   * fails. Returns a function that unsubscribes. Subscribing after the end gets
   * the final report on a microtask.
   */
  onLeaderChange(listener: (change: LeaderChange) => void): () => void {
    if (this.#leaderFinal) {
      queueMicrotask(() => listener({ leader: NONE, final: true }));
      return () => {};
    }
    this.#leaderListeners.add(listener);
    return () => this.#leaderListeners.delete(listener);
  }
}
