/**
 * A node's snapshots (§7): taking one every `--snapshot-entries` applied entries
 * and compacting the log behind it once its file is durable, installing one the
 * leader sends, taking one on a clean stop, and a backup on request. The
 * snapshotter (snapshotter.ts) writes the files; this file decides when, and
 * keeps the storage, the WAL and the state machine in step with them, through the
 * pieces of the node it needs ({@link SnapshotsHost}), so that the node's file
 * keeps to the Ready loop.
 *
 * @module
 */

import type { AppliedChain } from "../kv/applied_chain.ts";
import type { MemberRegistry } from "../kv/members.ts";
import { encodeKvStateInSteps, type KvSnapshotState } from "../kv/state_codec.ts";
import type { KvStore } from "../kv/store.ts";
import type { Logger } from "../raft/logger.ts";
import type { RawNode } from "../raft/raw_node.ts";
import type { MemoryStorage } from "../raft/storage.ts";
import type { NodeId, Snapshot, SnapshotMeta } from "../raft/types.ts";
import { DATA_ON_DISK, withDataOnDisk } from "../snapshot/on_disk.ts";
import type { SnapshotStore } from "../snapshot/store.ts";
import type { Wal } from "../wal/mod.ts";
import { NodeError } from "./node_error.ts";
import type { RaftKvNodeOptions } from "./node_options.ts";
import { decodeSnapshotState } from "./restore.ts";
import type { FinishedSnapshot, Snapshotter } from "./snapshotter.ts";

/** What the snapshot work needs of the node. */
export interface SnapshotsHost {
  readonly id: NodeId;
  readonly options: RaftKvNodeOptions;
  readonly kv: KvStore;
  readonly raw: RawNode;
  readonly storage: MemoryStorage;
  readonly wal: Wal;
  /** Where snapshot files are kept. */
  readonly store: SnapshotStore;
  readonly snapshotter: Snapshotter;
  /** Entries kept behind a snapshot for slow followers (`--snapshot-catchup-entries`). */
  readonly catchupEntries: number;
  readonly log: Logger;
  /** The hash chain over the applied entries (replaced when a snapshot is restored). */
  chain(): AppliedChain;
  /** The term of the entry at the applied index. */
  appliedTerm(): number;
  /** The addresses of the members added through the log (replaced when a snapshot is restored). */
  members(): MemberRegistry;
  /** Replaces the state machine and the applied chain with a snapshot's. */
  restore(snapshot: Snapshot, state: KvSnapshotState): void;
  /** Throws the NodeError a call gets once the node stops or fails. */
  checkRunning(): void;
  /** The node cannot go on. */
  fail(err: unknown): void;
}

/** The snapshot work of one node. */
export class NodeSnapshots {
  readonly #host: SnapshotsHost;

  constructor(host: SnapshotsHost) {
    this.#host = host;
  }

  /**
   * Installs a snapshot from the leader (§7, a Ready's `snapshot`): its file is
   * made durable first, then the WAL starts over after it, then the storage and
   * the state machine take it, all before anything after it is persisted or
   * applied. A crash after the file is durable restarts from the file.
   */
  async install(snapshot: Snapshot): Promise<void> {
    const { index, term } = snapshot.meta;
    const state = decodeSnapshotState(snapshot, "the snapshot from the leader");
    await this.#host.snapshotter.idle(); // one snapshot file written at a time
    this.#host.snapshotter.takeFinished(); // older than this one: nothing to compact to
    const path = await this.#host.store.save(snapshot);
    await this.#host.wal.resetTo(index);
    this.#host.storage.applySnapshot(withDataOnDisk(snapshot)); // its file is durable
    this.#host.restore(snapshot, state);
    this.#host.snapshotter.noteInstalled(index);
    this.#host.log.info("installed a snapshot from the leader", { index, term, file: path });
    this.#host.options.observer?.snapshotInstalled?.();
  }

  /**
   * Every `--snapshot-entries` applied entries, captures the state at the applied
   * index (synchronously, cheaply) and lets the snapshotter write it in the
   * background; see `snapshotter.ts`.
   */
  maybeSnapshot(): void {
    if (!this.#host.snapshotter.due(this.#host.kv.appliedIndex)) return;
    const { meta, state } = this.#captureSnapshot();
    this.#host.snapshotter.start(meta, state);
  }

  /** The applied state, as of the applied index, with what a snapshot of it records. */
  #captureSnapshot(): { meta: SnapshotMeta; state: KvSnapshotState } {
    // The configuration in force at the applied index: the core's, since every
    // membership change up to it has been applied (§7: a snapshot holds the latest
    // configuration it covers).
    const conf = this.#host.raw.status().conf;
    const store = this.#host.kv.exportState();
    return {
      meta: { index: store.appliedIndex, term: this.#host.appliedTerm(), conf },
      state: {
        store,
        appliedTerm: this.#host.appliedTerm(),
        ...this.#host.chain().image(),
        members: this.#host.members().list(),
      },
    };
  }

  /**
   * A snapshot's file is durable: record it in the storage, compact the log
   * behind it keeping `--snapshot-catchup-entries` entries for followers a
   * little behind (etcd keeps 5,000), and release the WAL segments below.
   * Runs between two Readies, so the core sees the storage change at once.
   */
  compact(finished: FinishedSnapshot): void {
    const { meta, data } = finished.snapshot;
    if (meta.index <= this.#host.storage.snapshot().meta.index) return; // one was installed meanwhile
    // Its file is durable: the storage needs only its metadata (src/snapshot/on_disk.ts).
    this.#host.storage.createSnapshot(meta.index, meta.conf, DATA_ON_DISK);
    const keepAfter = Math.max(
      this.#host.storage.firstIndex() - 1,
      meta.index - this.#host.catchupEntries,
    );
    this.#host.storage.compact(keepAfter);
    this.#host.wal.releaseBefore(keepAfter + 1).catch((err) => this.#host.fail(err));
    this.#host.options.observer?.compacted?.();
    this.#host.log.info("took a snapshot", {
      index: meta.index,
      term: meta.term,
      bytes: data.length,
      ms: Math.round(finished.tookMs),
      firstIndex: this.#host.storage.firstIndex(),
    });
  }

  /**
   * A snapshot of the state this node has applied, as of one index: a backup
   * (ClusterService/SnapshotSave, etcd's `snapshot save`). The state is taken at
   * one instant (KvStore.exportState shares the values, it does not copy them) and
   * then encoded a slice at a time, letting the Ready loop run between slices. Its
   * membership is the one the core runs with. Throws a NodeError before the node
   * has applied anything (a snapshot at index 0 stands for nothing).
   */
  async backupSnapshot(): Promise<Snapshot> {
    this.#host.checkRunning();
    const store = this.#host.kv.exportState();
    const index = store.appliedIndex;
    if (index === 0) {
      throw new NodeError(
        "unavailable",
        `node ${this.#host.id} has applied nothing yet; try again`,
      );
    }
    // Taken with the state, before the first await: all as of `index`. The
    // membership as maybeSnapshot takes it.
    const term = this.#host.appliedTerm();
    const conf = this.#host.raw.status().conf;
    const steps = encodeKvStateInSteps({
      store,
      appliedTerm: term,
      ...this.#host.chain().image(),
      members: this.#host.members().list(),
    });
    for (;;) {
      const step = steps.next();
      if (step.done) return { meta: { index, term, conf }, data: step.value };
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }

  /**
   * A clean stop snapshots what was applied since the last snapshot, so that the
   * next start loads it and replays next to nothing (up to `--snapshot-entries`
   * entries otherwise: most of a restart's own time, issue 9). The Ready loop has
   * ended, so the state is final; it is committed (applied ≤ commit, which the WAL
   * holds), and the file is durable (temporary name, fsync, rename, directory
   * fsync) before the WAL closes, like any other snapshot. A failed write is logged
   * and only costs the next start its replay: the WAL still holds everything.
   */
  async snapshotOnStop(): Promise<void> {
    if (!this.#host.snapshotter.behind(this.#host.kv.appliedIndex)) return;
    const { meta, state } = this.#captureSnapshot();
    try {
      const finished = await this.#host.snapshotter.writeNow(meta, state);
      this.#host.log.info("snapshotted the applied state on stopping", {
        index: meta.index,
        bytes: finished.snapshot.data.length,
        ms: Math.round(finished.tookMs),
      });
    } catch (err) {
      this.#host.log.warn("could not take a snapshot on stopping; the next start replays the log", {
        index: meta.index,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }
}
