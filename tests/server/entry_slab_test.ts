/**
 * The leader's small proposals are packed side by side into shared slabs: each
 * comes back as a view holding a copy of its bytes, neighbours never overlap, a
 * proposal that does not fit the rest of a slab starts a new one, and empty or
 * large proposals keep their own buffer.
 */
import assert from "node:assert/strict";
import { EntrySlab, PACKED_MAX_BYTES, SLAB_BYTES } from "../../src/server/entry_slab.ts";

function bytes(n: number, fill: number): Uint8Array {
  return new Uint8Array(n).fill(fill);
}

Deno.test("small proposals share one slab, each a view of a copy of its own bytes", () => {
  const slab = new EntrySlab();
  const a = bytes(300, 1);
  const b = bytes(200, 2);
  const pa = slab.pack(a);
  const pb = slab.pack(b);
  assert.deepEqual(pa, bytes(300, 1));
  assert.deepEqual(pb, bytes(200, 2));
  assert.equal(pa.buffer, pb.buffer, "packed side by side in the same slab");
  assert.equal(pa.buffer.byteLength, SLAB_BYTES);
  assert.equal(pb.byteOffset, pa.byteOffset + pa.byteLength, "no gap, no overlap");
  // A copy: the caller's buffer may change or go; the entry's bytes do not.
  a.fill(9);
  b.fill(9);
  assert.deepEqual(pa, bytes(300, 1));
  assert.deepEqual(pb, bytes(200, 2));
});

Deno.test("a proposal that does not fit the rest of a slab starts a new one; earlier ones stay", () => {
  const slab = new EntrySlab(1024, 512);
  const first = slab.pack(bytes(500, 1));
  const second = slab.pack(bytes(500, 2));
  const third = slab.pack(bytes(100, 3)); // 1,000 used: 100 more do not fit
  assert.equal(first.buffer, second.buffer);
  assert.notEqual(third.buffer, first.buffer);
  assert.equal(third.byteOffset, 0);
  assert.deepEqual(first, bytes(500, 1));
  assert.deepEqual(second, bytes(500, 2));
  assert.deepEqual(third, bytes(100, 3));
});

Deno.test("empty and large proposals keep the buffer they came in", () => {
  const slab = new EntrySlab();
  const empty = new Uint8Array(0);
  const large = bytes(PACKED_MAX_BYTES + 1, 7);
  assert.equal(slab.pack(empty), empty);
  assert.equal(slab.pack(large), large);
  const exact = bytes(PACKED_MAX_BYTES, 8);
  assert.notEqual(slab.pack(exact), exact, "the packed maximum itself is packed");
});

Deno.test("a slab too small for the packed maximum is refused", () => {
  assert.throws(() => new EntrySlab(1024, 2048), /do not fit slabs of 1024 bytes/);
  assert.throws(() => new EntrySlab(1024, 0), RangeError);
});
