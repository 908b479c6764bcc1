import assert from "node:assert/strict";
import { join } from "node:path";
import type { HardState } from "../../src/raft/types.ts";
import { Wal, WalCorruptionError } from "../../src/wal/mod.ts";
import {
  encodeEntry,
  encodeHardState,
  type RecordTypeCode,
  writeFrame,
} from "../../src/wal/record.ts";
import {
  applyRecords,
  buildWal,
  type BuiltWal,
  entries,
  entry,
  readFiles,
  RecordingLogger,
  type Saves,
  segmentNames,
  walkFrames,
  withTempDir,
  writeFiles,
} from "./_helpers.ts";

/** Six saves of 1..3 entries, each with a distinct hard state. */
function sixSaves(): Saves {
  const saves: [HardState, ReturnType<typeof entries>][] = [];
  let next = 1;
  for (let s = 0; s < 6; s++) {
    const n = 1 + (s % 3);
    saves.push([{ term: s + 1, vote: 1, commit: next - 1 }, entries(next, next + n - 1, s + 1)]);
    next += n;
  }
  return saves;
}

/** Copies a built WAL into `dir`, with `name` replaced by `bytes`. */
async function place(
  dir: string,
  built: BuiltWal,
  name: string,
  bytes: Uint8Array,
): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  await writeFiles(dir, built.files);
  await Deno.writeFile(join(dir, name), bytes);
  return join(dir, name);
}

/** Opens `dir`, expecting a WalCorruptionError; checks it and that nothing was modified. */
async function expectCorruption(
  dir: string,
  file: string,
  offset: number,
  reason: RegExp,
): Promise<WalCorruptionError> {
  const before = await readFiles(dir);
  const err = await Wal.open(dir).then(
    () => assert.fail("open should have thrown WalCorruptionError"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof WalCorruptionError, `not a WalCorruptionError: ${err}`);
  assert.equal(err.file, file);
  assert.equal(err.offset, offset);
  assert.match(err.reason, reason);
  const base = file.slice(file.lastIndexOf("/") + 1);
  assert.ok(
    err.message.startsWith(`Cannot open WAL segment ${base}: `),
    `message does not name the file: ${err.message}`,
  );
  assert.ok(err.message.endsWith(` at offset ${offset}`), err.message);
  assert.deepStrictEqual(await readFiles(dir), before, "a failed open modified the WAL");
  return err;
}

/** Appends a frame (intact, chained after the last one unless `chain` is given) to a segment. */
async function appendFrame(
  path: string,
  seq: number,
  type: number,
  payload: Uint8Array,
  chain?: number,
): Promise<number> {
  const bytes = await Deno.readFile(path);
  const last = walkFrames(bytes).at(-1)!;
  const prev = chain ?? new DataView(bytes.buffer).getUint32(last.offset + 8, true);
  const frame = new Uint8Array(16 + ((payload.length + 7) & ~7));
  writeFrame(frame, 0, type as RecordTypeCode, payload, seq, bytes.length, prev);
  await Deno.writeFile(path, frame, { append: true });
  return bytes.length;
}

Deno.test("torn tail: cut at every offset inside the final records, the WAL recovers the prefix, warns, appends and reopens cleanly", async () => {
  await withTempDir(async (root) => {
    const built = await buildWal(join(root, "base"), sixSaves());
    assert.equal(built.names.length, 1);
    const name = built.names[0]!;
    const full = built.files.get(name)!;
    // The last two saves' frames: entries and hard states.
    const tailFrames = built.frames.filter((f) => f.record !== undefined).slice(-6);
    let checked = 0;
    for (let cut = tailFrames[0]!.offset; cut < full.length; cut++) {
      const dir = join(root, `cut${cut}`);
      await place(dir, built, name, full.subarray(0, cut));
      const kept = built.frames.filter((f) => f.end <= cut);
      const boundary = kept.at(-1)!.end;
      const expected = applyRecords(built.records.slice(0, kept.at(-1)!.record! + 1));
      const log = new RecordingLogger();
      const { wal, recovery } = await Wal.open(dir, { logger: log });
      assert.deepStrictEqual(recovery.hardState, expected.hardState, `cut ${cut}`);
      assert.deepStrictEqual(recovery.entries, expected.entries, `cut ${cut}`);
      if (boundary === cut) {
        assert.deepStrictEqual(recovery.warnings, [], `cut ${cut} is a record boundary`);
      } else {
        assert.equal(recovery.warnings.length, 1, `cut ${cut}`);
        const w = recovery.warnings[0]!;
        assert.ok(w.startsWith(`WAL segment ${name}: torn tail at offset ${boundary} (`), w);
        assert.ok(w.endsWith(`; cut ${cut - boundary} bytes`), w);
        assert.deepStrictEqual(log.at("warn"), [w]);
      }
      assert.equal((await Deno.stat(join(dir, name))).size, boundary);

      const more = entry(expected.entries.length + 1, 9);
      const hs = { term: 9, vote: 2, commit: expected.entries.length };
      await wal.save(hs, [more]);
      await wal.close();
      const again = await Wal.open(dir);
      assert.deepStrictEqual(again.recovery, {
        hardState: hs,
        entries: [...expected.entries, more],
        warnings: [],
      });
      await again.wal.close();
      await Deno.remove(dir, { recursive: true });
      checked++;
    }
    assert.ok(checked > 200, `only ${checked} cuts`);
  });
});

Deno.test("torn tail: a save cut between its entries and its hard state recovers the entries with the older hard state", async () => {
  await withTempDir(async (root) => {
    const built = await buildWal(join(root, "base"), sixSaves());
    const name = built.names[0]!;
    const lastHs = built.frames.at(-1)!;
    const dir = join(root, "cut");
    await place(dir, built, name, built.files.get(name)!.subarray(0, lastHs.offset + 3));
    const { wal, recovery } = await Wal.open(dir);
    assert.deepStrictEqual(recovery.hardState, built.afterSave.at(-2)!.hardState);
    assert.equal(recovery.entries.length, built.afterSave.at(-1)!.lastIndex);
    await wal.close();
  });
});

Deno.test("torn tail: a last segment cut inside its header (or empty) is removed; the previous segment takes the appends", async () => {
  await withTempDir(async (root) => {
    const built = await buildWal(join(root, "base"), sixSaves(), 150);
    assert.ok(built.names.length >= 3);
    const name = built.names.at(-1)!;
    const header = built.frames.find((f) => f.name === name)!;
    const before = built.frames.filter((f) => f.end <= header.offset || f.name !== name);
    const lastRecord = before.filter((f) => f.record !== undefined).at(-1)!.record!;
    const expected = applyRecords(built.records.slice(0, lastRecord + 1));
    for (let cut = 0; cut < header.end; cut++) {
      const dir = join(root, `cut${cut}`);
      await place(dir, built, name, built.files.get(name)!.subarray(0, cut));
      const { wal, recovery } = await Wal.open(dir, { segmentBytes: 150 });
      assert.deepStrictEqual(recovery.entries, expected.entries);
      assert.deepStrictEqual(recovery.hardState, expected.hardState);
      assert.equal(recovery.warnings.length, 1);
      assert.match(recovery.warnings[0]!, /torn tail at offset 0 .*; cut \d+ bytes/);
      assert.deepStrictEqual(await segmentNames(dir), built.names.slice(0, -1));
      const more = entries(expected.entries.length + 1, expected.entries.length + 2, 9);
      await wal.save(undefined, more);
      await wal.close();
      const again = await Wal.open(dir, { segmentBytes: 150 });
      assert.deepStrictEqual(again.recovery.entries, [...expected.entries, ...more]);
      assert.deepStrictEqual(again.recovery.warnings, []);
      await again.wal.close();
    }
  });
});

Deno.test("torn tail: a lone first segment cut inside its header recovers as a fresh WAL", async () => {
  await withTempDir(async (dir) => {
    const { wal } = await Wal.open(dir);
    await wal.close();
    const name = "0000000000000000-0000000000000001.wal";
    const bytes = await Deno.readFile(join(dir, name));
    await Deno.writeFile(join(dir, name), bytes.subarray(0, 10));
    const { wal: again, recovery } = await Wal.open(dir);
    assert.deepStrictEqual(recovery.entries, []);
    assert.deepStrictEqual(recovery.warnings, [
      `WAL segment ${name}: torn tail at offset 0 (incomplete record header (10 of 16 bytes)); cut 10 bytes`,
    ]);
    await again.save({ term: 1, vote: 1, commit: 0 }, entries(1, 2, 1));
    await again.close();
    const third = await Wal.open(dir);
    assert.deepStrictEqual(third.recovery.entries, entries(1, 2, 1));
    assert.deepStrictEqual(await segmentNames(dir), [name]);
    await third.wal.close();
  });
});

Deno.test("torn tail: zeros where the last record should be (a preallocated or lost page) are cut", async () => {
  await withTempDir(async (root) => {
    const built = await buildWal(join(root, "base"), sixSaves());
    const name = built.names[0]!;
    const bytes = built.files.get(name)!.slice();
    const last = built.frames.at(-1)!;
    bytes.fill(0, last.offset);
    const padded = new Uint8Array(bytes.length + 4096); // and a zeroed page beyond
    padded.set(bytes);
    const dir = join(root, "z");
    await place(dir, built, name, padded);
    const { wal, recovery } = await Wal.open(dir);
    assert.deepStrictEqual(recovery.hardState, built.afterSave.at(-2)!.hardState);
    assert.match(recovery.warnings[0]!, new RegExp(`torn tail at offset ${last.offset} `));
    await wal.close();
  });
});

Deno.test("corruption: any flipped byte of a record in the middle of the last segment throws, naming the file and the record's offset", async () => {
  await withTempDir(async (root) => {
    const built = await buildWal(join(root, "base"), sixSaves());
    const name = built.names[0]!;
    const middle = built.frames[Math.floor(built.frames.length / 2)]!;
    for (let at = middle.offset; at < middle.end; at++) {
      const bytes = built.files.get(name)!.slice();
      bytes[at]! ^= 0x10;
      const dir = join(root, `flip${at}`);
      const path = await place(dir, built, name, bytes);
      const err = await expectCorruption(
        dir,
        path,
        middle.offset,
        new RegExp(`followed by an intact record at offset ${middle.end}$`),
      );
      if (at >= middle.offset + 16) assert.match(err.reason, /^bad CRC/);
    }
  });
});

Deno.test("corruption: a flipped byte in a segment that is not the last throws, even in its final record", async () => {
  await withTempDir(async (root) => {
    const built = await buildWal(join(root, "base"), sixSaves(), 150);
    const name = built.names[0]!;
    const frames = built.frames.filter((f) => f.name === name);
    for (const f of [frames[0]!, frames[1]!, frames.at(-1)!]) {
      const bytes = built.files.get(name)!.slice();
      bytes[f.end - 1]! ^= 0x01; // padding or payload: covered by the CRC either way
      const dir = join(root, `flip${f.offset}`);
      const path = await place(dir, built, name, bytes);
      await expectCorruption(dir, path, f.offset, /in a segment that is not the last one$/);
    }
  });
});

Deno.test("corruption: a segment that is not the last, truncated, throws", async () => {
  await withTempDir(async (root) => {
    const built = await buildWal(join(root, "base"), sixSaves(), 150);
    const name = built.names[1]!;
    const bytes = built.files.get(name)!;
    const dir = join(root, "t");
    const path = await place(dir, built, name, bytes.subarray(0, bytes.length - 5));
    const last = built.frames.filter((f) => f.name === name).at(-1)!;
    await expectCorruption(dir, path, last.offset, /runs past the end of the file/);
  });
});

Deno.test("corruption: an impossible record length in the middle of the last segment throws", async () => {
  await withTempDir(async (root) => {
    const built = await buildWal(join(root, "base"), sixSaves());
    const name = built.names[0]!;
    const f = built.frames[3]!;
    const bytes = built.files.get(name)!.slice();
    new DataView(bytes.buffer).setUint32(f.offset, 0x7fffffff, true);
    const dir = join(root, "len");
    const path = await place(dir, built, name, bytes);
    await expectCorruption(dir, path, f.offset, /^impossible record length 2147483647/);
  });
});

Deno.test("corruption: a damaged header of the last segment, with records after it, throws", async () => {
  await withTempDir(async (root) => {
    const built = await buildWal(join(root, "base"), sixSaves(), 150);
    const name = built.names.at(-1)!;
    const bytes = built.files.get(name)!.slice();
    assert.ok(walkFrames(bytes).length > 1);
    bytes[20]! ^= 0xff;
    const dir = join(root, "h");
    const path = await place(dir, built, name, bytes);
    await expectCorruption(dir, path, 0, /^bad CRC .*followed by an intact record at offset 40$/);
  });
});

Deno.test("corruption: a missing segment in the sequence throws, naming the one after the gap", async () => {
  await withTempDir(async (root) => {
    const built = await buildWal(join(root, "base"), sixSaves(), 150);
    assert.ok(built.names.length >= 3);
    const dir = join(root, "m");
    await Deno.mkdir(dir);
    await writeFiles(dir, built.files);
    await Deno.remove(join(dir, built.names[1]!));
    await expectCorruption(
      dir,
      join(dir, built.names[2]!),
      0,
      new RegExp(
        `^sequence number 2 found where 1 was expected after ${
          built.names[0]
        } \\(segment 1 is missing\\)$`,
      ),
    );
    // Without the first segment, the sequence does not start at 0.
    const dir2 = join(root, "m2");
    await Deno.mkdir(dir2);
    await writeFiles(dir2, built.files);
    await Deno.remove(join(dir2, built.names[0]!));
    await expectCorruption(dir2, join(dir2, built.names[1]!), 0, /segment 0 is missing/);
  });
});

Deno.test("corruption: a renamed segment, whose header disagrees with its name, throws", async () => {
  await withTempDir(async (root) => {
    const built = await buildWal(join(root, "base"), sixSaves(), 150);
    const dir = join(root, "r");
    await Deno.mkdir(dir);
    await writeFiles(dir, built.files);
    const old = built.names[1]!;
    const renamed = old.slice(0, 17) + "00000000000000ff.wal";
    await Deno.rename(join(dir, old), join(dir, renamed));
    await expectCorruption(dir, join(dir, renamed), 0, /does not match the file name$/);
  });
});

Deno.test("corruption: a segment from another WAL (same name, other history) throws", async () => {
  await withTempDir(async (root) => {
    const a = await buildWal(join(root, "a"), sixSaves(), 150);
    const otherSaves = sixSaves().map(([hs, es]) => [{ ...hs!, vote: 2 }, es] as const);
    const b = await buildWal(join(root, "b"), otherSaves, 150);
    assert.deepStrictEqual(a.names, b.names);
    const name = a.names[2]!;
    const dir = join(root, "mix");
    const path = await place(dir, a, name, b.files.get(name)!);
    await expectCorruption(dir, path, 0, /^segment header carries previous CRC 0x[0-9a-f]{8} but/);
  });
});

Deno.test("corruption: an intact record of unknown type throws, even as the very last record", async () => {
  await withTempDir(async (root) => {
    const built = await buildWal(join(root, "base"), sixSaves());
    const dir = join(root, "u");
    await Deno.mkdir(dir);
    await writeFiles(dir, built.files);
    const path = join(dir, built.names[0]!);
    const offset = await appendFrame(path, 0, 9, new Uint8Array([1, 2, 3]));
    await expectCorruption(dir, path, offset, /^unknown record type 9$/);
  });
});

Deno.test("corruption: an intact entry record that leaves an index gap throws", async () => {
  await withTempDir(async (root) => {
    const built = await buildWal(join(root, "base"), sixSaves());
    const last = built.afterSave.at(-1)!.lastIndex;
    const dir = join(root, "g");
    await Deno.mkdir(dir);
    await writeFiles(dir, built.files);
    const path = join(dir, built.names[0]!);
    const offset = await appendFrame(path, 0, 2, encodeEntry(entry(last + 2, 9)));
    await expectCorruption(
      dir,
      path,
      offset,
      new RegExp(`^entry index ${last + 2} leaves a gap after last index ${last}$`),
    );
  });
});

Deno.test("corruption: an intact record whose chain CRC does not follow its predecessor throws", async () => {
  await withTempDir(async (root) => {
    const built = await buildWal(join(root, "base"), sixSaves());
    const dir = join(root, "c");
    await Deno.mkdir(dir);
    await writeFiles(dir, built.files);
    const path = join(dir, built.names[0]!);
    const hs = encodeHardState({ term: 9, vote: 9, commit: 0 });
    const offset = await appendFrame(path, 0, 3, hs, 0x12345678);
    await expectCorruption(
      dir,
      path,
      offset,
      /^chain CRC mismatch .*does not follow the one before it$/,
    );
  });
});

Deno.test("corruption: an intact record with a malformed payload throws", async () => {
  await withTempDir(async (root) => {
    const built = await buildWal(join(root, "base"), sixSaves());
    const dir = join(root, "p");
    await Deno.mkdir(dir);
    await writeFiles(dir, built.files);
    const path = join(dir, built.names[0]!);
    const offset = await appendFrame(path, 0, 3, new Uint8Array(5));
    await expectCorruption(
      dir,
      path,
      offset,
      /^bad hard state record: hard state payload is 5 bytes/,
    );
  });
});

Deno.test("a .wal file with a malformed name is an error, not something to skip", async () => {
  await withTempDir(async (dir) => {
    const { wal } = await Wal.open(dir);
    await wal.close();
    await Deno.writeFile(join(dir, "old.wal"), new Uint8Array(8));
    await expectCorruption(dir, join(dir, "old.wal"), 0, /^not a segment file name/);
  });
});

Deno.test("a leftover .wal.tmp from a crash during segment creation is removed on open", async () => {
  await withTempDir(async (dir) => {
    const { wal } = await Wal.open(dir);
    await wal.save(undefined, entries(1, 2, 1));
    await wal.close();
    const tmp = join(dir, "0000000000000001-0000000000000003.wal.tmp");
    await Deno.writeFile(tmp, new Uint8Array(13));
    const { wal: again, recovery } = await Wal.open(dir);
    assert.deepStrictEqual(recovery.entries, entries(1, 2, 1));
    assert.deepStrictEqual(recovery.warnings, []);
    await assert.rejects(Deno.stat(tmp), Deno.errors.NotFound);
    await again.close();
  });
});
