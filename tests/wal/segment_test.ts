import assert from "node:assert/strict";
import { join } from "node:path";
import { parseSegmentFileName, segmentFileName, Wal } from "../../src/wal/mod.ts";
import {
  entries,
  FaultyIo,
  readFiles,
  RecordingLogger,
  segmentNames,
  withWalDir,
} from "./_helpers.ts";

Deno.test("segment file names are <seq>-<first index> in 16 hex digits, and parse back", () => {
  const name = segmentFileName({ seq: 2, firstIndex: 0x101 });
  assert.equal(name, "0000000000000002-0000000000000101.wal");
  assert.deepStrictEqual(parseSegmentFileName(name), { seq: 2, firstIndex: 0x101 });
  assert.equal(parseSegmentFileName("0000000000000002-0000000000000101.wal.tmp"), undefined);
  assert.equal(parseSegmentFileName("2-101.wal"), undefined);
  assert.equal(parseSegmentFileName("000000000000000G-0000000000000101.wal"), undefined);
});

Deno.test("segments roll at a small segmentBytes, named by sequence and the next index", async () => {
  await withWalDir(async (dir) => {
    const log = new RecordingLogger();
    const wal = await Wal.create(dir, { segmentBytes: 200, logger: log });
    for (let i = 0; i < 6; i++) {
      await wal.save({ term: 1, vote: 1, commit: 3 * i }, entries(3 * i + 1, 3 * i + 3, 1));
    }
    await wal.close();
    const names = await segmentNames(dir);
    assert.ok(names.length >= 3, `expected several segments, got ${names}`);
    // Each segment is created when the previous one passed 200 bytes, at a save boundary.
    for (const [seq, name] of names.entries()) {
      const id = parseSegmentFileName(name)!;
      assert.equal(id.seq, seq);
      assert.equal((id.firstIndex - 1) % 3, 0, name);
    }
    assert.equal(
      log.at("info").filter((m) => m === "wal: started segment").length,
      names.length - 1,
    );

    const { wal: again, recovery } = await Wal.open(dir, { segmentBytes: 200 });
    assert.deepStrictEqual(recovery.entries, entries(1, 18, 1));
    assert.deepStrictEqual(recovery.hardState, { term: 1, vote: 1, commit: 15 });
    assert.deepStrictEqual(recovery.warnings, []);
    await again.close();
  });
});

Deno.test("a reopened WAL keeps appending across further segments, overwrites included", async () => {
  await withWalDir(async (dir) => {
    const first = { wal: await Wal.create(dir, { segmentBytes: 150 }) };
    await first.wal.save(undefined, entries(1, 4, 1));
    await first.wal.save(undefined, entries(5, 8, 1));
    await first.wal.close();

    const second = await Wal.open(dir, { segmentBytes: 150 });
    assert.deepStrictEqual(second.recovery.entries, entries(1, 8, 1));
    const before = (await segmentNames(dir)).length;
    // Overwrite a suffix that lives in an earlier segment, then keep going.
    await second.wal.save({ term: 2, vote: 2, commit: 2 }, entries(3, 6, 2));
    await second.wal.save(undefined, entries(7, 12, 2));
    await second.wal.close();
    assert.ok((await segmentNames(dir)).length > before);

    const third = await Wal.open(dir, { segmentBytes: 150 });
    assert.deepStrictEqual(third.recovery.entries, [...entries(1, 2, 1), ...entries(3, 12, 2)]);
    assert.deepStrictEqual(third.recovery.hardState, { term: 2, vote: 2, commit: 2 });
    await third.wal.close();
  });
});

Deno.test("one save's records are never split across segments, even past segmentBytes", async () => {
  await withWalDir(async (dir) => {
    const wal = await Wal.create(dir, { segmentBytes: 64 });
    await wal.save(undefined, entries(1, 50, 1));
    await wal.save(undefined, entries(51, 52, 1));
    await wal.close();
    assert.deepStrictEqual(await segmentNames(dir), [
      "0000000000000000-0000000000000001.wal",
      "0000000000000001-0000000000000033.wal", // 0x33 = 51
    ]);
  });
});

Deno.test("a save that starts a segment costs two more fsyncs: the new file and the directory", async () => {
  await withWalDir(async (dir) => {
    const io = new FaultyIo();
    const wal = await Wal.create(dir, { segmentBytes: 64, io });
    await wal.save(undefined, entries(1, 5, 1));
    io.syncs = 0;
    await wal.save(undefined, entries(6, 10, 1));
    assert.equal(io.syncs, 3);
    await wal.close();
  });
});

Deno.test("a failed segment roll rejects the save and the WAL refuses further saves; reopening recovers", async () => {
  await withWalDir(async (dir) => {
    const io = new FaultyIo();
    const wal = await Wal.create(dir, { segmentBytes: 64, io });
    await wal.save(undefined, entries(1, 5, 1));
    io.failSyncAt = 1; // the fsync of the new segment file
    await assert.rejects(
      wal.save(undefined, entries(6, 10, 1)),
      /Cannot create WAL segment 0000000000000001-0000000000000006\.wal: Input\/output error/,
    );
    await assert.rejects(wal.save(undefined, entries(6, 6, 1)), /an earlier write failed/);
    await wal.close();
    // The half-made segment is a .tmp file, which open removes.
    assert.ok([...(await readFiles(dir)).keys()].some((n) => n.endsWith(".wal.tmp")));
    const { wal: again, recovery } = await Wal.open(dir, { segmentBytes: 64 });
    assert.deepStrictEqual(recovery.entries, entries(1, 5, 1));
    assert.deepStrictEqual(recovery.warnings, []);
    assert.ok(![...(await readFiles(dir)).keys()].some((n) => n.endsWith(".tmp")));
    await again.save(undefined, entries(6, 10, 1));
    await again.close();
    const third = await Wal.open(dir, { segmentBytes: 64 });
    assert.deepStrictEqual(third.recovery.entries, entries(1, 10, 1));
    await third.wal.close();
  });
});

Deno.test("files that are not segments are left alone", async () => {
  await withWalDir(async (dir) => {
    await (await Wal.create(dir)).close();
    await Deno.writeTextFile(join(dir, "README"), "not a segment");
    const { wal, recovery } = await Wal.open(dir);
    assert.deepStrictEqual(recovery.entries, []);
    await wal.close();
    assert.equal(await Deno.readTextFile(join(dir, "README")), "not a segment");
  });
});
