/**
 * The queue of messages to one peer is bounded in count and in bytes: past
 * either bound the oldest messages are dropped (Raft resends what is lost), the
 * newest is always kept, and batches are taken oldest first within a byte bound.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Message, message } from "../../src/raft/types.ts";
import { encodedSize, MAX_QUEUED_BYTES, PeerQueue } from "../../src/server/peer_queue.ts";

const MIB = 1024 * 1024;
/** One MiB of entry data, shared by every message here (the queue counts, it does not copy). */
const DATA = new Uint8Array(MIB);

function append(index: number, entries = 1): Message {
  return message({
    type: "app",
    from: 1,
    to: 2,
    term: 1,
    index,
    entries: Array.from(
      { length: entries },
      (_, k) => ({ term: 1, index: index + k + 1, type: "normal" as const, data: DATA }),
    ),
  });
}

Deno.test("peer queue: past its byte bound the oldest messages are dropped, however few there are", () => {
  const q = new PeerQueue(4096, 10 * MIB);
  let dropped = 0;
  for (let i = 0; i < 25; i++) dropped += q.push(append(i));
  // Each message is 1 MiB and some framing: 9 fit under 10 MiB.
  assert.equal(q.length, 9);
  assert.equal(dropped, 16);
  assert.ok(q.bytes <= 10 * MIB, `${q.bytes} bytes held`);
  assert.deepEqual(q.take(Infinity).map((m) => m.index), [16, 17, 18, 19, 20, 21, 22, 23, 24]);
  assert.equal(q.length, 0);
  assert.equal(q.bytes, 0);
});

Deno.test("peer queue: past its count bound the oldest messages are dropped", () => {
  const q = new PeerQueue(3, MAX_QUEUED_BYTES);
  const heartbeat = (i: number) => message({ type: "heartbeat", from: 1, to: 2, term: i });
  assert.deepEqual([1, 2, 3, 4, 5].map((i) => q.push(heartbeat(i))), [0, 0, 0, 1, 1]);
  assert.deepEqual(q.take(Infinity).map((m) => m.term), [3, 4, 5]);
});

Deno.test("peer queue: a message larger than the byte bound is kept alone, not dropped", () => {
  const q = new PeerQueue(4096, 2 * MIB);
  q.push(append(0));
  assert.equal(q.push(append(1, 3)), 1, "the older message makes way");
  assert.equal(q.length, 1);
  assert.equal(q.bytes, encodedSize(append(1, 3)));
});

Deno.test("peer queue: a batch is the oldest messages within the batch bound, at least one", () => {
  const q = new PeerQueue();
  for (let i = 0; i < 5; i++) q.push(append(i));
  assert.deepEqual(q.take(2 * MIB + 1024).map((m) => m.index), [0, 1]);
  assert.deepEqual(q.take(10).map((m) => m.index), [2], "one, even past the bound");
  assert.equal(q.length, 2);
  assert.equal(q.bytes, 2 * encodedSize(append(0)));
});

Deno.test("peer queue: bounds under 1 are refused", () => {
  assert.throws(() => new PeerQueue(0, MIB), /bounds must be at least 1/);
  assert.throws(() => new PeerQueue(1, 0), /bounds must be at least 1/);
});
