/**
 * `deno task node --restore FILE`: seeds an empty data dir from a backup (a file
 * that `deno task client snapshot save` wrote), so that an operator who lost every
 * disk starts a new cluster with their data (etcd's `etcdutl snapshot restore`).
 *
 * What the data dir holds afterwards is what a follower holds right after it
 * installed a snapshot from its leader (§7): the snapshot in `snap/`, a WAL that
 * starts after the snapshot's index with a hard state `{term: the snapshot's term,
 * vote: none, commit: its index}`, and the identity of the new cluster (this
 * node's --id, --cluster-id and --peers). The snapshot's membership is replaced by
 * the new --peers: the backup may come from another cluster, with other ids, and
 * the new cluster's nodes count votes over the members they are started with. Every
 * node of the new cluster is restored from the same file with the same --peers, so
 * all hold the same snapshot (same index, term, membership and state) and their
 * logs agree up to it; the first leader elected replicates from there.
 *
 * The file is checked before anything is written (magic, version, lengths,
 * CRC-32C, and that its state decodes as a key-value state of the snapshot's
 * index). The data dir must hold no node state (no identity.json, wal/ or snap/):
 * restoring over a node's data would throw it away. A restore interrupted by a
 * crash leaves a `RESTORING` marker, written first and removed last; a node
 * refuses to start on a data dir that has one ({@link checkNotRestoring}), since
 * what it holds may be half a restore.
 *
 * @module
 */

import { join } from "node:path";
import { decodeKvState, KvStateCodecError } from "../kv/state_codec.ts";
import type { Logger } from "../raft/logger.ts";
import type { NodeId, Snapshot, SnapshotMeta } from "../raft/types.ts";
import { decodeSnapshotFile, SnapshotCorruptionError } from "../snapshot/file.ts";
import { SNAP_DIR } from "../snapshot/store.ts";
import { exists, mkdirDurable, syncDirectory, writeFileAtomic } from "../wal/durable_fs.ts";
import { type DataDirIdentity, IDENTITY_FILE, openDataDir, WAL_DIR } from "./data_dir.ts";
import { confStateOf } from "../raft/types.ts";

/** The marker of a restore under way (see the module documentation). */
export const RESTORING_FILE = "RESTORING";

/** A restore that cannot be done; `message` says why and what to do. */
export class RestoreError extends Error {
  override name = "RestoreError";
}

/** What {@link restoreDataDir} needs. */
export interface RestoreOptions {
  /** The backup file. */
  readonly file: string;
  /** The data dir to seed. */
  readonly dataDir: string;
  /** The new cluster's identity for this node (its --id, --cluster-id, --peers). */
  readonly identity: DataDirIdentity;
  readonly logger: Logger;
}

/** Refuses a data dir that holds a restore interrupted by a crash. */
export async function checkNotRestoring(dataDir: string): Promise<void> {
  try {
    await Deno.lstat(join(dataDir, RESTORING_FILE));
  } catch (err) {
    // No marker, or no data dir to hold one. A data dir that cannot be used at all
    // (a file, unreadable) is for opening it to explain (data_dir.ts); one the
    // permissions do not grant is main's to explain.
    if (err instanceof Deno.errors.NotCapable) throw err;
    return;
  }
  throw new RestoreError(
    `Cannot use data dir ${dataDir}: a restore into it was interrupted (${RESTORING_FILE} is ` +
      "there), so it may hold half a restore; delete the data dir and run the restore again",
  );
}

/** Reads and checks the backup `file`, with its membership replaced by `voters`. */
export async function readBackup(file: string, voters: readonly NodeId[]): Promise<Snapshot> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(file);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new RestoreError(`Cannot restore from ${file}: no such file`);
    }
    if (err instanceof Deno.errors.NotCapable) {
      throw new RestoreError(
        `Cannot restore from ${file}: Deno's permissions do not grant reading it (\`deno task ` +
          "node\` reads under ./data only: put the file there, or run with " +
          `--allow-read=./data,${file}; README.md, "Backup and restore")`,
      );
    }
    throw new RestoreError(
      `Cannot restore from ${file}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  let snapshot: Snapshot;
  try {
    snapshot = decodeSnapshotFile(bytes, file);
  } catch (err) {
    if (err instanceof SnapshotCorruptionError) throw new RestoreError(err.message);
    throw err;
  }
  const { index, term } = snapshot.meta;
  if (index === 0) {
    throw new RestoreError(`Cannot restore from ${file}: it is a snapshot at index 0 (no state)`);
  }
  try {
    const state = decodeKvState(snapshot.data);
    if (state.store.appliedIndex !== index) {
      throw new KvStateCodecError(
        `its state is as of index ${state.store.appliedIndex}, the file says ${index}`,
      );
    }
  } catch (err) {
    if (err instanceof KvStateCodecError) {
      throw new RestoreError(`Cannot restore from ${file}: ${err.message}`);
    }
    throw err;
  }
  const meta: SnapshotMeta = { index, term, conf: confStateOf(voters) };
  return { meta, data: snapshot.data };
}

/**
 * Seeds `dataDir` from the backup (see the module documentation) and returns the
 * snapshot's metadata. Throws a {@link RestoreError} (or a DataDirError from
 * opening the data dir) naming the file or the directory and what is wrong; nothing is written before
 * the file has been checked and the data dir found free of node state.
 */
export async function restoreDataDir(options: RestoreOptions): Promise<SnapshotMeta> {
  const { file, dataDir, identity, logger } = options;
  const snapshot = await readBackup(file, [...identity.peers.keys()]);
  await checkNotRestoring(dataDir);
  const held = [];
  for (const name of [IDENTITY_FILE, WAL_DIR, SNAP_DIR]) {
    if (await exists(join(dataDir, name))) held.push(name);
  }
  if (held.length > 0) {
    throw new RestoreError(
      `Cannot restore into data dir ${dataDir}: it holds a node's state (${held.join(", ")}); ` +
        "a restore starts a new cluster on empty data dirs (delete it first if that is what " +
        "you mean)",
    );
  }
  await mkdirDurable(dataDir);
  const marker = join(dataDir, RESTORING_FILE);
  await writeFileAtomic(marker, new TextEncoder().encode(`restoring from ${file}\n`));
  const opened = await openDataDir({ dir: dataDir, identity, logger });
  try {
    await opened.snapshots.save(snapshot);
    const { index, term } = snapshot.meta;
    // As a follower after installing a snapshot: the log starts after it, and what
    // the snapshot holds is committed (its term is the newest this node has seen).
    await opened.wal.resetTo(index);
    await opened.wal.save({ term, vote: 0, commit: index }, []);
  } finally {
    await opened.wal.close();
    opened.lock.close();
  }
  await Deno.remove(marker);
  await syncDirectory(dataDir);
  logger.info("restored the data dir from a backup", {
    file,
    dataDir,
    snapshot: `${snapshot.meta.term}/${snapshot.meta.index}`,
    voters: snapshot.meta.conf.voters.join(","),
  });
  return snapshot.meta;
}
