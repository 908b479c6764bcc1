/**
 * Storage: the log and hard state that are already durable, as the core reads
 * them. The core never writes here; the runtime does, after it persists a
 * {@link Ready} (the contract of etcd-io/raft's `Storage`, hashicorp/raft's
 * `LogStore`). {@link MemoryStorage} is the in-memory twin used by tests and by the
 * runtime as the cache in front of its write-ahead log.
 *
 * Indexes start at 1. Index 0 is a sentinel with term 0 that every log shares,
 * so "the entry before the first" always exists (Figure 2: prevLogIndex 0).
 *
 * @module
 */

import { EMPTY_HARD_STATE, type Entry, type HardState, type NodeId } from "./types.ts";

/** What a node restarts from. */
export interface InitialState {
  readonly hardState: HardState;
  /** The voting members of the cluster. */
  readonly voters: readonly NodeId[];
}

/** Read access to the durable log. All methods are synchronous and cheap. */
export interface Storage {
  initialState(): InitialState;
  /**
   * Entries in [lo, hi), at least one if lo < hi, then as many as fit in
   * `maxBytes` of data. Throws if the range is outside [firstIndex, lastIndex + 1).
   */
  entries(lo: number, hi: number, maxBytes?: number): Entry[];
  /** The term of the entry at `index`, for index in [firstIndex - 1, lastIndex]. */
  term(index: number): number;
  /** The index of the first entry still held (1 until compaction exists). */
  firstIndex(): number;
  /** The index of the last durable entry; 0 for an empty log. */
  lastIndex(): number;
}

/** Sums entry payload sizes, always admitting the first (so progress is never blocked). */
export function limitSize(entries: Entry[], maxBytes: number | undefined): Entry[] {
  if (maxBytes === undefined || entries.length === 0) return entries;
  let size = entries[0]!.data.length;
  let n = 1;
  for (; n < entries.length; n++) {
    size += entries[n]!.data.length;
    if (size > maxBytes) break;
  }
  return n === entries.length ? entries : entries.slice(0, n);
}

/** An in-memory {@link Storage} with the writer methods the runtime calls. */
export class MemoryStorage implements Storage {
  #hardState: HardState = EMPTY_HARD_STATE;
  #voters: NodeId[];
  // Invariant: #entries[i].index === i + 1, terms never decrease.
  #entries: Entry[] = [];

  constructor(voters: readonly NodeId[]) {
    this.#voters = [...voters];
  }

  initialState(): InitialState {
    return { hardState: this.#hardState, voters: this.#voters };
  }

  hardState(): HardState {
    return this.#hardState;
  }

  setHardState(hs: HardState): void {
    this.#hardState = hs;
  }

  firstIndex(): number {
    return 1;
  }

  lastIndex(): number {
    return this.#entries.length;
  }

  term(index: number): number {
    if (index === 0) return 0;
    const e = this.#entries[index - 1];
    if (e === undefined) {
      throw new Error(`storage: term(${index}) out of range [0, ${this.lastIndex()}]`);
    }
    return e.term;
  }

  entries(lo: number, hi: number, maxBytes?: number): Entry[] {
    if (lo < 1 || hi > this.lastIndex() + 1 || lo > hi) {
      throw new Error(
        `storage: entries [${lo}, ${hi}) out of range [1, ${this.lastIndex() + 1})`,
      );
    }
    return limitSize(this.#entries.slice(lo - 1, hi - 1), maxBytes);
  }

  /**
   * Appends entries, first truncating any suffix they replace (a follower's
   * conflicting entries, §5.3). The first new entry may not leave a gap.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    if (first > this.lastIndex() + 1) {
      throw new Error(
        `storage: append at ${first} would leave a gap after last index ${this.lastIndex()}`,
      );
    }
    this.#entries.length = first - 1;
    for (const e of entries) this.#entries.push(e);
  }

  /** An independent copy: what a crashed node's disk holds when it restarts. */
  clone(): MemoryStorage {
    const c = new MemoryStorage(this.#voters);
    c.#hardState = this.#hardState;
    c.#entries = [...this.#entries];
    return c;
  }
}
