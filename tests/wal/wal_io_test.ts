import assert from "node:assert/strict";
import { join } from "node:path";
import { DENO_WAL_IO, INLINE_WRITE_BYTES } from "../../src/wal/wal_io.ts";
import { withTempDir } from "./_helpers.ts";

/** `n` bytes counting up from `seed` (mod 251), so that misplaced bytes show. */
function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (seed + i) % 251;
  return b;
}

Deno.test("saves small enough to be written inline and larger ones written on the thread pool land whole, in order, after what the segment held", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "segment");
    await Deno.writeFile(path, pattern(10, 1));
    const file = await Deno.open(path, { append: true });
    const saves = [
      pattern(300, 2), // one put's save: inline
      pattern(INLINE_WRITE_BYTES, 3), // the largest inline write
      pattern(INLINE_WRITE_BYTES + 1, 4), // the smallest one left to the thread pool
      pattern(3 * 1024 * 1024, 5), // a batch under load
      pattern(1, 6),
    ];
    try {
      for (const s of saves) await DENO_WAL_IO.write(file, s, path);
    } finally {
      file.close();
    }
    const expected = [pattern(10, 1), ...saves];
    const want = new Uint8Array(expected.reduce((n, b) => n + b.length, 0));
    let at = 0;
    for (const b of expected) {
      want.set(b, at);
      at += b.length;
    }
    const got = await Deno.readFile(path);
    assert.equal(got.length, want.length);
    assert.ok(got.every((v, i) => v === want[i]), "the segment holds every save, in order");
  });
});

Deno.test("a write that fails inline rejects like one on the thread pool (the WAL then cuts the save off and stops), it does not throw at the caller", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "segment");
    const file = await Deno.open(path, { create: true, write: true });
    file.close();
    for (const size of [300, INLINE_WRITE_BYTES + 1]) {
      let promise: Promise<void> | undefined;
      assert.doesNotThrow(() => {
        promise = DENO_WAL_IO.write(file, pattern(size, 7), path);
      }, `a ${size}-byte write to a closed file threw at the caller`);
      await assert.rejects(
        promise!,
        Deno.errors.BadResource,
        `a ${size}-byte write did not reject`,
      );
    }
  });
});
