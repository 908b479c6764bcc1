/**
 * Taking snapshots in the background (§7 of the Raft paper; etcd's
 * `triggerSnapshot` every `--snapshot-count` entries).
 *
 * Every `everyEntries` applied entries the node hands the {@link Snapshotter} its
 * state, captured synchronously at one applied index ({@link KvStore.exportState}:
 * references, not copies, about a millisecond for 100,000 keys). Everything slow
 * happens after that, off the Ready loop: the state is encoded and checksummed a
 * slice of about 1 MiB at a time, giving the event loop back between slices, and
 * written to its file with asynchronous writes. The loop keeps applying entries
 * meanwhile; the captured state does not change, because the store never mutates
 * a value it holds.
 *
 * Only once the file is durable does the snapshot count: the node picks it up
 * between two Readies ({@link Snapshotter.takeFinished}), records it in the
 * storage (`createSnapshot`), compacts the log and releases WAL segments. A crash
 * before that leaves a `.tmp` file, removed at the next start, and the log intact.
 * One snapshot is written at a time; a node that receives a snapshot from its
 * leader waits for the one in progress ({@link Snapshotter.idle}) before saving it.
 *
 * @module
 */

import { encodeKvStateInSteps, type KvSnapshotState } from "../kv/state_codec.ts";
import type { Logger } from "../raft/logger.ts";
import type { Snapshot, SnapshotMeta } from "../raft/types.ts";
import { encodeSnapshotFileInSteps } from "../snapshot/file.ts";
import type { SnapshotStore } from "../snapshot/store.ts";

/** A snapshot whose file is durable, waiting for the node to compact behind it. */
export interface FinishedSnapshot {
  readonly snapshot: Snapshot;
  /** Its file. */
  readonly path: string;
  /** Milliseconds from capture to durable. */
  readonly tookMs: number;
}

/** Options of a {@link Snapshotter}. */
export interface SnapshotterOptions {
  readonly store: SnapshotStore;
  readonly logger: Logger;
  /** A snapshot is due every this many applied entries. */
  readonly everyEntries: number;
  /** The index of the snapshot the node started from (0 for none). */
  readonly startIndex: number;
  /** Called when a snapshot became durable (the node wakes its loop). */
  readonly onFinished: () => void;
}

/** Gives the event loop back: timers, I/O and the Ready loop run before this resolves. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Takes one snapshot at a time in the background; see the module documentation. */
export class Snapshotter {
  readonly #options: SnapshotterOptions;
  /** The index of the newest snapshot taken, installed or under way. */
  #lastIndex: number;
  #inFlight: Promise<void> | undefined;
  #finished: FinishedSnapshot | undefined;
  #taken = 0;

  constructor(options: SnapshotterOptions) {
    if (!Number.isSafeInteger(options.everyEntries) || options.everyEntries < 1) {
      throw new RangeError(`Cannot take snapshots every ${options.everyEntries} entries`);
    }
    this.#options = options;
    this.#lastIndex = options.startIndex;
  }

  /** How many snapshots this node took and made durable since it started. */
  get taken(): number {
    return this.#taken;
  }

  /** True when `applied` is `everyEntries` past the last snapshot and none is under way. */
  due(applied: number): boolean {
    return this.#inFlight === undefined && this.#finished === undefined &&
      applied - this.#lastIndex >= this.#options.everyEntries;
  }

  /**
   * Starts writing a snapshot of `state`, captured at `meta.index`, in the
   * background. `state` must not change afterwards (an exported state does not).
   */
  start(meta: SnapshotMeta, state: KvSnapshotState): void {
    if (this.#inFlight !== undefined || this.#finished !== undefined) {
      throw new Error(
        `Invariant: a snapshot at ${meta.index} was started while another is under way`,
      );
    }
    if (state.store.appliedIndex !== meta.index) {
      throw new Error(
        `Invariant: a snapshot at ${meta.index} holds state applied to ${state.store.appliedIndex}`,
      );
    }
    this.#lastIndex = meta.index;
    const started = performance.now();
    this.#inFlight = this.#write(meta, state).then(
      (written) => {
        this.#finished = {
          snapshot: { meta, data: written.data },
          path: written.path,
          tookMs: performance.now() - started,
        };
        this.#taken++;
        this.#options.onFinished();
      },
      (err) => {
        // Not fatal: the log is intact, and the next snapshot is tried after
        // another `everyEntries` entries. A full disk fails the WAL soon anyway.
        this.#options.logger.error("snapshot: could not write a snapshot; the log is kept", {
          index: meta.index,
          error: err instanceof Error ? err.message : String(err),
        });
      },
    ).finally(() => {
      this.#inFlight = undefined;
    });
  }

  async #write(
    meta: SnapshotMeta,
    state: KvSnapshotState,
  ): Promise<{ data: Uint8Array; path: string }> {
    const encoding = encodeKvStateInSteps(state);
    let step = encoding.next();
    while (!step.done) {
      await yieldToEventLoop();
      step = encoding.next();
    }
    const data = step.value;
    const file = encodeSnapshotFileInSteps({ meta, data });
    let fileStep = file.next();
    while (!fileStep.done) {
      await yieldToEventLoop();
      fileStep = file.next();
    }
    const path = await this.#options.store.saveParts(meta.term, meta.index, fileStep.value);
    return { data, path };
  }

  /** The snapshot that became durable since the last call, if any; the next one may start. */
  takeFinished(): FinishedSnapshot | undefined {
    const f = this.#finished;
    this.#finished = undefined;
    return f;
  }

  /** True when `applied` is past the newest snapshot taken, installed or under way. */
  behind(applied: number): boolean {
    return applied > this.#lastIndex;
  }

  /**
   * Writes a snapshot of `state`, captured at `meta.index`, now, and resolves when
   * its file is durable (a node stopping cleanly: see node.ts `stop`). Waits for a
   * snapshot under way first; one at a time, as always. Unlike {@link start} it
   * throws when the write fails, and nothing is left for {@link takeFinished}: the
   * node is stopping and compacts nothing more.
   */
  async writeNow(meta: SnapshotMeta, state: KvSnapshotState): Promise<FinishedSnapshot> {
    await this.idle();
    if (state.store.appliedIndex !== meta.index) {
      throw new Error(
        `Invariant: a snapshot at ${meta.index} holds state applied to ${state.store.appliedIndex}`,
      );
    }
    if (meta.index <= this.#lastIndex) {
      throw new Error(
        `Invariant: a snapshot at ${meta.index} is not past the newest one, at ${this.#lastIndex}`,
      );
    }
    this.#lastIndex = meta.index;
    const started = performance.now();
    const written = await this.#write(meta, state);
    this.#taken++;
    return {
      snapshot: { meta, data: written.data },
      path: written.path,
      tookMs: performance.now() - started,
    };
  }

  /** Records a snapshot installed from the leader: the next is due `everyEntries` after it. */
  noteInstalled(index: number): void {
    this.#lastIndex = Math.max(this.#lastIndex, index);
  }

  /** Resolves when no snapshot is being written. */
  async idle(): Promise<void> {
    while (this.#inFlight !== undefined) await this.#inFlight;
  }
}
