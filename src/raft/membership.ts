/**
 * Membership change on a running node, etcd-io/raft's applied-configuration
 * design: a change is proposed as a `conf_change` entry and takes effect on each
 * node when the application applies that entry and calls
 * `RawNode.applyConfChange` (confchange/changer.ts computes the next
 * configuration). It is safe because the log never holds more than one change
 * that is not applied yet (see Raft.pendingConfIndex) and no node campaigns while
 * it has a committed change left to apply, so every decision a node takes is
 * under the configuration that the log, as far as it is applied, says is in force
 * (dissertation §4.1, §4.3; the one-change-at-a-time rule also covers the bug of
 * §4.1 that a new leader must commit an entry of its term before a change:
 * pendingConfIndex starts at its last index, after every older entry).
 *
 * @module
 */

import {
  decodeConfChange,
  describeConfChange,
  encodeConfChange,
  LEAVE_JOINT,
} from "./confchange/codec.ts";
import { nextConfState, validateConfChange } from "./confchange/changer.ts";
import { ConfChangeRejected, NotLeaderError, ProposalDroppedError } from "./errors.ts";
import { abortLeaderTransfer } from "./leader_transfer.ts";
import type { Raft } from "./raft.ts";
import { ProgressTracker } from "./tracker/tracker.ts";
import { type ConfChange, type ConfState, message, NONE } from "./types.ts";

/**
 * RawNode.proposeConfChange: appends `cc` on the leader. Throws
 * {@link NotLeaderError} off the leader, {@link ProposalDroppedError} while a
 * transfer is under way or another change is not yet applied, and
 * {@link ConfChangeRejected} for a change that is invalid against the
 * configuration in force.
 */
export function proposeConfChange(r: Raft, cc: ConfChange): { index: number; term: number } {
  if (r.role !== "leader") throw new NotLeaderError(r.lead);
  if (r.leadTransferee !== NONE) {
    throw new ProposalDroppedError(
      `leadership is being transferred to node ${r.leadTransferee}`,
    );
  }
  if (r.pendingConfIndex > r.log.applied) {
    throw new ProposalDroppedError(
      `the membership change (or election) at index ${r.pendingConfIndex} is not applied yet ` +
        `(applied ${r.log.applied}); retry once it is`,
    );
  }
  const base = r.trk.confState();
  const next = validateConfChange(base, cc);
  const index = r.appendEntries([{
    type: "conf_change",
    data: encodeConfChange({ ...cc, base }),
  }]);
  r.pendingConfIndex = index;
  noteSelfRemoval(r, next);
  r.logger.info("proposed membership change", {
    term: r.term,
    index,
    change: describeConfChange(cc),
    voters: next.voters.join(","),
    votersOutgoing: next.votersOutgoing.join(","),
    learners: next.learners.join(","),
  });
  return { index, term: r.term };
}

/**
 * RawNode.applyConfChange: the application applies a committed `conf_change`
 * entry; the configuration changes now. A change that cannot be made against the
 * configuration in force (no correct leader appends one) changes nothing, the
 * same way on every node, and is logged.
 */
export function applyConfChange(r: Raft, cc: ConfChange): ConfState {
  let cs: ConfState;
  // A node that joined with an empty configuration replays changes made before
  // it knew any: it takes the one the leader validated against (carried in the
  // entry). Every other node's own configuration equals that base.
  let current = r.trk.confState();
  if (isEmptyConf(current) && cc.base !== undefined) current = cc.base;
  try {
    cs = nextConfState(current, cc);
  } catch (e) {
    if (!(e instanceof ConfChangeRejected)) throw e;
    r.logger.warn("ignoring committed membership change that cannot be made", {
      term: r.term,
      change: describeConfChange(cc),
      reason: e.message,
    });
    return r.trk.confState();
  }
  switchToConfig(r, cs);
  return cs;
}

/** Puts `cs` in force (etcd's switchToConfig). */
export function switchToConfig(r: Raft, cs: ConfState): void {
  r.trk = new ProgressTracker(cs, r.config.maxInflightMsgs, r.log.lastIndex(), r.trk);
  r.logger.info("configuration changed", {
    term: r.term,
    voters: cs.voters.join(","),
    votersOutgoing: cs.votersOutgoing.join(","),
    learners: cs.learners.join(","),
    learnersNext: cs.learnersNext.join(","),
    autoLeave: cs.autoLeave,
  });
  if (r.role !== "leader") return;
  if (!r.trk.isVoter(r.id)) {
    // Removed (or demoted): it led the configuration that included it until
    // now, and the change is committed (§4.2.2); the others elect a leader.
    // A voter of the new configuration that holds the whole log is told to
    // campaign at once (as a leadership transfer does, §3.10), so the cluster
    // need not wait an election timeout; if it cannot yet (it has not applied
    // the change), the election timeout elects someone all the same.
    const last = r.log.lastIndex();
    const heir = r.trk.config.incoming.find((id) => r.trk.get(id)?.match === last);
    r.logger.info("stepping down: this node is no longer a voter", { term: r.term, heir });
    if (heir !== undefined) r.send(message({ type: "timeout_now", from: r.id, to: heir }));
    r.becomeFollower(r.term, NONE);
    return;
  }
  // Fewer or other voters may commit more now; new members are probed at once
  // rather than at the next heartbeat.
  if (r.maybeCommit()) r.bcastAppend();
  else {
    for (const id of r.trk.progress.keys()) if (id !== r.id) r.maybeSendAppend(id, false);
  }
  if (r.leadTransferee !== NONE && !r.trk.config.incoming.includes(r.leadTransferee)) {
    abortLeaderTransfer(r, `node ${r.leadTransferee} is no longer an incoming voter`);
  }
}

/**
 * After the application advanced its applied index: a leader whose joint
 * configuration is to be left automatically proposes the empty change, once the
 * change that entered it is applied (etcd's auto-leave in appliedTo). A transfer
 * under way postpones it: the next leader does it.
 */
export function maybeAutoLeave(r: Raft): void {
  if (r.role !== "leader" || !r.trk.autoLeave || r.leadTransferee !== NONE) return;
  if (r.log.applied < r.pendingConfIndex) return;
  const index = r.appendEntries([{
    type: "conf_change",
    data: encodeConfChange({ ...LEAVE_JOINT, base: r.trk.confState() }),
  }]);
  r.pendingConfIndex = index;
  noteSelfRemoval(r, nextConfState(r.trk.confState(), LEAVE_JOINT));
  r.logger.info("leaving joint configuration automatically", { term: r.term, index });
}

/**
 * A leader whose log holds a change that takes its vote away (removal, or
 * demotion to learner) stops appending anything after it. Once the change is
 * applied it steps down, and a voter of the new configuration must be elected
 * with the votes of nodes that may not have applied the change yet, this node
 * among them: entries after the change that only this node holds would make
 * every such candidate's log "less up to date" than this one's and cost the
 * cluster its vote (a two-voter cluster demoting its leader would never elect
 * again). With nothing after it, every voter that acknowledged the change is as
 * up to date as this node.
 */
function noteSelfRemoval(r: Raft, next: ConfState): void {
  if (next.voters.includes(r.id) || next.votersOutgoing.includes(r.id)) return;
  r.selfRemovalPending = true;
  r.logger.info("this node's removal is pending: refusing proposals until it steps down", {
    term: r.term,
  });
}

/**
 * A new leader checks whether the (at most one) unapplied change in its log
 * takes its vote away; see {@link noteSelfRemoval}.
 */
export function checkPendingSelfRemoval(r: Raft): void {
  const lo = firstUnappliedInLog(r);
  const hi = r.log.lastIndex() + 1;
  if (lo >= hi) return;
  let cs = r.trk.confState();
  for (const e of r.log.slice(lo, hi)) {
    if (e.type !== "conf_change") continue;
    const cc = decodeConfChange(e.data);
    try {
      cs = nextConfState(isEmptyConf(cs) && cc.base !== undefined ? cc.base : cs, cc);
    } catch (err) {
      if (!(err instanceof ConfChangeRejected)) throw err;
    }
  }
  noteSelfRemoval(r, cs);
}

/**
 * Why this node may not campaign now, or undefined when it may (etcd's
 * promotable and hasUnappliedConfChanges): it must be a voter of the
 * configuration in force, and have applied every committed membership change,
 * or it would count votes under a configuration that is no longer the one in force.
 */
export function campaignBlocker(r: Raft): string | undefined {
  if (!r.trk.isVoter(r.id)) {
    return r.trk.isLearner(r.id) ? "this node is a learner" : "this node is not a voter";
  }
  if (r.log.unstable.snapshot !== undefined) return "a snapshot is being installed";
  const lo = firstUnappliedInLog(r);
  const hi = r.log.committed + 1;
  if (lo < hi && r.log.slice(lo, hi).some((e) => e.type === "conf_change")) {
    return "a committed membership change is not applied yet";
  }
  return undefined;
}

/**
 * The first entry after `applied` that the log still holds. The runtime applies a
 * Ready's committed entries while its write runs and may snapshot and compact
 * what it applied before it calls advance (§7), so entries between the core's
 * `applied` and the log's first index can be gone: they were applied, and any
 * membership change among them with them (applyConfChange), so there is nothing
 * left to check there.
 */
function firstUnappliedInLog(r: Raft): number {
  return Math.max(r.log.applied + 1, r.log.firstIndex());
}

function isEmptyConf(cs: ConfState): boolean {
  return cs.voters.length === 0 && cs.votersOutgoing.length === 0 && cs.learners.length === 0;
}
