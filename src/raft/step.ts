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
import { type Message, message, type NodeId } from "./types.ts";

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
      // An acknowledgement of exactly the match also ends a probe: the logs agree
      // there (etcd-io/raft does the same; it answers the empty append a heartbeat
      // answer prompts, see nudgeAfterHeartbeat, when the probe itself was lost).
      const probeMatched = pr.state === "probe" && m.index === pr.match;
      if (!pr.maybeUpdate(m.index) && !probeMatched) return;
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
      r.readOnly.ack(m.from, m.context);
      r.readOnly.release(r.id, (valueOf) => r.trk.quorumIndex(valueOf));
      if (pr.match < r.log.lastIndex()) nudgeAfterHeartbeat(r, m.from);
      return;
    case "transfer_leader":
      stepTransferLeader(r, m);
      return;
    default:
      r.logger.debug("leader ignoring message", { term: r.term, msg: describeMessage(m) });
  }
}

/**
 * A follower behind the leader answered a heartbeat: it is alive, so make sure
 * replication to it goes on (etcd-io/raft's MsgHeartbeatResp handling).
 *
 * When its flow is paused (a probe unanswered, or a full window of appends in
 * flight), the pause usually means only that the follower is still writing them:
 * its heartbeat answer needs no fsync and overtakes the answer to the append. So
 * what goes out is an *empty* append at `next - 1`, never the same entries again
 * (resending a probe on every heartbeat sent a follower whose fsync takes longer
 * than a heartbeat up to `maxSizePerMsg` again and again). Its answer settles the
 * pause either way: an acknowledgement moves `match` (and frees the window, or
 * turns the probe into replication); a rejection, if appends were lost, backs
 * `next` up to the match and probes from there (etcd sends an empty MsgApp when
 * its window is full for the same reason). Unpaused, entries go out as usual.
 */
function nudgeAfterHeartbeat(r: Raft, to: NodeId): void {
  const pr = r.trk.get(to)!;
  if (pr.state === "snapshot") return; // nothing goes until the snapshot is settled (§7)
  const prevIndex = pr.next - 1;
  if (!pr.isPaused()) {
    r.maybeSendAppend(to, true);
    return;
  }
  if (prevIndex < r.log.firstIndex() - 1) {
    // What is in flight was compacted since it was sent, so no empty append can
    // go at `next - 1`: probe again from the match, which sends the snapshot if
    // the follower needs one (found by seeds 157 and 413 of random_test.ts).
    pr.becomeProbe();
    r.maybeSendAppend(to, true);
    return;
  }
  r.send(
    message({
      type: "app",
      from: r.id,
      to,
      index: prevIndex,
      logTerm: r.log.term(prevIndex)!,
      entries: [],
      commit: r.log.committed,
    }),
  );
}
