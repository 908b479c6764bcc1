/**
 * Watches: the changes to a key, a prefix or a range, in log order, from an index or
 * from now. Every node keeps its own hub over its own applied state (a follower serves
 * watches from what it has applied), so nothing here is replicated or proposed.
 *
 * The hub holds a bounded history: the last {@link WatchLimits.historyEvents} changes
 * (and at most {@link WatchLimits.historyBytes} of keys and values), stored compactly
 * (`watch_history.ts`: a node keeps it whether or not anyone watches). A watch that
 * starts at or after the oldest index held is served from the history, then live; one
 * that starts before gets a {@link WatchError} of kind `"compacted"` naming the oldest
 * index it can serve, so the client can re-read (Range) and watch from the index of
 * that read + 1 (etcd's ErrCompacted). History starts when the hub is made and starts
 * over when the store installs a snapshot: the changes between are unknown here, so
 * every watch then open is cancelled the same way.
 *
 * A watcher is only a cursor into that one shared history (the next index it will
 * deliver), so watchers buffer nothing of their own: a watcher that does not keep up
 * falls behind the history instead, and once changes it has not read leave the history
 * it is cancelled with kind `"slow"`, rather than buffered without bound.
 *
 * Delivery is exact: the store reports each change synchronously as it applies it, so
 * once the store's applied index is X every change up to X is in the history. A batch
 * taken from a watcher carries `throughIndex`: every matching change up to it has been
 * delivered, so a client resumes from `throughIndex + 1` and misses or repeats nothing.
 *
 * @module
 */

import { compareKeys } from "./key_index.ts";
import type { KvChange, KvObserver, KvStore } from "./store.ts";
import { WatchHistory } from "./watch_history.ts";

/** Which keys a watch follows. */
export type WatchFilter =
  | { readonly kind: "key"; readonly key: string }
  | { readonly kind: "prefix"; readonly prefix: string }
  /** `[start, end)`; "" for an open end on either side. */
  | { readonly kind: "range"; readonly start: string; readonly end: string };

/** The bounds of a hub. */
export interface WatchLimits {
  /** Changes the history keeps. */
  readonly historyEvents: number;
  /** Bytes of keys and values the history keeps (64 + 3 per key character + the value, a change). */
  readonly historyBytes: number;
}

/**
 * The default bounds: about 20 seconds of history at 1,000 writes a second, per node,
 * which every node keeps whether or not anyone watches. It was 100,000 changes (64
 * MiB): even stored compactly (watch_history.ts) that held about 26 MB of 256-byte
 * values on every node, and `deno task bench:longrun` measured RSS 179 / 210 MB
 * (follower / leader) at 100,000 puts with it against 154 / 174 MB at 90,000 with
 * 20,000, against a target of 150 MB (issue 9). A watch that must resume from further
 * back re-reads with Range and watches on (the `compacted` error says from where).
 */
export const DEFAULT_WATCH_LIMITS: WatchLimits = {
  historyEvents: 20_000,
  historyBytes: 16 * 1024 * 1024,
};

/** Why a watch cannot start or go on. */
export class WatchError extends Error {
  override name = "WatchError";
  constructor(
    /** `compacted`: history gone (see oldestIndex); `slow`: did not keep up; `closed`: hub closed. */
    readonly kind: "compacted" | "slow" | "closed",
    message: string,
    /** For `compacted`: the oldest index the hub can serve a watch from. */
    readonly oldestIndex = 0,
  ) {
    super(message);
  }
}

/** A batch of changes taken from a watcher. */
export interface WatchBatch {
  /** The changes, in log order (possibly none: a progress report). */
  readonly events: KvChange[];
  /** Every matching change up to this index has now been delivered. */
  readonly throughIndex: number;
}

function sizeOf(c: KvChange): number {
  return 64 + c.key.length * 3 + c.value.length;
}

/**
 * One open watch: a cursor into the hub's history, the next index to deliver. Take its
 * changes with {@link Watcher.take}; wait for more with {@link Watcher.wait}.
 */
export class Watcher {
  readonly #hub: WatchHub;
  readonly filter: WatchFilter;
  /** The next index to deliver: every change before it has been delivered. */
  #next: number;
  #error: WatchError | undefined;
  #wake: (() => void) | undefined;
  /** Set by the hub when a matching change arrived since the last take. */
  #pending = false;

  constructor(hub: WatchHub, filter: WatchFilter, startIndex: number) {
    this.#hub = hub;
    this.filter = filter;
    this.#next = startIndex;
    this.#pending = true; // history may already hold changes to deliver
  }

  /** The next index this watcher will deliver. */
  get nextIndex(): number {
    return this.#next;
  }

  /** True if `key` is one this watcher follows. */
  matches(key: string): boolean {
    const f = this.filter;
    switch (f.kind) {
      case "key":
        return key === f.key;
      case "prefix":
        return key.startsWith(f.prefix);
      case "range":
        return (f.start === "" || compareKeys(key, f.start) >= 0) &&
          (f.end === "" || compareKeys(key, f.end) < 0);
    }
  }

  /** Ends the watcher with `error`; a waiter wakes. */
  cancel(error: WatchError): void {
    if (this.#error !== undefined) return;
    this.#error = error;
    this.#hub.forget(this);
    this.#notify();
  }

  /** The error that ended this watcher, if one has. */
  get error(): WatchError | undefined {
    return this.#error;
  }

  /** @internal The hub saw a matching change. */
  notify(): void {
    this.#pending = true;
    this.#notify();
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  /**
   * Resolves when a matching change may be pending, the watcher ended, `timeoutMs`
   * passed or `signal` aborted, whichever comes first.
   */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.#pending || this.#error !== undefined || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal?.addEventListener("abort", done, { once: true });
      this.#wake = done;
    });
  }

  /**
   * Takes the next matching changes, up to about `maxBytes` (never splitting the
   * changes of one index, and at least one index's), and says through which index
   * everything has been delivered. Throws the watcher's {@link WatchError} once it has
   * ended, and ends it as `slow` if history it had not yet read was dropped.
   */
  take(maxBytes = 1024 * 1024): WatchBatch {
    if (this.#error !== undefined) throw this.#error;
    this.#pending = false;
    const hub = this.#hub;
    if (this.#next <= hub.appliedIndex && this.#next < hub.oldestIndex) {
      this.cancel(
        new WatchError(
          "slow",
          `the watch fell behind: the changes from index ${this.#next} it had not yet ` +
            `received left this node's history (it keeps ${hub.limits.historyEvents} changes, ` +
            `${hub.limits.historyBytes} bytes; oldest now ${hub.oldestIndex}); read the ` +
            `current state and watch again`,
        ),
      );
      throw this.#error!;
    }
    const { events, lastIndex, complete } = hub.read(this, this.#next, maxBytes);
    const throughIndex = complete ? Math.max(hub.appliedIndex, this.#next - 1) : lastIndex;
    this.#next = throughIndex + 1;
    if (!complete) this.#pending = true;
    return { events, throughIndex };
  }

  /** Stops the watch (the client went away). */
  close(): void {
    this.cancel(new WatchError("closed", "the watch was closed"));
  }
}

/** The watches of one store, and its recent history. */
export class WatchHub implements KvObserver {
  readonly #store: KvStore;
  readonly limits: WatchLimits;
  readonly #watchers = new Set<Watcher>();
  /** The history: changes in log order, oldest first. */
  readonly #history = new WatchHistory();
  /** The bytes of the history, as {@link sizeOf} counts them. */
  #historyBytes = 0;
  /** History is complete for indexes above this one. */
  #floor: number;
  #dirty = new Set<Watcher>();
  #flushScheduled = false;
  #closed = false;

  /** Starts observing `store` (its one observer); history starts at its applied index. */
  constructor(store: KvStore, limits: WatchLimits = DEFAULT_WATCH_LIMITS) {
    this.#store = store;
    this.limits = limits;
    this.#floor = store.appliedIndex;
    store.observe(this);
  }

  /** The store's applied index: every change up to it has been reported here. */
  get appliedIndex(): number {
    return this.#store.appliedIndex;
  }

  /** The oldest index a watch can start from here. */
  get oldestIndex(): number {
    return this.#floor + 1;
  }

  /** The number of open watchers. */
  get size(): number {
    return this.#watchers.size;
  }

  /**
   * Opens a watch of `filter` from `startIndex` (0: from now, the next change applied).
   *
   * @throws {WatchError} `compacted` if `startIndex` is older than the history held,
   * `closed` if the hub is closed.
   */
  watch(filter: WatchFilter, startIndex: number): Watcher {
    if (this.#closed) throw new WatchError("closed", "the node is shutting down");
    const start = startIndex === 0 ? this.appliedIndex + 1 : startIndex;
    if (start <= this.#floor) {
      throw new WatchError(
        "compacted",
        `Cannot watch from index ${start}: this node holds changes from index ` +
          `${this.oldestIndex} on (older ones were compacted); read the current state and ` +
          `watch from the index of that read + 1`,
        this.oldestIndex,
      );
    }
    const watcher = new Watcher(this, filter, start);
    this.#watchers.add(watcher);
    return watcher;
  }

  /**
   * @internal The changes `watcher` follows from index `from` on, up to about
   * `maxBytes` (whole indexes); `complete` when the history held was read to its end.
   */
  read(
    watcher: Watcher,
    from: number,
    maxBytes: number,
  ): { events: KvChange[]; lastIndex: number; complete: boolean } {
    return this.#history.read(from, maxBytes, (key) => watcher.matches(key), sizeOf);
  }

  /** @internal A watcher that ended leaves the hub. */
  forget(watcher: Watcher): void {
    this.#watchers.delete(watcher);
    this.#dirty.delete(watcher);
  }

  /** KvObserver: a change applied; into the history, and a wake-up for the watchers it matches. */
  change(change: KvChange): void {
    this.#history.push(change);
    this.#historyBytes += sizeOf(change);
    this.#evict();
    for (const w of this.#watchers) {
      if (w.matches(change.key)) this.#dirty.add(w);
    }
    if (!this.#flushScheduled && this.#dirty.size > 0) {
      this.#flushScheduled = true;
      // Wake the waiting watchers once the store has finished applying (its applied
      // index then covers every change queued).
      queueMicrotask(() => this.#flush());
    }
  }

  /** KvObserver: a snapshot replaced the state; history restarts, every watch is cancelled. */
  restored(index: number): void {
    this.#history.clear();
    this.#historyBytes = 0;
    this.#floor = index;
    const error = new WatchError(
      "compacted",
      `this node installed a snapshot at index ${index} and holds no changes before ` +
        `${index + 1}; read the current state and watch from the index of that read + 1`,
      index + 1,
    );
    for (const w of [...this.#watchers]) w.cancel(error);
  }

  /** Cancels every watch (the node stops) and stops observing the store. */
  close(): void {
    this.#closed = true;
    const error = new WatchError("closed", "the node is shutting down; watch again elsewhere");
    for (const w of [...this.#watchers]) w.cancel(error);
    this.#store.observe(undefined);
  }

  #flush(): void {
    this.#flushScheduled = false;
    const dirty = this.#dirty;
    this.#dirty = new Set();
    for (const w of dirty) w.notify();
  }

  #evict(): void {
    const { historyEvents, historyBytes } = this.limits;
    const history = this.#history;
    while (
      history.length > historyEvents ||
      (this.#historyBytes > historyBytes && history.length > 1)
    ) {
      const old = history.dropOldest()!;
      this.#historyBytes -= sizeOf(old);
      // Changes of the same index may remain, but the index is no longer whole.
      this.#floor = Math.max(this.#floor, old.index);
    }
  }
}
