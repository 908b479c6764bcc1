/**
 * The watch hub's history, stored compactly: the recent changes a watch can start
 * from, in log order, in a few large buffers instead of one object graph per change.
 *
 * Why: the hub kept each change as it came (a `KvChange` object holding its value, a
 * `Uint8Array` over an `ArrayBuffer` of its own). At 100,000 changes of 256 bytes
 * that is 300,000 heap objects and 100,000 separately allocated backing stores, all
 * long-lived: measured in one process applying 300,000 such puts, RSS 243 MB with the
 * history against 114 MB without (heap 87 vs 21 MB, external 52 vs 9 MB), on every
 * node, with or without a single watch open. Each value's backing store is allocated
 * outside V8's heap, so V8 frees it only when a major GC finds the old-space wrapper
 * dead, and the allocator keeps the freed chunks: the process's memory stayed at its
 * peak. Here the changes are columns of typed arrays and their values are copied
 * into one byte buffer per {@link SEGMENT_EVENTS} changes, so the history costs
 * about its bytes plus 30 bytes a change, in a few dozen allocations.
 *
 * Changes leave from the oldest ({@link WatchHistory.dropOldest}); a segment's
 * memory is given back once all its changes have left. Values read from the history
 * are views into a segment's buffer, which is never written again where a value was
 * stored (a buffer that grows is copied into a new one, and views of the old one stay
 * valid), so a reader may keep them as long as it likes.
 *
 * @module
 */

import type { KvChange } from "./store.ts";

/** Changes per segment: a segment's columns take about 120 KiB. */
export const SEGMENT_EVENTS = 4096;

/**
 * A segment's value buffer starts at this size and doubles while its changes need
 * more, up to {@link SEGMENT_MAX_BYTES} (or one value, when a value is bigger).
 */
const SEGMENT_FIRST_BYTES = 64 * 1024;

/** A segment whose values would pass this size is closed, and the next one begun. */
export const SEGMENT_MAX_BYTES = 1024 * 1024;

const KIND_PUT = 0;
const KIND_DELETE = 1;
const EMPTY = new Uint8Array();

/** A run of up to {@link SEGMENT_EVENTS} consecutive changes. */
class Segment {
  /** How many changes were stored here. */
  count = 0;
  /** How many of them have left the history (they are the first `dropped`). */
  dropped = 0;
  readonly indexes = new Float64Array(SEGMENT_EVENTS);
  readonly createIndexes = new Float64Array(SEGMENT_EVENTS);
  readonly leases = new Float64Array(SEGMENT_EVENTS);
  readonly kinds = new Uint8Array(SEGMENT_EVENTS);
  /** Where each change's value ends in `bytes` (it starts where the one before ends). */
  readonly valueEnds = new Uint32Array(SEGMENT_EVENTS);
  readonly keys: string[] = [];
  bytes: Uint8Array;

  constructor(firstValueBytes: number) {
    this.bytes = new Uint8Array(Math.max(SEGMENT_FIRST_BYTES, firstValueBytes));
  }

  get used(): number {
    return this.count === 0 ? 0 : this.valueEnds[this.count - 1]!;
  }

  /** True if `change` can be stored here (there is room, or the buffer may grow to it). */
  fits(valueBytes: number): boolean {
    if (this.count === SEGMENT_EVENTS) return false;
    const need = this.used + valueBytes;
    return need <= this.bytes.length || need <= SEGMENT_MAX_BYTES;
  }

  push(change: KvChange): void {
    const at = this.used;
    const end = at + change.value.length;
    if (end > this.bytes.length) {
      let size = this.bytes.length;
      while (size < end) size *= 2;
      const grown = new Uint8Array(Math.min(size, Math.max(end, SEGMENT_MAX_BYTES)));
      grown.set(this.bytes.subarray(0, at));
      this.bytes = grown;
    }
    this.bytes.set(change.value, at);
    const i = this.count++;
    this.indexes[i] = change.index;
    this.createIndexes[i] = change.createIndex;
    this.leases[i] = change.lease;
    this.kinds[i] = change.kind === "put" ? KIND_PUT : KIND_DELETE;
    this.valueEnds[i] = end;
    this.keys.push(change.key);
  }

  /** Change `i` of this segment, as a `KvChange` whose value is a view of `bytes`. */
  at(i: number): KvChange {
    const start = i === 0 ? 0 : this.valueEnds[i - 1]!;
    const end = this.valueEnds[i]!;
    return {
      kind: this.kinds[i] === KIND_PUT ? "put" : "delete",
      key: this.keys[i]!,
      value: end === start ? EMPTY : this.bytes.subarray(start, end),
      index: this.indexes[i]!,
      createIndex: this.createIndexes[i]!,
      lease: this.leases[i]!,
    };
  }
}

/** The changes a watch can start from, oldest first; see the module doc. */
export class WatchHistory {
  /** Oldest first; only the first may have dropped changes, only the last takes new ones. */
  #segments: Segment[] = [];
  #length = 0;

  /** The number of changes held. */
  get length(): number {
    return this.#length;
  }

  /** The segments held (for tests: memory comes back a segment at a time). */
  get segments(): number {
    return this.#segments.length;
  }

  /** Appends `change`, whose index is at least the last one's (log order). */
  push(change: KvChange): void {
    const segments = this.#segments;
    let last = segments[segments.length - 1];
    if (last !== undefined && last.count > 0) {
      const lastIndex = last.indexes[last.count - 1]!;
      if (change.index < lastIndex) {
        throw new Error(
          `Cannot add the change at index ${change.index} to the watch history: ` +
            `it already holds index ${lastIndex} (changes come in log order)`,
        );
      }
    }
    if (last === undefined || !last.fits(change.value.length)) {
      last = new Segment(change.value.length);
      segments.push(last);
    }
    last.push(change);
    this.#length++;
  }

  /** Removes the oldest change and returns it; undefined when the history is empty. */
  dropOldest(): KvChange | undefined {
    const first = this.#segments[0];
    if (first === undefined || first.dropped === first.count) return undefined;
    const change = first.at(first.dropped++);
    this.#length--;
    if (first.dropped === first.count) {
      // Every change of it has left: its memory goes with it (the last segment too,
      // so that an empty history holds nothing).
      this.#segments.shift();
    }
    return change;
  }

  /** Forgets every change. */
  clear(): void {
    this.#segments = [];
    this.#length = 0;
  }

  /**
   * The changes whose key `matches`, from the first whose index is at least `from`,
   * up to about `maxBytes` as `sizeOf` counts them: whole indexes (the changes of one
   * index are never split), and at least one index's. `lastIndex` is the last index
   * read (`from - 1` if none); `complete` when the history was read to its end.
   */
  read(
    from: number,
    maxBytes: number,
    matches: (key: string) => boolean,
    sizeOf: (change: KvChange) => number,
  ): { events: KvChange[]; lastIndex: number; complete: boolean } {
    const segments = this.#segments;
    // The first segment whose last change is at or past `from`.
    let lo = 0;
    let hi = segments.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const s = segments[mid]!;
      if (s.indexes[s.count - 1]! < from) lo = mid + 1;
      else hi = mid;
    }
    const events: KvChange[] = [];
    let bytes = 0;
    let lastIndex = from - 1;
    for (let k = lo; k < segments.length; k++) {
      const s = segments[k]!;
      let i = s.dropped;
      if (k === lo) {
        let b = s.count;
        while (i < b) {
          const mid = (i + b) >>> 1;
          if (s.indexes[mid]! < from) i = mid + 1;
          else b = mid;
        }
      }
      for (; i < s.count; i++) {
        const index = s.indexes[i]!;
        if (index !== lastIndex && bytes >= maxBytes && events.length > 0) {
          return { events, lastIndex, complete: false };
        }
        lastIndex = index;
        // The key is tested before a change is made of the columns: most changes a
        // watcher passes over are not its own.
        if (!matches(s.keys[i]!)) continue;
        const c = s.at(i);
        events.push(c);
        bytes += sizeOf(c);
      }
    }
    return { events, lastIndex, complete: true };
  }
}
