/**
 * Rebuilding a node's Raft storage and state machine from what its data dir holds:
 * the newest valid snapshot and the WAL after it (§7 of the Raft paper; etcd's
 * `openWALFromSnapshot`, then `raftStorage.ApplySnapshot` and `Append`).
 *
 * The state machine starts as the snapshot's state; the storage holds the
 * snapshot and only the WAL entries after it (those at or below its index are in
 * it); the core is then built with `applied` at the snapshot's index and hands
 * out the committed entries after it. A snapshot newer than the whole WAL is the
 * leader's, made durable just before the node stopped (its WAL had not started over
 * after it yet): its state is committed, so the log starts over after it now.
 *
 * @module
 */

import { decodeKvState, type KvSnapshotState } from "../kv/state_codec.ts";
import type { Logger } from "../raft/logger.ts";
import { MemoryStorage } from "../raft/storage.ts";
import { type HardState, type NodeId, NONE, type Snapshot } from "../raft/types.ts";
import { withDataOnDisk } from "../snapshot/on_disk.ts";
import type { Wal, WalRecovery } from "../wal/mod.ts";

/** A snapshot's data that cannot be restored; the message names where it came from. */
export class SnapshotRestoreError extends Error {
  override name = "SnapshotRestoreError";
}

/**
 * The state a snapshot's data holds, checked against its metadata.
 *
 * @throws {SnapshotRestoreError} naming `what` (a file, "the snapshot from the
 * leader") if the data does not decode or holds another index or term.
 */
export function decodeSnapshotState(snapshot: Snapshot, what: string): KvSnapshotState {
  const { index, term } = snapshot.meta;
  let state;
  try {
    state = decodeKvState(snapshot.data);
  } catch (err) {
    throw new SnapshotRestoreError(
      `Cannot restore ${what} at index ${index}: ${(err as Error).message}`,
    );
  }
  if (state.store.appliedIndex !== index || state.appliedTerm !== term) {
    throw new SnapshotRestoreError(
      `Cannot restore ${what}: it is labelled index ${index} term ${term} but holds the state ` +
        `at index ${state.store.appliedIndex} term ${state.appliedTerm}`,
    );
  }
  return state;
}

/** What {@link restoreStorage} rebuilt. */
export interface RestoredStorage {
  readonly storage: MemoryStorage;
  readonly hardState: HardState;
  /** The snapshot's state, for the state machine and the applied chain; none without one. */
  readonly state: KvSnapshotState | undefined;
  /** The index the state machine holds: the snapshot's, or 0. */
  readonly applied: number;
}

/**
 * Builds the storage from `snapshot` (the newest valid one, from `snapshotPath`)
 * and the WAL's `recovery`; starts the WAL over after a snapshot newer than it.
 */
export async function restoreStorage(
  voters: readonly NodeId[],
  snapshot: Snapshot | undefined,
  snapshotPath: string | undefined,
  wal: Wal,
  recovery: WalRecovery,
  log: Logger,
): Promise<RestoredStorage> {
  const storage = new MemoryStorage(voters);
  if (snapshot === undefined) {
    storage.append(recovery.entries);
    storage.setHardState(recovery.hardState);
    return { storage, hardState: recovery.hardState, state: undefined, applied: 0 };
  }
  const state = decodeSnapshotState(snapshot, `snapshot ${snapshotPath}`);
  const { index, term } = snapshot.meta;
  storage.applySnapshot(withDataOnDisk(snapshot)); // loaded from its file (on_disk.ts)
  const hardState = catchUpHardState(recovery.hardState, index, term);
  if (wal.lastIndex < index) {
    log.warn("the newest snapshot is newer than the write-ahead log; the log starts after it", {
      snapshot: index,
      walLastIndex: wal.lastIndex,
    });
    await wal.resetTo(index);
    await wal.save(hardState, []);
  }
  storage.append(recovery.entries.filter((e) => e.index > index));
  storage.setHardState(hardState);
  return { storage, hardState, state, applied: index };
}

/**
 * The hard state to go on with from a snapshot at `index` in `term`: its entries
 * are committed, so the commit index is at least `index`; a term below the
 * snapshot's (a node that stopped before saving the Ready that carried it) moves
 * up to it, with no vote in that term.
 */
export function catchUpHardState(hs: HardState, index: number, term: number): HardState {
  const commit = Math.max(hs.commit, index);
  return hs.term >= term ? { ...hs, commit } : { term, vote: NONE, commit };
}
