/**
 * The in-memory storage on its own: snapshots, compaction, and the clear errors
 * for what a compacted log no longer holds (§7).
 */
import assert from "node:assert/strict";
import { CompactedError, SnapshotOutOfDateError } from "../../src/raft/errors.ts";
import { MemoryStorage } from "../../src/raft/storage.ts";
import type { Snapshot } from "../../src/raft/types.ts";
import { enc, entriesWithTerms } from "./_scenario.ts";
import { confStateOf } from "../../src/raft/types.ts";

/** Entries of terms 1,1,2,2,3,3,3,3 at indexes 1..8. */
function storage(): MemoryStorage {
  const s = new MemoryStorage([3, 1, 2]);
  s.append(entriesWithTerms([1, 1, 2, 2, 3, 3, 3, 3]));
  return s;
}

function isCompacted(firstIndex: number): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof CompactedError, `expected a CompactedError, got ${e}`);
    assert.equal(e.firstIndex, firstIndex);
    return true;
  };
}

Deno.test("storage: with no snapshot, the log starts at 1 and the snapshot is empty", () => {
  const s = storage();
  assert.equal(s.firstIndex(), 1);
  assert.equal(s.term(0), 0, "the sentinel");
  assert.deepEqual(s.snapshot().meta, { index: 0, term: 0, conf: confStateOf([1, 2, 3]) });
  assert.deepEqual(s.initialState().conf, confStateOf([1, 2, 3]));
});

Deno.test("storage: compacting keeps the term at the compaction point, and reading below it is a CompactedError", () => {
  const s = storage();
  s.createSnapshot(5, confStateOf([1, 2, 3]), enc.encode("state@5"));
  s.compact(4);
  assert.equal(s.firstIndex(), 5);
  assert.equal(s.lastIndex(), 8);
  assert.equal(s.term(4), 2, "the compaction point's term is remembered");
  assert.equal(s.term(5), 3);
  assert.throws(() => s.term(3), isCompacted(5));
  assert.throws(() => s.term(0), isCompacted(5), "not even the sentinel: never a made-up 0");
  assert.throws(() => s.term(3), /Cannot read term of index 3: it is compacted/);
  assert.throws(() => s.entries(4, 6), isCompacted(5));
  assert.deepEqual(s.entries(5, 9).map((e) => e.index), [5, 6, 7, 8]);
  assert.throws(() => s.term(9), /Cannot read term of index 9: the log ends at index 8/);
  assert.throws(() => s.entries(5, 10), /Cannot read entries \[5, 10\)/);
});

Deno.test("storage: compaction may not pass the snapshot, nor go back", () => {
  const s = storage();
  assert.throws(
    () => s.compact(3),
    /Cannot compact to index 3: the latest snapshot covers only up to index 0/,
  );
  s.createSnapshot(6, confStateOf([1, 2, 3]), enc.encode("state@6"));
  s.compact(6);
  assert.equal(s.firstIndex(), 7);
  s.compact(6); // again: nothing to do
  assert.throws(() => s.compact(5), isCompacted(7));
  assert.throws(() => s.compact(7), /covers only up to index 6/);
});

Deno.test("storage: a snapshot is created only at or past the one held, within the log", () => {
  const s = storage();
  const snap = s.createSnapshot(5, confStateOf([2, 1, 3]), enc.encode("state@5"));
  assert.deepEqual(snap.meta, { index: 5, term: 3, conf: confStateOf([1, 2, 3]) });
  assert.equal(s.snapshot(), snap);
  assert.equal(s.firstIndex(), 1, "creating a snapshot compacts nothing by itself");
  assert.throws(
    () => s.createSnapshot(4, confStateOf([1, 2, 3]), new Uint8Array()),
    (e: unknown) => e instanceof SnapshotOutOfDateError && e.index === 4 && e.current === 5,
  );
  assert.throws(
    () => s.createSnapshot(9, confStateOf([1, 2, 3]), new Uint8Array()),
    /Cannot create a snapshot at index 9: the log ends at index 8/,
  );
  s.createSnapshot(5, confStateOf([1, 2, 3]), enc.encode("state@5")); // the same index: allowed
});

Deno.test("storage: applying a leader's snapshot replaces the log; an older one is refused", () => {
  const s = storage();
  s.setHardState({ term: 3, vote: 1, commit: 4 });
  const snap: Snapshot = {
    meta: { index: 12, term: 4, conf: confStateOf([1, 2, 3, 4]) },
    data: enc.encode("state@12"),
  };
  s.applySnapshot(snap);
  assert.equal(s.firstIndex(), 13);
  assert.equal(s.lastIndex(), 12, "the log is the snapshot");
  assert.equal(s.term(12), 4);
  assert.throws(() => s.term(8), isCompacted(13));
  assert.deepEqual(
    s.initialState().conf,
    confStateOf([1, 2, 3, 4]),
    "membership from the snapshot",
  );
  assert.deepEqual(s.hardState(), { term: 3, vote: 1, commit: 4 }, "the hard state is the Ready's");
  assert.throws(
    () => s.applySnapshot(snap),
    /Cannot apply a snapshot at index 12: storage already holds a snapshot at index 12/,
  );
  // Entries go on after it.
  s.append([{ term: 4, index: 13, type: "normal", data: new Uint8Array() }]);
  assert.equal(s.lastIndex(), 13);
});

Deno.test("storage: appends may not rewrite the compacted prefix or what the snapshot covers", () => {
  const s = storage();
  s.createSnapshot(6, confStateOf([1, 2, 3]), enc.encode("state@6"));
  s.compact(3);
  assert.throws(
    () => s.append([{ term: 4, index: 3, type: "normal", data: new Uint8Array() }]),
    isCompacted(4),
  );
  assert.throws(
    () => s.append([{ term: 4, index: 6, type: "normal", data: new Uint8Array() }]),
    /Cannot append at index 6: it would rewrite entries the snapshot at index 6 covers/,
  );
  s.append([{ term: 4, index: 7, type: "normal", data: new Uint8Array() }]);
  assert.equal(s.lastIndex(), 7, "a conflicting suffix after the snapshot is replaced");
  assert.equal(s.term(7), 4);
});

Deno.test("storage: a clone carries the snapshot and the compaction point", () => {
  const s = storage();
  s.createSnapshot(5, confStateOf([1, 2, 3]), enc.encode("state@5"));
  s.compact(5);
  const c = s.clone();
  assert.equal(c.snapshot(), s.snapshot());
  assert.equal(c.firstIndex(), 6);
  assert.equal(c.term(5), 3);
  assert.deepEqual(c.entries(6, 9), s.entries(6, 9));
  s.append([{ term: 9, index: 9, type: "normal", data: new Uint8Array() }]);
  assert.equal(c.lastIndex(), 8, "independent of the original");
});
