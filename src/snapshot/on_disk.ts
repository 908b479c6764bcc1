/**
 * A snapshot the node's storage holds as metadata only: its state is in its file
 * (src/snapshot/store.ts), read back when a follower needs it sent.
 *
 * Why: the core's storage (`MemoryStorage`) keeps its latest snapshot for the one
 * thing the core does with it, a `snap` message to a follower behind the compacted
 * log (§7). Kept whole, that is the encoded state held in memory on every node for
 * the node's whole life (2.9 MB at 10,000 keys of 256 bytes, issue 9's run), to be
 * used rarely if ever. Every snapshot the storage is given has its file durable
 * first (taken: snapshotter.ts; installed: node_snapshots.ts; loaded at start:
 * restore.ts), and the store keeps the newest two, so the file is there when the
 * sender asks for it (snapshot_sender.ts). etcd's leader likewise reads the bulk of
 * a snapshot, its database, only when it sends one (etcdserver's
 * `createMergedSnapshotMessage`).
 *
 * @module
 */

import type { Snapshot } from "../raft/types.ts";

/** The data of a snapshot whose state is in its file; compared by identity. */
export const DATA_ON_DISK: Uint8Array = new Uint8Array(0);

/** `snapshot`'s metadata, its data left in its file. */
export function withDataOnDisk(snapshot: Snapshot): Snapshot {
  return { meta: snapshot.meta, data: DATA_ON_DISK };
}

/** True if `snapshot` was made by {@link withDataOnDisk}: its data must be read from its file. */
export function dataOnDisk(snapshot: Snapshot): boolean {
  return snapshot.data === DATA_ON_DISK;
}
