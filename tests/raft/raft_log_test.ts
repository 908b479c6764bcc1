/**
 * The log, on its own: the consistency check, conflict truncation, fast back-up
 * hints and the commit rules, without any network.
 */
import assert from "node:assert/strict";
import { RaftLog } from "../../src/raft/raft_log.ts";
import { CompactedError, type Entry, MemoryStorage } from "../../src/raft/mod.ts";
import { confStateOf } from "../../src/raft/types.ts";

/** Entries with the given terms at indexes 1, 2, ... */
function ents(terms: number[], from = 1): Entry[] {
  return terms.map((term, i) => ({
    term,
    index: from + i,
    type: "normal" as const,
    data: new Uint8Array(),
  }));
}

function logWith(durable: number[], committed = 0): RaftLog {
  const s = new MemoryStorage([1]);
  s.append(ents(durable));
  return new RaftLog(s, committed, 0);
}

function terms(log: RaftLog): number[] {
  return log.slice(1, log.lastIndex() + 1).map((e) => e.term);
}

Deno.test("an append that matches at prevIndex/prevTerm is accepted (§5.3)", () => {
  const log = logWith([1, 1, 2]);
  assert.equal(log.maybeAppend(3, 2, 0, ents([2, 3], 4)), 5);
  assert.deepEqual(terms(log), [1, 1, 2, 2, 3]);
});

Deno.test("an append that does not match at prevIndex/prevTerm is refused (§5.3)", () => {
  const log = logWith([1, 1, 2]);
  assert.equal(log.maybeAppend(3, 3, 0, ents([3], 4)), undefined);
  assert.equal(log.maybeAppend(4, 2, 0, ents([3], 5)), undefined, "gap after the last entry");
  assert.deepEqual(terms(log), [1, 1, 2]);
});

Deno.test("a conflicting suffix is truncated and replaced, matching entries are kept", () => {
  const log = logWith([1, 1, 2, 2, 2]);
  assert.equal(log.maybeAppend(2, 1, 0, ents([2, 3], 3)), 4);
  assert.deepEqual(terms(log), [1, 1, 2, 3], "index 4 replaced, index 5 dropped with it");
  assert.equal(log.stableIndex(), 3, "index 4 onward is no longer durable");
});

Deno.test("a stale duplicate append does not truncate entries after it", () => {
  const log = logWith([1, 1, 2, 2, 2]);
  assert.equal(log.maybeAppend(1, 1, 0, ents([1, 2], 2)), 3);
  assert.deepEqual(terms(log), [1, 1, 2, 2, 2]);
});

Deno.test("a follower commits no further than the last entry the append vouched for", () => {
  const log = logWith([1, 1, 1, 1, 1]);
  // Entries 4 and 5 may be stale leftovers this leader never sent: commit stops at 3.
  log.maybeAppend(2, 1, 5, ents([1], 3));
  assert.equal(log.committed, 3);
});

Deno.test("overwriting a committed entry is an invariant violation", () => {
  const log = logWith([1, 1, 1], 2);
  assert.throws(() => log.maybeAppend(1, 1, 2, ents([2], 2)), /conflicts with committed entry/);
});

Deno.test("findConflictByTerm skips a whole term at once", () => {
  const log = logWith([1, 1, 2, 2, 2, 4, 4]);
  assert.deepEqual(log.findConflictByTerm(7, 3), [5, 2]);
  assert.deepEqual(log.findConflictByTerm(7, 4), [7, 4]);
  assert.deepEqual(log.findConflictByTerm(7, 1), [2, 1]);
  assert.deepEqual(log.findConflictByTerm(7, 0), [0, 0]);
  assert.deepEqual(log.findConflictByTerm(100, 9), [7, 4], "clamped to the last index");
});

Deno.test("the up-to-date check compares last term, then length (§5.4.1)", () => {
  const log = logWith([1, 2, 2]);
  assert.equal(log.isUpToDate(3, 2), true, "equal logs");
  assert.equal(log.isUpToDate(4, 2), true, "longer, same last term");
  assert.equal(log.isUpToDate(2, 2), false, "shorter, same last term");
  assert.equal(log.isUpToDate(1, 3), true, "higher last term wins even when shorter");
  assert.equal(log.isUpToDate(9, 1), false, "lower last term loses even when longer");
});

Deno.test("a leader commits by counting only entries of its own term (§5.4.2)", () => {
  const log = logWith([1, 2, 4]);
  assert.equal(log.maybeCommit(2, 4), false, "index 2 is of term 2: not by counting");
  assert.equal(log.committed, 0);
  assert.equal(log.maybeCommit(3, 4), true, "index 3 is of term 4");
  assert.equal(log.committed, 3, "and commits everything before it");
});

Deno.test("only durable committed entries are handed out for applying", () => {
  const log = logWith([1, 1]);
  log.append(ents([1, 1], 3));
  log.commitTo(4);
  assert.deepEqual(log.nextCommittedEntries().map((e) => e.index), [1, 2]);
  (log.storage as MemoryStorage).append(log.unstableEntries());
  log.stableTo(4, 1);
  assert.deepEqual(log.nextCommittedEntries().map((e) => e.index), [1, 2, 3, 4]);
});

Deno.test("slice respects the byte limit but always returns one entry", () => {
  const s = new MemoryStorage([1]);
  s.append(ents([1, 1, 1]).map((e) => ({ ...e, data: new Uint8Array(10) })));
  const log = new RaftLog(s, 0, 0);
  assert.equal(log.slice(1, 4, 1).length, 1);
  assert.equal(log.slice(1, 4, 20).length, 2);
  assert.equal(log.slice(1, 4).length, 3);
});

/** A log whose storage holds terms [1,1,2,2,3,3,3,3] with a snapshot at 5, compacted at `point`. */
function compactedLog(point: number): RaftLog {
  const s = new MemoryStorage([1]);
  s.append(ents([1, 1, 2, 2, 3, 3, 3, 3]));
  s.createSnapshot(5, confStateOf([1]), new Uint8Array());
  s.compact(point);
  return new RaftLog(s, 5, 5);
}

Deno.test("the term of a compacted entry is a CompactedError, except at the compaction point", () => {
  const log = compactedLog(4);
  assert.equal(log.firstIndex(), 5);
  assert.equal(log.term(4), 2);
  assert.throws(() => log.term(3), CompactedError);
  assert.throws(() => log.term(3), /Cannot read term of index 3: it is compacted/);
  assert.equal(log.term(9), undefined, "past the end is simply absent");
  assert.equal(log.matchTerm(3, 2), false, "a compacted index matches nothing");
  assert.equal(log.matchTerm(4, 2), true);
  assert.throws(() => log.slice(3, 6), CompactedError);
  assert.deepEqual(log.slice(5, 9).map((e) => e.index), [5, 6, 7, 8]);
});

Deno.test("fast back-up stops at the compacted prefix and says the term there is unknown", () => {
  const log = compactedLog(4);
  assert.deepEqual(log.findConflictByTerm(8, 2), [4, 2], "the compaction point's term is known");
  assert.deepEqual(log.findConflictByTerm(8, 1), [3, 0], "below it: unknown");
});

Deno.test("a restored snapshot is the whole log until it is durable, and nothing is applied before it", () => {
  const log = logWith([1, 1, 2, 2], 2);
  const snap = { meta: { index: 10, term: 4, conf: confStateOf([1]) }, data: new Uint8Array() };
  log.restore(snap);
  assert.equal(log.committed, 10);
  assert.equal(log.firstIndex(), 11);
  assert.equal(log.lastIndex(), 10);
  assert.equal(log.term(10), 4);
  assert.throws(() => log.term(4), CompactedError, "the durable log no longer counts");
  assert.equal(log.hasNextCommittedEntries(), false);
  assert.deepEqual(log.nextCommittedEntries(), []);
  // Entries after it append to the pending snapshot.
  log.append(ents([4, 4], 11));
  log.commitTo(12);
  assert.equal(log.hasNextCommittedEntries(), false, "still waiting for the snapshot");
  assert.throws(() => log.append(ents([5], 10)), /cannot overwrite committed entry 10/);
});

Deno.test("a stale restore, at or below the commit index, is an invariant violation", () => {
  const log = logWith([1, 1, 2, 2], 3);
  const snap = { meta: { index: 3, term: 2, conf: confStateOf([1]) }, data: new Uint8Array() };
  assert.throws(() => log.restore(snap), /would move the commit index back/);
});
