/**
 * Leadership transfer (dissertation §3.10; etcd-io/raft's MsgTransferLeader and
 * MsgTimeoutNow). The leader stops accepting proposals, brings the transferee's
 * log up to date, and then sends it `timeout_now`; the transferee campaigns at
 * once, skipping PreVote, and its vote requests carry {@link CAMPAIGN_TRANSFER}
 * so that voters grant them despite the leader lease that CheckQuorum gives
 * (§4.2.3 would otherwise have them ignore a candidate while a leader is alive).
 * If the transfer has not completed within an election timeout, the leader
 * gives up and accepts proposals again (see Raft.tickHeartbeat).
 *
 * @module
 */

import { LeaderTransferRefused, NotLeaderError } from "./errors.ts";
import type { Raft } from "./raft.ts";
import { type Message, message, type NodeId, NONE } from "./types.ts";

/** The `context` of a vote request sent by a transfer's campaign (etcd's campaignTransfer). */
export const CAMPAIGN_TRANSFER = 1;

/**
 * Why leadership cannot go to `to` under this leader's configuration, or
 * undefined when it can.
 */
function refusal(r: Raft, to: NodeId): string | undefined {
  if (to === r.id) return `node ${to} is the leader already`;
  if (!r.trk.isMember(to)) return `node ${to} is not a member`;
  if (r.trk.isLearner(to)) return `node ${to} is a learner, which cannot lead`;
  if (!r.trk.config.incoming.includes(to)) {
    return `node ${to} is leaving the configuration (a voter of the outgoing half only)`;
  }
  return undefined;
}

/**
 * RawNode.transferLeader: on the leader, starts a transfer to `to` (throws
 * {@link LeaderTransferRefused} for self, a learner or a non-member); on a
 * follower, forwards the request to the leader it knows (throws
 * {@link NotLeaderError} when it knows none). Transferring to the node a transfer
 * is already under way to does nothing; to another, restarts the transfer.
 */
export function transferLeader(r: Raft, to: NodeId): void {
  if (r.role !== "leader") {
    if (r.lead === NONE) throw new NotLeaderError(NONE);
    r.logger.info("forwarding leadership transfer to the leader", {
      term: r.term,
      leader: r.lead,
      transferee: to,
    });
    r.send(message({ type: "transfer_leader", from: r.id, to: r.lead, context: to }));
    return;
  }
  const why = refusal(r, to);
  if (why !== undefined) throw new LeaderTransferRefused(why);
  startTransfer(r, to);
}

/** A `transfer_leader` message: a follower forwarded an operator's request. */
export function stepTransferLeader(r: Raft, m: Message): void {
  const to = m.context;
  if (r.role !== "leader") {
    // Leadership moved since the follower forwarded it: the operator retries.
    r.logger.info("ignoring leadership transfer request: not the leader", {
      term: r.term,
      from: m.from,
      transferee: to,
    });
    return;
  }
  const why = refusal(r, to);
  if (why !== undefined) {
    r.logger.warn("refusing leadership transfer", { term: r.term, from: m.from, reason: why });
    return;
  }
  startTransfer(r, to);
}

function startTransfer(r: Raft, to: NodeId): void {
  if (r.leadTransferee === to) {
    r.logger.info("leadership transfer already under way", { term: r.term, transferee: to });
    return;
  }
  if (r.leadTransferee !== NONE) abortLeaderTransfer(r, `a transfer to node ${to} replaces it`);
  // The transfer has one election timeout to complete (§3.10).
  r.electionElapsed = 0;
  r.leadTransferee = to;
  const pr = r.trk.get(to)!;
  r.logger.info("starting leadership transfer", {
    term: r.term,
    transferee: to,
    match: pr.match,
    lastIndex: r.log.lastIndex(),
  });
  if (pr.match === r.log.lastIndex()) sendTimeoutNow(r, to);
  else r.maybeSendAppend(to, true);
}

/**
 * After `from` acknowledged entries: if it is the transferee and now holds the
 * whole log, tell it to campaign.
 */
export function maybeSendTimeoutNow(r: Raft, from: NodeId): void {
  if (r.leadTransferee !== from) return;
  if (r.trk.get(from)?.match === r.log.lastIndex()) sendTimeoutNow(r, from);
}

function sendTimeoutNow(r: Raft, to: NodeId): void {
  r.logger.info("transferee is up to date; sending timeout_now", {
    term: r.term,
    transferee: to,
    lastIndex: r.log.lastIndex(),
  });
  r.send(message({ type: "timeout_now", from: r.id, to }));
}

/** Gives up the transfer under way: proposals are accepted again. */
export function abortLeaderTransfer(r: Raft, why: string): void {
  r.logger.warn("aborting leadership transfer", {
    term: r.term,
    transferee: r.leadTransferee,
    reason: why,
  });
  r.leadTransferee = NONE;
}

/** The transferee's side: campaign now, without PreVote, if this node may campaign at all. */
export function handleTimeoutNow(r: Raft, m: Message): void {
  r.logger.info("received timeout_now; campaigning for leadership transfer", {
    term: r.term,
    from: m.from,
  });
  r.hup(true);
}
