/**
 * Log replication (§5.3): agreement, catching up, fast back-up, and the
 * leader's pipeline (dissertation §10.2.1).
 */
import assert from "node:assert/strict";
import {
  appliedCommands,
  cluster,
  electLeader,
  enc,
  makeLeader,
  MessageCounter,
  rawNode,
  seedLog,
  tickUntil,
} from "./_scenario.ts";

Deno.test("basic agreement: commands proposed at the leader are applied on every node, in order", () => {
  const c = cluster(5);
  const lead = electLeader(c);
  const want: string[] = [];
  for (let i = 0; i < 20; i++) {
    want.push(`cmd${i}`);
    c.propose(lead, enc.encode(`cmd${i}`));
    if (i % 3 === 0) c.tick(1);
  }
  tickUntil(
    c,
    "every node applies all 20",
    () => c.ids.every((id) => appliedCommands(c, id).length === 20),
  );
  for (const id of c.ids) assert.deepEqual(appliedCommands(c, id), want, `node ${id}`);
});

Deno.test("a proposal at a follower is refused with the leader's id", () => {
  const c = cluster(3);
  const lead = electLeader(c);
  const follower = c.ids.find((id) => id !== lead)!;
  assert.throws(
    () => c.propose(follower, enc.encode("x")),
    (e: Error & { leader?: number }) => e.name === "NotLeaderError" && e.leader === lead,
  );
});

Deno.test("a follower that failed catches up when it returns", () => {
  const c = cluster(3);
  const lead = electLeader(c);
  const follower = c.ids.find((id) => id !== lead)!;
  c.crash(follower);
  for (let i = 0; i < 50; i++) c.propose(lead, enc.encode(`w${i}`));
  tickUntil(c, "the other two commit", () => appliedCommands(c, lead).length === 50);
  c.restart(follower);
  tickUntil(
    c,
    "the returning follower catches up",
    () => appliedCommands(c, follower).length === 50,
  );
  assert.deepEqual(appliedCommands(c, follower), appliedCommands(c, lead));
});

Deno.test("fast back-up: a follower 1,000 entries behind catches up in a handful of round trips", () => {
  const c = cluster(3, { maxSizePerMsg: 1 << 20 });
  const lead = electLeader(c);
  const follower = c.ids.find((id) => id !== lead)!;
  c.crash(follower);
  for (let i = 0; i < 1000; i++) c.propose(lead, enc.encode(`w${i}`));
  tickUntil(c, "the majority commits", () => appliedCommands(c, lead).length === 1000);
  const counter = new MessageCounter(c);
  c.restart(follower);
  tickUntil(c, "caught up", () => appliedCommands(c, follower).length === 1000);
  assert.ok(
    counter.rejectionsFrom(follower) <= 2,
    `rejections: ${counter.rejectionsFrom(follower)}`,
  );
});

Deno.test("fast back-up: a follower with 1,000 conflicting entries converges in a handful of round trips", () => {
  // Node 2 holds 1,000 entries of term 2 that never committed; nodes 1 and 3
  // hold 1,000 entries of term 3 at the same indexes. Node 1 becomes leader.
  const c = cluster(3, { preVote: false });
  const prefix = Array(10).fill(1);
  seedLog(c, 1, [...prefix, ...Array(1000).fill(3)], { term: 3, commit: 10 });
  seedLog(c, 2, [...prefix, ...Array(1000).fill(2)], { term: 3, commit: 10 });
  seedLog(c, 3, [...prefix, ...Array(1000).fill(3)], { term: 3, commit: 10 });
  const counter = new MessageCounter(c);
  c.campaign(1);
  tickUntil(c, "node 1 leads", () => c.stableLeader() === 1);
  const last = c.status(1)!.lastIndex;
  tickUntil(c, "node 2 converges", () => c.status(2)!.commit === last);
  assert.ok(counter.rejectionsFrom(2) <= 3, `rejections from node 2: ${counter.rejectionsFrom(2)}`);
  assert.equal(c.disk(2).term(1010), 3, "the term-2 entries were overwritten");
});

Deno.test("batching: proposals made between two Readies travel in one append per follower", () => {
  const h = rawNode([1, 2, 3]);
  makeLeader(h, [1, 2, 3]);
  for (let i = 0; i < 100; i++) h.node.propose(enc.encode(`b${i}`));
  const rd = h.handle();
  const apps = rd.messages.filter((m) => m.type === "app" && m.entries.length > 0);
  assert.deepEqual(apps.map((m) => m.to).sort(), [2, 3], "one append per follower");
  for (const m of apps) assert.equal(m.entries.length, 100);
});

Deno.test("pipelining: several appends are in flight to a follower before any is acknowledged", () => {
  // Slow links (30 ms each way, 3 ticks): proposals made on consecutive ticks go
  // out at once, without waiting for the previous append's answer.
  const c = cluster(3, { faults: { minDelay: 30, maxDelay: 30 } });
  const lead = electLeader(c);
  c.tick(20);
  const follower = c.ids.find((id) => id !== lead)!;
  let appsOut = 0;
  let maxOutstanding = 0;
  const untap = c.network.tap((m) => {
    if (m.type === "app" && m.to === follower && m.entries.length > 0) appsOut++;
    if (m.type === "app_resp" && m.from === follower && !m.reject && m.index > 0) {
      appsOut = Math.max(0, appsOut - 1);
    }
    maxOutstanding = Math.max(maxOutstanding, appsOut);
  });
  for (let i = 0; i < 4; i++) {
    c.propose(lead, enc.encode(`p${i}`));
    c.tick(1);
  }
  tickUntil(c, "all applied", () => appliedCommands(c, follower).length === 4);
  untap();
  assert.ok(maxOutstanding >= 3, `at most ${maxOutstanding} appends were in flight at once`);
});

Deno.test("the leader sends new entries before its own write is durable, and counts its copy only after", () => {
  // One node: its own copy is the whole majority.
  const solo = rawNode([1]);
  solo.node.campaign();
  while (solo.node.hasReady()) solo.handle();
  const { index } = solo.node.propose(enc.encode("x"));
  const rd = solo.node.ready();
  assert.deepEqual(rd.entries.map((e) => e.index), [index], "to persist");
  assert.equal(solo.node.status().commit, index - 1, "not committed before the write");
  solo.storage.append(rd.entries);
  solo.node.advance(rd);
  assert.equal(solo.node.status().commit, index, "committed once durable");
  assert.deepEqual(solo.node.ready().committedEntries.map((e) => e.index), [index]);

  // Three nodes: the appends to followers are in `messages` (send at once), not
  // in `persistedMessages` (which wait for the leader's write).
  const h = rawNode([1, 2, 3]);
  makeLeader(h, [1, 2, 3]);
  h.node.propose(enc.encode("y"));
  const r = h.node.ready();
  assert.equal(r.entries.length, 1, "the entry is still to be persisted");
  assert.deepEqual(
    r.messages.filter((m) => m.type === "app" && m.entries.length > 0).map((m) => m.to).sort(),
    [2, 3],
    "yet the appends may go out now",
  );
  assert.equal(r.persistedMessages.length, 0);
});

Deno.test("a follower that missed a whole in-flight window catches up after healing", () => {
  // The leader streams appends to a follower in replicate state, up to
  // maxInflightMsgs unacknowledged. If all of them are lost, the window stays full
  // and nothing more is sent to that follower unless the leader frees a slot on a
  // sign of life (a heartbeat response): found by seed 11 of random_test.ts.
  for (const maxInflightMsgs of [1, 4, 256]) {
    const c = cluster(3, { maxInflightMsgs });
    const lead = electLeader(c);
    const follower = c.ids.find((id) => id !== lead)!;
    c.tick(2);
    c.cut(lead, follower);
    for (let i = 0; i < maxInflightMsgs + 10; i++) c.propose(lead, enc.encode(`p${i}`));
    c.tick(5);
    c.heal();
    const { index } = c.propose(lead, enc.encode("after"));
    tickUntil(
      c,
      `window ${maxInflightMsgs}: the follower catches up`,
      () => c.applied(follower).length >= index,
      2 * index + 100,
    );
  }
});

Deno.test("a follower whose disk is slower than a heartbeat is sent its probe once", () => {
  // Its answer to a heartbeat needs no fsync and overtakes its answer to the probe,
  // which waits for one. The leader used to take each heartbeat answer for a lost
  // probe and send the same entries again (up to maxSizePerMsg each time); now it
  // sends an empty append, whose answer settles the probe either way.
  const c = cluster(3);
  const lead = electLeader(c);
  const slow = c.ids.find((id) => id !== lead)!;
  c.crash(slow);
  let last = 0;
  for (let i = 0; i < 20; i++) last = c.propose(lead, enc.encode(`p${i}`)).index;
  tickUntil(c, "the others commit", () => c.status(lead)!.commit >= last);
  const sent = new Map<number, number>(); // index -> times sent to the slow follower
  const untap = c.network.tap((m) => {
    if (m.type !== "app" || m.to !== slow) return;
    for (const e of m.entries) sent.set(e.index, (sent.get(e.index) ?? 0) + 1);
  });
  // Each write takes 8 heartbeats.
  c.setWriteDelay(slow, { min: 8 * c.tickMs, max: 8 * c.tickMs });
  c.restart(slow);
  tickUntil(c, "the slow follower catches up", () => c.machineState(slow).index >= last);
  untap();
  assert.ok(sent.size > 0, "it was sent the entries it missed");
  const most = Math.max(...sent.values());
  assert.equal(most, 1, `an entry was sent to the slow follower ${most} times`);
});
