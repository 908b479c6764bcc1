/**
 * Snapshots in the protocol (§7, Figure 13; etcd-io/raft's MsgSnap): a leader
 * sends its snapshot to a follower that needs entries it has compacted, and
 * learns from the runtime whether the send finished; a follower restores one
 * (log, commit index and membership) unless it tells nothing new.
 *
 * @module
 */

import { invariant } from "./invariant.ts";
import type { Raft } from "./raft.ts";
import type { Progress } from "./tracker/progress.ts";
import { ProgressTracker } from "./tracker/tracker.ts";
import { confMembers, type Message, message, type NodeId, type Snapshot } from "./types.ts";

/**
 * InstallSnapshot receiver (§7, Figure 13). The answer is an `app_resp` with the
 * index up to which this log now matches the leader's; it goes out only after
 * the Ready that persists the snapshot (it promises durable state).
 */
export function handleSnapshot(r: Raft, m: Message): void {
  const snap = m.snapshot;
  if (snap === undefined) {
    r.logger.warn("ignoring snapshot message without a snapshot", {
      term: r.term,
      from: m.from,
    });
    return;
  }
  const { index, term } = snap.meta;
  if (r.restore(snap)) {
    r.logger.info("restored snapshot from leader", {
      term: r.term,
      from: m.from,
      snapshot: `${term}/${index}`,
      voters: r.trk.voters.join(","),
    });
    r.send(message({ type: "app_resp", from: r.id, to: m.from, index }));
  } else {
    // Stale, or already covered by our log: say how far we are committed, so
    // the leader resumes from there.
    r.send(
      message({ type: "app_resp", from: r.id, to: m.from, index: r.log.committed }),
    );
  }
}

/**
 * Restores `snap` unless it tells nothing new. Returns whether the log was
 * replaced.
 * - At or below our commit index, it is stale (a duplicate, or overtaken by
 *   appends): ignored.
 * - If our log holds the snapshot's last entry (same index and term), the log
 *   up to it is the leader's (Log Matching): "retain log entries following it"
 *   (Figure 13 step 6); only the commit index moves to it.
 * - Otherwise the whole log is discarded and replaced by the snapshot (step 7),
 *   which also brings its membership (possibly one from before this node
 *   joined: the entries after it add the node).
 */
export function restoreSnapshot(r: Raft, snap: Snapshot): boolean {
  const { index, term, conf } = snap.meta;
  if (index <= r.log.committed) {
    r.logger.debug("ignoring stale snapshot", {
      term: r.term,
      snapshot: `${term}/${index}`,
      commit: r.log.committed,
    });
    return false;
  }
  invariant(
    r.role === "follower",
    () => `a ${r.role} of term ${r.term} would restore a snapshot`,
  );
  if (!confMembers(conf).includes(r.id)) {
    // A snapshot taken before this node was added (or added back): the leader
    // sends it only to members of its configuration, so the entries after it
    // will add this node. It restores a configuration without itself, under
    // which it never campaigns, until it applies that change. (etcd-io/raft
    // refuses these; raftkv's runtime snapshots seldom, so a node it adds
    // would otherwise wait for the next one.)
    r.logger.info("restoring a snapshot from before this node joined", {
      term: r.term,
      snapshot: `${term}/${index}`,
      voters: conf.voters.join(","),
      learners: conf.learners.join(","),
    });
  }
  if (r.log.matchTerm(index, term)) {
    r.logger.info("snapshot already covered by our log; fast-forwarding commit", {
      term: r.term,
      snapshot: `${term}/${index}`,
      commit: r.log.committed,
    });
    r.log.commitTo(index);
    return false;
  }
  r.log.restore(snap);
  r.trk = new ProgressTracker(conf, r.config.maxInflightMsgs);
  return true;
}

/**
 * Sends the follower this node's snapshot, and pauses appends to it until the
 * runtime reports the send finished or failed ({@link reportSnapshot}) or the
 * follower acknowledges an index the log covers (etcd's sendSnapshot).
 */
export function maybeSendSnapshot(r: Raft, to: NodeId, pr: Progress): boolean {
  if (!pr.recentActive) {
    // A snapshot is big; do not send one to a node not heard from lately
    // (it is probably down). Its next answer to a heartbeat brings us back.
    r.logger.debug("not sending snapshot to a follower not recently active", {
      term: r.term,
      to,
    });
    return false;
  }
  const snap = r.log.snapshot();
  invariant(
    snap.meta.index >= r.log.firstIndex() - 1 && snap.meta.index > 0,
    () =>
      `leader ${r.id} compacted its log up to ${r.log.firstIndex() - 1} but its ` +
      `snapshot covers only up to ${snap.meta.index}`,
  );
  pr.becomeSnapshot(snap.meta.index);
  r.logger.info("sending snapshot to follower behind the compacted log", {
    term: r.term,
    to,
    snapshot: `${snap.meta.term}/${snap.meta.index}`,
    match: pr.match,
    firstIndex: r.log.firstIndex(),
  });
  r.send(message({ type: "snap", from: r.id, to, snapshot: snap }));
  return true;
}

/**
 * The runtime's report on a snapshot sent to `to` (RawNode.reportSnapshot):
 * delivered (`finish`), or lost (`failure`). Either way the follower leaves the
 * snapshot state and is probed again, paused until it answers (a heartbeat
 * response at the latest): after a finish from just past the snapshot, after a
 * failure from its last known match, from where the leader will find it still
 * needs a snapshot and send another (etcd-io/raft's MsgSnapStatus).
 */
export function reportSnapshot(r: Raft, to: NodeId, status: "finish" | "failure"): void {
  if (r.role !== "leader") return;
  const pr = r.trk.get(to);
  if (pr === undefined || pr.state !== "snapshot") return;
  const pending = pr.pendingSnapshot;
  // On failure, forget the snapshot first, or the probe would start past it.
  if (status === "failure") pr.pendingSnapshot = 0;
  pr.becomeProbe();
  pr.probeSent = true;
  r.logger.info(
    status === "finish"
      ? "snapshot sent; probing follower after it"
      : "snapshot send failed; probing follower again",
    { term: r.term, to, snapshot: pending, next: pr.next },
  );
}
