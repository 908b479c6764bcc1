/**
 * A snapshot file on the wire: encoded a slice at a time it is byte for byte the
 * file `encodeSnapshotFile` writes, and read back in chunks of at most 1 MiB that
 * join up to it, with no chunk across the file's parts lost or doubled.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Snapshot } from "../../src/raft/types.ts";
import { encodeSnapshotFile } from "../../src/snapshot/file.ts";
import {
  ChunkedBytes,
  encodeSnapshotChunks,
  MAX_SNAPSHOT_CHUNK_BYTES,
} from "../../src/server/snapshot_chunks.ts";
import { confStateOf } from "../../src/raft/types.ts";

function join(chunks: Iterable<Uint8Array>): Uint8Array {
  const all = [...chunks];
  const out = new Uint8Array(all.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of all) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

Deno.test("encoded in steps and read in chunks, a snapshot file is the file encodeSnapshotFile writes", async () => {
  for (const size of [0, 1, MAX_SNAPSHOT_CHUNK_BYTES - 40, 2_500_000]) {
    const data = new Uint8Array(size).map((_, i) => (i * 17 + 3) & 0xff);
    const snapshot: Snapshot = { meta: { index: 9, term: 2, conf: confStateOf([1, 2, 3]) }, data };
    const file = await encodeSnapshotChunks(snapshot);
    const chunks = [...file.chunks()];
    assert.ok(chunks.every((c) => c.length > 0 && c.length <= MAX_SNAPSHOT_CHUNK_BYTES));
    assert.deepEqual(join(chunks), encodeSnapshotFile(snapshot), `state of ${size} bytes`);
  }
});

Deno.test("ChunkedBytes reads any range of its parts as one byte string", () => {
  const parts = [
    new Uint8Array([1, 2, 3]),
    new Uint8Array([]),
    new Uint8Array([4, 5]),
    new Uint8Array([6]),
  ];
  const whole = [1, 2, 3, 4, 5, 6];
  const b = new ChunkedBytes(parts);
  assert.equal(b.length, 6);
  for (let start = 0; start <= 6; start++) {
    for (let end = start; end <= 6; end++) {
      assert.deepEqual([...b.slice(start, end)], whole.slice(start, end), `[${start}, ${end})`);
    }
  }
  // Within one part: a view, no copy.
  assert.equal(b.slice(3, 5).buffer, parts[2]!.buffer);
  assert.throws(() => b.slice(2, 7), /range \[2, 7\) outside \[0, 6\)/);
  assert.deepEqual([...b.chunks(4)].map((c) => [...c]), [[1, 2, 3, 4], [5, 6]]);
});
