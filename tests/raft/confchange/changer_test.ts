/**
 * Configuration math (etcd-io/raft's confchange): simple changes, entering and
 * leaving joint configurations, demotion through learnersNext, and the leader's
 * stricter validation with its messages.
 */
import assert from "node:assert/strict";
import { nextConfState, validateConfChange } from "../../../src/raft/confchange/changer.ts";
import { ConfChangeRejected } from "../../../src/raft/errors.ts";
import {
  type ConfChange,
  type ConfChangeSingle,
  type ConfState,
  confStateOf,
} from "../../../src/raft/types.ts";

function cc(
  changes: ConfChangeSingle[],
  transition: "auto" | "explicit" = "auto",
): ConfChange {
  return { changes, transition, context: new Uint8Array() };
}
const add = (nodeId: number): ConfChangeSingle => ({ type: "add_voter", nodeId });
const learner = (nodeId: number): ConfChangeSingle => ({ type: "add_learner", nodeId });
const remove = (nodeId: number): ConfChangeSingle => ({ type: "remove", nodeId });
const LEAVE = cc([]);

function rejected(cs: ConfState, change: ConfChange, why: RegExp): void {
  assert.throws(() => validateConfChange(cs, change), (e: unknown) => {
    assert.ok(e instanceof ConfChangeRejected, `not a ConfChangeRejected: ${e}`);
    assert.match(e.message, why);
    return true;
  });
}

Deno.test("a single change is made directly: one voter at a time is safe (§4.1)", () => {
  const cs = confStateOf([1, 2, 3]);
  assert.deepEqual(nextConfState(cs, cc([add(4)])), confStateOf([1, 2, 3, 4]));
  assert.deepEqual(nextConfState(cs, cc([remove(2)])), confStateOf([1, 3]));
  assert.deepEqual(nextConfState(cs, cc([learner(4)])), confStateOf([1, 2, 3], [4]));
  // Promotion of a learner, demotion of a voter.
  assert.deepEqual(
    nextConfState(confStateOf([1, 2, 3], [4]), cc([add(4)])),
    confStateOf([1, 2, 3, 4]),
  );
  assert.deepEqual(nextConfState(cs, cc([learner(3)])), confStateOf([1, 2], [3]));
});

Deno.test("several changes enter a joint configuration, left automatically or explicitly (§4.3)", () => {
  const cs = confStateOf([1, 2, 3]);
  const joint = nextConfState(cs, cc([add(4), remove(1)]));
  assert.deepEqual(joint, {
    voters: [2, 3, 4],
    learners: [],
    votersOutgoing: [1, 2, 3],
    learnersNext: [],
    autoLeave: true,
  });
  assert.deepEqual(nextConfState(joint, LEAVE), confStateOf([2, 3, 4]));
  // Explicit: a single change enters a joint state too, and stays until left.
  const explicit = nextConfState(cs, cc([add(4)], "explicit"));
  assert.equal(explicit.autoLeave, false);
  assert.deepEqual(explicit.votersOutgoing, [1, 2, 3]);
  assert.deepEqual(nextConfState(explicit, LEAVE), confStateOf([1, 2, 3, 4]));
});

Deno.test("a voter demoted while joint waits in learnersNext, a learner once the joint state is left", () => {
  const joint = nextConfState(confStateOf([1, 2, 3]), cc([learner(3), add(4)]));
  assert.deepEqual(joint.voters, [1, 2, 4]);
  assert.deepEqual(joint.votersOutgoing, [1, 2, 3]);
  assert.deepEqual(joint.learnersNext, [3]);
  assert.deepEqual(joint.learners, []);
  assert.deepEqual(nextConfState(joint, LEAVE), confStateOf([1, 2, 4], [3]));
});

Deno.test("the leader refuses changes that are invalid or would do nothing, saying why", () => {
  const cs = confStateOf([1, 2, 3], [4]);
  rejected(cs, cc([add(2)]), /node 2 is already a voter/);
  rejected(cs, cc([learner(4)]), /node 4 is already a learner/);
  rejected(cs, cc([remove(9)]), /node 9 is not a member/);
  rejected(cs, cc([add(0)]), /node id 0 is not a positive integer/);
  rejected(cs, cc([add(5), remove(5)]), /node 5 is named more than once/);
  rejected(cs, LEAVE, /not joint, there is nothing to leave/);
  rejected(confStateOf([1]), cc([remove(1)]), /remove every voter/);
  rejected(cs, cc([remove(1), remove(2), remove(3)]), /remove every voter/);
  const joint = nextConfState(cs, cc([add(5), add(6)]));
  rejected(joint, cc([add(7)]), /joint configuration is in force; it must be left/);
  // And what is valid is what nextConfState computes.
  assert.deepEqual(validateConfChange(cs, cc([add(4)])), confStateOf([1, 2, 3, 4]));
});

Deno.test("applying a change that cannot be made at all is refused the same way on every node", () => {
  assert.throws(() => nextConfState(confStateOf([1, 2]), LEAVE), ConfChangeRejected);
  assert.throws(() => nextConfState(confStateOf([1]), cc([remove(1)])), ConfChangeRejected);
  // Lenient like etcd for what is merely redundant.
  assert.deepEqual(nextConfState(confStateOf([1, 2]), cc([add(2)])), confStateOf([1, 2]));
});
