/**
 * A node's boot, up to the node itself: opening its data dir (its lock, its
 * identity checked against the options, its WAL recovering term, vote and log),
 * learning the bootstrap configuration (from a member, for a node that joined),
 * restoring the storage from the snapshot and the WAL, and building the core.
 * Apart from the node because it runs once, before there is a node, and each
 * failure here must close what it opened and become a {@link NodeError} that main
 * prints before exiting 1.
 *
 * @module
 */

import type { KvSnapshotState } from "../kv/state_codec.ts";
import { RawNode } from "../raft/raw_node.ts";
import type { MemoryStorage } from "../raft/storage.ts";
import type { NodeId, Snapshot } from "../raft/types.ts";
import type { SnapshotStore } from "../snapshot/store.ts";
import type { Wal } from "../wal/mod.ts";
import { DataDirError, openDataDir, writeIdentity } from "./data_dir.ts";
import { fetchBootstrapVoters } from "./join.ts";
import { NodeError } from "./node_error.ts";
import { electionTicks, type RaftKvNodeOptions } from "./node_options.ts";
import { restoreStorage, SnapshotRestoreError } from "./restore.ts";

/** What a node is built from: its core, its storage and the files it holds open. */
export interface BootedNode {
  readonly raw: RawNode;
  readonly storage: MemoryStorage;
  readonly wal: Wal;
  /** The data dir's lock, held while the node runs. */
  readonly lock: Deno.FsFile;
  readonly snapshots: SnapshotStore;
  /** The configuration the cluster was bootstrapped with (empty for a node that joined). */
  readonly bootstrap: readonly NodeId[];
  /** The snapshot the storage was restored from, if any. */
  readonly snapshot: Snapshot | undefined;
  /** That snapshot's state, for the state machine to restore. */
  readonly state: KvSnapshotState | undefined;
}

/**
 * Opens the node's data dir, recovers its storage and builds its core. Throws a
 * {@link NodeError} when the data dir cannot be used, having closed what it opened.
 */
export async function bootNode(options: RaftKvNodeOptions): Promise<BootedNode> {
  const log = options.logger;
  let opened;
  try {
    opened = await openDataDir({
      dir: options.dataDir,
      identity: {
        nodeId: options.id,
        clusterId: options.clusterId,
        peers: options.peers,
        ...(options.join === true ? { joined: true } : {}),
      },
      logger: log,
      io: options.observer?.walIo,
    });
  } catch (err) {
    if (err instanceof DataDirError) throw new NodeError("unavailable", err.message);
    throw err;
  }
  const { lock, wal, recovery, snapshots, snapshot, snapshotPath } = opened;
  let identity = opened.identity;
  // The bootstrap configuration, in force before the log's first entry: --peers as
  // the data dir recorded them when it bootstrapped the cluster; for a node that
  // joined (etcd's --initial-cluster-state existing), the one its cluster was
  // bootstrapped with, learned from a member before anything else (join.ts).
  if (identity.joined === true && identity.bootstrap === undefined) {
    try {
      const voters = await fetchBootstrapVoters(
        options.id,
        options.clusterId,
        options.peers,
        log,
      );
      identity = { ...identity, bootstrap: voters };
      await writeIdentity(options.dataDir, identity);
    } catch (err) {
      await wal.close();
      lock.close();
      throw new NodeError("unavailable", (err as Error).message);
    }
  }
  const bootstrap = identity.joined === true
    ? [...identity.bootstrap ?? []]
    : [...identity.peers.keys()];
  if (identity.joined === true) {
    log.info("joined a running cluster: the configuration comes from the leader's log", {
      bootstrap: bootstrap.join(","),
    });
  }
  let restored;
  try {
    restored = await restoreStorage(
      bootstrap,
      snapshot,
      snapshotPath,
      wal,
      recovery,
      log,
    );
  } catch (err) {
    await wal.close();
    lock.close();
    if (err instanceof SnapshotRestoreError) throw new NodeError("unavailable", err.message);
    throw err;
  }
  const { storage, hardState } = restored;
  log.info("recovered from the snapshot and the write-ahead log", {
    snapshot: restored.applied,
    term: hardState.term,
    vote: hardState.vote,
    commit: hardState.commit,
    firstIndex: storage.firstIndex(),
    lastIndex: storage.lastIndex(),
  });
  const electionTick = electionTicks(options);
  const raw = new RawNode(
    {
      id: options.id,
      random: options.random,
      electionTick,
      heartbeatTick: 1,
      logger: log,
      // Restarting (see raw_node.ts): the state machine holds the snapshot, so
      // the core hands out only the committed entries after it.
      applied: restored.applied,
    },
    storage,
  );
  return {
    raw,
    storage,
    wal,
    lock,
    snapshots,
    bootstrap,
    snapshot,
    state: restored.state,
  };
}
