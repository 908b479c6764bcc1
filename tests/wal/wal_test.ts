import assert from "node:assert/strict";
import { join } from "node:path";
import { EMPTY_HARD_STATE, type HardState } from "../../src/raft/types.ts";
import { Wal } from "../../src/wal/mod.ts";
import {
  entries,
  entry,
  FaultyIo,
  RecordingLogger,
  segmentNames,
  withTempDir,
  withWalDir,
} from "./_helpers.ts";

Deno.test("create makes a fresh WAL, and the directories above it: it reopens empty", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "not", "yet", "there");
    const wal = await Wal.create(dir);
    assert.equal(wal.lastIndex, 0);
    await wal.close();
    assert.deepStrictEqual(await segmentNames(dir), ["0000000000000000-0000000000000001.wal"]);
    const { wal: again, recovery } = await Wal.open(dir);
    assert.deepStrictEqual(recovery, {
      hardState: EMPTY_HARD_STATE,
      entries: [],
      firstIndex: 1,
      warnings: [],
    });
    await again.close();
  });
});

Deno.test("create refuses a directory that exists; open refuses one that does not", async () => {
  await withWalDir(async (dir) => {
    await assert.rejects(Wal.open(dir), /^Error: Cannot open WAL in .*: it does not exist$/);
    await (await Wal.create(dir)).close();
    await assert.rejects(Wal.create(dir), /^Error: Cannot create WAL in .*: it already exists$/);
  });
});

Deno.test("round trip: hard states and entries saved over several saves are recovered equal", async () => {
  await withWalDir(async (dir) => {
    const wal = await Wal.create(dir);
    await wal.save({ term: 1, vote: 1, commit: 0 }, []);
    await wal.save(undefined, entries(1, 3, 1));
    await wal.save({ term: 1, vote: 1, commit: 3 }, entries(4, 4, 1));
    await wal.save({ term: 2, vote: 3, commit: 4 }, []);
    const big = { ...entry(5, 2), data: new Uint8Array(10_000).map((_, i) => i * 31) };
    const empty = { ...entry(6, 2), data: new Uint8Array() };
    await wal.save({ term: 2, vote: 3, commit: 5 }, [big, empty]);
    assert.equal(wal.lastIndex, 6);
    await wal.close();

    const expected = {
      hardState: { term: 2, vote: 3, commit: 5 },
      entries: [...entries(1, 4, 1), big, empty],
      firstIndex: 1,
      warnings: [],
    };
    const reopened = await Wal.open(dir);
    assert.deepStrictEqual(reopened.recovery, expected);
    assert.equal(reopened.wal.lastIndex, 6);
    await reopened.wal.close();
    // Opening is read-only when nothing is damaged: a second reopen sees the same.
    const third = await Wal.open(dir);
    assert.deepStrictEqual(third.recovery, expected);
    await third.wal.close();
  });
});

Deno.test("terms, indexes and votes up to 2^53 - 1 survive the round trip", async () => {
  await withWalDir(async (dir) => {
    const max = Number.MAX_SAFE_INTEGER;
    const wal = await Wal.create(dir);
    const hs: HardState = { term: max, vote: max, commit: 1 };
    await wal.save(hs, [{ ...entry(1, 0), term: max }]);
    await wal.close();
    const { wal: again, recovery } = await Wal.open(dir);
    assert.deepStrictEqual(recovery.hardState, hs);
    assert.equal(recovery.entries[0]!.term, max);
    await again.close();
  });
});

Deno.test("overwrite: entries 6..8 in a new term replace 6..10, leaving 1..8", async () => {
  await withWalDir(async (dir) => {
    const wal = await Wal.create(dir);
    await wal.save({ term: 1, vote: 1, commit: 5 }, entries(1, 10, 1));
    await wal.save({ term: 2, vote: 2, commit: 5 }, entries(6, 8, 2));
    assert.equal(wal.lastIndex, 8);
    await wal.close();
    const { wal: again, recovery } = await Wal.open(dir);
    assert.deepStrictEqual(recovery.entries, [...entries(1, 5, 1), ...entries(6, 8, 2)]);
    assert.deepStrictEqual(recovery.hardState, { term: 2, vote: 2, commit: 5 });
    // Appending continues after the overwritten suffix.
    await again.save(undefined, entries(9, 9, 2));
    await again.close();
    const third = await Wal.open(dir);
    assert.deepStrictEqual(third.recovery.entries, [...entries(1, 5, 1), ...entries(6, 9, 2)]);
    await third.wal.close();
  });
});

Deno.test("overwrite from index 1 replaces the whole log", async () => {
  await withWalDir(async (dir) => {
    const wal = await Wal.create(dir);
    await wal.save(undefined, entries(1, 4, 1));
    await wal.save(undefined, entries(1, 2, 3));
    await wal.close();
    const { wal: again, recovery } = await Wal.open(dir);
    assert.deepStrictEqual(recovery.entries, entries(1, 2, 3));
    await again.close();
  });
});

Deno.test("a save that would leave a gap throws and leaves the WAL usable", async () => {
  await withWalDir(async (dir) => {
    const wal = await Wal.create(dir);
    await wal.save(undefined, entries(1, 3, 1));
    await assert.rejects(
      wal.save(undefined, entries(5, 6, 1)),
      /Cannot save to WAL in .*: entry 5 would leave a gap after last index 3/,
    );
    await assert.rejects(wal.save(undefined, [entry(0, 1)]), /entry index 0 is below 1/);
    await assert.rejects(
      wal.save(undefined, [entry(4, 1), entry(6, 1)]),
      /entries are not contiguous: index 6 follows 4/,
    );
    await assert.rejects(
      wal.save({ term: -1, vote: 0, commit: 0 }, []),
      /hard state term must be a non-negative safe integer, got -1/,
    );
    await wal.save(undefined, entries(4, 4, 1));
    await wal.close();
    const { wal: again, recovery } = await Wal.open(dir);
    assert.deepStrictEqual(recovery.entries, entries(1, 4, 1));
    await again.close();
  });
});

Deno.test("batching: one save of 1,000 entries and a hard state is one write and one fsync", async () => {
  await withWalDir(async (dir) => {
    const io = new FaultyIo();
    const wal = await Wal.create(dir, { io });
    io.writes = 0;
    io.syncs = 0;
    await wal.save({ term: 1, vote: 1, commit: 0 }, entries(1, 1000, 1));
    assert.equal(io.syncs, 1);
    assert.equal(io.writes, 1);
    await wal.close();
    const { wal: again, recovery } = await Wal.open(dir);
    assert.deepStrictEqual(recovery.entries, entries(1, 1000, 1));
    await again.close();
  });
});

Deno.test("a save with nothing in it writes nothing and does not fsync", async () => {
  await withWalDir(async (dir) => {
    const io = new FaultyIo();
    const wal = await Wal.create(dir, { io });
    io.syncs = 0;
    await wal.save(undefined, []);
    assert.equal(io.syncs, 0);
    assert.equal(io.writes, 1); // the segment header, at open
    await wal.close();
  });
});

Deno.test("saves issued without waiting run one at a time, in call order", async () => {
  await withWalDir(async (dir) => {
    const wal = await Wal.create(dir);
    const pending = [
      wal.save({ term: 1, vote: 0, commit: 0 }, entries(1, 2, 1)),
      wal.save(undefined, entries(3, 5, 1)),
      wal.save({ term: 2, vote: 0, commit: 0 }, entries(4, 4, 2)),
    ];
    await wal.close(); // waits for the pending saves
    await Promise.all(pending);
    const { wal: again, recovery } = await Wal.open(dir);
    assert.deepStrictEqual(recovery.entries, [...entries(1, 3, 1), entry(4, 2)]);
    assert.deepStrictEqual(recovery.hardState, { term: 2, vote: 0, commit: 0 });
    await again.close();
  });
});

Deno.test("a closed WAL rejects saves; close is idempotent", async () => {
  await withWalDir(async (dir) => {
    const wal = await Wal.create(dir);
    await wal.close();
    await wal.close();
    await assert.rejects(
      wal.save(undefined, [entry(1, 1)]),
      /Cannot save to WAL in .*: it is closed/,
    );
  });
});

Deno.test("a write that fails (ENOSPC) rejects the save; the WAL cuts its partial records off and refuses further saves", async () => {
  await withWalDir(async (dir) => {
    const io = new FaultyIo();
    const log = new RecordingLogger();
    const wal = await Wal.create(dir, { io, logger: log });
    await wal.save({ term: 1, vote: 1, commit: 2 }, entries(1, 3, 1));
    const segment = join(dir, (await segmentNames(dir))[0]!);
    const durable = (await Deno.stat(segment)).size;
    io.failWrite = 30; // 30 bytes of the save reach the file, then ENOSPC
    await assert.rejects(
      wal.save({ term: 1, vote: 1, commit: 5 }, entries(4, 9, 1)),
      (err: Error) => {
        assert.match(
          err.message,
          /^Cannot save to WAL segment 0000000000000000-0000000000000001\.wal at offset \d+: No space left on device \(os error 28\); the WAL refuses further saves until it is reopened$/,
        );
        assert.match(String((err.cause as Error).message), /os error 28/);
        return true;
      },
    );
    assert.equal(log.at("error").length, 1);
    assert.deepStrictEqual(log.at("warn"), ["wal: cut the failed save off"]);
    // The 30 bytes are gone already: nothing for a restart to read back.
    assert.equal((await Deno.stat(segment)).size, durable);
    await assert.rejects(
      wal.save(undefined, entries(4, 4, 1)),
      /an earlier write failed \(No space left on device \(os error 28\)\).*reopen the WAL/,
    );
    await wal.close();

    const { wal: again, recovery } = await Wal.open(dir);
    assert.deepStrictEqual(recovery, {
      hardState: { term: 1, vote: 1, commit: 2 },
      entries: entries(1, 3, 1),
      firstIndex: 1,
      warnings: [],
    });
    await again.save(undefined, entries(4, 5, 1));
    await again.close();
    const third = await Wal.open(dir);
    assert.deepStrictEqual(third.recovery.entries, entries(1, 5, 1));
    assert.deepStrictEqual(third.recovery.warnings, []);
    await third.wal.close();
  });
});

Deno.test("the logger hears about creates and opens at info and saves at debug", async () => {
  await withWalDir(async (dir) => {
    const log = new RecordingLogger();
    const wal = await Wal.create(dir, { logger: log });
    await wal.save(undefined, entries(1, 2, 1));
    await wal.close();
    await (await Wal.open(dir, { logger: log })).wal.close();
    assert.deepStrictEqual(log.at("info"), ["wal: created", "wal: opened"]);
    assert.ok(log.at("debug").includes("wal: saved"));
    assert.deepStrictEqual(log.at("warn"), []);
  });
});

Deno.test("open rejects a segmentBytes that is not a positive integer", async () => {
  await withWalDir(async (dir) => {
    await assert.rejects(
      Wal.open(dir, { segmentBytes: 0 }),
      /segmentBytes must be a positive integer, got 0/,
    );
  });
});

Deno.test("a save with nothing under way hands its write to the disk before save() returns, so the node's work overlaps it; a save made meanwhile starts only after it", async () => {
  await withWalDir(async (dir) => {
    const io = new FaultyIo();
    const wal = await Wal.create(dir, { io });
    const before = io.writes;
    const hs: HardState = { term: 1, vote: 1, commit: 0 };
    const first = wal.save(hs, [entry(1, 1)]);
    assert.equal(
      io.writes,
      before + 1,
      "the first save's write had not started when save() returned",
    );
    const second = wal.save(undefined, [entry(2, 1)]);
    assert.equal(io.writes, before + 1, "the second save started before the first had ended");
    await Promise.all([first, second]);
    assert.equal(io.writes, before + 2);
    await wal.close();
    const { wal: again, recovery } = await Wal.open(dir);
    assert.deepStrictEqual(recovery.entries, [entry(1, 1), entry(2, 1)]);
    assert.deepStrictEqual(recovery.hardState, hs);
    await again.close();
  });
});
