/**
 * The calls waiting on the Ready loop: proposals waiting for their entry to be
 * applied, and linearizable reads (ReadIndex, §6.4) waiting first for the leader
 * to confirm them, then for the state machine to reach their index. The node
 * files them here as the calls arrive and settles them as Readies bring their
 * outcome; keeping them apart from the loop keeps each way a call can end (done,
 * superseded, leadership lost, abandoned, the node stopping or failing) in one
 * place.
 *
 * @module
 */

import type { ReadState } from "../raft/read_only.ts";
import type { NodeId } from "../raft/types.ts";
import type { Command } from "../kv/command.ts";
import type { ApplyResult } from "../kv/store.ts";
import { NodeError } from "./node_error.ts";
import { abortableWait, type Waiter } from "./waiters.ts";

/** A proposal's waiter, with what its entry must be. */
interface ProposalWaiter {
  readonly waiter: Waiter<{ index: number; result: ApplyResult }>;
  readonly term: number;
  /** The command proposed, as it was encoded ({@link PendingCalls.proposedCommand}). */
  readonly command: Command | undefined;
}

/** A confirmed read waiting for the state machine to apply `index`. */
interface PendingApply {
  readonly index: number;
  readonly waiter: Waiter<void>;
}

/** Proposals and reads waiting on the Ready loop, and how each is settled. */
export class PendingCalls {
  readonly #proposals = new Map<number, ProposalWaiter>();
  readonly #reads = new Map<number, Waiter<number>>();
  #nextReadId = 1;
  /** Reads confirmed, waiting for the state machine to reach their index. */
  #readsAwaitingApply: PendingApply[] = [];

  /**
   * Waits for the entry this node proposed at `index` in `term` to be applied,
   * with what applying it produced; `late` is the error when `signal` aborts first.
   * `command`, if given, is the entry's command as it was encoded, for
   * {@link PendingCalls.proposedCommand}: it must not change, nor hold views into
   * memory that may change, before the entry is applied.
   */
  waitForProposal(
    index: number,
    term: number,
    signal: AbortSignal | undefined,
    late: () => NodeError,
    command?: Command,
  ): Promise<{ index: number; result: ApplyResult }> {
    return abortableWait<{ index: number; result: ApplyResult }>(signal, late, (w) => {
      const waiter: ProposalWaiter = { waiter: w, term, command };
      this.#proposals.set(index, waiter);
      return () => {
        if (this.#proposals.get(index) === waiter) this.#proposals.delete(index);
      };
    });
  }

  /** The id of a new read, to hand the core (RawNode.readIndex). */
  nextReadId(): number {
    return this.#nextReadId++;
  }

  /** Waits for the leader to confirm read `id`, with the index it must wait for. */
  waitForReadConfirmed(id: number, signal: AbortSignal | undefined): Promise<number> {
    return abortableWait<number>(
      signal,
      lateReadConfirmation,
      (w) => {
        this.#reads.set(id, w);
        return () => this.#reads.delete(id);
      },
    );
  }

  /** Waits for the state machine to apply `index`, for a confirmed read. */
  waitForReadApplied(index: number, signal: AbortSignal | undefined): Promise<void> {
    return abortableWait<void>(
      signal,
      lateReadApply,
      (w) => {
        const entry: PendingApply = { index, waiter: w };
        this.#readsAwaitingApply.push(entry);
        return () => {
          this.#readsAwaitingApply = this.#readsAwaitingApply.filter((r) => r !== entry);
        };
      },
    );
  }

  /**
   * The command this node proposed as the entry at `index` of `term`, as it was
   * encoded, while its call waits: the entry's data decode to it (an entry is known
   * by its index and term, §5.3's Log Matching Property), so the leader need not
   * decode the data it encoded moments ago (issue 11's heap profile: 2 % of the
   * leader's allocations at 64 puts in flight). Undefined when none is kept (a
   * follower, a restart, a call that gave up): decode the data.
   */
  proposedCommand(index: number, term: number): Command | undefined {
    const w = this.#proposals.get(index);
    return w !== undefined && w.term === term ? w.command : undefined;
  }

  /** The entry at `index`, of `term`, was applied: settles the proposal waiting for it. */
  applied(index: number, term: number, result: ApplyResult): void {
    const w = this.#proposals.get(index);
    if (w === undefined) return;
    this.#proposals.delete(index);
    if (w.term === term) {
      w.waiter.resolve({ index, result });
    } else {
      // Another leader's entry took the slot: ours can never commit.
      w.waiter.reject(
        new NodeError("unavailable", "the write was superseded by a new leader and did not commit"),
      );
    }
  }

  /** A Ready's `readStates` and `abandonedReads`: confirms or fails the reads named. */
  readsSettled(readStates: readonly ReadState[], abandonedReads: readonly number[]): void {
    for (const rs of readStates) {
      const w = this.#reads.get(rs.requestId);
      this.#reads.delete(rs.requestId);
      w?.resolve(rs.index);
    }
    for (const id of abandonedReads) {
      const w = this.#reads.get(id);
      this.#reads.delete(id);
      w?.reject(
        new NodeError("unavailable", "leadership changed before the read was confirmed"),
      );
    }
  }

  /** Releases the confirmed reads whose index the state machine has reached. */
  releaseReads(applied: number): void {
    if (this.#readsAwaitingApply.length === 0) return;
    const still: PendingApply[] = [];
    for (const r of this.#readsAwaitingApply) {
      if (r.index <= applied) r.waiter.resolve();
      else still.push(r);
    }
    this.#readsAwaitingApply = still;
  }

  /**
   * This node no longer leads (`lead` is who does, if known): its proposals may
   * or may not commit, and no one here will learn which, so they fail now.
   */
  leadershipLost(lead: NodeId): void {
    if (this.#proposals.size > 0) {
      const err = new NodeError(
        "unavailable",
        "leadership was lost before the write committed; it may or may not take effect",
        lead,
      );
      for (const w of this.#proposals.values()) w.waiter.reject(err);
      this.#proposals.clear();
    }
  }

  /** Fails every call waiting (the node stops or fails). */
  failAll(err: NodeError): void {
    for (const w of this.#proposals.values()) w.waiter.reject(err);
    this.#proposals.clear();
    for (const w of this.#reads.values()) w.reject(err);
    this.#reads.clear();
    for (const r of this.#readsAwaitingApply) r.waiter.reject(err);
    this.#readsAwaitingApply = [];
  }
}

/**
 * The errors of a read whose caller's signal aborted first, made only then (an
 * Error captures a stack), by one function each rather than a closure per read.
 */
function lateReadConfirmation(): NodeError {
  return new NodeError("deadline", "the deadline passed before the read was confirmed");
}

function lateReadApply(): NodeError {
  return new NodeError("deadline", "the deadline passed before the read could be served");
}
