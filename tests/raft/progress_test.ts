/**
 * A leader's view of one follower: probing, streaming, and the in-flight window.
 */
import assert from "node:assert/strict";
import { Inflights } from "../../src/raft/tracker/inflights.ts";
import { Progress } from "../../src/raft/tracker/progress.ts";

Deno.test("a probing leader sends one append at a time", () => {
  const pr = new Progress(5, 4);
  assert.equal(pr.isPaused(), false);
  pr.sentEntries(3, 7);
  assert.equal(pr.isPaused(), true, "waits for the answer");
  assert.equal(pr.next, 5, "next moves only when the follower answers");
  assert.equal(pr.maybeUpdate(7), true);
  assert.equal(pr.isPaused(), false);
});

Deno.test("a streaming leader keeps several appends in flight, up to the window", () => {
  const pr = new Progress(1, 2);
  pr.becomeReplicate();
  pr.sentEntries(2, 2);
  pr.sentEntries(2, 4);
  assert.equal(pr.next, 5, "next advances optimistically");
  assert.equal(pr.isPaused(), true, "window of 2 is full");
  pr.maybeUpdate(2);
  pr.inflights.freeLE(2);
  assert.equal(pr.isPaused(), false);
});

Deno.test("a rejection in probe state backs next up to the hint, never below match + 1", () => {
  const pr = new Progress(11, 4);
  pr.match = 3;
  assert.equal(pr.maybeDecrTo(9, 6), false, "stale: not the last probe (next - 1 = 10)");
  assert.equal(pr.maybeDecrTo(10, 6), true);
  assert.equal(pr.next, 7);
  assert.equal(pr.maybeDecrTo(6, 0), true);
  assert.equal(pr.next, 4, "match is known good");
});

Deno.test("a rejection at or below match in replicate state is stale", () => {
  const pr = new Progress(1, 4);
  pr.maybeUpdate(5);
  pr.becomeReplicate();
  pr.sentEntries(3, 8);
  assert.equal(pr.maybeDecrTo(5, 0), false);
  assert.equal(pr.maybeDecrTo(8, 0), true);
  assert.equal(pr.next, 6, "falls back to match + 1");
});

Deno.test("a follower being sent a snapshot gets nothing else until the send is settled", () => {
  const pr = new Progress(3, 4);
  pr.match = 2;
  pr.becomeSnapshot(10);
  assert.equal(pr.state, "snapshot");
  assert.equal(pr.pendingSnapshot, 10);
  assert.equal(pr.isPaused(), true);
  pr.probeSent = false; // a heartbeat answer does not unpause it
  assert.equal(pr.isPaused(), true);
  assert.equal(pr.maybeDecrTo(pr.next - 1, 0), false, "rejections of older appends are stale");
  // Delivered: probe from just past the snapshot.
  pr.becomeProbe();
  assert.deepEqual([pr.state, pr.next, pr.pendingSnapshot], ["probe", 11, 0]);
});

Deno.test("a failed snapshot send probes again from the match", () => {
  const pr = new Progress(3, 4);
  pr.match = 2;
  pr.becomeSnapshot(10);
  pr.pendingSnapshot = 0; // what the leader does on a failure report, before probing
  pr.becomeProbe();
  assert.deepEqual([pr.state, pr.next], ["probe", 3]);
});

Deno.test("inflights free everything acknowledged and refuse to overflow", () => {
  const inf = new Inflights(3);
  inf.add(2);
  inf.add(5);
  inf.add(9);
  assert.equal(inf.full(), true);
  assert.throws(() => inf.add(10), /full window/);
  inf.freeLE(5);
  assert.equal(inf.count, 1);
  assert.throws(() => inf.add(8), /not after 9/);
});
