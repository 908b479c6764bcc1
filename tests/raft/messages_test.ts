/**
 * Message economy: an idle cluster sends only heartbeats, and an election plus
 * ten writes take about as many messages as an ideal run needs.
 */
import assert from "node:assert/strict";
import { cluster, electLeader, enc, MessageCounter, tickUntil } from "./_scenario.ts";

Deno.test("an idle cluster sends only heartbeats and their answers", () => {
  const c = cluster(5);
  electLeader(c);
  c.tick(20);
  const counter = new MessageCounter(c);
  c.tick(100);
  assert.deepEqual(counter.types(), ["heartbeat", "heartbeat_resp"], counter.toString());
  // heartbeatTick is 1: one heartbeat per follower per tick.
  assert.equal(counter.count("heartbeat"), 100 * 4);
});

Deno.test("electing a leader takes one round of pre-votes and one of votes", () => {
  const c = cluster(3);
  const counter = new MessageCounter(c);
  tickUntil(c, "a leader", () => c.leader() !== undefined);
  counter.stop();
  // Ideal for three nodes: 2 pre-votes, 2 answers, 2 votes, 2 answers. Allow one
  // extra round in case two timers fire together.
  const electionMessages = counter.count("pre_vote") + counter.count("pre_vote_resp") +
    counter.count("vote") + counter.count("vote_resp");
  assert.ok(electionMessages <= 16, `election took ${electionMessages}: ${counter}`);
});

Deno.test("committing 10 entries takes a bounded number of appends", () => {
  const c = cluster(3);
  const lead = electLeader(c);
  c.tick(20);
  const counter = new MessageCounter(c);
  for (let i = 0; i < 10; i++) c.propose(lead, enc.encode(`e${i}`));
  tickUntil(c, "applied everywhere", () => c.ids.every((id) => c.applied(id).length === 11));
  counter.stop();
  // Ideal: per entry, one append and one answer per follower (40), plus commit
  // notices to followers (at most one per entry per follower, 20, and often
  // carried by the next append or heartbeat instead).
  const appends = counter.count("app") + counter.count("app_resp");
  assert.ok(appends <= 60, `appends: ${counter}`);
  assert.equal(counter.count("pre_vote") + counter.count("vote"), 0);
});
