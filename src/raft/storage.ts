/**
 * Storage: the log, hard state and snapshot that are already durable, as the
 * core reads them. The core never writes here; the runtime does, after it
 * persists a {@link Ready} (the contract of etcd-io/raft's `Storage`,
 * hashicorp/raft's `LogStore`). {@link MemoryStorage} is the in-memory twin used
 * by tests and by the runtime as the cache in front of its write-ahead log.
 *
 * Indexes start at 1. Index 0 is a sentinel with term 0 that every log shares,
 * so "the entry before the first" always exists (Figure 2: prevLogIndex 0).
 *
 * Compaction (§7): once the state machine's state up to some index is saved in
 * a snapshot, the entries up to it may be discarded. The log then starts at
 * `firstIndex()`; the entry before it, at the compaction point `firstIndex() - 1`,
 * is gone too, but its term is remembered, so the consistency check of the entry
 * after it still works (the paper's "last included term"). Asking for anything
 * lower is a {@link CompactedError}, never a made-up 0. The compaction point is
 * the snapshot's index, or below it when the runtime keeps some entries behind the
 * snapshot so that slightly lagging followers can still catch up from the log
 * (etcd's SnapshotCatchUpEntries): always `firstIndex() - 1 <= snapshot().meta.index
 * <= lastIndex()`.
 *
 * @module
 */

import { CompactedError, SnapshotOutOfDateError } from "./errors.ts";
import {
  type ConfState,
  confStateOf,
  EMPTY_HARD_STATE,
  type Entry,
  type HardState,
  type Snapshot,
} from "./types.ts";
import type { NodeId } from "./types.ts";

/** What a node restarts from. */
export interface InitialState {
  readonly hardState: HardState;
  /**
   * The membership: the one in the latest snapshot, or the one the storage was
   * created with when there is none (membership change will fold in the
   * configuration entries after the snapshot).
   */
  readonly conf: ConfState;
}

/** Read access to the durable log. All methods are synchronous and cheap. */
export interface Storage {
  initialState(): InitialState;
  /**
   * Entries in [lo, hi), at least one if lo < hi, then as many as fit in
   * `maxBytes` of data. Throws {@link CompactedError} if lo < firstIndex, and an
   * Error if hi > lastIndex + 1.
   */
  entries(lo: number, hi: number, maxBytes?: number): Entry[];
  /**
   * The term of the entry at `index`, for index in [firstIndex - 1, lastIndex].
   * Below that: {@link CompactedError}; above: an Error.
   */
  term(index: number): number;
  /** The index of the first entry still held: the compaction point + 1 (1 before any compaction). */
  firstIndex(): number;
  /** The index of the last durable entry (the snapshot's index if no entry follows it); 0 for an empty log. */
  lastIndex(): number;
  /**
   * The latest durable snapshot; one with index 0 (see {@link isEmptySnapshot})
   * when there is none. A leader sends it to a follower that needs compacted entries.
   */
  snapshot(): Snapshot;
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

/** The snapshot of a storage that has none yet: index 0, term 0, the bootstrap membership. */
function emptySnapshot(conf: ConfState): Snapshot {
  return { meta: { index: 0, term: 0, conf: sortedConf(conf) }, data: new Uint8Array() };
}

/** A copy of `cs` with every list in ascending order. */
function sortedConf(cs: ConfState): ConfState {
  const asc = (ids: readonly NodeId[]) => [...ids].sort((a, b) => a - b);
  return {
    voters: asc(cs.voters),
    learners: asc(cs.learners),
    votersOutgoing: asc(cs.votersOutgoing),
    learnersNext: asc(cs.learnersNext),
    autoLeave: cs.autoLeave,
  };
}

/**
 * An in-memory {@link Storage} with the writer methods the runtime calls: append
 * (after persisting a Ready's entries), setHardState, applySnapshot (after
 * persisting a Ready's snapshot), createSnapshot and compact (when the runtime
 * snapshots its own state machine).
 */
export class MemoryStorage implements Storage {
  #hardState: HardState = EMPTY_HARD_STATE;
  #snapshot: Snapshot;
  /**
   * The compaction point: every entry at or below it is discarded. Its term is
   * kept in #offsetTerm.
   * Invariant: #offset <= #snapshot.meta.index <= lastIndex().
   */
  #offset = 0;
  #offsetTerm = 0;
  // Invariant: #entries[i].index === #offset + 1 + i, terms never decrease.
  #entries: Entry[] = [];

  /**
   * A storage with no log, whose membership is `conf` (or these voters) until a
   * snapshot says otherwise. An empty membership is a node that joins a running
   * cluster: it learns the membership from the leader.
   */
  constructor(conf: readonly NodeId[] | ConfState) {
    this.#snapshot = emptySnapshot(isConfState(conf) ? conf : confStateOf(conf));
  }

  initialState(): InitialState {
    return { hardState: this.#hardState, conf: this.#snapshot.meta.conf };
  }

  hardState(): HardState {
    return this.#hardState;
  }

  setHardState(hs: HardState): void {
    this.#hardState = hs;
  }

  firstIndex(): number {
    return this.#offset + 1;
  }

  lastIndex(): number {
    return this.#offset + this.#entries.length;
  }

  snapshot(): Snapshot {
    return this.#snapshot;
  }

  term(index: number): number {
    if (index === this.#offset) return this.#offsetTerm;
    if (index < this.#offset) throw new CompactedError(`term of index ${index}`, this.firstIndex());
    const e = this.#entries[index - this.#offset - 1];
    if (e === undefined) {
      throw new Error(
        `Cannot read term of index ${index}: the log ends at index ${this.lastIndex()}`,
      );
    }
    return e.term;
  }

  entries(lo: number, hi: number, maxBytes?: number): Entry[] {
    if (lo <= this.#offset) {
      throw new CompactedError(`entries [${lo}, ${hi})`, this.firstIndex());
    }
    if (hi > this.lastIndex() + 1 || lo > hi) {
      throw new Error(
        `Cannot read entries [${lo}, ${hi}): the log holds [${this.firstIndex()}, ${
          this.lastIndex() + 1
        })`,
      );
    }
    const off = this.#offset + 1;
    return limitSize(this.#entries.slice(lo - off, hi - off), maxBytes);
  }

  /**
   * Appends entries, first truncating any suffix they replace (a follower's
   * conflicting entries, §5.3). The first new entry may not leave a gap, nor lie
   * in the compacted prefix (the core never rewrites committed entries, and only
   * committed entries are compacted).
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    if (first > this.lastIndex() + 1) {
      throw new Error(
        `Cannot append at index ${first}: it would leave a gap after the last index ${this.lastIndex()}`,
      );
    }
    if (first <= this.#offset) {
      throw new CompactedError(
        `append at index ${first} (it would rewrite the compacted prefix)`,
        this.firstIndex(),
      );
    }
    if (first <= this.#snapshot.meta.index) {
      throw new Error(
        `Cannot append at index ${first}: it would rewrite entries the snapshot at index` +
          ` ${this.#snapshot.meta.index} covers, which are committed`,
      );
    }
    this.#entries.length = first - this.#offset - 1;
    for (const e of entries) this.#entries.push(e);
  }

  /**
   * Replaces everything with a snapshot received from a leader (a Ready's
   * `snapshot`, once persisted): the log becomes empty after the snapshot's
   * index, whose term is remembered. The hard state is left alone (the same Ready
   * carries the new one). Refuses a snapshot that is not newer than the one held
   * ({@link SnapshotOutOfDateError}): the core never hands out such a one.
   */
  applySnapshot(snap: Snapshot): void {
    const cur = this.#snapshot.meta.index;
    if (snap.meta.index <= cur) {
      throw new SnapshotOutOfDateError("apply a snapshot", snap.meta.index, cur);
    }
    this.#snapshot = snap;
    this.#offset = snap.meta.index;
    this.#offsetTerm = snap.meta.term;
    this.#entries = [];
  }

  /**
   * Records a snapshot of the application's state machine, which has applied
   * every entry up to `index` (so `index` is committed and durable here), with
   * membership `conf` and the application's bytes `data`. The log is left as it
   * is; {@link compact} discards entries afterwards. Refuses an index below the
   * snapshot held ({@link SnapshotOutOfDateError}; the same index replaces it with
   * the same state) or beyond the last index. Returns the snapshot.
   */
  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Snapshot {
    const cur = this.#snapshot.meta.index;
    if (index < cur) throw new SnapshotOutOfDateError("create a snapshot", index, cur);
    if (index > this.lastIndex()) {
      throw new Error(
        `Cannot create a snapshot at index ${index}: the log ends at index ${this.lastIndex()}`,
      );
    }
    const snap: Snapshot = {
      meta: {
        index,
        term: this.term(index),
        conf: sortedConf(conf),
      },
      data,
    };
    this.#snapshot = snap;
    return snap;
  }

  /**
   * Discards the entries below `index`: `index` becomes the compaction point,
   * whose term is kept, and firstIndex() becomes `index + 1`. It may not pass
   * the snapshot (entries beyond it would be lost with nothing to replace them),
   * and asking to compact below the current compaction point is a
   * {@link CompactedError} (compacting to it again does nothing).
   */
  compact(index: number): void {
    if (index < this.#offset) {
      throw new CompactedError(`compact to index ${index}`, this.firstIndex());
    }
    const snapIndex = this.#snapshot.meta.index;
    if (index > snapIndex) {
      throw new Error(
        `Cannot compact to index ${index}: the latest snapshot covers only up to index` +
          ` ${snapIndex}; create a snapshot at or beyond it first`,
      );
    }
    if (index === this.#offset) return;
    const term = this.term(index);
    this.#entries = this.#entries.slice(index - this.#offset);
    this.#offset = index;
    this.#offsetTerm = term;
  }

  /** An independent copy: what a crashed node's disk holds when it restarts. */
  clone(): MemoryStorage {
    const c = new MemoryStorage([]);
    c.#hardState = this.#hardState;
    c.#snapshot = this.#snapshot;
    c.#offset = this.#offset;
    c.#offsetTerm = this.#offsetTerm;
    c.#entries = [...this.#entries];
    return c;
  }
}

function isConfState(c: readonly NodeId[] | ConfState): c is ConfState {
  return !Array.isArray(c);
}
