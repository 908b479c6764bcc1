/**
 * The replicated log as the core sees it: the durable prefix in {@link Storage}
 * followed by the {@link Unstable} tail, plus the commit and apply cursors.
 *
 * With compaction (§7) the log starts at `firstIndex()`: the entries below it are
 * replaced by a snapshot, durable in storage or pending in the unstable tail (a
 * snapshot received from the leader and not yet persisted). The term at
 * `firstIndex() - 1` is still known; asking for anything lower throws a
 * {@link CompactedError}.
 *
 * @module
 */

import { CompactedError } from "./errors.ts";
import { invariant } from "./invariant.ts";
import { Unstable } from "./log_unstable.ts";
import { limitSize, type Storage } from "./storage.ts";
import type { Entry, Snapshot } from "./types.ts";

/** The log of one node. */
export class RaftLog {
  readonly storage: Storage;
  readonly unstable: Unstable;
  /**
   * The highest index known to be stored on a majority (Figure 2, commitIndex).
   * Invariant: applied <= applying <= committed <= lastIndex().
   */
  committed: number;
  /** The highest index handed to the application for applying (in a Ready not yet advanced). */
  applying: number;
  /** The highest index the application has applied (Figure 2, lastApplied). */
  applied: number;

  /**
   * @param committed the commit index of the durable hard state. A durable
   *   snapshot raises it to the snapshot's index: only committed entries are
   *   snapshotted, and a crash between persisting a received snapshot and the
   *   hard state that follows it leaves the older commit index on disk.
   * @param applied how far the application's state machine has applied. It may
   *   not be below a durable snapshot's index: the entries up to it are gone, so
   *   the state machine must have been restored from that snapshot first.
   */
  constructor(storage: Storage, committed: number, applied: number) {
    this.storage = storage;
    this.unstable = new Unstable(storage.lastIndex() + 1);
    const snapIndex = storage.snapshot().meta.index;
    committed = Math.max(committed, snapIndex);
    invariant(
      committed <= storage.lastIndex(),
      () =>
        `hard state commit ${committed} is beyond the last durable index ${storage.lastIndex()}`,
    );
    if (applied < snapIndex) {
      throw new Error(
        `Cannot start with applied index ${applied}: storage holds a snapshot at index` +
          ` ${snapIndex}, and the entries up to it are compacted; restore the state machine` +
          ` from storage.snapshot() and start with applied >= ${snapIndex}`,
      );
    }
    invariant(
      applied <= committed,
      () => `applied index ${applied} is beyond commit index ${committed}`,
    );
    this.committed = committed;
    this.applying = applied;
    this.applied = applied;
  }

  /**
   * The index of the first entry held: the one after a pending snapshot, else
   * after storage's compaction point. The term at `firstIndex() - 1` is known.
   */
  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  /** The index of the last entry, durable or not; 0 for an empty log. */
  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): number {
    return this.term(this.lastIndex())!;
  }

  /**
   * The last index known durable: every entry up to it is on stable storage.
   * While a snapshot is pending, that is its index once the Ready that carries it
   * is persisted; nothing is applied before then (see nextCommittedEntries).
   */
  stableIndex(): number {
    return this.unstable.offset - 1;
  }

  /**
   * The term of the entry at `index`, or undefined past the end. Index 0 has term
   * 0. Below `firstIndex() - 1` the term is unknown: a {@link CompactedError}.
   */
  term(index: number): number | undefined {
    if (index === 0) return 0;
    if (index > this.lastIndex() || index < 0) return undefined;
    const t = this.unstable.maybeTerm(index);
    if (t !== undefined) return t;
    if (index < this.firstIndex() - 1) {
      throw new CompactedError(`term of index ${index}`, this.firstIndex());
    }
    return this.storage.term(index);
  }

  /** True when the log holds an entry at `index` with `term`; false for a compacted index. */
  matchTerm(index: number, term: number): boolean {
    if (index < this.firstIndex() - 1) return false;
    return this.term(index) === term;
  }

  /** The snapshot a leader sends: the pending one if any (never on a leader), else storage's. */
  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  /**
   * Replaces the whole log with a snapshot from the leader (§7, Figure 13 step
   * 8): it is pending in the unstable tail until persisted, and the commit index
   * moves to its index (a snapshot holds only committed entries).
   */
  restore(snap: Snapshot): void {
    invariant(
      snap.meta.index > this.committed,
      () =>
        `restoring snapshot at ${snap.meta.index} would move the commit index back from ` +
        `${this.committed}`,
    );
    this.unstable.restore(snap);
    this.committed = snap.meta.index;
  }

  /**
   * The election restriction (§5.4.1): a candidate's log is at least as
   * up-to-date as ours if its last term is greater, or equal with an index at
   * least as large.
   */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * The AppendEntries receiver rules (Figure 2, steps 2 to 5): if the log matches
   * at (prevIndex, prevTerm), append the entries that are new, truncating the
   * first conflicting entry and all after it, advance the commit index, and return
   * the index of the last entry the request covered. Undefined when the
   * consistency check fails.
   */
  maybeAppend(
    prevIndex: number,
    prevTerm: number,
    leaderCommit: number,
    ents: readonly Entry[],
  ): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = prevIndex + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      invariant(
        ci > this.committed,
        () =>
          `entry ${ci} conflicts with committed entry (committed ${this.committed}): Log Matching is broken`,
      );
      this.append(ents.slice(ci - (prevIndex + 1)));
    }
    // Figure 2, step 5: commit up to the last *new* entry, never past it: entries
    // after it may be stale leftovers this leader has not vouched for.
    this.commitTo(Math.min(leaderCommit, lastNew));
    return lastNew;
  }

  /** Appends entries (their first index may overwrite an uncommitted suffix); returns the last index. */
  append(ents: readonly Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0]!.index - 1;
    invariant(
      after >= this.committed,
      () => `cannot overwrite committed entry ${after + 1} (committed ${this.committed})`,
    );
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /**
   * The index of the first entry in `ents` that is absent here or has another
   * term, or 0 when all of them are already present.
   */
  findConflict(ents: readonly Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Fast log back-up (§5.3): the largest index <= `index` whose term is <= `term`,
   * with that term. Every entry after it up to `index` has a greater term, so
   * cannot match an entry of term <= `term`: the other side may skip them all.
   * The search stops at the compacted prefix, whose terms are unknown: it returns
   * the first compacted index with term 0 ("unknown"), so a leader probes there
   * and, finding it compacted, sends its snapshot (as etcd-io/raft does).
   */
  findConflictByTerm(index: number, term: number): [number, number] {
    let i = Math.min(index, this.lastIndex());
    const known = this.firstIndex() - 1;
    for (; i > 0; i--) {
      if (i < known) return [i, 0];
      const t = this.term(i)!;
      if (t <= term) return [i, t];
    }
    return [0, 0];
  }

  /** Entries in [lo, lastIndex], at most `maxBytes` of payload (but at least one). */
  entriesFrom(lo: number, maxBytes: number): Entry[] {
    return this.slice(lo, this.lastIndex() + 1, maxBytes);
  }

  /**
   * Entries in [lo, hi), from storage and the unstable tail as needed. Below
   * `firstIndex()` they are compacted: a {@link CompactedError}.
   */
  slice(lo: number, hi: number, maxBytes?: number): Entry[] {
    invariant(
      1 <= lo && lo <= hi && hi <= this.lastIndex() + 1,
      () => `slice [${lo}, ${hi}) out of bounds [1, ${this.lastIndex() + 1})`,
    );
    if (lo === hi) return [];
    const first = this.firstIndex();
    if (lo < first) throw new CompactedError(`entries [${lo}, ${hi})`, first);
    const off = this.unstable.offset;
    let out: Entry[] = [];
    if (lo < off) {
      out = this.storage.entries(lo, Math.min(hi, off), maxBytes);
      if (out.length < Math.min(hi, off) - lo) return out; // size limit reached
    }
    if (hi > off) out = out.concat(this.unstable.slice(Math.max(lo, off), hi));
    return limitSize(out, maxBytes);
  }

  /** Raises the commit index (never lowers it). */
  commitTo(index: number): void {
    if (index <= this.committed) return;
    invariant(
      index <= this.lastIndex(),
      () => `commit index ${index} is out of range [${this.committed}, ${this.lastIndex()}]`,
    );
    this.committed = index;
  }

  /**
   * Commits up to `index` if it is from `term`, the leader's current term. A
   * leader never commits an older term's entry by counting replicas (§5.4.2,
   * Figure 8): it becomes committed only when a current-term entry after it is.
   */
  maybeCommit(index: number, term: number): boolean {
    if (index > this.committed && this.term(index) === term) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  /** Entries are durable up to (index, term). */
  stableTo(index: number, term: number): void {
    this.unstable.stableTo(index, term);
  }

  /** The pending snapshot at `index` is durable. */
  stableSnapTo(index: number): void {
    this.unstable.stableSnapTo(index);
  }

  /** Entries the runtime must persist. */
  unstableEntries(): Entry[] {
    return [...this.unstable.entries];
  }

  /**
   * The committed entries not yet handed out for applying. Only durable entries
   * are applied: a node never applies what it could forget in a crash. None while
   * a snapshot is pending: it must be persisted and applied first, and it covers
   * every entry up to its index.
   */
  nextCommittedEntries(maxBytes?: number): Entry[] {
    if (!this.hasNextCommittedEntries()) return [];
    const hi = Math.min(this.committed, this.stableIndex());
    return this.slice(this.applying + 1, hi + 1, maxBytes);
  }

  hasNextCommittedEntries(): boolean {
    if (this.unstable.snapshot !== undefined) return false;
    return Math.min(this.committed, this.stableIndex()) > this.applying;
  }

  /**
   * The application is restoring its state machine from the pending snapshot,
   * handed out in a Ready: it covers every entry up to its index.
   */
  applyingSnapshot(snap: Snapshot): void {
    invariant(
      snap === this.unstable.snapshot,
      () => `applying snapshot at ${snap.meta.index}, which is not the pending one`,
    );
    invariant(
      snap.meta.index > this.applying && snap.meta.index <= this.committed,
      () =>
        `applying snapshot at ${snap.meta.index} is out of range (${this.applying}, ` +
        `${this.committed}]`,
    );
    this.applying = snap.meta.index;
  }

  /** The application is applying entries up to `index`. */
  applyingTo(index: number): void {
    invariant(
      index > this.applying && index <= this.committed,
      () => `applying ${index} is out of range (${this.applying}, ${this.committed}]`,
    );
    this.applying = index;
  }

  /** The application applied entries up to `index`. */
  appliedTo(index: number): void {
    invariant(
      index >= this.applied && index <= this.applying,
      () => `applied ${index} is out of range [${this.applied}, ${this.applying}]`,
    );
    this.applied = index;
  }
}
