/**
 * Snapshots and log compaction (§7, Figure 13): a leader that compacted what a
 * follower needs sends its snapshot instead, one at a time, and resumes once the
 * runtime reports the send; a follower takes a snapshot only when it tells it
 * something new, keeping its log when the log already holds the snapshot's last
 * entry; a node restarts from its snapshot plus the log after it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { seededRandom } from "../../src/raft/rand.ts";
import { RawNode, type Ready } from "../../src/raft/raw_node.ts";
import { MemoryStorage } from "../../src/raft/storage.ts";
import { type Message, message, type NodeId, type Snapshot } from "../../src/raft/types.ts";
import {
  cluster,
  electLeader,
  enc,
  entriesWithTerms,
  makeLeader,
  MessageCounter,
  type RawHarness,
  rawNode,
  tickUntil,
} from "./_scenario.ts";
import { confStateOf } from "../../src/raft/types.ts";

function snapshot(index: number, term: number, voters: NodeId[] = [1, 2, 3]): Snapshot {
  return { meta: { index, term, conf: confStateOf(voters) }, data: enc.encode(`state@${index}`) };
}

/** Handles Readies until there are none; returns every message they sent. */
function drain(h: RawHarness): Message[] {
  const out: Message[] = [];
  while (h.node.hasReady()) {
    const rd = h.handle();
    out.push(...rd.messages, ...rd.persistedMessages);
  }
  return out;
}

/** `type to` pairs of the messages to `to`, heartbeats left out. */
function toNode(msgs: readonly Message[], to: NodeId): string[] {
  return msgs.filter((m) => m.to === to && m.type !== "heartbeat").map((m) => m.type);
}

/** Node 1 as a follower of node 2 in term 1, with a durable log of entries 1..5 committed up to `commit`. */
function followerWithLog(commit: number): RawHarness {
  const h = rawNode([1, 2, 3]);
  h.node.step(
    message({
      type: "app",
      from: 2,
      to: 1,
      term: 1,
      index: 0,
      logTerm: 0,
      entries: entriesWithTerms([1, 1, 1, 1, 1]),
      commit,
    }),
  );
  drain(h);
  assert.equal(h.node.status().commit, commit);
  assert.equal(h.node.status().applied, commit);
  return h;
}

function snapMessage(snap: Snapshot): Message {
  return message({ type: "snap", from: 2, to: 1, term: 1, snapshot: snap });
}

Deno.test("a follower behind the compacted prefix catches up by snapshot", () => {
  const c = cluster(3, { writeDelay: { min: 1, max: 20 } });
  const lead = electLeader(c);
  const behind = c.ids.find((id) => id !== lead)!;
  c.crash(behind);
  for (let i = 0; i < 20; i++) c.propose(lead, enc.encode(`v${i}`));
  tickUntil(c, "the leader applies", () => c.machineState(lead).index === 21);
  assert.ok(c.compact(lead, 0));
  tickUntil(c, "the snapshot is durable", () => c.disk(lead).firstIndex() === 22);
  assert.equal(c.disk(lead).snapshot().meta.index, 21);

  const counter = new MessageCounter(c);
  c.restart(behind);
  tickUntil(c, "the follower restores the snapshot", () => c.machineState(behind).index === 21);
  assert.equal(counter.count("snap"), 1, `one snapshot sent (${counter})`);
  assert.deepEqual(c.machineState(behind), c.machineState(lead), "the same state as the leader's");
  assert.equal(c.disk(behind).snapshot().meta.index, 21);
  assert.equal(c.disk(behind).firstIndex(), 22, "its log starts after the snapshot");
  assert.deepEqual(c.applied(behind), [], "it applied no entry: the state came whole");
  assert.equal(c.stats.snapshotsInstalled, 1);

  // Replication resumes from the log after the snapshot.
  const { index } = c.propose(lead, enc.encode("after"));
  tickUntil(
    c,
    "everyone applies it",
    () => c.ids.every((id) => c.machineState(id).index === index),
  );
  assert.deepEqual(c.applied(behind).map((e) => e.index), [index]);
  for (const id of c.ids) assert.deepEqual(c.machineState(id), c.machineState(lead));
  assert.equal(c.status(lead)!.progress!.get(behind)!.state, "replicate");
  assert.equal(counter.count("snap"), 1, "no second snapshot");
});

Deno.test("a leader sends one snapshot at a time and holds appends to that follower until the send is reported", () => {
  const h = rawNode([1, 2, 3]);
  makeLeader(h, [1, 2, 3]);
  for (let i = 0; i < 10; i++) h.node.propose(enc.encode(`v${i}`));
  drain(h);
  // Node 3 holds everything; node 2 got none of it.
  h.node.step(message({ type: "app_resp", from: 3, to: 1, term: 1, index: 11 }));
  drain(h);
  assert.equal(h.node.status().applied, 11);
  h.storage.createSnapshot(11, confStateOf([1, 2, 3]), enc.encode("state@11"));
  h.storage.compact(11);

  // Node 2's heartbeat answer draws an append at 11, which it rejects: everything
  // it lacks (2..11) is compacted.
  h.node.step(message({ type: "heartbeat_resp", from: 2, to: 1, term: 1 }));
  assert.deepEqual(toNode(drain(h), 2), ["app"]);
  h.node.step(
    message({
      type: "app_resp",
      from: 2,
      to: 1,
      term: 1,
      index: 11,
      reject: true,
      rejectHint: 1,
      logTerm: 1,
    }),
  );
  const sent = drain(h).filter((m) => m.to === 2);
  assert.deepEqual(sent.map((m) => m.type), ["snap"]);
  assert.deepEqual(sent[0]!.snapshot!.meta, { index: 11, term: 1, conf: confStateOf([1, 2, 3]) });
  assert.deepEqual(h.node.status().progress!.get(2), {
    match: 1,
    next: 12,
    state: "snapshot",
    pendingSnapshot: 11,
    isLearner: false,
  });

  // While it is in flight: no append, no second snapshot, whatever happens.
  h.node.propose(enc.encode("more"));
  h.node.step(message({ type: "heartbeat_resp", from: 2, to: 1, term: 1 }));
  h.node.tick();
  assert.deepEqual(toNode(drain(h), 2), []);

  // The transport reports it delivered: the leader probes past it, waiting for
  // the follower's answer, which puts it back to streaming from the log.
  h.node.reportSnapshot(2, "finish");
  assert.deepEqual(toNode(drain(h), 2), []);
  assert.equal(h.node.status().progress!.get(2)!.state, "probe");
  h.node.step(message({ type: "app_resp", from: 2, to: 1, term: 1, index: 11 }));
  const resumed = drain(h).filter((m) => m.to === 2 && m.type === "app");
  assert.equal(resumed.length, 1);
  assert.equal(resumed[0]!.index, 11, "appends resume right after the snapshot");
  assert.deepEqual(resumed[0]!.entries.map((e) => e.index), [12]);
  assert.equal(h.node.status().progress!.get(2)!.state, "replicate");
});

Deno.test("a failed snapshot send is retried once the follower answers again", () => {
  const h = rawNode([1, 2, 3]);
  makeLeader(h, [1, 2, 3]);
  for (let i = 0; i < 5; i++) h.node.propose(enc.encode(`v${i}`));
  drain(h);
  h.node.step(message({ type: "app_resp", from: 3, to: 1, term: 1, index: 6 }));
  drain(h);
  h.storage.createSnapshot(6, confStateOf([1, 2, 3]), enc.encode("state@6"));
  h.storage.compact(6);
  h.node.step(
    message({ type: "app_resp", from: 2, to: 1, term: 1, index: 6, reject: true, rejectHint: 1 }),
  );
  assert.deepEqual(toNode(drain(h), 2), ["snap"]);

  // Lost: the leader forgets it and probes from the follower's match, paused
  // until it hears from the follower (no tight resend loop).
  h.node.reportSnapshot(2, "failure");
  assert.deepEqual(toNode(drain(h), 2), []);
  assert.deepEqual(h.node.status().progress!.get(2), {
    match: 1,
    next: 2,
    state: "probe",
    pendingSnapshot: 0,
    isLearner: false,
  });
  // A report for a snapshot no longer pending changes nothing.
  h.node.reportSnapshot(2, "finish");
  assert.equal(h.node.status().progress!.get(2)!.next, 2);
  // The follower answers a heartbeat: entry 2 is compacted, so the snapshot again.
  h.node.step(message({ type: "heartbeat_resp", from: 2, to: 1, term: 1 }));
  const again = drain(h).filter((m) => m.to === 2 && m.type !== "heartbeat");
  assert.deepEqual(again.map((m) => m.type), ["snap"]);
  assert.equal(again[0]!.snapshot!.meta.index, 6);
});

Deno.test("a snapshot lost on the network is sent again and the follower catches up", () => {
  const c = cluster(3);
  const lead = electLeader(c);
  const behind = c.ids.find((id) => id !== lead)!;
  c.crash(behind);
  for (let i = 0; i < 10; i++) c.propose(lead, enc.encode(`v${i}`));
  tickUntil(c, "the leader applies", () => c.machineState(lead).index === 11);
  assert.ok(c.compact(lead, 0));
  // The first snapshot the leader sends is lost: the link to the follower is cut
  // just as it is sent, and stays cut a while.
  let snaps = 0;
  c.network.tap((m) => {
    if (m.type === "snap" && ++snaps === 1) c.cut(lead, behind);
  });
  c.restart(behind);
  tickUntil(c, "the first snapshot is sent and lost", () => c.stats.snapshotsReportedFailed === 1);
  assert.equal(c.machineState(behind).index, 1, "only what its own disk held");
  c.tick(30);
  assert.equal(snaps, 1, "no resend while the follower cannot be heard from");
  c.heal();
  tickUntil(c, "the follower restores the snapshot", () => c.machineState(behind).index === 11);
  assert.equal(snaps, 2);
  assert.equal(c.stats.snapshotsReportedFinished, 1);
  assert.deepEqual(c.machineState(behind), c.machineState(lead));
});

Deno.test("a snapshot the follower's log already covers keeps the log and moves the commit index (Figure 13 step 6)", () => {
  const h = followerWithLog(2);
  h.node.step(snapMessage(snapshot(4, 1)));
  const rd = h.handle();
  assert.equal(rd.snapshot, undefined, "nothing to restore");
  assert.equal(rd.hardState?.commit, 4);
  assert.deepEqual(rd.committedEntries.map((e) => e.index), [3, 4], "applied from its own log");
  assert.deepEqual(rd.persistedMessages.map((m) => [m.type, m.to, m.index]), [["app_resp", 2, 4]]);
  assert.equal(h.storage.lastIndex(), 5, "entry 5, after the snapshot's, is kept");
  assert.equal(h.storage.firstIndex(), 1);
  assert.equal(h.node.status().lastIndex, 5);
});

Deno.test("a snapshot whose last entry the follower lacks replaces its whole log (Figure 13 step 7)", () => {
  // The follower's entry 4 is of term 1; the snapshot's is of term 2.
  const h = followerWithLog(2);
  const snap = snapshot(4, 2);
  h.node.step({ ...snapMessage(snap), term: 2 });
  const rd: Ready = h.handle();
  assert.equal(rd.snapshot, snap, "handed to the runtime to persist and apply");
  assert.deepEqual(rd.committedEntries, [], "nothing is applied beside it");
  assert.deepEqual(rd.entries, []);
  assert.equal(rd.hardState?.commit, 4);
  assert.deepEqual(rd.persistedMessages.map((m) => [m.type, m.to, m.index]), [["app_resp", 2, 4]]);
  assert.equal(h.storage.snapshot(), snap);
  assert.equal(h.storage.firstIndex(), 5, "the old log is gone");
  assert.equal(h.storage.lastIndex(), 4);
  const s = h.node.status();
  assert.deepEqual([s.applied, s.commit, s.firstIndex, s.lastIndex], [4, 4, 5, 4]);
  assert.equal(h.node.hasReady(), false, "nothing left to apply");

  // The leader goes on from the snapshot.
  h.node.step(
    message({
      type: "app",
      from: 2,
      to: 1,
      term: 2,
      index: 4,
      logTerm: 2,
      entries: [{ term: 2, index: 5, type: "normal", data: enc.encode("x") }],
      commit: 5,
    }),
  );
  const applied = drain(h);
  assert.deepEqual(applied.map((m) => [m.type, m.index]), [["app_resp", 5]]);
  assert.equal(h.node.status().applied, 5);
});

Deno.test("a stale snapshot, at or below the commit index, is ignored", () => {
  const h = followerWithLog(4);
  for (const index of [3, 4]) {
    h.node.step(snapMessage(snapshot(index, 1)));
    const rd = h.handle();
    assert.equal(rd.snapshot, undefined);
    assert.equal(rd.hardState, undefined, "the commit index does not move");
    assert.deepEqual(
      rd.persistedMessages.map((m) => [m.type, m.index]),
      [["app_resp", 4]],
      "it tells the leader how far it is committed",
    );
  }
  assert.equal(h.storage.firstIndex(), 1);
  assert.equal(h.storage.lastIndex(), 5);
  assert.equal(h.storage.snapshot().meta.index, 0);
});

Deno.test("a snapshot from before this node joined is restored, and the node does not campaign under it", () => {
  // A leader sends a snapshot only to members of its configuration; one taken
  // before this node was added leaves it out, and the entries after it add it.
  const h = followerWithLog(2);
  h.node.step(snapMessage(snapshot(9, 1, [2, 3, 4])));
  const rd = h.handle();
  assert.equal(rd.snapshot?.meta.index, 9);
  assert.deepEqual(rd.persistedMessages.map((m) => [m.type, m.index]), [["app_resp", 9]]);
  assert.deepEqual(h.node.status().conf.voters, [2, 3, 4]);
  for (let i = 0; i < 50; i++) h.node.tick();
  assert.equal(h.node.status().role, "follower", "not a voter of its configuration");
});

Deno.test("a node restarts from its snapshot plus the log after it", () => {
  const c = cluster(3, { writeDelay: { min: 1, max: 10 } });
  const lead = electLeader(c);
  const x = c.ids.find((id) => id !== lead)!;
  for (let i = 0; i < 30; i++) c.propose(lead, enc.encode(`a${i}`));
  tickUntil(c, "all apply", () => c.ids.every((id) => c.machineState(id).index === 31));
  assert.ok(c.compact(x, 5));
  tickUntil(c, "the snapshot is durable", () => c.disk(x).snapshot().meta.index === 31);
  assert.equal(c.disk(x).firstIndex(), 27, "five entries kept behind the snapshot");
  // Two batches: the second's append carries the first's commit index to x's disk.
  for (let i = 0; i < 5; i++) c.propose(lead, enc.encode(`b${i}`));
  tickUntil(c, "all apply", () => c.ids.every((id) => c.machineState(id).index === 36));
  for (let i = 5; i < 10; i++) c.propose(lead, enc.encode(`b${i}`));
  tickUntil(c, "all apply", () => c.ids.every((id) => c.machineState(id).index === 41));
  const want = c.machineState(lead);
  // A commit index alone is never written (mustSync): the disk's may lag a batch.
  const durable = c.disk(x).hardState().commit;
  assert.ok(durable >= 36 && durable <= 41, `x's disk holds commit ${durable}`);

  // Cut off from the others, it can rebuild only from its own disk: the snapshot,
  // then the log after it up to the commit index on disk.
  c.crash(x);
  c.isolate(x);
  c.restart(x);
  assert.equal(c.stats.restartsFromSnapshot, 1);
  tickUntil(c, "it applies its log after the snapshot", () => c.machineState(x).index === durable);
  assert.deepEqual(
    c.applied(x).map((e) => e.index),
    Array.from({ length: durable - 31 }, (_, i) => 32 + i),
    "entries after the snapshot only",
  );
  // The rest once the leader tells it the commit index again.
  c.heal();
  tickUntil(c, "it applies the rest", () => c.machineState(x).index === 41);
  assert.deepEqual(c.machineState(x), want);
  assert.deepEqual(
    c.applied(x).map((e) => e.index),
    Array.from({ length: 10 }, (_, i) => 32 + i),
    "each entry after the snapshot once",
  );
});

Deno.test("a RawNode restarted from storage with a snapshot must start at or past its index", () => {
  const storage = new MemoryStorage([1, 2, 3]);
  storage.append(entriesWithTerms([1, 1, 1, 1, 1, 1]));
  storage.setHardState({ term: 1, vote: 2, commit: 6 });
  storage.createSnapshot(4, confStateOf([1, 2, 3]), enc.encode("state@4"));
  storage.compact(4);
  assert.throws(
    () => new RawNode({ id: 1, random: seededRandom(1), applied: 0 }, storage),
    /Cannot start with applied index 0: storage holds a snapshot at index 4.*restore the state machine from storage\.snapshot\(\)/,
  );
  const node = new RawNode({ id: 1, random: seededRandom(1), applied: 4 }, storage);
  const rd = node.ready();
  assert.deepEqual(rd.committedEntries.map((e) => e.index), [5, 6], "the entries after it");
});

Deno.test("a durable snapshot raises a commit index left behind by a crash", () => {
  // The snapshot was persisted, the hard state after it was not.
  const storage = new MemoryStorage([1, 2, 3]);
  storage.applySnapshot(snapshot(8, 2));
  storage.setHardState({ term: 2, vote: 0, commit: 3 });
  const node = new RawNode({ id: 1, random: seededRandom(1), applied: 8 }, storage);
  assert.equal(node.status().commit, 8);
  assert.equal(node.status().firstIndex, 9);
  assert.equal(node.ready().hardState?.commit, 8, "and persists it");
});

Deno.test("a node that snapshots what it applied before advancing can still campaign", () => {
  // The runtime applies a Ready's committed entries while its write runs, and may
  // snapshot and compact them before it calls advance: the core's applied index is
  // then below the log's first index. Deciding whether it may campaign (no
  // committed membership change unapplied) must not read the compacted entries
  // (random runs, seeds 1749 and 2079: CompactedError from campaignBlocker).
  const h = rawNode([1, 2, 3]);
  makeLeader(h, [1, 2, 3]);
  for (let i = 0; i < 3; i++) h.node.propose(enc.encode(`w${i}`));
  h.handle();
  const last = h.storage.lastIndex();
  h.node.step(message({ type: "app_resp", from: 2, to: 1, term: 1, index: last }));
  const rd = h.node.ready();
  h.storage.append(rd.entries);
  assert.equal(rd.committedEntries.at(-1)?.index, last, "the writes are handed out to apply");
  // Applied, snapshotted and compacted before advance.
  h.storage.createSnapshot(last, confStateOf([1, 2, 3]), enc.encode(`state@${last}`));
  h.storage.compact(last);
  // A newer leader's heartbeat makes it a follower; then it times out and campaigns.
  h.node.step(message({ type: "heartbeat", from: 2, to: 1, term: 2 }));
  h.node.campaign();
  assert.equal(h.node.status().role, "candidate");
  h.node.advance(rd);
});
