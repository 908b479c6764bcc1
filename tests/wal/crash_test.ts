/**
 * The WAL after a crash (issue 8, part 3), on a model of the disk that loses
 * whatever was not fsynced (SimDisk, tests/wal/_helpers.ts): what open recovers
 * stays recovered after a power loss, a save whose fsync failed is never read back,
 * a new WAL's directories survive, and the files are private.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { Wal, WalCorruptionError } from "../../src/wal/mod.ts";
import { entries, segmentNames, SimDisk, withTempDir } from "./_helpers.ts";

/*
 * A process that wrote a save and died before its fsync took effect leaves the
 * records in the page cache. The next process reads them, and Raft may promise
 * them at once (an empty Ready needs no new save). Open must make them durable.
 */
Deno.test("open makes what it recovered durable: records a dead process wrote but never fsynced survive a power loss after the reopen", async () => {
  await withTempDir(async (root) => {
    const disk = await SimDisk.over(root);
    const dir = join(root, "wal");
    const wal = await Wal.create(dir, { io: disk });
    await wal.save({ term: 1, vote: 1, commit: 0 }, entries(1, 2, 1));
    disk.forgetSyncs = true; // the process dies before the next fsync reaches the disk
    await wal.save({ term: 2, vote: 3, commit: 2 }, entries(3, 4, 2));
    await wal.close();
    disk.forgetSyncs = false;

    const reopened = await Wal.open(dir, { io: disk });
    const recovered = {
      hardState: { term: 2, vote: 3, commit: 2 },
      entries: [...entries(1, 2, 1), ...entries(3, 4, 2)],
      firstIndex: 1,
      warnings: [],
    };
    assert.deepStrictEqual(reopened.recovery, recovered);
    await reopened.wal.close();

    await disk.powerLoss();
    const after = await Wal.open(dir);
    assert.deepStrictEqual(after.recovery, recovered, "what open recovered was lost");
    await after.wal.close();
  });
});

/*
 * "Can Applications Recover from fsync Failures?" (ATC'20): after a failed fsync,
 * Linux may mark the dirty pages clean, so a restart reads the save back from the
 * page cache although the disk never got it.
 */
Deno.test("a save whose fsync fails is cut back to the last durable size: neither a restart nor a power loss brings it back", async () => {
  await withTempDir(async (root) => {
    const disk = await SimDisk.over(root);
    const dir = join(root, "wal");
    const wal = await Wal.create(dir, { io: disk });
    await wal.save({ term: 1, vote: 1, commit: 0 }, entries(1, 2, 1));
    const segment = join(dir, (await segmentNames(dir))[0]!);
    const durable = (await Deno.stat(segment)).size;

    disk.failSyncAt = 1;
    await assert.rejects(
      wal.save({ term: 2, vote: 2, commit: 2 }, entries(3, 4, 2)),
      /^Error: Cannot save to WAL segment \S+ at offset \d+: Input\/output error \(os error 5\); the WAL refuses further saves/,
    );
    assert.equal((await Deno.stat(segment)).size, durable, "the failed save is still in the file");
    await assert.rejects(wal.save(undefined, entries(3, 3, 1)), /an earlier write failed/);
    await wal.close();

    const before = {
      hardState: { term: 1, vote: 1, commit: 0 },
      entries: entries(1, 2, 1),
      firstIndex: 1,
      warnings: [],
    };
    const restarted = await Wal.open(dir, { io: disk });
    assert.deepStrictEqual(restarted.recovery, before, "a restart read the failed save back");
    await restarted.wal.close();
    await disk.powerLoss();
    const rebooted = await Wal.open(dir);
    assert.deepStrictEqual(rebooted.recovery, before);
    await rebooted.wal.close();
  });
});

Deno.test("a new WAL survives a power loss right after its first save: its directory and every directory created above it are fsynced", async () => {
  await withTempDir(async (root) => {
    const disk = await SimDisk.over(root);
    const dir = join(root, "data", "node1", "wal");
    const wal = await Wal.create(dir, { io: disk });
    await wal.save({ term: 5, vote: 2, commit: 0 }, entries(1, 1, 5));
    await wal.close();
    await disk.powerLoss();
    const { wal: again, recovery } = await Wal.open(dir);
    assert.deepStrictEqual(recovery.hardState, { term: 5, vote: 2, commit: 0 });
    assert.deepStrictEqual(recovery.entries, entries(1, 1, 5));
    await again.close();
  });
});

Deno.test("create builds the WAL in <dir>.tmp and renames it: a crash before the rename leaves no WAL, and a later create starts over", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "wal");
    // What a crash in the middle of create leaves: a half-built temp directory.
    await Deno.mkdir(`${dir}.tmp`);
    await Deno.writeFile(
      join(`${dir}.tmp`, "0000000000000000-0000000000000001.wal"),
      new Uint8Array(7),
    );
    assert.equal(await Wal.exists(dir), false);
    const wal = await Wal.create(dir);
    await wal.close();
    assert.equal(await Wal.exists(`${dir}.tmp`), false);
    const { wal: again, recovery } = await Wal.open(dir);
    assert.deepStrictEqual(recovery.warnings, []);
    await again.close();
  });
});

Deno.test("a WAL directory that vanished is not a new WAL: open refuses a missing directory and one with no segments", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "wal");
    await assert.rejects(Wal.open(dir), /Cannot open WAL in .*: it does not exist/);
    await Deno.mkdir(dir);
    await assert.rejects(Wal.open(dir), WalCorruptionError);
  });
});

Deno.test("the WAL's files are private: segments 0600, the WAL directory and the directories it creates 0700", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "made", "wal");
    const wal = await Wal.create(dir, { segmentBytes: 64 });
    for (let i = 1; i <= 6; i += 2) await wal.save(undefined, entries(i, i + 1, 1));
    await wal.close();
    const names = await segmentNames(dir);
    assert.ok(names.length >= 2, `${names}`);
    const mode = async (path: string) => ((await Deno.stat(path)).mode! & 0o777).toString(8);
    assert.equal(await mode(join(root, "made")), "700");
    assert.equal(await mode(dir), "700");
    for (const name of names) assert.equal(await mode(join(dir, name)), "600", name);
  });
});
