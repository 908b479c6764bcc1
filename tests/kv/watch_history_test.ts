/**
 * The watch hub's compact history: what goes in comes out the same (values of every
 * size, across segments and buffer growth), read from any index in log order, and
 * the memory of changes that left is given back a segment at a time, so a history
 * bounded in changes is bounded in memory.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { KvChange } from "../../src/kv/store.ts";
import { SEGMENT_EVENTS, SEGMENT_MAX_BYTES, WatchHistory } from "../../src/kv/watch_history.ts";

function change(index: number, key: string, valueBytes: number, fill = index): KvChange {
  return {
    kind: valueBytes < 0 ? "delete" : "put",
    key,
    value: new Uint8Array(Math.max(valueBytes, 0)).fill(fill & 0xff),
    index,
    createIndex: valueBytes < 0 ? 0 : Math.max(1, index - 1),
    lease: index % 3,
  };
}

const all = () => true;
const size = () => 1;

Deno.test("changes come back as they went in, across segments and growing buffers", () => {
  const h = new WatchHistory();
  // Big and empty values and deletes first (a value past a segment's size gets one of
  // its own), then enough small ones to fill segments by count.
  const sizes = [0, 1, 256, 70_000, -1, SEGMENT_MAX_BYTES, 3, SEGMENT_MAX_BYTES + 5, 256, 100];
  const put: KvChange[] = [];
  for (let i = 0; i < 2 * SEGMENT_EVENTS + 50; i++) {
    const c = change(i + 1, `k${i % 7}`, i < 40 ? sizes[i % sizes.length]! : 200 + (i % 100));
    put.push(c);
    h.push(c);
  }
  assert.equal(h.length, put.length);
  const got = h.read(1, Infinity, all, size);
  assert.equal(got.complete, true);
  assert.equal(got.lastIndex, put.length);
  assert.equal(got.events.length, put.length);
  for (let i = 0; i < put.length; i++) {
    const [a, b] = [got.events[i]!, put[i]!];
    assert.deepEqual(
      [a.kind, a.key, a.index, a.createIndex, a.lease],
      [b.kind, b.key, b.index, b.createIndex, b.lease],
      `change ${i}`,
    );
    assert.ok(
      a.value.length === b.value.length && a.value.every((x, j) => x === b.value[j]),
      `value of change ${i}`,
    );
  }
});

Deno.test("a read starts at the first change of an index, filters keys, keeps indexes whole", () => {
  const h = new WatchHistory();
  // Index 5 holds three changes (a transaction), then one change an index up to 10.
  for (let i = 1; i <= 4; i++) h.push(change(i, `a${i}`, 10));
  for (const k of ["a5", "b5", "c5"]) h.push(change(5, k, 10));
  for (let i = 6; i <= 10; i++) h.push(change(i, i % 2 === 0 ? `a${i}` : `b${i}`, 10));
  const from5 = h.read(5, Infinity, all, size);
  assert.deepEqual(from5.events.map((e) => e.key), [
    "a5",
    "b5",
    "c5",
    "a6",
    "b7",
    "a8",
    "b9",
    "a10",
  ]);
  const onlyA = h.read(5, Infinity, (k) => k.startsWith("a"), size);
  assert.deepEqual(onlyA.events.map((e) => e.key), ["a5", "a6", "a8", "a10"]);
  assert.equal(onlyA.lastIndex, 10, "changes passed over are read through");
  const small = h.read(4, 2, all, size);
  assert.deepEqual(small.events.map((e) => e.key), ["a4", "a5", "b5", "c5"], "index 5 whole");
  assert.deepEqual([small.lastIndex, small.complete], [5, false]);
  assert.deepEqual(h.read(11, Infinity, all, size), { events: [], lastIndex: 10, complete: true });
});

Deno.test("changes leave oldest first; a segment's memory goes when all its changes have", () => {
  const h = new WatchHistory();
  const bound = 2 * SEGMENT_EVENTS + 100;
  for (let i = 1; i <= 20 * SEGMENT_EVENTS; i++) {
    h.push(change(i, "k", 256));
    while (h.length > bound) h.dropOldest();
    assert.ok(h.segments <= 4, `${h.segments} segments hold ${h.length} changes at ${i}`);
  }
  const oldest = 20 * SEGMENT_EVENTS - bound + 1;
  const read = h.read(0, Infinity, all, size);
  assert.equal(read.events[0]!.index, oldest);
  assert.equal(read.events.length, bound);
  assert.equal(h.dropOldest()!.index, oldest);
  while (h.dropOldest() !== undefined);
  assert.deepEqual([h.length, h.segments], [0, 0], "an emptied history holds nothing");
  h.push(change(20 * SEGMENT_EVENTS + 1, "k", 1));
  assert.equal(h.read(0, Infinity, all, size).events[0]!.index, 20 * SEGMENT_EVENTS + 1);
});

Deno.test("a change older than the last one held is refused (the history is in log order)", () => {
  const h = new WatchHistory();
  h.push(change(7, "k", 1));
  assert.throws(() => h.push(change(6, "k", 1)), /index 6 .* already holds index 7/);
});
