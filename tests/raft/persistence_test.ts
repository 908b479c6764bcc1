/**
 * What survives a crash: term, vote and log come back from disk, and a node
 * never breaks a promise it made before crashing (§5.1, Figure 2).
 */
import assert from "node:assert/strict";
import { message } from "../../src/raft/types.ts";
import {
  appliedCommands,
  cluster,
  electLeader,
  enc,
  makeLeader,
  rawNode,
  termOf,
  tickUntil,
} from "./_scenario.ts";
import { RawNode } from "../../src/raft/raw_node.ts";
import { seededRandom } from "../../src/raft/rand.ts";

Deno.test("state survives a restart of every node", () => {
  const c = cluster(3);
  const lead = electLeader(c);
  for (let i = 0; i < 30; i++) c.propose(lead, enc.encode(`v${i}`));
  tickUntil(c, "all apply", () => c.ids.every((id) => appliedCommands(c, id).length === 30));
  const term = termOf(c, lead);
  for (const id of c.ids) c.crash(id);
  c.tick(50);
  for (const id of c.ids) c.restart(id);
  for (const id of c.ids) {
    assert.ok(termOf(c, id) >= term, `node ${id} remembers its term`);
  }
  // Every node replays what it had committed...
  tickUntil(c, "replay", () => c.ids.every((id) => appliedCommands(c, id).length === 30));
  // ...and the cluster goes on.
  const next = electLeader(c);
  c.propose(next, enc.encode("after"));
  tickUntil(c, "a new write", () => c.ids.every((id) => appliedCommands(c, id).length === 31));
  for (const id of c.ids) assert.deepEqual(appliedCommands(c, id), appliedCommands(c, lead));
});

Deno.test("a vote survives a crash: a node never votes twice in one term", () => {
  const h = rawNode([1, 2, 3]);
  // Node 1 grants node 2's vote request in term 5 and persists that.
  h.node.step(message({ type: "vote", from: 2, to: 1, term: 5, index: 0, logTerm: 0 }));
  const rd = h.handle();
  assert.deepEqual(rd.persistedMessages.map((m) => [m.type, m.to, m.reject]), [
    ["vote_resp", 2, false],
  ]);
  assert.equal(rd.messages.length, 0, "the vote is not sent before it is durable");
  // It crashes and restarts from its disk.
  const again = new RawNode({ id: 1, random: seededRandom(2), preVote: false }, h.storage);
  again.step(message({ type: "vote", from: 3, to: 1, term: 5, index: 0, logTerm: 0 }));
  const rd2 = again.ready();
  assert.deepEqual(rd2.persistedMessages.map((m) => [m.type, m.to, m.reject]), [
    ["vote_resp", 3, true],
  ]);
});

Deno.test("a follower acknowledges entries only after they are durable", () => {
  const h = rawNode([1, 2, 3]);
  const entries = [{ term: 1, index: 1, type: "normal" as const, data: enc.encode("e") }];
  h.node.step(message({ type: "app", from: 2, to: 1, term: 1, index: 0, logTerm: 0, entries }));
  const rd = h.node.ready();
  assert.equal(rd.entries.length, 1);
  assert.equal(rd.messages.filter((m) => m.type === "app_resp").length, 0);
  assert.deepEqual(rd.persistedMessages.map((m) => [m.type, m.index]), [["app_resp", 1]]);
});

Deno.test("a leader restarted from disk comes back as a follower of the same term", () => {
  const h = rawNode([1, 2, 3]);
  makeLeader(h, [1, 2, 3]);
  const { index } = h.node.propose(enc.encode("x"));
  h.handle();
  const again = new RawNode({ id: 1, random: seededRandom(3) }, h.storage);
  const s = again.status();
  assert.equal(s.role, "follower");
  assert.equal(s.term, 1);
  assert.equal(s.vote, 1, "its vote for itself is remembered");
  assert.equal(s.lastIndex, index, "its log is intact");
});
