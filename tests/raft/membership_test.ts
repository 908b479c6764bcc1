/**
 * Membership change and leadership transfer on the simulated cluster, through
 * RawNode's API: learners, promotion, joint configurations left automatically,
 * a leader removing itself, and the rules that keep at most one change unapplied.
 * The simulator applies conf change entries as a runtime does (applyConfChange
 * in log order; the configuration is kept with the applied state and snapshots).
 */
import assert from "node:assert/strict";
import {
  ConfChangeRejected,
  LeaderTransferRefused,
  NotLeaderError,
  ProposalDroppedError,
} from "../../src/raft/errors.ts";
import {
  type ConfChange,
  type ConfChangeSingle,
  type Entry,
  type Message,
  message,
  type NodeId,
} from "../../src/raft/types.ts";
import { confStateOf } from "../../src/raft/types.ts";
import { decodeConfChange, encodeConfChange } from "../../src/raft/confchange/codec.ts";
import { seededRandom } from "../../src/raft/rand.ts";
import { RawNode } from "../../src/raft/raw_node.ts";
import { MemoryStorage } from "../../src/raft/storage.ts";
import type { SimCluster } from "./sim/cluster.ts";
import {
  appliedCommands,
  cluster,
  electLeader,
  enc,
  makeLeader,
  rawNode,
  tickUntil,
} from "./_scenario.ts";

function cc(changes: ConfChangeSingle[], transition: "auto" | "explicit" = "auto"): ConfChange {
  return { changes, transition, context: new Uint8Array() };
}

/** Proposes `change` at the leader and waits until every node in `on` applied it. */
function change(c: SimCluster, change: ConfChange, on: readonly NodeId[]): void {
  const lead = electLeader(c);
  const { index } = c.proposeConfChange(lead, change);
  tickUntil(
    c,
    `conf change at ${index} applied on ${on}`,
    () => on.every((id) => (c.status(id)?.applied ?? 0) >= index),
  );
}

function write(c: SimCluster, text: string, on: readonly NodeId[]): void {
  const lead = electLeader(c);
  c.propose(lead, enc.encode(text));
  tickUntil(
    c,
    `"${text}" applied on ${on}`,
    () => on.every((id) => appliedCommands(c, id).includes(text)),
  );
}

Deno.test("a learner catches up from the log, does not count for commit, and is promoted", () => {
  const c = cluster(3, { spares: 1 });
  write(c, "before", [1, 2, 3]);
  change(c, cc([{ type: "add_learner", nodeId: 4 }]), [1, 2, 3, 4]);
  write(c, "with learner", [1, 2, 3, 4]);
  assert.deepEqual(c.conf(4), confStateOf([1, 2, 3], [4]));
  assert.deepEqual(appliedCommands(c, 4), ["before", "with learner"]);
  const lead = electLeader(c);
  assert.equal(c.status(lead)!.progress!.get(4)!.isLearner, true);

  // With two voters down, the learner does not make a majority.
  const [a, b] = [1, 2, 3].filter((id) => id !== lead);
  c.crash(a!);
  c.crash(b!);
  const { index } = c.propose(lead, enc.encode("needs a voter"));
  c.tick(50);
  assert.ok(c.status(lead) === undefined || c.status(lead)!.commit < index);
  c.restart(a!);
  c.restart(b!);
  write(c, "after", [1, 2, 3, 4]);

  change(c, cc([{ type: "add_voter", nodeId: 4 }]), [1, 2, 3, 4]);
  assert.deepEqual(c.conf(4), confStateOf([1, 2, 3, 4]));
  assert.deepEqual(c.status(4)!.conf, confStateOf([1, 2, 3, 4]));
});

Deno.test("two changes at once go through a joint configuration, left automatically", () => {
  const c = cluster(3, { spares: 2 });
  const lead = electLeader(c);
  const { index } = c.proposeConfChange(
    lead,
    cc([{ type: "add_voter", nodeId: 4 }, { type: "add_voter", nodeId: 5 }]),
  );
  // The joint state is entered when applied...
  tickUntil(c, "joint config applied", () => (c.status(lead)?.applied ?? 0) >= index);
  assert.deepEqual(c.status(lead)!.conf, {
    voters: [1, 2, 3, 4, 5],
    learners: [],
    votersOutgoing: [1, 2, 3],
    learnersNext: [],
    autoLeave: true,
  });
  // ...and left by the leader's own empty change once applied.
  tickUntil(
    c,
    "joint config left on every node",
    () =>
      [1, 2, 3, 4, 5].every((id) =>
        c.conf(id).voters.length === 5 && c.conf(id).votersOutgoing.length === 0
      ),
  );
  assert.deepEqual(c.conf(5), confStateOf([1, 2, 3, 4, 5]));
  write(c, "five", [1, 2, 3, 4, 5]);
});

Deno.test("a leader that removes itself leads until the change applies, then steps down", () => {
  const c = cluster(3);
  const lead = electLeader(c);
  const { index } = c.proposeConfChange(lead, cc([{ type: "remove", nodeId: lead }]));
  tickUntil(c, "removal applied at the old leader", () => (c.status(lead)?.applied ?? 0) >= index);
  assert.equal(c.status(lead)!.role, "follower");
  const rest = [1, 2, 3].filter((id) => id !== lead);
  tickUntil(c, "a new leader among the others", () => {
    const l = c.stableLeader();
    return l !== undefined && l !== lead;
  });
  write(c, "without the old leader", rest);
  // The removed node never campaigns again.
  const term = c.status(lead)!.term;
  c.isolate(lead);
  c.tick(100);
  assert.equal(c.status(lead)!.term, term);
  assert.notEqual(c.status(lead)!.role, "candidate");
});

Deno.test("a second change is refused until the first is applied; invalid ones are refused with a reason", () => {
  const c = cluster(3, { spares: 2 });
  const lead = electLeader(c);
  assert.throws(
    () => c.proposeConfChange(lead, cc([{ type: "remove", nodeId: 9 }])),
    (e) => e instanceof ConfChangeRejected && /node 9 is not a member/.test(e.message),
  );
  c.proposeConfChange(lead, cc([{ type: "add_learner", nodeId: 4 }]));
  assert.throws(
    () => c.proposeConfChange(lead, cc([{ type: "add_learner", nodeId: 5 }])),
    (e) => e instanceof ProposalDroppedError && /not applied yet/.test(e.message),
  );
  const follower = [1, 2, 3].find((id) => id !== lead)!;
  assert.throws(
    () => c.proposeConfChange(follower, cc([{ type: "add_learner", nodeId: 5 }])),
    NotLeaderError,
  );
  tickUntil(c, "learner added", () => c.conf(lead).learners.includes(4));
  c.proposeConfChange(lead, cc([{ type: "add_learner", nodeId: 5 }]));
});

Deno.test("leadership moves to the node named, and is refused to learners, strangers and self", () => {
  const c = cluster(3, { spares: 1 });
  write(c, "x", [1, 2, 3]);
  change(c, cc([{ type: "add_learner", nodeId: 4 }]), [1, 2, 3, 4]);
  const lead = electLeader(c);
  const to = [1, 2, 3].find((id) => id !== lead)!;
  assert.throws(() => c.transferLeader(lead, 4), LeaderTransferRefused);
  assert.throws(() => c.transferLeader(lead, 7), LeaderTransferRefused);
  assert.throws(() => c.transferLeader(lead, lead), LeaderTransferRefused);
  const term = c.status(lead)!.term;
  c.transferLeader(lead, to);
  assert.equal(c.status(lead)!.leadTransferee, to);
  assert.throws(() => c.propose(lead, enc.encode("during")), ProposalDroppedError);
  tickUntil(c, `node ${to} leads`, () => c.stableLeader() === to, 30);
  assert.equal(c.status(to)!.term, term + 1);
  write(c, "after transfer", [1, 2, 3, 4]);
});

Deno.test("a transfer to a node that is down gives up after an election timeout", () => {
  const c = cluster(3);
  const lead = electLeader(c);
  const to = [1, 2, 3].find((id) => id !== lead)!;
  c.crash(to);
  c.transferLeader(lead, to);
  assert.throws(() => c.propose(lead, enc.encode("during")), ProposalDroppedError);
  tickUntil(c, "transfer aborted", () => c.status(lead)!.leadTransferee === 0, 25);
  assert.equal(c.status(lead)!.role, "leader");
  c.propose(lead, enc.encode("after"));
});

Deno.test("a follower forwards a transfer request to its leader", () => {
  const c = cluster(3);
  const lead = electLeader(c);
  const [f, to] = [1, 2, 3].filter((id) => id !== lead);
  c.transferLeader(f!, to!);
  tickUntil(c, `node ${to} leads`, () => c.stableLeader() === to, 30);
});

Deno.test("a node with a committed membership change not yet applied does not campaign", () => {
  // Restarted with the change committed but not applied (applied 0): campaigning
  // now would count votes under a configuration no longer in force.
  const storage = new MemoryStorage([1, 2, 3]);
  storage.append([
    { term: 1, index: 1, type: "normal", data: new Uint8Array() },
    {
      term: 1,
      index: 2,
      type: "conf_change",
      data: encodeConfChange(cc([{ type: "remove", nodeId: 3 }])),
    },
  ]);
  storage.setHardState({ term: 1, vote: 1, commit: 2 });
  const node = new RawNode({ id: 1, random: seededRandom(1), preVote: false }, storage);
  node.campaign();
  assert.equal(node.status().role, "follower");
  // The runtime applies the committed entries, the change among them...
  const rd = node.ready();
  assert.deepEqual(rd.committedEntries.map((e) => e.type), ["normal", "conf_change"]);
  assert.deepEqual(
    node.applyConfChange(decodeConfChange(rd.committedEntries[1]!.data)),
    confStateOf([1, 2]),
  );
  node.advance(rd);
  // ...and now it may campaign, under {1, 2}.
  node.campaign();
  assert.equal(node.status().role, "candidate");
  const votes = node.ready().messages.filter((m) => m.type === "vote").map((m) => m.to);
  assert.deepEqual(votes, [2]);
});

/**
 * Two RawNodes on hand-made disks, driven as the runtime drives them: every
 * Ready persisted, its committed entries applied (conf changes through
 * applyConfChange), its messages delivered to the other node.
 */
class Pair {
  readonly nodes = new Map<NodeId, { node: RawNode; storage: MemoryStorage }>();
  readonly wire: Message[] = [];

  add(id: NodeId, storage: MemoryStorage): RawNode {
    const node = new RawNode({ id, random: seededRandom(id), preVote: true }, storage);
    this.nodes.set(id, { node, storage });
    return node;
  }

  /** Handles every Ready and delivers every message until nothing moves. */
  settle(): void {
    for (let round = 0; round < 100; round++) {
      let moved = false;
      for (const { node, storage } of this.nodes.values()) {
        while (node.hasReady()) {
          moved = true;
          const rd = node.ready();
          this.wire.push(...rd.messages);
          if (rd.snapshot !== undefined) storage.applySnapshot(rd.snapshot);
          storage.append(rd.entries);
          if (rd.hardState !== undefined) storage.setHardState(rd.hardState);
          this.wire.push(...rd.persistedMessages);
          for (const e of rd.committedEntries) {
            if (e.type === "conf_change") node.applyConfChange(decodeConfChange(e.data));
          }
          node.advance(rd);
        }
      }
      for (const m of this.wire.splice(0)) {
        moved = true;
        this.nodes.get(m.to)?.node.step(m);
      }
      if (!moved) return;
    }
    throw new Error("the pair did not settle in 100 rounds");
  }
}

function demotion(): Entry[] {
  return [
    { term: 1, index: 1, type: "normal", data: new Uint8Array() },
    {
      term: 1,
      index: 2,
      type: "conf_change",
      data: encodeConfChange(cc([{ type: "add_learner", nodeId: 1 }])),
    },
  ];
}

Deno.test("a voter that lost its commit of a demotion learns it from the demoted node's refusal, and leads", () => {
  // Node 2 led {1, 2}, committed the demotion of node 1 at index 2 (on 1 and 2),
  // won term 2 alone under {2}, sent its no-op to node 1, and crashed before its
  // commit index reached its disk. It restarts under {1, 2} (the change is in its
  // log but not known committed) and needs node 1's vote; node 1 applied the
  // change, so it is a learner that never campaigns, and its log (with the no-op
  // of term 2) is ahead of node 2's. Before the fix nobody could ever lead.
  const pair = new Pair();
  const s1 = new MemoryStorage([1, 2]);
  s1.append([...demotion(), { term: 2, index: 3, type: "normal", data: new Uint8Array() }]);
  s1.setHardState({ term: 2, vote: 2, commit: 2 });
  const n1 = pair.add(1, s1);
  const s2 = new MemoryStorage([1, 2]);
  s2.append(demotion());
  s2.setHardState({ term: 2, vote: 2, commit: 1 });
  const n2 = pair.add(2, s2);
  pair.settle();
  assert.deepEqual(n1.status().conf, confStateOf([2], [1]), "node 1 applied its demotion");
  assert.deepEqual(n2.status().conf, confStateOf([1, 2]), "node 2 runs the old configuration");

  n2.campaign();
  pair.settle();
  // Node 1 refused (its log is longer) but said it committed index 2, which
  // node 2 holds with the same term: node 2 applied the demotion.
  assert.equal(n2.status().commit, 2);
  assert.deepEqual(n2.status().conf, confStateOf([2], [1]));
  n2.campaign();
  pair.settle();
  assert.equal(n2.status().role, "leader", "node 2 leads alone under {2}");
  assert.equal(n1.status().lead, 2);
});

Deno.test("a voter does not take a commit index from a refusal whose entry it holds with another term", () => {
  const pair = new Pair();
  const s1 = new MemoryStorage([1, 2]);
  s1.append([
    { term: 1, index: 1, type: "normal", data: new Uint8Array() },
    { term: 3, index: 2, type: "normal", data: new Uint8Array() },
  ]);
  s1.setHardState({ term: 3, vote: 0, commit: 2 });
  pair.add(1, s1);
  const s2 = new MemoryStorage([1, 2]);
  s2.append([
    { term: 1, index: 1, type: "normal", data: new Uint8Array() },
    { term: 2, index: 2, type: "normal", data: new Uint8Array() },
  ]);
  s2.setHardState({ term: 2, vote: 2, commit: 1 });
  const n2 = pair.add(2, s2);
  pair.settle();
  n2.campaign();
  pair.settle();
  // Index 2 of term 2 is not the committed entry 2 of term 3: nothing learned.
  assert.equal(n2.status().commit, 1);
});

Deno.test("a candidate behind in term learns the voter's term from the refusal and wins next time", () => {
  // Figure 2: "reply false if term < currentTerm", with our term. Node 2 is at
  // term 7 (another node's campaigns raised it); node 1 campaigns at term 4.
  const pair = new Pair();
  const s1 = new MemoryStorage([1, 2]);
  s1.append([{ term: 3, index: 1, type: "normal", data: new Uint8Array() }]);
  s1.setHardState({ term: 3, vote: 0, commit: 1 });
  const n1 = new RawNode({ id: 1, random: seededRandom(1), preVote: false }, s1);
  pair.nodes.set(1, { node: n1, storage: s1 });
  const s2 = new MemoryStorage([1, 2]);
  s2.append([{ term: 3, index: 1, type: "normal", data: new Uint8Array() }]);
  s2.setHardState({ term: 7, vote: 0, commit: 1 });
  const n2 = new RawNode({ id: 2, random: seededRandom(2), preVote: false }, s2);
  pair.nodes.set(2, { node: n2, storage: s2 });
  pair.settle();
  n1.campaign();
  pair.settle();
  assert.equal(n1.status().term, 7, "the refusal carried node 2's term");
  assert.equal(n1.status().role, "follower");
  n1.campaign();
  pair.settle();
  assert.equal(n1.status().role, "leader");
  assert.equal(n1.status().term, 8);
});

Deno.test("a leader does not take a commit index from a refusal that arrives after it won", () => {
  // It commits by its own quorum only (§5.4.2): a late refusal from its candidacy
  // says nothing it may act on, and the simulator holds every commit of a leader
  // to the configuration it runs (random runs, seed 2913).
  const h = rawNode([1, 2, 3]);
  makeLeader(h, [1, 2, 3]);
  h.node.propose(enc.encode("w"));
  h.handle();
  const last = h.storage.lastIndex();
  const commit = h.node.status().commit;
  assert.ok(commit < last, "the new entry is not committed yet");
  h.node.step(
    message({ type: "vote_resp", from: 3, to: 1, term: 1, reject: true, commit: last, logTerm: 1 }),
  );
  assert.equal(h.node.status().commit, commit);
});
