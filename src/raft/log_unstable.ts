/**
 * The tail of the log that is not yet durable: entries a leader appended from
 * proposals or a follower received from its leader, and a snapshot a follower
 * received, waiting for the runtime to persist them. Together with
 * {@link Storage} it forms the whole log.
 *
 * @module
 */

import { invariant } from "./invariant.ts";
import type { Entry, Snapshot } from "./types.ts";

/** A snapshot and entries not yet on stable storage. */
export class Unstable {
  /**
   * A snapshot received from the leader and restored, not yet durable (etcd's
   * unstable snapshot). While it is here, it replaces the whole durable log: the
   * log is this snapshot followed by `entries`, and nothing is applied until it is
   * persisted and applied first.
   * Invariant: when present, offset === snapshot.meta.index + 1.
   */
  snapshot: Snapshot | undefined;
  /**
   * The index of `entries[0]`. Everything below it is durable in storage (or, with
   * a pending snapshot, covered by it).
   * Invariant: offset >= 1; entries[i].index === offset + i.
   */
  offset: number;
  entries: Entry[] = [];

  constructor(offset: number) {
    this.offset = offset;
  }

  /** The first index of the log, when a pending snapshot decides it. */
  maybeFirstIndex(): number | undefined {
    return this.snapshot === undefined ? undefined : this.snapshot.meta.index + 1;
  }

  /** The last index held here (an entry, or the pending snapshot's index), if any. */
  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot?.meta.index;
  }

  /** The term at `index` if this tail holds it (an entry, or the pending snapshot's index). */
  maybeTerm(index: number): number | undefined {
    if (index < this.offset) {
      const s = this.snapshot;
      return s !== undefined && s.meta.index === index ? s.meta.term : undefined;
    }
    return this.entries[index - this.offset]?.term;
  }

  /**
   * Entries up to `index` became durable. Ignored when the entry at `index` was
   * replaced by one of another term meanwhile, or lies before this tail (a
   * snapshot restored meanwhile superseded it): the write that finished is stale.
   */
  stableTo(index: number, term: number): void {
    if (index < this.offset || this.entries[index - this.offset]?.term !== term) return;
    this.entries = this.entries.slice(index + 1 - this.offset);
    this.offset = index + 1;
  }

  /** The pending snapshot at `index` became durable. Ignored if another replaced it meanwhile. */
  stableSnapTo(index: number): void {
    if (this.snapshot !== undefined && this.snapshot.meta.index === index) {
      this.snapshot = undefined;
    }
  }

  /** Replaces the whole log with `snap` (§7: "discard the entire log"). */
  restore(snap: Snapshot): void {
    this.snapshot = snap;
    this.offset = snap.meta.index + 1;
    this.entries = [];
  }

  /**
   * Appends `ents`, first dropping whatever they replace. The first new entry may
   * lie before `offset`: then the durable suffix from there is superseded too
   * (the runtime's next write truncates it on disk).
   */
  truncateAndAppend(ents: readonly Entry[]): void {
    if (ents.length === 0) return;
    const after = ents[0]!.index;
    const end = this.offset + this.entries.length;
    if (after === end) {
      this.entries.push(...ents);
    } else if (after <= this.offset) {
      invariant(
        this.snapshot === undefined || after > this.snapshot.meta.index,
        () =>
          `unstable: append at ${after} would rewrite the pending snapshot at index ${
            this.snapshot!.meta.index
          }`,
      );
      this.offset = after;
      this.entries = [...ents];
    } else {
      invariant(
        after < end,
        () => `unstable: append at ${after} leaves a gap after last index ${end - 1}`,
      );
      this.entries = [...this.entries.slice(0, after - this.offset), ...ents];
    }
  }

  /** Entries in [lo, hi), which must lie inside this tail. */
  slice(lo: number, hi: number): Entry[] {
    invariant(
      this.offset <= lo && lo <= hi && hi <= this.offset + this.entries.length,
      () =>
        `unstable: slice [${lo}, ${hi}) out of bounds [${this.offset}, ${
          this.offset + this.entries.length
        })`,
    );
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}
