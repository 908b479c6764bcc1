/**
 * A WAL whose last save was cut short (what a crash in the middle of a write leaves)
 * is repaired on start: the node cuts the torn save off with a warning naming the
 * segment file and offset, starts, and rejoins the cluster with its data intact.
 *
 * @module
 */

import assert from "node:assert/strict";
import { basename } from "node:path";
import {
  checkReads,
  type Cluster,
  lastWalSegment,
  runNodeToExit,
  utf8,
  waitApplied,
  WAL_ENTRY,
  type WalFrame,
  walFrames,
  withCluster,
} from "./_harness.ts";

/**
 * Writes through the leader, stops a follower cleanly, lets `cut` choose the new length
 * of its last segment, writes more while it is down, restarts it, and checks that it
 * warns about the torn tail at the right offset and catches up with every write.
 */
async function tornTailScenario(
  c: Cluster,
  cut: (
    frames: WalFrame[],
    size: number,
  ) => { length: number; tornFrame: WalFrame; appendFrom?: WalFrame },
): Promise<void> {
  const lead = await c.leader();
  const victim = c.ids.find((id) => id !== lead)!;
  const expected = new Map<string, string>();
  const put = async (via: number, key: string): Promise<bigint> => {
    const value = `value of ${key}`;
    const res = await c.kv(via).put({ key, value: utf8(value) }, { timeoutMs: 10_000 });
    expected.set(key, value);
    return res.index;
  };

  let last = 0n;
  for (let i = 0; i < 20; i++) last = await put(lead, `before-${i}`);
  await waitApplied(c, victim, last);
  assert.equal((await c.stop(victim)).code, 0);

  const segment = await lastWalSegment(c.walDir(victim));
  const bytes = await Deno.readFile(segment);
  const frames = walFrames(bytes);
  assert.equal(
    frames.reduce((n, f) => n + f.size, 0),
    bytes.length,
    "the segment does not end on a frame boundary",
  );
  const { length, tornFrame, appendFrom } = cut(frames, bytes.length);
  assert.ok(length > tornFrame.offset && length < tornFrame.offset + tornFrame.size);
  if (appendFrom === undefined) {
    await Deno.truncate(segment, length);
  } else {
    const partial = bytes.subarray(appendFrom.offset, appendFrom.offset + length - bytes.length);
    await Deno.writeFile(segment, partial, { append: true });
  }

  // Meanwhile the others go on.
  for (let i = 0; i < 10; i++) last = await put(lead, `during-${i}`);

  await c.restart(victim);
  const warning = c.log(victim).lines.find((l) => /\bWARN\b.*torn tail/.test(l));
  assert.ok(warning !== undefined, "no warning about the torn tail");
  assert.ok(warning.includes(basename(segment)), `the warning does not name the file: ${warning}`);
  assert.match(warning, new RegExp(`offset ${tornFrame.offset}\\b`), warning);

  const s = await waitApplied(c, victim, last);
  assert.ok(s.lastLogIndex >= last, `last log index ${s.lastLogIndex} < ${last}`);
  assert.deepEqual(await checkReads(c, victim, expected), []);
  // It takes part again: a write through it commits, and it applies it.
  last = await put(victim, "after");
  await waitApplied(c, victim, last);
  assert.deepEqual(await checkReads(c, victim, expected), []);
}

/** The WAL record type that begins every save (src/wal/record.ts). */
const WAL_SAVE = 4;

/*
 * A save is acknowledged only after its fsync, so a torn write is always a save
 * after every acknowledged one. (Cutting bytes off a save the node had fsynced and
 * acknowledged is a disk losing acknowledged writes: the last test.)
 */
Deno.test("a WAL with a torn tail recovers: the node warns, starts, and rejoins with data intact", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    // What a crash during a save of several records leaves: all of it but its last
    // 5 bytes. Here: a copy of the last save, appended, without its last 5 bytes.
    await tornTailScenario(c, (frames, size) => {
      const save = frames.findLast((f) => f.type === WAL_SAVE)!;
      const torn: WalFrame = { ...save, offset: size, size: size - save.offset };
      return { length: size + torn.size - 5, tornFrame: torn, appendFrom: save };
    });
  });
});

Deno.test("a WAL ending in a half-written record recovers: the partial record is cut off", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    // What a crash mid-save leaves: the first bytes of a record that never finished,
    // after everything the node had acknowledged. Here: the first 20 bytes of a copy
    // of the last record, appended.
    await tornTailScenario(c, (frames, size) => {
      const last = frames.at(-1)!;
      const torn: WalFrame = { ...last, offset: size };
      return { length: size + 20, tornFrame: torn, appendFrom: last };
    });
  });
});

/*
 * Cutting into an entry the follower had fsynced and acknowledged is not a torn write
 * (a save is acknowledged only after its fsync): it stands for a disk that lost
 * acknowledged writes. Raft's safety rests on acknowledged entries staying put, so the
 * node must not run on as if nothing happened: when the leader tells it that entries
 * it no longer has are committed, it stops with a message saying so (as etcd does).
 */
Deno.test("a node whose disk lost acknowledged entries stops with a clear error instead of running on", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const lead = await c.leader();
    const victim = c.ids.find((id) => id !== lead)!;
    let last = 0n;
    for (let i = 0; i < 20; i++) {
      last = (await c.kv(lead).put({ key: `k${i}`, value: utf8(`v${i}`) }, { timeoutMs: 10_000 }))
        .index;
    }
    await waitApplied(c, victim, last);
    // Killed: a clean stop would snapshot the applied state, which then holds the
    // entry cut off below (a snapshot newer than the WAL starts the log after it).
    await c.kill(victim);
    const segment = await lastWalSegment(c.walDir(victim));
    const frames = walFrames(await Deno.readFile(segment));
    const lastEntry = frames.filter((f) => f.type === WAL_ENTRY).at(-1)!;
    await Deno.truncate(segment, lastEntry.offset + 16 + 4);

    const res = await runNodeToExit(c.args(victim));
    assert.notEqual(res.code, 0, `the node ran on with a log missing acknowledged entries`);
    assert.match(res.output, /lost entries it had acknowledged/, res.output);
    assert.doesNotMatch(res.output, /^\s+at /m, `stack trace in output:\n${res.output}`);
  });
});
