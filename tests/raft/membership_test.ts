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
import type { ConfChange, ConfChangeSingle, NodeId } from "../../src/raft/types.ts";
import { confStateOf } from "../../src/raft/types.ts";
import type { SimCluster } from "./sim/cluster.ts";
import { appliedCommands, cluster, electLeader, enc, tickUntil } from "./_scenario.ts";

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
