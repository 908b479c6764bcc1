/**
 * Tests of the simulation harness itself: the network is deterministic and its
 * fault knobs do exactly what they say, the cluster driver follows the Ready
 * contract across crashes, and the invariant checker can fail.
 *
 * @module
 */

import assert from "node:assert/strict";
import { seededRandom } from "../../src/raft/rand.ts";
import { MemoryStorage } from "../../src/raft/storage.ts";
import { type Entry, type Message, message, type NodeId } from "../../src/raft/types.ts";
import { SimCluster } from "./sim/cluster.ts";
import {
  checkAppliedAgree,
  checkLogsMatch,
  InvariantChecker,
  InvariantViolation,
} from "./sim/invariants.ts";
import { SimNetwork } from "./sim/network.ts";
import { applyEntry, decodeState, encodeState, INITIAL_STATE } from "./sim/state_machine.ts";
import { Trace } from "./sim/trace.ts";

const enc = new TextEncoder();

function entry(term: number, index: number, data = ""): Entry {
  return { term, index, type: "normal", data: enc.encode(data) };
}

function storageWith(entries: Entry[]): MemoryStorage {
  const s = new MemoryStorage([1, 2, 3]);
  s.append(entries);
  return s;
}

/** A network over nodes 1..5 that records what it delivers, as "from->to" strings. */
function testNetwork(
  seed = 1,
  isUp: (id: NodeId) => boolean = () => true,
): { net: SimNetwork; delivered: string[]; trace: Trace } {
  const trace = new Trace(10_000);
  const net = new SimNetwork(seededRandom(seed), isUp, trace);
  const delivered: string[] = [];
  return { net, delivered, trace };
}

function hb(from: NodeId, to: NodeId, commit = 0): Message {
  return message({ type: "heartbeat", from, to, term: 1, commit });
}

/** Sends one heartbeat over every directed pair of 1..5 and returns which arrived. */
function allPairs(net: SimNetwork, delivered: string[]): Set<string> {
  for (let a = 1; a <= 5; a++) for (let b = 1; b <= 5; b++) if (a !== b) net.send(hb(a, b));
  net.advanceTo(net.now + 1000, (m) => delivered.push(`${m.from}->${m.to}`));
  const got = new Set(delivered);
  delivered.length = 0;
  return got;
}

function pairsExcept(blocked: string[]): Set<string> {
  const s = new Set<string>();
  for (let a = 1; a <= 5; a++) for (let b = 1; b <= 5; b++) if (a !== b) s.add(`${a}->${b}`);
  for (const x of blocked) s.delete(x);
  return s;
}

/** Drives a cluster under heavy faults with a fixed proposal schedule. */
function chaoticRun(seed: number): SimCluster {
  const c = new SimCluster({
    size: 5,
    seed,
    faults: { drop: 0.2, duplicate: 0.2, reorder: 0.3 },
  });
  for (let t = 0; t < 300; t++) {
    const lead = c.leader();
    if (t % 7 === 0 && lead !== undefined) c.propose(lead, enc.encode(`cmd${t}`));
    if (t === 100) c.partition([1, 2], [3, 4, 5]);
    if (t === 150) c.crash(3);
    if (t === 180) c.heal();
    if (t === 200) c.restart(3);
    c.tick();
  }
  return c;
}

Deno.test("network: the same seed gives the same run, to the last trace line", () => {
  const a = chaoticRun(42);
  const b = chaoticRun(42);
  const la = a.trace.lines();
  assert.ok(la.length > 1000, `expected a busy trace, got ${la.length} lines`);
  assert.deepEqual(la, b.trace.lines());
  for (const id of a.ids) assert.deepEqual(a.applied(id), b.applied(id));
  assert.deepEqual(a.network.stats, b.network.stats);
  assert.notDeepEqual(la, chaoticRun(43).trace.lines(), "another seed should differ");
});

Deno.test("network: messages arrive after a delay within bounds, ordered by time then send order", () => {
  const { net, trace } = testNetwork();
  net.setFaults({ minDelay: 3, maxDelay: 7 });
  const arrivals: { at: number; commit: number }[] = [];
  for (let i = 0; i < 200; i++) net.send(hb(1, 2, i));
  net.advanceTo(100, (m) => arrivals.push({ at: net.now, commit: m.commit }));
  assert.equal(arrivals.length, 200);
  for (const a of arrivals) assert.ok(a.at >= 3 && a.at <= 7, `delivered at ${a.at}`);
  for (let i = 1; i < arrivals.length; i++) {
    const p = arrivals[i - 1]!;
    const q = arrivals[i]!;
    assert.ok(p.at < q.at || (p.at === q.at && p.commit < q.commit), "time, then send order");
  }
  assert.equal(net.now, 100);
  assert.ok(trace.lines().some((l) => l.includes("deliver 1->2 heartbeat")));

  // Fixed delay: strictly first-sent, first-delivered.
  net.setFaults({ minDelay: 5, maxDelay: 5 });
  const order: number[] = [];
  for (let i = 0; i < 50; i++) net.send(hb(1, 2, i));
  net.advanceTo(200, (m) => order.push(m.commit));
  assert.deepEqual(order, Array.from({ length: 50 }, (_, i) => i));
});

Deno.test("network: reorder delays some messages behind later ones", () => {
  const { net } = testNetwork(7);
  net.setFaults({ minDelay: 5, maxDelay: 5, reorder: 0.5, maxExtraDelay: 50 });
  const order: number[] = [];
  for (let i = 0; i < 100; i++) net.send(hb(1, 2, i));
  net.advanceTo(1000, (m) => order.push(m.commit));
  assert.equal(order.length, 100);
  assert.notDeepEqual(order, [...order].sort((x, y) => x - y));
  assert.ok(net.stats.delayed > 20 && net.stats.delayed < 80, `${net.stats.delayed} delayed`);
});

Deno.test("network: drop=1 drops everything; duplicate=1 delivers everything twice", () => {
  const { net, delivered } = testNetwork();
  net.setFaults({ drop: 1 });
  assert.equal(allPairs(net, delivered).size, 0);
  assert.equal(net.stats.delivered, 0);
  assert.equal(net.stats.dropped, 20);

  net.setFaults({ drop: 0, duplicate: 1 });
  for (let i = 0; i < 10; i++) net.send(hb(1, 2, i));
  const got: number[] = [];
  net.advanceTo(net.now + 100, (m) => got.push(m.commit));
  assert.equal(got.length, 20);
  assert.deepEqual([...new Set(got)].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

  // A whole cluster on a network that drops everything never elects anyone.
  const c = new SimCluster({ size: 3, seed: 5, faults: { drop: 1 } });
  c.tick(200);
  assert.equal(c.network.stats.delivered, 0);
  assert.equal(c.leader(), undefined);
  assert.ok(c.network.stats.dropped > 0);
});

Deno.test("network: partitions, cuts and isolation block exactly the named directions", () => {
  const { net, delivered } = testNetwork();
  assert.deepEqual(allPairs(net, delivered), pairsExcept([]));

  net.partition([1, 2], [3, 4, 5]);
  const across: string[] = [];
  for (const a of [1, 2]) {
    for (const b of [3, 4, 5]) across.push(`${a}->${b}`, `${b}->${a}`);
  }
  assert.deepEqual(allPairs(net, delivered), pairsExcept(across));

  net.heal();
  net.cut(1, 2);
  assert.deepEqual(allPairs(net, delivered), pairsExcept(["1->2"]));
  assert.equal(net.connected(2, 1), true);

  net.heal();
  net.isolate(3, [1, 2, 3, 4, 5]);
  assert.deepEqual(
    allPairs(net, delivered),
    pairsExcept(["3->1", "3->2", "3->4", "3->5", "1->3", "2->3", "4->3", "5->3"]),
  );

  // Three groups.
  net.heal();
  net.partition([1], [2, 3], [4, 5]);
  const got = allPairs(net, delivered);
  assert.deepEqual(
    [...got].sort(),
    ["2->3", "3->2", "4->5", "5->4"],
  );

  // A cut also swallows what was already in flight across it.
  net.heal();
  net.send(hb(1, 2));
  net.cut(1, 2);
  net.advanceTo(net.now + 100, (m) => delivered.push(`${m.from}->${m.to}`));
  assert.deepEqual(delivered, []);
  net.heal();
  assert.deepEqual(allPairs(net, delivered), pairsExcept([]));
});

Deno.test("network: a down node receives nothing", () => {
  const down = new Set<NodeId>([4]);
  const { net, delivered, trace } = testNetwork(1, (id) => !down.has(id));
  const got = allPairs(net, delivered);
  assert.deepEqual(got, pairsExcept(["1->4", "2->4", "3->4", "5->4"]));
  assert.equal(trace.lines().filter((l) => l.includes("drop(down)")).length, 4);

  // In a cluster: a crashed follower gets no message while down.
  const c = new SimCluster({ size: 3, seed: 11 });
  assert.ok(c.runUntil(() => c.stableLeader() !== undefined, 200));
  const lead = c.stableLeader()!;
  const follower = c.ids.find((id) => id !== lead)!;
  c.crash(follower);
  const before = c.trace.total;
  c.propose(lead, enc.encode("x"));
  c.tick(50);
  const lines = c.trace.lines(c.trace.total - before);
  assert.ok(!lines.some((l) => new RegExp(`deliver \\d->${follower} `).test(l)));
  assert.ok(lines.some((l) => new RegExp(`drop\\(down\\) ${lead}->${follower} `).test(l)));
});

Deno.test("trace: keeps only the last lines", () => {
  const t = new Trace(10);
  for (let i = 0; i < 25; i++) t.add(i, `line ${i}`);
  const lines = t.lines();
  assert.equal(lines.length, 10);
  assert.match(lines[0]!, /line 15$/);
  assert.match(lines[9]!, /line 24$/);
  assert.deepEqual(t.lines(3).map((l) => l.trim()), [
    "22ms line 22",
    "23ms line 23",
    "24ms line 24",
  ]);
  assert.match(t.dump(), /^… 15 earlier trace lines not shown/);
  t.add(99, "with a message", hb(1, 2, 7));
  assert.match(t.lines(1)[0]!, /99ms with a message 1->2 heartbeat term:1 commit:7$/);
});

Deno.test("cluster: elects a leader and applies a command on every node", () => {
  const c = new SimCluster({ size: 5, seed: 3 });
  assert.ok(c.runUntil(() => c.stableLeader() !== undefined, 200), "a leader");
  const lead = c.stableLeader()!;
  const { index, term } = c.propose(lead, enc.encode("hello"));
  assert.ok(
    c.runUntil(() => c.ids.every((id) => c.applied(id).length >= index), 100),
    "applied everywhere",
  );
  for (const id of c.ids) {
    const e = c.applied(id)[index - 1]!;
    assert.equal(e.term, term);
    assert.equal(new TextDecoder().decode(e.data), "hello");
    assert.equal(c.disk(id).lastIndex(), index);
  }
  assert.throws(
    () => c.propose(c.ids.find((id) => id !== lead)!, enc.encode("no")),
    (e: Error) => e.name === "NotLeaderError",
  );
  assert.equal(c.stats.proposalsRejected, 1);
});

Deno.test("cluster: a restarted node replays its state machine from index 1", () => {
  const c = new SimCluster({ size: 3, seed: 8 });
  assert.ok(c.runUntil(() => c.stableLeader() !== undefined, 200));
  const lead = c.stableLeader()!;
  for (let i = 0; i < 5; i++) c.propose(lead, enc.encode(`c${i}`));
  assert.ok(c.runUntil(() => c.ids.every((id) => c.applied(id).length === 6), 100));
  const follower = c.ids.find((id) => id !== lead)!;
  const before = [...c.applied(follower)];
  c.crash(follower);
  assert.equal(c.isUp(follower), false);
  assert.equal(c.status(follower), undefined);
  c.tick(5);
  c.restart(follower);
  // The core hands back the committed entries it knows of from its disk at once;
  // the rest arrives from the leader.
  assert.ok(c.runUntil(() => c.applied(follower).length === 6, 100));
  assert.deepEqual(c.applied(follower), before);
  assert.throws(() => c.restart(follower), /it is up/);
});

Deno.test("cluster: a crash before persisting leaves the disk as it was", () => {
  const c = new SimCluster({ size: 3, seed: 9 });
  assert.ok(c.runUntil(() => c.stableLeader() !== undefined, 200));
  const lead = c.stableLeader()!;
  assert.ok(c.runUntil(() => c.ids.every((id) => c.applied(id).length === 1), 100));
  const follower = c.ids.find((id) => id !== lead)!;
  const lastBefore = c.disk(follower).lastIndex();
  c.crashMidReady(follower, "before_persist");
  c.propose(lead, enc.encode("lost-on-one"));
  assert.ok(c.runUntil(() => !c.isUp(follower), 50), "the follower crashed on its next write");
  assert.equal(c.disk(follower).lastIndex(), lastBefore);
  assert.equal(c.stats.crashesMidReady, 1);
  c.restart(follower);
  assert.ok(c.runUntil(() => c.applied(follower).length === 2, 100), "it catches up");

  // after_persist: the entry is durable but the acknowledgement never left.
  const other = c.ids.find((id) => id !== lead && id !== follower)!;
  c.crashMidReady(other, "after_persist");
  const { index } = c.propose(lead, enc.encode("durable"));
  assert.ok(c.runUntil(() => !c.isUp(other), 50));
  assert.equal(c.disk(other).lastIndex(), index);
});

Deno.test("cluster: a minority partition loses its leader; healing brings everyone back", () => {
  const c = new SimCluster({ size: 5, seed: 21 });
  assert.ok(c.runUntil(() => c.stableLeader() !== undefined, 200));
  const old = c.stableLeader()!;
  const rest = c.ids.filter((id) => id !== old);
  c.partition([old, rest[0]!], rest.slice(1));
  assert.ok(
    c.runUntil(() => {
      const l = c.leader();
      return l !== undefined && rest.slice(1).includes(l);
    }, 300),
    "the majority side elects a leader",
  );
  c.heal();
  assert.ok(c.runUntil(() => c.stableLeader() !== undefined, 300));
  const lead = c.stableLeader()!;
  const { index } = c.propose(lead, enc.encode("after"));
  assert.ok(c.runUntil(() => c.ids.every((id) => c.applied(id).length >= index), 100));
  checkLogsMatch(new Map(c.ids.map((id) => [id, c.disk(id)])));
  checkAppliedAgree(new Map(c.ids.map((id) => [id, c.applied(id)])));
});

function throwsViolation(property: string, fn: () => void): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InvariantViolation, `expected an InvariantViolation, got ${e}`);
    assert.equal(e.property, property);
    return true;
  });
}

Deno.test("invariants: Election Safety catches two leaders in one term, even at different times", () => {
  const ck = new InvariantChecker();
  ck.observeRole(1, 3, "leader");
  ck.observeRole(1, 3, "leader"); // the same leader again is fine
  ck.observeRole(1, 4, "follower");
  ck.observeRole(2, 4, "leader");
  throwsViolation("Election Safety", () => ck.observeRole(3, 3, "leader"));
  assert.throws(() => ck.observeRole(3, 3, "leader"), /nodes 1 and 3 were both leader in term 3/);
});

Deno.test("invariants: State Machine Safety catches divergent applied entries", () => {
  const ck = new InvariantChecker();
  const log1 = storageWith([entry(1, 1, "a"), entry(1, 2, "b")]);
  const log2 = storageWith([entry(1, 1, "a"), entry(2, 2, "c")]);
  ck.observeApply(1, 1, { index: 1, term: 1, data: enc.encode("a") }, log1);
  ck.observeApply(2, 2, { index: 1, term: 1, data: enc.encode("a") }, log2);
  ck.observeApply(1, 1, { index: 2, term: 1, data: enc.encode("b") }, log1);
  throwsViolation(
    "State Machine Safety",
    () => ck.observeApply(2, 2, { index: 2, term: 2, data: enc.encode("c") }, log2),
  );
  // Same term, different data is caught too.
  const ck2 = new InvariantChecker();
  ck2.observeApply(1, 1, { index: 1, term: 1, data: enc.encode("a") }, log1);
  throwsViolation(
    "State Machine Safety",
    () => ck2.observeCommit(2, 1, 1, storageWith([entry(1, 1, "z")])),
  );
  // And by the whole-run comparison.
  throwsViolation("State Machine Safety", () =>
    checkAppliedAgree(
      new Map([
        [1, [{ index: 1, term: 1, data: enc.encode("a") }]],
        [2, [{ index: 1, term: 1, data: enc.encode("b") }]],
      ]),
    ));
});

Deno.test("invariants: applying out of order, twice, or before the entry is durable is caught", () => {
  const ck = new InvariantChecker();
  const log = storageWith([entry(1, 1), entry(1, 2)]);
  throwsViolation(
    "State Machine Safety",
    () => ck.observeApply(1, 1, { index: 2, term: 1, data: new Uint8Array() }, log),
  );
  ck.observeApply(1, 1, { index: 1, term: 1, data: new Uint8Array() }, log);
  throwsViolation(
    "State Machine Safety",
    () => ck.observeApply(1, 1, { index: 1, term: 1, data: new Uint8Array() }, log),
  );
  throwsViolation(
    "State Machine Safety",
    () => ck.observeApply(2, 1, { index: 1, term: 1, data: new Uint8Array() }, storageWith([])),
  );
  // After a restart the replay starts over at 1.
  ck.observeRestart(1);
  ck.observeApply(1, 1, { index: 1, term: 1, data: new Uint8Array() }, log);
});

Deno.test("invariants: the Ready contract catches entries handed out to apply before durable", () => {
  const ck = new InvariantChecker();
  const log = storageWith([entry(1, 1), entry(1, 2)]);
  ck.checkCommittedDurable(1, [entry(1, 1), entry(1, 2)], log, 3);
  throwsViolation("Ready Contract", () => ck.checkCommittedDurable(1, [entry(1, 3)], log, 3));
  throwsViolation("Ready Contract", () => ck.checkCommittedDurable(1, [entry(2, 2)], log, 2));
  throwsViolation("Ready Contract", () => ck.checkCommittedDurable(1, [entry(1, 2)], log, 2));
});

Deno.test("invariants: Log Matching catches logs that share an entry but differ before it", () => {
  const ck = new InvariantChecker();
  const a = [entry(1, 1, "x"), entry(2, 2, "y")];
  ck.observeAppend(1, a, storageWith(a), 0);
  const b = [entry(1, 1, "x"), entry(2, 2, "y")];
  ck.observeAppend(2, b, storageWith(b), 0);
  const c = [entry(1, 1, "q"), entry(1, 2, "r")];
  // Different entries at index 1 in term 1: the second log's (1,1) differs.
  throwsViolation("Log Matching", () => ck.observeAppend(3, c, storageWith(c), 0));
  const d = [entry(2, 1, "x"), entry(2, 2, "y")];
  ck.observeAppend(4, d.slice(0, 1), storageWith(d.slice(0, 1)), 0);
  // (2,2) again, but after term 2 at index 1 instead of term 1.
  throwsViolation("Log Matching", () => ck.observeAppend(4, d.slice(1), storageWith(d), 1));
  // Terms going down along a log.
  const e = [entry(3, 1), entry(2, 2)];
  throwsViolation("Log Matching", () => ck.observeAppend(5, e, storageWith(e), 0));
  // The full comparison.
  throwsViolation("Log Matching", () =>
    checkLogsMatch(
      new Map([[1, storageWith([entry(1, 1, "a"), entry(2, 2)])], [
        2,
        storageWith([entry(1, 1, "b"), entry(2, 2)]),
      ]]),
    ));
  checkLogsMatch(
    new Map([[1, storageWith([entry(1, 1), entry(2, 2)])], [2, storageWith([entry(1, 1)])]]),
  );
});

Deno.test("invariants: Leader Completeness catches a later leader missing a committed entry", () => {
  const ck = new InvariantChecker();
  const full = storageWith([entry(1, 1), entry(1, 2, "committed")]);
  ck.observeRole(1, 1, "leader");
  ck.observeCommit(1, 1, 2, full);
  // A stale leader of the same term (or earlier) need not have it...
  ck.checkLeaderCompleteness(1, 1, storageWith([entry(1, 1)]));
  // ...but a leader of a later term must.
  ck.checkLeaderCompleteness(2, 2, full);
  throwsViolation(
    "Leader Completeness",
    () => ck.checkLeaderCompleteness(3, 3, storageWith([entry(1, 1), entry(3, 2, "other")])),
  );
  throwsViolation(
    "Leader Completeness",
    () => ck.checkLeaderCompleteness(3, 4, storageWith([entry(1, 1)])),
  );
});

Deno.test("invariants: a leader overwriting its own log, or a commit index going back, is caught", () => {
  const ck = new InvariantChecker();
  const log = storageWith([entry(1, 1), entry(1, 2)]);
  ck.observeRole(1, 1, "leader");
  throwsViolation("Leader Append-Only", () => ck.observeAppend(1, [entry(1, 2, "new")], log, 2));
  ck.observeRole(1, 2, "follower");
  ck.observeAppend(1, [entry(2, 2, "new")], storageWith([entry(1, 1), entry(2, 2, "new")]), 2);

  ck.observeCommit(2, 1, 2, log);
  throwsViolation("Commit Monotonicity", () => ck.observeCommit(2, 1, 1, log));
  ck.observeCrash(2);
  ck.observeCommit(2, 1, 1, log); // a restarted node may come back with a lower commit
});

Deno.test("invariants: the cluster reports a violation with the property named", () => {
  // Feed the cluster's own checker a second leader for a term it saw led.
  const c = new SimCluster({ size: 3, seed: 4 });
  assert.ok(c.runUntil(() => c.stableLeader() !== undefined, 200));
  const lead = c.stableLeader()!;
  const term = c.status(lead)!.term;
  assert.equal(c.checker.leaderOf(term), lead);
  const other = c.ids.find((id) => id !== lead)!;
  throwsViolation("Election Safety", () => c.checker.observeRole(other, term, "leader"));
});

/** Ticks one at a time until `pred` holds; fails the test after `max` ticks. */

Deno.test("sim: with write delays a node steps messages and ticks while its write is in flight, and reads are checked", () => {
  const c = new SimCluster({ size: 3, seed: 7, writeDelay: { min: 20, max: 20 } });
  const lead = (() => {
    c.runUntil(() => c.stableLeader() !== undefined, 300);
    return c.stableLeader()!;
  })();
  const { index } = c.propose(lead, new TextEncoder().encode("x"));
  c.readIndex(lead);
  c.runUntil(() => c.ids.every((id) => c.applied(id).some((e) => e.index === index)), 300);
  assert.ok(c.ids.every((id) => c.applied(id).some((e) => e.index === index)));
  assert.ok(c.stats.asyncWrites > 0, "writes took time");
  assert.ok(c.stats.stepsDuringWrite > 0, "messages arrived while writes were in flight");
  assert.ok(c.stats.ticksDuringWrite > 0, "ticks arrived while writes were in flight");
  assert.equal(c.stats.readsConfirmed, 1);
  assert.equal(c.stats.readsServed, 1);
});

Deno.test("network: drop hooks see every lost message, once per copy", () => {
  const down = new Set<NodeId>([3]);
  const { net } = testNetwork(1, (id) => !down.has(id));
  const lost: string[] = [];
  const stop = net.onDrop((m, reason) => lost.push(`${m.from}->${m.to} ${reason}`));
  net.cut(1, 2);
  net.send(hb(1, 2));
  net.send(hb(1, 3));
  net.send(hb(2, 1));
  net.advanceTo(net.now + 100, () => {});
  net.heal();
  net.send(hb(2, 1));
  net.clearInFlight();
  stop();
  net.setFaults({ drop: 1 });
  net.send(hb(2, 1));
  assert.deepEqual(lost, ["1->2 cut", "1->3 down", "2->1 cleared"]);
});

Deno.test("state machine: the hash chain tells histories apart and survives a snapshot round trip", () => {
  const a = applyEntry(applyEntry(INITIAL_STATE, entry(1, 1, "x")), entry(1, 2, "y"));
  const b = applyEntry(applyEntry(INITIAL_STATE, entry(1, 1, "x")), entry(2, 2, "y"));
  const c = applyEntry(applyEntry(INITIAL_STATE, entry(1, 1, "x")), entry(1, 2, "z"));
  assert.equal(a.index, 2);
  assert.notEqual(a.hash, b.hash, "another term");
  assert.notEqual(a.hash, c.hash, "other data");
  assert.deepEqual(decodeState(encodeState(a)), a);
  assert.throws(() => decodeState(new Uint8Array(3)), /of 3 bytes/);
  assert.throws(
    () => applyEntry(a, entry(1, 4)),
    /Cannot apply index 4 to a state machine at index 2/,
  );
});

Deno.test("invariants: State Machine Safety catches a restored state that differs from one applied at its index", () => {
  const ck = new InvariantChecker();
  ck.observeState(1, 5, 111, "applied");
  ck.observeRestore(2, 5, 111);
  throwsViolation("State Machine Safety", () => ck.observeRestore(3, 5, 222));
  throwsViolation("State Machine Safety", () => ck.observeState(2, 5, 333, "applied"));
  // A state machine never goes back: restoring below what it applied.
  const log = storageWith([entry(1, 1), entry(1, 2)]);
  ck.observeApply(4, 1, { index: 1, term: 1, data: new Uint8Array() }, log);
  ck.observeApply(4, 1, { index: 2, term: 1, data: new Uint8Array() }, log);
  throwsViolation("State Machine Safety", () => ck.observeRestore(4, 1, 0));
  // After a restore, entries continue from the snapshot's index.
  ck.observeRestore(4, 5, 111);
  throwsViolation(
    "State Machine Safety",
    () => ck.observeApply(4, 1, { index: 3, term: 1, data: new Uint8Array() }, log),
  );
});

Deno.test("sim: a crash while a node writes its snapshot keeps the old snapshot or the new one", () => {
  const outcomes = new Set<string>();
  for (let seed = 1; seed <= 12; seed++) {
    const c = new SimCluster({ size: 3, seed, writeDelay: { min: 30, max: 30 } });
    assert.ok(c.runUntil(() => c.stableLeader() !== undefined, 300));
    const lead = c.stableLeader()!;
    for (let i = 0; i < 5; i++) c.propose(lead, enc.encode(`v${i}`));
    assert.ok(c.runUntil(() => c.ids.every((id) => c.machineState(id).index === 6), 300));
    const x = c.ids.find((id) => id !== lead)!;
    assert.ok(c.compact(x, 0));
    assert.deepEqual(c.snapshotting(), [x]);
    assert.equal(c.compact(x, 0), false, "one snapshot write at a time");
    c.crash(x);
    const disk = c.disk(x);
    const snap = disk.snapshot().meta.index;
    assert.ok(snap === 0 || snap === 6, `snapshot at ${snap}`);
    assert.equal(disk.firstIndex(), snap + 1, "compacted exactly when the snapshot is there");
    outcomes.add(snap === 0 ? "old" : "new");
    c.restart(x);
    assert.ok(c.runUntil(() => c.machineState(x).index === 6, 100));
    assert.equal(c.stats.crashesDuringSnapshotTake, 1);
  }
  assert.deepEqual([...outcomes].sort(), ["new", "old"]);
});
