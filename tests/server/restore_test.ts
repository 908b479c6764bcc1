/** Rebuilding storage from a snapshot and the WAL: the hard state it goes on with, bad snapshots. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { encodeKvState } from "../../src/kv/state_codec.ts";
import { KvStore } from "../../src/kv/store.ts";
import { SILENT_LOGGER } from "../../src/raft/logger.ts";
import type { Snapshot } from "../../src/raft/types.ts";
import {
  catchUpHardState,
  decodeSnapshotState,
  restoreStorage,
  SnapshotRestoreError,
} from "../../src/server/restore.ts";
import { Wal } from "../../src/wal/mod.ts";
import { entries, withTempDir } from "../wal/_helpers.ts";
import { put } from "../kv/helpers.ts";
import { confStateOf } from "../../src/raft/types.ts";

/** A snapshot at `index` in `term` of a store that applied puts 1..index. */
function snapshotAt(index: number, term: number, labelled = index): Snapshot {
  const store = new KvStore();
  for (let i = 1; i <= index; i++) store.apply(i, put(`k${i}`, `v${i}`));
  const data = encodeKvState({
    store: store.exportState(),
    appliedTerm: term,
    chainLink: new Uint8Array(32),
  });
  return { meta: { index: labelled, term, conf: confStateOf([1, 2, 3]) }, data };
}

Deno.test("the commit index reaches the snapshot's; a lower term moves up to it with no vote", () => {
  assert.deepEqual(catchUpHardState({ term: 4, vote: 2, commit: 3 }, 10, 3), {
    term: 4,
    vote: 2,
    commit: 10,
  });
  assert.deepEqual(catchUpHardState({ term: 4, vote: 2, commit: 30 }, 10, 3), {
    term: 4,
    vote: 2,
    commit: 30,
  });
  assert.deepEqual(catchUpHardState({ term: 2, vote: 2, commit: 3 }, 10, 3), {
    term: 3,
    vote: 0,
    commit: 10,
  });
});

Deno.test("a snapshot whose state is of another index, or not a state, is refused by name", () => {
  assert.throws(
    () => decodeSnapshotState(snapshotAt(5, 1, 6), "snapshot /x.snap"),
    (e: unknown) =>
      e instanceof SnapshotRestoreError &&
      /snapshot \/x\.snap: it is labelled index 6 term 1 but holds the state at index 5/.test(
        e.message,
      ),
  );
  const junk: Snapshot = { ...snapshotAt(5, 1), data: new Uint8Array([1, 2, 3]) };
  assert.throws(
    () => decodeSnapshotState(junk, "snapshot /y.snap"),
    /Cannot restore snapshot \/y\.snap at index 5: Cannot decode key-value state/,
  );
});

Deno.test("storage holds the snapshot and only the WAL entries after it", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "wal");
    const wal = await Wal.create(dir);
    await wal.save({ term: 1, vote: 1, commit: 12 }, entries(1, 12, 1));
    await wal.close();
    const { wal: w, recovery } = await Wal.open(dir, { snapshotIndex: 8 });
    const r = await restoreStorage([1, 2, 3], snapshotAt(8, 1), "s", w, recovery, SILENT_LOGGER);
    assert.equal(r.applied, 8);
    assert.equal(r.storage.firstIndex(), 9);
    assert.equal(r.storage.lastIndex(), 12);
    assert.equal(r.hardState.commit, 12);
    assert.equal(r.state?.store.appliedIndex, 8);
    await w.close();
  });
});

Deno.test("a snapshot newer than the WAL starts the log over after it, durably", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "wal");
    const wal = await Wal.create(dir);
    await wal.save({ term: 1, vote: 1, commit: 3 }, entries(1, 3, 1));
    await wal.close();
    const { wal: w, recovery } = await Wal.open(dir, { snapshotIndex: 20 });
    const r = await restoreStorage([1, 2, 3], snapshotAt(20, 2), "s", w, recovery, SILENT_LOGGER);
    assert.equal(r.storage.firstIndex(), 21);
    assert.equal(r.storage.lastIndex(), 20);
    assert.deepEqual(r.hardState, { term: 2, vote: 0, commit: 20 });
    await w.save(undefined, entries(21, 22, 2)); // the log goes on after the snapshot
    await w.close();
    const { wal: again, recovery: back } = await Wal.open(dir, { snapshotIndex: 20 });
    assert.equal(back.firstIndex, 21);
    assert.deepEqual(back.entries, entries(21, 22, 2));
    assert.deepEqual(back.hardState, { term: 2, vote: 0, commit: 20 });
    await again.close();
  });
});
