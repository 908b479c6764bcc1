/**
 * The tail of the log that is not yet durable: entries a leader appended from
 * proposals or a follower received from its leader, waiting for the runtime to
 * persist them. Together with {@link Storage} it forms the whole log.
 *
 * @module
 */

import { invariant } from "./invariant.ts";
import type { Entry } from "./types.ts";

/** Entries not yet on stable storage. */
export class Unstable {
  /**
   * The index of `entries[0]`. Everything below it is durable in storage.
   * Invariant: offset >= 1; entries[i].index === offset + i.
   */
  offset: number;
  entries: Entry[] = [];

  constructor(offset: number) {
    this.offset = offset;
  }

  /** The last index held here, if any. */
  maybeLastIndex(): number | undefined {
    return this.entries.length === 0 ? undefined : this.offset + this.entries.length - 1;
  }

  /** The term at `index` if this tail holds it. */
  maybeTerm(index: number): number | undefined {
    if (index < this.offset) return undefined;
    return this.entries[index - this.offset]?.term;
  }

  /**
   * Entries up to `index` became durable. Ignored when the entry at `index` was
   * replaced by one of another term meanwhile (the write that finished is stale).
   */
  stableTo(index: number, term: number): void {
    if (this.maybeTerm(index) !== term) return;
    this.entries = this.entries.slice(index + 1 - this.offset);
    this.offset = index + 1;
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
