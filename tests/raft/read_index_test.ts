/**
 * Linearizable reads through ReadIndex (dissertation §6.4): a leader answers a
 * read only after a quorum confirms it still leads, so a deposed leader never
 * serves a stale value.
 */
import assert from "node:assert/strict";
import { message } from "../../src/raft/types.ts";
import { makeLeader, rawNode } from "./_scenario.ts";

Deno.test("a one-node cluster confirms a read at once, at its commit index", () => {
  const h = rawNode([1]);
  h.node.campaign();
  while (h.node.hasReady()) h.handle();
  h.node.readIndex(7);
  const rd = h.handle();
  assert.deepEqual(rd.readStates, [{ requestId: 7, index: h.node.status().commit }]);
});

Deno.test("a leader confirms a read only after a quorum answers a heartbeat sent after it", () => {
  const h = rawNode([1, 2, 3]);
  makeLeader(h, [1, 2, 3]);
  h.node.readIndex(1);
  h.node.readIndex(2);
  const rd = h.handle();
  const beats = rd.messages.filter((m) => m.type === "heartbeat");
  assert.equal(beats.length, 2, "one heartbeat round for both reads");
  const round = beats[0]!.context;
  assert.ok(round > 0);
  assert.deepEqual(rd.readStates, [], "not before anyone answers");
  // An echo of an older round confirms nothing.
  h.node.step(message({ type: "heartbeat_resp", from: 2, to: 1, term: 1, context: round - 1 }));
  assert.equal(h.node.hasReady(), false);
  // One follower's echo plus the leader itself make a majority of three.
  h.node.step(message({ type: "heartbeat_resp", from: 2, to: 1, term: 1, context: round }));
  const rd2 = h.handle();
  const commit = h.node.status().commit;
  assert.deepEqual(rd2.readStates, [{ requestId: 1, index: commit }, {
    requestId: 2,
    index: commit,
  }]);
});

Deno.test("a new leader defers reads until it has committed an entry of its term", () => {
  const h = rawNode([1, 2, 3]);
  h.node.campaign();
  h.handle();
  h.node.step(message({ type: "vote_resp", from: 2, to: 1, term: 1 }));
  h.handle();
  assert.equal(h.node.status().role, "leader");
  h.node.readIndex(9);
  const early = h.handle();
  assert.equal(early.messages.filter((m) => m.type === "heartbeat").length, 0, "no round yet");
  // An echo of a round never sent (a confused or hostile peer) confirms nothing.
  h.node.step(message({ type: "heartbeat_resp", from: 2, to: 1, term: 1, context: 1 }));
  assert.deepEqual(h.handle().readStates, [], "its commit index may still be stale");
  // The no-op commits: now the read joins the next round.
  h.node.step(message({ type: "app_resp", from: 2, to: 1, term: 1, index: 1 }));
  const rd = h.handle();
  const beat = rd.messages.find((m) => m.type === "heartbeat");
  assert.ok(beat !== undefined, "a heartbeat round for the deferred read");
  h.node.step(message({ type: "heartbeat_resp", from: 2, to: 1, term: 1, context: beat.context }));
  assert.deepEqual(h.handle().readStates, [{ requestId: 9, index: 1 }]);
});

Deno.test("a deposed leader cannot confirm a read: it is abandoned instead", () => {
  const h = rawNode([1, 2, 3]);
  makeLeader(h, [1, 2, 3]);
  h.node.readIndex(5);
  h.handle();
  // A newer term arrives before any follower confirms: leadership is gone.
  h.node.step(message({ type: "heartbeat", from: 2, to: 1, term: 2 }));
  const rd = h.handle();
  assert.deepEqual(rd.readStates, []);
  assert.deepEqual(rd.abandonedReads, [5]);
  assert.throws(() => h.node.readIndex(6), /not the leader/);
});
