/**
 * Leader election (§5.2), PreVote and CheckQuorum (dissertation §9.6, §6.2):
 * each test is one story about who leads, and when.
 */
import assert from "node:assert/strict";
import { cluster, electLeader, MessageCounter, termOf, tickUntil } from "./_scenario.ts";

Deno.test("initial election: one leader is elected and the term then stays stable", () => {
  for (const size of [1, 3, 5]) {
    const c = cluster(size);
    const lead = electLeader(c);
    const term = termOf(c, lead);
    c.tick(1000); // 100 election timeouts of calm
    assert.equal(c.stableLeader(), lead, `size ${size}: the leader is unchanged`);
    for (const id of c.ids) assert.equal(termOf(c, id), term, `size ${size}: node ${id} term`);
  }
});

Deno.test("heartbeats keep followers from starting elections", () => {
  const c = cluster(5);
  electLeader(c);
  c.tick(20);
  const counter = new MessageCounter(c);
  c.tick(500);
  assert.equal(counter.count("pre_vote") + counter.count("vote"), 0, counter.toString());
});

Deno.test("re-election after the leader fails", () => {
  const c = cluster(5);
  const first = electLeader(c);
  const firstTerm = termOf(c, first);
  c.crash(first);
  const second = electLeader(c);
  assert.notEqual(second, first);
  assert.ok(termOf(c, second) > firstTerm, "the new leader serves a newer term");
  // The failed leader returns as a follower of the new term.
  c.restart(first);
  tickUntil(c, "old leader follows", () => c.status(first)?.lead === second);
  assert.equal(termOf(c, first), termOf(c, second));
});

Deno.test("no leader in a minority, a leader in the majority", () => {
  const c = cluster(5);
  const lead = electLeader(c);
  // Put the old leader in the minority with one follower.
  const other = c.ids.find((id) => id !== lead)!;
  const minority = [lead, other];
  const majority = c.ids.filter((id) => !minority.includes(id));
  c.partition(minority, majority);
  tickUntil(c, "majority elects a leader", () => {
    const l = c.leader();
    return l !== undefined && majority.includes(l);
  });
  c.tick(300);
  for (const id of minority) {
    assert.notEqual(c.status(id)!.role, "leader", `minority node ${id} does not lead`);
  }
});

Deno.test("CheckQuorum: a leader that cannot reach a majority steps down", () => {
  const c = cluster(3);
  const lead = electLeader(c);
  c.isolate(lead);
  // Within two election timeouts (20 ticks) the lease check fails.
  tickUntil(c, "isolated leader steps down", () => c.status(lead)!.role !== "leader", 25);
});

Deno.test("split votes resolve: candidates that tie retry in a new term", () => {
  // Without PreVote, three nodes that campaign at the same moment each vote for
  // themselves: nobody wins that term.
  const c = cluster(3, { preVote: false, checkQuorum: false });
  for (const id of c.ids) c.campaign(id);
  const splitTerm = termOf(c, 1);
  c.tick(1);
  assert.equal(c.leader(), undefined, "a three-way split elects nobody");
  const lead = electLeader(c);
  assert.ok(termOf(c, lead) > splitTerm, "the winner campaigned in a later term");
});

Deno.test("a stale leader steps down when it sees a higher term", () => {
  // Without CheckQuorum an isolated leader keeps believing in itself...
  const c = cluster(3, { checkQuorum: false });
  const old = electLeader(c);
  c.isolate(old);
  tickUntil(c, "the others elect a new leader", () => {
    const l = c.leader();
    return l !== undefined && l !== old;
  });
  assert.equal(c.status(old)!.role, "leader", "the cut-off leader still thinks it leads");
  // ...until any message of the newer term reaches it.
  c.heal();
  tickUntil(c, "the stale leader steps down", () => c.status(old)!.role === "follower", 30);
  assert.equal(termOf(c, old), termOf(c, c.leader()!));
});

Deno.test("PreVote: a node that was cut off rejoins without deposing the healthy leader", () => {
  const c = cluster(3);
  const lead = electLeader(c);
  const term = termOf(c, lead);
  const loner = c.ids.find((id) => id !== lead)!;
  c.isolate(loner);
  c.tick(1000); // 100 election timeouts: without PreVote its term would climb ~50 times
  assert.equal(termOf(c, loner), term, "pre-elections it cannot win leave its term alone");
  c.heal();
  c.tick(100);
  assert.equal(c.stableLeader(), lead, "the leader is undisturbed");
  assert.equal(termOf(c, lead), term, "and so is the term");
});

Deno.test("without PreVote the same rejoining node disrupts the cluster (why PreVote exists)", () => {
  const c = cluster(3, { preVote: false, checkQuorum: false });
  const lead = electLeader(c);
  const term = termOf(c, lead);
  const loner = c.ids.find((id) => id !== lead)!;
  c.isolate(loner);
  c.tick(1000);
  assert.ok(termOf(c, loner) > term + 10, "its term climbed in vain");
  c.heal();
  tickUntil(c, "the cluster settles", () => c.stableLeader() !== undefined);
  assert.ok(termOf(c, c.stableLeader()!) > term + 10, "the whole cluster had to move on");
});

Deno.test("leader lease: a follower in touch with its leader ignores a challenger's vote requests", () => {
  // Without PreVote a challenger raises its term and asks for votes; followers
  // that heard from the leader within the election timeout neither grant nor
  // adopt its term (dissertation §4.2.3).
  const c = cluster(3, { preVote: false });
  const lead = electLeader(c);
  const term = termOf(c, lead);
  const [challenger, bystander] = c.ids.filter((id) => id !== lead) as [number, number];
  c.tick(3);
  c.campaign(challenger);
  assert.equal(termOf(c, challenger), term + 1);
  c.tick(1); // the vote requests arrive
  assert.equal(termOf(c, bystander), term, "the bystander ignored the higher term");
  assert.equal(c.status(bystander)!.vote, lead, "and kept its vote");
  // The challenger is not stuck forever: the leader's next heartbeat is answered
  // with the higher term, the leader steps down, and the cluster elects again in
  // the new term (as etcd-io/raft's TestFreeStuckCandidateWithCheckQuorum).
  const settled = electLeader(c);
  assert.ok(termOf(c, settled) > term);
});
