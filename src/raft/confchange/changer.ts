/**
 * Membership change as configuration math, after etcd-io/raft's
 * confchange.Changer: given the configuration in force and a {@link ConfChange},
 * the next configuration, or a {@link ConfChangeRejected} saying why not.
 *
 * - `simple`: at most one voter added or removed (learners freely): any
 *   majority of the old configuration intersects any majority of the new one, so
 *   no joint state is needed (dissertation §4.1).
 * - `enterJoint`: C_old becomes the outgoing half, the changes make the incoming
 *   half C_new; decisions need both until the joint state is left (§4.3).
 * - `leaveJoint`: C_new alone; demoted voters (learnersNext) become learners.
 *
 * A voter demoted while it is still in the outgoing half waits in
 * `learnersNext`: it cannot be a learner and a voter at once.
 *
 * Two levels of strictness: {@link nextConfState} is what every node runs when
 * it applies a committed change, and is lenient like etcd's (adding a voter that
 * is one already does nothing); {@link validateConfChange} is what the leader runs
 * before it appends a proposal, and also refuses changes that would do nothing or
 * name a stranger, so an operator's mistake gets an error instead of a no-op.
 *
 * @module
 */

import { ConfChangeRejected } from "../errors.ts";
import type { ConfChange, ConfChangeSingle, ConfState, NodeId } from "../types.ts";

/** A mutable working copy of a configuration. */
interface Working {
  incoming: Set<NodeId>;
  outgoing: Set<NodeId>;
  learners: Set<NodeId>;
  learnersNext: Set<NodeId>;
  autoLeave: boolean;
}

function working(cs: ConfState): Working {
  return {
    incoming: new Set(cs.voters),
    outgoing: new Set(cs.votersOutgoing),
    learners: new Set(cs.learners),
    learnersNext: new Set(cs.learnersNext),
    autoLeave: cs.autoLeave,
  };
}

const sorted = (ids: Set<NodeId>): NodeId[] => [...ids].sort((a, b) => a - b);

function frozen(w: Working): ConfState {
  return {
    voters: sorted(w.incoming),
    learners: sorted(w.learners),
    votersOutgoing: sorted(w.outgoing),
    learnersNext: sorted(w.learnersNext),
    autoLeave: w.autoLeave,
  };
}

function isJoint(w: Working): boolean {
  return w.outgoing.size > 0;
}

function isMember(w: Working, id: NodeId): boolean {
  return w.incoming.has(id) || w.outgoing.has(id) || w.learners.has(id);
}

/** How `cc` is carried out: leave the joint state, enter one, or a simple change. */
export function transitionOf(cc: ConfChange): "leave" | "joint" | "simple" {
  if (cc.changes.length === 0) return "leave";
  if (cc.transition === "explicit" || cc.changes.length > 1) return "joint";
  return "simple";
}

/**
 * The configuration after applying `cc` to `cs`, as every node computes it when
 * it applies the committed entry. Throws {@link ConfChangeRejected} for a change
 * that cannot be made at all (leaving a joint state that is not joint, removing
 * every voter, ...); the leader's {@link validateConfChange} keeps those out of the log.
 */
export function nextConfState(cs: ConfState, cc: ConfChange): ConfState {
  switch (transitionOf(cc)) {
    case "leave":
      return leaveJoint(cs);
    case "joint":
      return enterJoint(cs, cc.transition === "auto", cc.changes);
    case "simple":
      return simple(cs, cc.changes);
  }
}

/** Enters a joint configuration: the current voters become the outgoing half. */
export function enterJoint(
  cs: ConfState,
  autoLeave: boolean,
  changes: readonly ConfChangeSingle[],
): ConfState {
  const w = working(cs);
  if (isJoint(w)) throw new ConfChangeRejected("the configuration is already joint");
  if (w.incoming.size === 0) {
    throw new ConfChangeRejected("a configuration with no voters cannot become joint");
  }
  w.outgoing = new Set(w.incoming);
  apply(w, changes);
  w.autoLeave = autoLeave;
  return frozen(w);
}

/** Leaves the joint configuration: the incoming half alone decides from now on. */
export function leaveJoint(cs: ConfState): ConfState {
  const w = working(cs);
  if (!isJoint(w)) {
    throw new ConfChangeRejected("the configuration is not joint, there is nothing to leave");
  }
  for (const id of w.learnersNext) w.learners.add(id);
  w.learnersNext.clear();
  w.outgoing.clear();
  w.autoLeave = false;
  return frozen(w);
}

/** A change of at most one voter, made directly (§4.1). */
export function simple(cs: ConfState, changes: readonly ConfChangeSingle[]): ConfState {
  const w = working(cs);
  if (isJoint(w)) {
    throw new ConfChangeRejected(
      "the configuration is joint; leave it first (an automatic transition leaves by itself)",
    );
  }
  apply(w, changes);
  const before = new Set(cs.voters);
  let changed = 0;
  for (const id of w.incoming) if (!before.has(id)) changed++;
  for (const id of before) if (!w.incoming.has(id)) changed++;
  if (changed > 1) {
    throw new ConfChangeRejected("more than one voter changed without entering a joint state");
  }
  return frozen(w);
}

function apply(w: Working, changes: readonly ConfChangeSingle[]): void {
  for (const c of changes) {
    switch (c.type) {
      case "add_voter":
        // A learner (or a learner-to-be) is promoted; a stranger joins as a voter.
        w.learners.delete(c.nodeId);
        w.learnersNext.delete(c.nodeId);
        w.incoming.add(c.nodeId);
        break;
      case "add_learner":
        if (w.learners.has(c.nodeId)) break;
        w.incoming.delete(c.nodeId);
        // Still an outgoing voter: it becomes a learner when the joint state is left.
        if (w.outgoing.has(c.nodeId)) w.learnersNext.add(c.nodeId);
        else w.learners.add(c.nodeId);
        break;
      case "remove":
        w.incoming.delete(c.nodeId);
        w.learners.delete(c.nodeId);
        w.learnersNext.delete(c.nodeId);
        break;
    }
  }
  if (w.incoming.size === 0) throw new ConfChangeRejected("it would remove every voter");
}

/**
 * What the leader checks before it appends a proposed change, against the
 * configuration in force: everything {@link nextConfState} refuses, and also
 * node ids that are not positive integers, an id named twice, adding a voter
 * that is a voter already or a learner that is a learner already, and removing a
 * node that is not a member. Returns the configuration the change will lead to.
 */
export function validateConfChange(cs: ConfState, cc: ConfChange): ConfState {
  const w = working(cs);
  const seen = new Set<NodeId>();
  for (const c of cc.changes) {
    if (!Number.isSafeInteger(c.nodeId) || c.nodeId <= 0) {
      throw new ConfChangeRejected(`node id ${c.nodeId} is not a positive integer`);
    }
    if (seen.has(c.nodeId)) {
      throw new ConfChangeRejected(`node ${c.nodeId} is named more than once in one change`);
    }
    seen.add(c.nodeId);
    switch (c.type) {
      case "add_voter":
        if (w.incoming.has(c.nodeId)) {
          throw new ConfChangeRejected(`node ${c.nodeId} is already a voter`);
        }
        break;
      case "add_learner":
        if (w.learners.has(c.nodeId) || w.learnersNext.has(c.nodeId)) {
          throw new ConfChangeRejected(`node ${c.nodeId} is already a learner`);
        }
        break;
      case "remove":
        if (!isMember(w, c.nodeId)) {
          throw new ConfChangeRejected(`node ${c.nodeId} is not a member`);
        }
        break;
      default:
        throw new ConfChangeRejected(`unknown change type "${(c as ConfChangeSingle).type}"`);
    }
  }
  if (isJoint(w) && cc.changes.length > 0) {
    throw new ConfChangeRejected(
      "a joint configuration is in force; it must be left before another change" +
        (w.autoLeave ? " (it leaves by itself shortly)" : " (propose the empty change)"),
    );
  }
  return nextConfState(cs, cc);
}
