/**
 * Linearizable reads without writing to the log: ReadIndex (dissertation §6.4).
 *
 * A leader serves a read once it knows two things: its commit index is current
 * (it has committed an entry of its own term, §6.4 step 1), and it was still the
 * leader after the read arrived (a quorum answered a heartbeat sent after it,
 * step 3). The read may then be served from the state machine once it has
 * applied up to the commit index recorded when the read arrived (steps 2 and 4).
 *
 * Reads are batched into rounds: every read registered before a heartbeat
 * broadcast belongs to that broadcast's round, and an echo of round r from a
 * follower confirms all rounds <= r (the echo answers a heartbeat sent after
 * every one of them was registered).
 *
 * @module
 */

import type { NodeId } from "./types.ts";

/** A read that may be served once the state machine has applied `index`. */
export interface ReadState {
  readonly requestId: number;
  readonly index: number;
}

interface PendingRead {
  readonly requestId: number;
  readonly index: number;
  readonly round: number;
}

/** A leader's reads in flight. Discarded whenever leadership changes. */
export class ReadOnly {
  /** The last round broadcast. Invariant: every pending read has round <= round + 1. */
  round = 0;
  /** Reads waiting for the leader's first commit in its term (§6.4 step 1). */
  waitingForCommit: number[] = [];
  /** Reads waiting for a quorum to confirm their round, in round order. */
  pending: PendingRead[] = [];
  /** The highest round each follower has echoed. */
  readonly #acked = new Map<NodeId, number>();
  /** Reads confirmed and not yet handed out in a Ready. */
  ready: ReadState[] = [];

  /** True when reads are registered for a round not yet broadcast. */
  needsBroadcast(): boolean {
    const last = this.pending[this.pending.length - 1];
    return last !== undefined && last.round > this.round;
  }

  /** Registers a read at commit index `index`, to be confirmed by the next round. */
  add(requestId: number, index: number): void {
    this.pending.push({ requestId, index, round: this.round + 1 });
  }

  /**
   * Records that `from` echoed `round`. An echo of a round not yet broadcast
   * cannot come from a correct follower of this term and is ignored: counting it
   * would confirm reads that no heartbeat has checked.
   */
  ack(from: NodeId, round: number): void {
    if (round > this.round) return;
    if (round > (this.#acked.get(from) ?? 0)) this.#acked.set(from, round);
  }

  /**
   * Moves every read whose round a quorum (the leader included) confirmed to
   * `ready`. `quorumIndex` gives the largest value a quorum of the configuration
   * in force has reached (a majority of each half while joint), given each
   * voter's value; learners' echoes never count.
   */
  release(self: NodeId, quorumIndex: (valueOf: (id: NodeId) => number) => number): void {
    if (this.pending.length === 0) return;
    // The highest round confirmed by a quorum: the leader confirms every round it
    // broadcast, the others the highest round they echoed.
    const confirmed = quorumIndex((id) => id === self ? this.round : this.#acked.get(id) ?? 0);
    let n = 0;
    while (n < this.pending.length && this.pending[n]!.round <= confirmed) n++;
    for (const p of this.pending.splice(0, n)) {
      this.ready.push({ requestId: p.requestId, index: p.index });
    }
  }
}
