/**
 * The step functions, one per role (etcd-io/raft's stepFollower, stepCandidate,
 * stepLeader): what a node does with a message of its current term. Terms are
 * already reconciled, and vote requests answered, by Raft.step; each role
 * transition installs its function.
 *
 * @module
 */

import { describeMessage } from "./describe.ts";
import { handleTimeoutNow, maybeSendTimeoutNow, stepTransferLeader } from "./leader_transfer.ts";
import type { Raft } from "./raft.ts";
import { handleSnapshot } from "./snapshot.ts";
import type { Message } from "./types.ts";

export function stepFollower(r: Raft, m: Message): void {
  r.assertRole(["follower"], m);
  switch (m.type) {
    case "app":
      r.electionElapsed = 0;
      if (r.lead !== m.from) r.becomeFollower(r.term, m.from);
      r.handleAppendEntries(m);
      return;
    case "heartbeat":
      r.electionElapsed = 0;
      if (r.lead !== m.from) r.becomeFollower(r.term, m.from);
      r.handleHeartbeat(m);
      return;
    case "snap":
      r.electionElapsed = 0;
      if (r.lead !== m.from) r.becomeFollower(r.term, m.from);
      handleSnapshot(r, m);
      return;
    case "timeout_now":
      handleTimeoutNow(r, m);
      return;
    case "transfer_leader":
      stepTransferLeader(r, m);
      return;
    default:
      // Responses to a candidacy or leadership this node no longer holds.
      r.logger.debug("follower ignoring message", { term: r.term, msg: describeMessage(m) });
  }
}

export function stepCandidate(r: Raft, m: Message): void {
  r.assertRole(["pre_candidate", "candidate"], m);
  switch (m.type) {
    case "app":
      // A leader of our term exists (§5.2: "the candidate recognizes the leader
      // as legitimate and returns to follower state").
      r.becomeFollower(m.term, m.from);
      r.handleAppendEntries(m);
      return;
    case "heartbeat":
      r.becomeFollower(m.term, m.from);
      r.handleHeartbeat(m);
      return;
    case "snap":
      r.becomeFollower(m.term, m.from);
      handleSnapshot(r, m);
      return;
    case "vote_resp":
    case "pre_vote_resp":
      if (r.countsAsVote(m.type)) r.pollVotes(m);
      return;
    default:
      r.logger.debug("candidate ignoring message", { term: r.term, msg: describeMessage(m) });
  }
}

export function stepLeader(r: Raft, m: Message): void {
  r.assertRole(["leader"], m);
  const pr = r.trk.get(m.from);
  if (pr === undefined) {
    r.logger.warn("leader ignoring message from unknown node", { term: r.term, from: m.from });
    return;
  }
  switch (m.type) {
    case "app_resp": {
      if (!m.reject && m.index > r.log.lastIndex()) {
        // No follower can hold what this leader never sent; acting on it would
        // corrupt the progress (the runtime's codec rejects these first).
        r.logger.warn("ignoring acknowledgement past the end of the log", {
          term: r.term,
          from: m.from,
          index: m.index,
          lastIndex: r.log.lastIndex(),
        });
        return;
      }
      pr.recentActive = true;
      if (m.from === r.id) {
        // Our own write is durable: our copy now counts toward a majority.
        if (pr.maybeUpdate(m.index) && r.maybeCommit()) r.bcastAppend();
        return;
      }
      if (m.reject) {
        // Fast back-up (§5.3): jump over a whole conflicting term at a time
        // rather than one entry per round trip.
        let next = m.rejectHint;
        if (m.logTerm > 0) next = r.log.findConflictByTerm(m.rejectHint, m.logTerm)[0];
        if (pr.maybeDecrTo(m.index, next)) {
          r.logger.debug("follower rejected append; backing up", {
            term: r.term,
            from: m.from,
            rejected: m.index,
            hint: `${m.logTerm}/${m.rejectHint}`,
            next: pr.next,
          });
          if (pr.state === "replicate") pr.becomeProbe();
          r.maybeSendAppend(m.from, true);
        }
        return;
      }
      if (!pr.maybeUpdate(m.index)) return;
      if (pr.state === "probe") {
        pr.becomeReplicate();
        r.logger.debug("follower caught up to a match; streaming appends", {
          term: r.term,
          follower: m.from,
          match: pr.match,
        });
      } else if (pr.state === "snapshot") {
        // Whatever snapshot got it there, once the log covers what comes after
        // its match, the follower can be caught up from the log (etcd-io/raft).
        if (pr.match + 1 >= r.log.firstIndex()) {
          r.logger.debug("follower caught up past the snapshot; streaming appends", {
            term: r.term,
            follower: m.from,
            match: pr.match,
            snapshot: pr.pendingSnapshot,
          });
          pr.becomeProbe();
          pr.becomeReplicate();
        }
      } else {
        pr.inflights.freeLE(m.index);
      }
      r.logger.debug("replication progress", {
        term: r.term,
        follower: m.from,
        match: pr.match,
        lastIndex: r.log.lastIndex(),
      });
      if (r.maybeCommit()) r.bcastAppend();
      // Keep the pipe full while the window allows (dissertation §10.2.1).
      while (r.maybeSendAppend(m.from, false)) { /* fill the in-flight window */ }
      maybeSendTimeoutNow(r, m.from);
      return;
    }
    case "heartbeat_resp":
      pr.recentActive = true;
      pr.probeSent = false;
      // The follower is alive but its window is still full: an append (or its
      // answer) was probably lost. Free the oldest slot so one more append goes
      // out; if something is missing, the follower rejects it and the leader
      // falls back to probing from the follower's match.
      if (pr.state === "replicate" && pr.inflights.full()) pr.inflights.freeFirstOne();
      r.readOnly.ack(m.from, m.context);
      r.readOnly.release(r.id, (valueOf) => r.trk.quorumIndex(valueOf));
      if (pr.match < r.log.lastIndex()) r.maybeSendAppend(m.from, true);
      return;
    case "transfer_leader":
      stepTransferLeader(r, m);
      return;
    default:
      r.logger.debug("leader ignoring message", { term: r.term, msg: describeMessage(m) });
  }
}
