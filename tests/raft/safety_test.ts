/**
 * Safety (§5.4): a leader's log wins over what followers hold (Figure 7), and
 * only entries of the leader's own term are committed by counting (Figure 8).
 */
import assert from "node:assert/strict";
import type { NodeId } from "../../src/raft/types.ts";
import { cluster, electLeader, enc, seedLog, termOf, tickUntil } from "./_scenario.ts";

/** The terms of node `id`'s durable log, index 1 first. */
function diskTerms(c: ReturnType<typeof cluster>, id: NodeId): number[] {
  const d = c.disk(id);
  return Array.from({ length: d.lastIndex() }, (_, i) => d.term(i + 1));
}

// Figure 7: the leader of term 8 and six followers' possible logs.
const LEADER = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
const FOLLOWERS: Record<string, { terms: number[]; term: number }> = {
  "(a) missing entries": { terms: [1, 1, 1, 4, 4, 5, 5, 6, 6], term: 6 },
  "(b) missing many entries": { terms: [1, 1, 1, 4], term: 4 },
  "(c) an extra uncommitted entry": { terms: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], term: 6 },
  "(d) extra entries of a later term": { terms: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], term: 7 },
  "(e) missing entries and extra ones of term 4": { terms: [1, 1, 1, 4, 4, 4, 4], term: 4 },
  "(f) a leader of terms 2 and 3 whose entries never committed": {
    terms: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    term: 3,
  },
};

Deno.test("Figure 7: every follower case ends with the leader's log, conflicts overwritten", async (t) => {
  for (const [name, f] of Object.entries(FOLLOWERS)) {
    await t.step(name, () => {
      // Node 3 holds the leader's log too, so node 1 wins with its vote whatever
      // node 2 (the follower under test) answers.
      const c = cluster(3, { preVote: false });
      seedLog(c, 1, LEADER, { term: 7 });
      seedLog(c, 2, f.terms, { term: f.term });
      seedLog(c, 3, LEADER, { term: 7 });
      c.campaign(1);
      tickUntil(c, "node 1 leads term 8", () => c.stableLeader() === 1);
      assert.equal(termOf(c, 1), 8);
      const want = [...LEADER, 8];
      tickUntil(c, "node 2 holds the leader's log", () => diskTerms(c, 2).join() === want.join());
      tickUntil(c, "and applies it", () => c.applied(2).length === want.length);
    });
  }
});

Deno.test("a partitioned old leader's uncommitted entries are overwritten when it rejoins", () => {
  const c = cluster(5, { checkQuorum: false });
  const old = electLeader(c);
  c.isolate(old);
  for (let i = 0; i < 5; i++) c.propose(old, enc.encode(`lost${i}`)); // can never commit
  tickUntil(c, "the majority elects a new leader", () => {
    const l = c.leader();
    return l !== undefined && l !== old;
  });
  const lead = c.leader()!;
  const { index } = c.propose(lead, enc.encode("kept"));
  tickUntil(c, "the majority commits", () => c.status(lead)!.commit >= index);
  c.heal();
  tickUntil(c, "the old leader converges", () => c.status(old)!.commit >= index);
  const applied = c.applied(old).map((e) => new TextDecoder().decode(e.data));
  assert.ok(applied.includes("kept"));
  assert.ok(!applied.some((s) => s.startsWith("lost")), "the isolated proposals are gone");
  assert.deepEqual(diskTerms(c, old), diskTerms(c, lead));
});

Deno.test("Figure 8: an old-term entry stored on a majority is not committed by counting (§5.4.2)", () => {
  // Fixed 5 ms delays against 10 ms ticks make every round trip land inside one
  // tick, so the history below is exact. No PreVote or lease, to steer elections
  // with campaign(); one entry per append, so a follower can be given an old entry
  // without the new leader's no-op.
  const c = cluster(3, {
    preVote: false,
    checkQuorum: false,
    maxSizePerMsg: 1,
    faults: { minDelay: 5, maxDelay: 5 },
  });
  const role = (id: NodeId): string | undefined => c.status(id)?.role;
  const leadBy = (id: NodeId): void => {
    tickUntil(c, `node ${id} elected`, () => {
      if (role(id) === "leader") return true;
      c.campaign(id); // Every vote round trip fits in a tick; a lost round teaches the term.
      return false;
    });
  };
  // Term 1: node 1 leads; its no-op 1/1 commits everywhere.
  leadBy(1);
  tickUntil(c, "no-op committed", () => c.ids.every((id) => c.applied(id).length === 1));
  // Node 1, cut off, appends x = 1/2 that nobody else gets, then crashes. (x is
  // 2 bytes: over maxSizePerMsg, so it always travels alone.)
  c.isolate(1);
  c.propose(1, enc.encode("xx"));
  c.crash(1);
  c.tick(2);
  c.heal();
  // Term 2: node 2 leads with node 3's vote; its no-op 2/2 reaches no one.
  c.campaign(2);
  tickUntil(c, "node 2 elected", () => role(2) === "leader");
  c.cut(2, 3);
  c.crash(2);
  c.tick(2); // What node 2 had in flight to node 3 is swallowed by the cut.
  c.heal();
  // Term 3: node 1 comes back and leads with node 3's vote. Probing node 3 it
  // ships x (1/2) alone; node 3 acknowledges. x is on a majority (1 and 3) but is
  // of an older term: it must not be committed by counting (§5.4.2). Node 1's
  // own no-op 3/3 to node 3 is lost; node 1 crashes.
  c.restart(1);
  leadBy(1);
  tickUntil(c, "x reached node 3", () => c.disk(3).lastIndex() >= 2 && c.disk(3).term(2) === 1);
  c.cut(1, 3);
  assert.equal(c.status(1)!.commit, 1, "node 1 must not commit x by counting replicas");
  c.crash(1);
  c.tick(2);
  c.heal();
  // Term 4: node 2 returns with 2/2, more up-to-date than node 3's 1/2, and wins:
  // it overwrites x on node 3. Legal only because x was never committed; had it
  // been, the checker's Leader Completeness check would throw here.
  c.restart(2);
  leadBy(2);
  c.restart(1);
  tickUntil(c, "everyone converges", () => c.ids.every((id) => c.applied(id).length >= 3), 100);
  for (const id of c.ids) {
    assert.ok(c.applied(id).every((e) => new TextDecoder().decode(e.data) !== "xx"));
    assert.equal(c.disk(id).term(2), 2);
  }
});
