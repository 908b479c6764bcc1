/**
 * `--restore FILE` seeds an empty data dir as a follower that just installed the
 * backup from its leader would hold it: the snapshot (with the new cluster's
 * membership), a WAL starting after it with the snapshot's term and index
 * committed, and the new identity. A damaged or missing file, or a data dir that
 * holds a node's state, is refused by name before anything is written; a restore
 * cut short leaves a marker on which no node starts.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { AppliedChain } from "../../src/kv/applied_chain.ts";
import { encodeKvState } from "../../src/kv/state_codec.ts";
import { KvStore } from "../../src/kv/store.ts";
import { SILENT_LOGGER } from "../../src/raft/logger.ts";
import type { Snapshot } from "../../src/raft/types.ts";
import { encodeSnapshotFile } from "../../src/snapshot/file.ts";
import { SNAP_DIR, SnapshotStore } from "../../src/snapshot/store.ts";
import { Wal } from "../../src/wal/wal.ts";
import { openDataDir } from "../../src/server/data_dir.ts";
import {
  checkNotRestoring,
  restoreDataDir,
  RestoreError,
  RESTORING_FILE,
} from "../../src/server/restore_backup.ts";
import { bytes, put } from "../kv/helpers.ts";
import { confStateOf } from "../../src/raft/types.ts";

/** A backup of an old cluster {7,8,9}: 20 keys applied at indexes 1..20 in term 3. */
function backup(): Snapshot {
  const store = new KvStore();
  const chain = new AppliedChain();
  for (let i = 1; i <= 20; i++) {
    const data = put(`key${i}`, `value${i}`);
    store.apply(i, data);
    chain.add({ index: i, term: 3, data });
  }
  const data = encodeKvState({ store: store.exportState(), appliedTerm: 3, ...chain.image() });
  return { meta: { index: 20, term: 3, conf: confStateOf([7, 8, 9]) }, data };
}

const PEERS = new Map([1, 2, 3].map((id) => [id, { host: "127.0.0.1", port: 7000 + id }]));
const IDENTITY = { nodeId: 2, clusterId: "new", peers: PEERS };

async function withDir(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function rejects(p: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(p, (err) => {
    assert.ok(err instanceof RestoreError, `expected a RestoreError, got ${err}`);
    assert.match(err.message, message);
    return true;
  });
}

Deno.test("a restored data dir holds the backup as the new cluster's snapshot, committed", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "backup.snap");
    const snap = backup();
    await Deno.writeFile(file, encodeSnapshotFile(snap));
    const dataDir = join(dir, "node2");
    const meta = await restoreDataDir({ file, dataDir, identity: IDENTITY, logger: SILENT_LOGGER });
    assert.deepEqual(meta, { index: 20, term: 3, conf: confStateOf([1, 2, 3]) });
    const loaded = await (await SnapshotStore.open(join(dataDir, SNAP_DIR))).loadNewest();
    assert.deepEqual(loaded.snapshot, { meta, data: snap.data });
    const { wal, recovery } = await Wal.open(join(dataDir, "wal"), { snapshotIndex: 20 });
    await wal.close();
    assert.deepEqual(recovery.hardState, { term: 3, vote: 0, commit: 20 });
    assert.deepEqual(recovery.entries, []);
    assert.equal(recovery.firstIndex, 21);
    assert.equal(await Deno.stat(join(dataDir, RESTORING_FILE)).catch(() => "gone"), "gone");
    // The data dir is now node 2's of cluster "new": it opens with those flags, from
    // the snapshot.
    const opened = await openDataDir({ dir: dataDir, identity: IDENTITY, logger: SILENT_LOGGER });
    await opened.wal.close();
    opened.lock.close();
    assert.deepEqual(opened.snapshot, { meta, data: snap.data });
    assert.deepEqual(opened.recovery.hardState, { term: 3, vote: 0, commit: 20 });
  });
});

Deno.test("a data dir that holds a node's state is not restored over", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "backup.snap");
    await Deno.writeFile(file, encodeSnapshotFile(backup()));
    const dataDir = join(dir, "node2");
    const opened = await openDataDir({ dir: dataDir, identity: IDENTITY, logger: SILENT_LOGGER });
    await opened.wal.close();
    opened.lock.close();
    await rejects(
      restoreDataDir({ file, dataDir, identity: IDENTITY, logger: SILENT_LOGGER }),
      /^Cannot restore into data dir .*node2: it holds a node's state \(identity\.json, wal, snap\); a restore starts a new cluster on empty data dirs/,
    );
    assert.deepEqual([...Deno.readDirSync(join(dataDir, SNAP_DIR))], []);
  });
});

Deno.test("a damaged, missing or foreign file is refused by name, and nothing is written", async () => {
  await withDir(async (dir) => {
    const dataDir = join(dir, "node2");
    const restore = (file: string) =>
      restoreDataDir({ file, dataDir, identity: IDENTITY, logger: SILENT_LOGGER });
    const flipped = encodeSnapshotFile(backup());
    flipped[100]! ^= 4;
    await Deno.writeFile(join(dir, "flipped.snap"), flipped);
    await rejects(
      restore(join(dir, "flipped.snap")),
      /^Cannot read snapshot .*flipped\.snap: checksum mismatch/,
    );
    const whole = encodeSnapshotFile(backup());
    await Deno.writeFile(join(dir, "short.snap"), whole.subarray(0, whole.length - 10));
    await rejects(restore(join(dir, "short.snap")), /short\.snap: .*(truncated|damaged)/);
    await rejects(
      restore(join(dir, "nope.snap")),
      /^Cannot restore from .*nope\.snap: no such file$/,
    );
    // A valid snapshot file whose state is not a key-value state.
    const foreign = { meta: backup().meta, data: bytes("not a state") };
    await Deno.writeFile(join(dir, "foreign.snap"), encodeSnapshotFile(foreign));
    await rejects(
      restore(join(dir, "foreign.snap")),
      /^Cannot restore from .*foreign\.snap: Cannot decode key-value state: /,
    );
    assert.equal(await Deno.stat(dataDir).catch(() => "none"), "none");
  });
});

Deno.test("a restore cut short leaves a marker on which no node starts", async () => {
  await withDir(async (dir) => {
    await checkNotRestoring(dir);
    await Deno.writeTextFile(join(dir, RESTORING_FILE), "restoring from x\n");
    await rejects(
      checkNotRestoring(dir),
      /a restore into it was interrupted \(RESTORING is there\), so it may hold half a restore; delete the data dir and run the restore again$/,
    );
  });
});

Deno.test("the restore marker check leaves a data dir that is missing or not a directory to the open", async () => {
  await withDir(async (dir) => {
    await checkNotRestoring(join(dir, "missing"));
    await Deno.writeTextFile(join(dir, "a-file"), "");
    await checkNotRestoring(join(dir, "a-file"));
  });
});

Deno.test("the backup may wait in the data dir it restores (the one place a node may read)", async () => {
  await withDir(async (dir) => {
    const dataDir = join(dir, "node2");
    await Deno.mkdir(dataDir);
    const file = join(dataDir, "backup.snap");
    await Deno.writeFile(file, encodeSnapshotFile(backup()));
    const meta = await restoreDataDir({ file, dataDir, identity: IDENTITY, logger: SILENT_LOGGER });
    assert.equal(meta.index, 20);
    const opened = await openDataDir({ dir: dataDir, identity: IDENTITY, logger: SILENT_LOGGER });
    await opened.wal.close();
    opened.lock.close();
    assert.equal(opened.snapshot?.meta.index, 20);
  });
});
