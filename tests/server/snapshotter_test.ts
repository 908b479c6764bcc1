/** Taking snapshots in the background: when one is due, what it writes, one at a time, failures. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { decodeKvState } from "../../src/kv/state_codec.ts";
import { KvStore } from "../../src/kv/store.ts";
import { SnapshotStore } from "../../src/snapshot/store.ts";
import { Snapshotter } from "../../src/server/snapshotter.ts";
import { put } from "../kv/helpers.ts";
import { RecordingLogger, withTempDir } from "../wal/_helpers.ts";
import { waitFor } from "../e2e/_harness.ts";
import { confStateOf } from "../../src/raft/types.ts";

const CONF = confStateOf([1, 2, 3]);

function storeAt(index: number): KvStore {
  const s = new KvStore();
  for (let i = 1; i <= index; i++) s.apply(i, put(`k${i % 7}`, `v${i}`));
  return s;
}

Deno.test("a snapshot is due every N entries, one at a time, and what it wrote is the state taken", async () => {
  await withTempDir(async (root) => {
    const store = await SnapshotStore.open(join(root, "snap"));
    let kicks = 0;
    const s = new Snapshotter({
      store,
      logger: new RecordingLogger(),
      everyEntries: 10,
      startIndex: 0,
      onFinished: () => kicks++,
    });
    assert.equal(s.due(9), false);
    assert.equal(s.due(10), true);
    const kv = storeAt(10);
    const digest = kv.digest();
    s.start({ index: 10, term: 2, conf: CONF }, {
      store: kv.exportState(),
      appliedTerm: 2,
      chainLink: new Uint8Array(32).fill(7),
    });
    // The store moves on while the snapshot is written; one at a time.
    kv.apply(11, put("k1", "later"));
    assert.equal(s.due(25), false);
    await waitFor("the loop to be kicked", () => kicks === 1);
    const done = s.takeFinished()!;
    assert.equal(done.snapshot.meta.index, 10);
    assert.equal(s.taken, 1);
    const state = decodeKvState(done.snapshot.data);
    assert.equal(KvStore.fromState(state.store).digest(), digest);
    assert.deepEqual(state.chainLink, new Uint8Array(32).fill(7));
    assert.deepEqual((await store.loadNewest()).snapshot, done.snapshot);
    assert.equal(s.takeFinished(), undefined);
    assert.equal(s.due(19), false);
    assert.equal(s.due(20), true);
    s.noteInstalled(50);
    assert.equal(s.due(55), false);
    assert.equal(s.due(60), true);
  });
});

Deno.test("a snapshot that cannot be written is logged, and the next is tried N entries later", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "snap");
    const store = await SnapshotStore.open(dir);
    // The directory is gone and a file stands in its place: every write fails
    // (ENOTDIR), even for root.
    await Deno.remove(dir, { recursive: true });
    await Deno.writeFile(dir, new Uint8Array());
    const log = new RecordingLogger();
    let finished = 0;
    const s = new Snapshotter({
      store,
      logger: log,
      everyEntries: 10,
      startIndex: 0,
      onFinished: () => finished++,
    });
    s.start({ index: 10, term: 1, conf: CONF }, {
      store: storeAt(10).exportState(),
      appliedTerm: 1,
      chainLink: new Uint8Array(32),
    });
    await s.idle();
    assert.deepEqual(log.at("error"), ["snapshot: could not write a snapshot; the log is kept"]);
    assert.equal(finished, 0);
    assert.equal(s.takeFinished(), undefined);
    assert.equal(s.due(19), false);
    assert.equal(s.due(20), true);
  });
});
