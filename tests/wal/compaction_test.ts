/**
 * Log compaction in the WAL: segments wholly below what a snapshot keeps are
 * released, a WAL opened afterwards starts at the first entry left and knows the
 * snapshot covers the rest, and a missing segment or a gap the snapshot does not
 * cover is damage, never a silently shorter log.
 */

import { gapAfterSnapshot, segmentsWhollyBelow } from "../../src/wal/compaction.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Wal, WalCorruptionError } from "../../src/wal/mod.ts";
import { entries, readFiles, segmentNames, withWalDir, writeFiles } from "./_helpers.ts";

/** A WAL with small segments holding entries 1..60 in term 2, its hard state saved once, first. */
async function sixtyEntries(dir: string): Promise<Wal> {
  const wal = await Wal.create(dir, { segmentBytes: 400 });
  await wal.save({ term: 2, vote: 1, commit: 0 }, []);
  for (let i = 1; i <= 60; i += 5) await wal.save(undefined, entries(i, i + 4, 2));
  return wal;
}

async function refuses(dir: string, snapshotIndex: number, reason: RegExp): Promise<void> {
  const err = await Wal.open(dir, { snapshotIndex }).then(
    ({ wal }) => wal.close().then(() => assert.fail("opened")),
    (e: unknown) => e,
  );
  assert.ok(err instanceof WalCorruptionError, String(err));
  assert.match(err.message, reason);
}

Deno.test("released segments are gone; a reopen starts at the first entry left, hard state intact", async () => {
  await withWalDir(async (dir) => {
    const wal = await sixtyEntries(dir);
    const before = (await segmentNames(dir)).length;
    assert.ok(before >= 4, `expected several segments, got ${before}`);
    // A snapshot at 40 keeping 10 entries for slow followers: keep 31 and up.
    const deleted = await wal.releaseBefore(31);
    assert.ok(deleted >= 1);
    assert.equal((await segmentNames(dir)).length, wal.segmentCount);
    assert.ok(wal.segmentCount < before);
    assert.ok(wal.firstSegmentIndex <= 31);
    await wal.close();

    const { wal: reopened, recovery } = await Wal.open(dir, { snapshotIndex: 40 });
    assert.ok(recovery.firstIndex <= 31 && recovery.firstIndex > 1, `${recovery.firstIndex}`);
    assert.deepEqual(recovery.entries, entries(recovery.firstIndex, 60, 2));
    // The only hard state record was in the first segment: it was saved again first.
    assert.deepEqual(recovery.hardState, { term: 2, vote: 1, commit: 0 });
    // The log goes on from there.
    await reopened.save({ term: 2, vote: 1, commit: 61 }, entries(61, 61, 2));
    await reopened.close();
    const { wal: third, recovery: again } = await Wal.open(dir, { snapshotIndex: 40 });
    assert.equal(again.entries.at(-1)?.index, 61);
    assert.equal(again.hardState.commit, 61);
    await third.close();
  });
});

Deno.test("release keeps every segment holding an entry still kept, and always the tail", async () => {
  await withWalDir(async (dir) => {
    const wal = await sixtyEntries(dir);
    assert.equal(await wal.releaseBefore(1), 0);
    await wal.releaseBefore(45);
    assert.ok(wal.firstSegmentIndex <= 45);
    await wal.close();
    const { wal: w, recovery } = await Wal.open(dir, { snapshotIndex: 50 });
    assert.deepEqual(recovery.entries, entries(recovery.firstIndex, 60, 2));
    assert.ok(recovery.firstIndex <= 45);
    await w.releaseBefore(1_000);
    assert.equal(w.segmentCount, 1);
    await w.close();
  });
});

Deno.test("a WAL with released segments and no snapshot to cover them is refused", async () => {
  await withWalDir(async (dir) => {
    const wal = await sixtyEntries(dir);
    await wal.releaseBefore(31);
    const first = wal.firstSegmentIndex;
    await wal.close();
    await refuses(dir, 0, /there is no snapshot: entries 1 to \d+ are in neither/);
    // A snapshot older than the first entry left does not cover the gap either
    // (a newest snapshot was lost, and the node fell back to an older one).
    await refuses(
      dir,
      first - 2,
      new RegExp(`the snapshot covers up to index ${first - 2}: entries ${first - 1} to`),
    );
    // The snapshot that was taken does.
    const { wal: ok } = await Wal.open(dir, { snapshotIndex: first - 1 });
    await ok.close();
  });
});

Deno.test("a segment missing in the middle after a release is damage", async () => {
  await withWalDir(async (dir) => {
    const wal = await sixtyEntries(dir);
    await wal.releaseBefore(21);
    await wal.close();
    const names = await segmentNames(dir);
    assert.ok(names.length >= 3);
    await Deno.remove(join(dir, names[1]!));
    await refuses(dir, 40, /segment \d+ is missing/);
  });
});

Deno.test("a reset after a snapshot from the leader starts the log over after it", async () => {
  await withWalDir(async (dir) => {
    const wal = await sixtyEntries(dir);
    await wal.resetTo(100);
    assert.equal(wal.segmentCount, 1);
    assert.equal(wal.lastIndex, 100);
    await assert.rejects(
      () => wal.save(undefined, entries(100, 100, 3)),
      /entry 100 would rewrite the log below its first index 101/,
    );
    await wal.close();
    const { wal: w, recovery } = await Wal.open(dir, { snapshotIndex: 100 });
    assert.deepEqual(recovery.entries, []);
    assert.equal(recovery.firstIndex, 101);
    assert.deepEqual(recovery.hardState, { term: 2, vote: 1, commit: 0 });
    await w.save({ term: 3, vote: 0, commit: 102 }, entries(101, 102, 3));
    await w.close();
    const { wal: w2, recovery: r2 } = await Wal.open(dir, { snapshotIndex: 100 });
    assert.deepEqual(r2.entries, entries(101, 102, 3));
    await w2.close();
    await refuses(dir, 90, /snapshot covers up to index 90: entries 91 to 100 are in neither/);
  });
});

Deno.test("a reset cut short by a crash (old segments still there) replays as the reset log", async () => {
  await withWalDir(async (dir) => {
    const wal = await sixtyEntries(dir);
    await wal.close();
    const old = await readFiles(dir);
    const { wal: again } = await Wal.open(dir);
    await again.resetTo(100);
    await again.save(undefined, entries(101, 103, 3));
    await again.close();
    await writeFiles(dir, old); // as if the deletes never happened
    const { wal: w, recovery } = await Wal.open(dir, { snapshotIndex: 100 });
    assert.deepEqual(recovery.entries, entries(101, 103, 3));
    await w.close();
    // Without the snapshot the jump from 60 to 101 is a hole in the log.
    await refuses(dir, 0, /starts at index 101 but the log before it ends at 60/);
  });
});

Deno.test("which segments a snapshot releases, and which first segment a snapshot still reaches", () => {
  const seg = (seq: number, firstIndex: number) => ({
    id: { seq, firstIndex },
    path: `/wal/${seq}.wal`,
  });
  const segments = [seg(0, 1), seg(1, 101), seg(2, 201)];
  // Keeping 100 on: segment 0 (1-100) goes; keeping 101 on as well; 200 keeps segment 1.
  assert.equal(segmentsWhollyBelow(segments, 100), 0);
  assert.equal(segmentsWhollyBelow(segments, 101), 1);
  assert.equal(segmentsWhollyBelow(segments, 200), 1);
  // The tail is never released, however far the snapshot is.
  assert.equal(segmentsWhollyBelow(segments, 10_000), 2);
  assert.equal(segmentsWhollyBelow([seg(0, 1)], 10_000), 0);

  assert.equal(gapAfterSnapshot(undefined, 0), undefined);
  assert.equal(gapAfterSnapshot(seg(0, 1), 0), undefined);
  assert.equal(gapAfterSnapshot(seg(3, 301), 300), undefined);
  assert.equal(gapAfterSnapshot(seg(3, 301), 500), undefined);
  assert.equal(
    gapAfterSnapshot(seg(3, 301), 250),
    "the first segment left starts at index 301, but the snapshot covers up to index 250: " +
      "entries 251 to 300 are in neither (segment 2 is missing)",
  );
  assert.match(gapAfterSnapshot(seg(1, 101), 0)!, /there is no snapshot/);
});
