/** The snapshot file format: round trips, and every kind of damage refused by name. */
import assert from "node:assert/strict";
import {
  checkSnapshotFileInSteps,
  decodeSnapshotFile,
  encodeSnapshotFile,
  encodeSnapshotFileInSteps,
  SnapshotCorruptionError,
} from "../../src/snapshot/file.ts";
import type { Snapshot } from "../../src/raft/types.ts";
import { confStateOf } from "../../src/raft/types.ts";

const snap: Snapshot = {
  meta: { index: 120, term: 3, conf: confStateOf([1, 2, 3]) },
  data: new TextEncoder().encode("the state machine's bytes"),
};

function refuses(bytes: Uint8Array, reason: RegExp): void {
  assert.throws(
    () => decodeSnapshotFile(bytes, "snap-test"),
    (e: unknown) => {
      assert.ok(e instanceof SnapshotCorruptionError, String(e));
      assert.match(e.message, /^Cannot read snapshot snap-test: /);
      assert.match(e.message, reason);
      return true;
    },
  );
}

Deno.test("snapshot file: what is written is read back, state and membership alike", () => {
  const back = decodeSnapshotFile(encodeSnapshotFile(snap), "x");
  assert.deepEqual(back.meta, snap.meta);
  assert.deepEqual(back.data, snap.data);
});

Deno.test("snapshot file: an empty state round-trips", () => {
  const empty: Snapshot = {
    meta: { index: 1, term: 1, conf: confStateOf([1]) },
    data: new Uint8Array(),
  };
  assert.deepEqual(decodeSnapshotFile(encodeSnapshotFile(empty), "x"), empty);
});

Deno.test("snapshot file: every truncation is refused", () => {
  const bytes = encodeSnapshotFile(snap);
  for (let n = 0; n < bytes.length; n++) {
    assert.throws(() => decodeSnapshotFile(bytes.subarray(0, n), "t"), SnapshotCorruptionError);
  }
});

Deno.test("snapshot file: every flipped bit is refused", () => {
  const bytes = encodeSnapshotFile(snap);
  for (let i = 0; i < bytes.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const b = bytes.slice();
      b[i]! ^= 1 << bit;
      assert.throws(
        () => decodeSnapshotFile(b, "t"),
        SnapshotCorruptionError,
        `byte ${i} bit ${bit}`,
      );
    }
  }
});

Deno.test("snapshot file: a file that is not a snapshot says so", () => {
  refuses(new TextEncoder().encode("just some text, long enough"), /does not start with RKVSNAP1/);
  refuses(new Uint8Array(3), /shorter than any snapshot file/);
});

Deno.test("snapshot file: damage in the middle is named as a checksum mismatch", () => {
  const b = encodeSnapshotFile(snap);
  b[b.length - 10]! ^= 0xff;
  refuses(b, /checksum mismatch/);
});

Deno.test("snapshot file: encoded in steps, the parts are the same bytes, and it yields", () => {
  const big: Snapshot = { meta: snap.meta, data: new Uint8Array(10_000).map((_, i) => i % 251) };
  const steps = encodeSnapshotFileInSteps(big, 1000);
  let yields = 0;
  let next = steps.next();
  while (!next.done) {
    yields++;
    next = steps.next();
  }
  assert.equal(yields, 9);
  const parts = next.value;
  const joined = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    joined.set(p, at);
    at += p.length;
  }
  assert.deepEqual(joined, encodeSnapshotFile(big));
  assert.deepEqual(decodeSnapshotFile(joined, "x"), big);
});

Deno.test("snapshot file: checked in steps, it yields, finds the state in place, and catches damage in a later slice", () => {
  const big: Snapshot = { meta: snap.meta, data: new Uint8Array(10_000).map((_, i) => i % 251) };
  const file = encodeSnapshotFile(big);
  const run = (bytes: Uint8Array) => {
    const steps = checkSnapshotFileInSteps(bytes, "snap-test", 1000);
    let yields = 0;
    let next = steps.next();
    while (!next.done) {
      yields++;
      next = steps.next();
    }
    return { yields, checked: next.value };
  };
  const { yields, checked } = run(file);
  assert.ok(yields >= 9, `${yields} yields`);
  assert.deepEqual(checked.meta, big.meta);
  assert.deepEqual(file.subarray(checked.dataStart, checked.dataEnd), big.data);
  const damaged = file.slice();
  damaged[damaged.length - 100]! ^= 0x10; // in the last slice of the state
  assert.throws(
    () => run(damaged),
    (e: unknown) => e instanceof SnapshotCorruptionError && /checksum mismatch/.test(e.message),
  );
});
