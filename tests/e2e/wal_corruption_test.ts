/**
 * A WAL damaged in the middle (a flipped byte with intact records after it) is not
 * something a crash explains, so the node refuses to start rather than guess: it
 * exits non-zero, and stderr names the segment file and the offset of the damage.
 *
 * @module
 */

import assert from "node:assert/strict";
import { basename } from "node:path";
import {
  lastWalSegment,
  runNodeToExit,
  utf8,
  WAL_ENTRY,
  walFrames,
  withCluster,
} from "./_harness.ts";

Deno.test("a corrupted WAL refuses to start with a clear message naming the file and offset", async () => {
  await withCluster({ nodes: 1 }, async (c) => {
    await c.leader();
    for (let i = 0; i < 20; i++) {
      await c.kv(1).put({ key: `k${i}`, value: utf8(`value ${i}`) }, { timeoutMs: 10_000 });
    }
    assert.equal((await c.stop(1)).code, 0);

    // Flip one payload byte of an entry record in the middle of the segment.
    const segment = await lastWalSegment(c.walDir(1));
    const bytes = await Deno.readFile(segment);
    const frames = walFrames(bytes);
    const entries = frames.filter((f) => f.type === WAL_ENTRY);
    assert.ok(entries.length >= 10, `only ${entries.length} entry records`);
    const victim = entries[Math.floor(entries.length / 2)]!;
    assert.ok(frames.at(-1)!.offset > victim.offset, "no record after the damaged one");
    bytes[victim.offset + 16 + Math.floor(victim.payloadBytes / 2)]! ^= 0xff;
    await Deno.writeFile(segment, bytes);

    const res = await runNodeToExit(c.args(1));
    assert.notEqual(res.code, 0, `the node started on a corrupted WAL:\n${res.output}`);
    assert.match(res.output, /^error: /m, res.output);
    assert.ok(
      res.output.includes(basename(segment)),
      `stderr does not name the file:\n${res.output}`,
    );
    assert.match(
      res.output,
      new RegExp(`offset ${victim.offset}\\b`),
      `stderr does not name offset ${victim.offset}:\n${res.output}`,
    );
    assert.doesNotMatch(res.output, /^\s+at /m, `stack trace in output:\n${res.output}`);
    assert.doesNotMatch(res.output, /listening/, "the node started listening");

    // Nothing was repaired behind our back: the file is as we left it.
    assert.deepEqual(await Deno.readFile(segment), bytes);
  });
});
