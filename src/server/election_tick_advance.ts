/**
 * The election tick advance at boot: how a node that starts with no leader in
 * sight shortens its first election timeout once a quorum can be reached. Its
 * own file because it runs once, beside the Ready loop rather than in it, and
 * needs of the node only what {@link ElectionAdvanceHost} names.
 *
 * @module
 */

import type { Logger } from "../raft/logger.ts";
import type { RawNode } from "../raft/raw_node.ts";
import { type NodeId, NONE } from "../raft/types.ts";
import { electionTicks, type RaftKvNodeOptions } from "./node_options.ts";
import type { PeerTransport } from "./transport.ts";

/** What the election tick advance needs of the node. */
export interface ElectionAdvanceHost {
  readonly id: NodeId;
  readonly options: RaftKvNodeOptions;
  readonly raw: RawNode;
  readonly transport: PeerTransport;
  readonly log: Logger;
  /** Whether the node is stopping or has failed. */
  stopped(): boolean;
  /** Ticks of the timer so far: with no leader heard from, the core's election clock. */
  ticksSinceStart(): number;
  /** Wakes the Ready loop. */
  kick(): void;
}

/**
 * etcd's initial election tick advance (`--initial-election-tick-advance`, on by
 * default; `EtcdServer.adjustTicks`): a node that boots with no leader in sight
 * need not sit out a whole election timeout (1 to 2 × --election-ms) first. Once a
 * quorum answers (this node and enough peers that an election could be won:
 * campaigning before that only loses the round and costs another timeout), it
 * brings its election clock to electionTick - 2 ticks (less the ticks that
 * passed while it waited), leaving at least 2 ticks for a leader's heartbeat to
 * arrive, and campaigns after 2 to electionTick + 2 ticks: the randomized spread
 * that avoids split votes (§5.2) is kept whole. A one-node cluster advances
 * electionTick - 1 ticks at once.
 *
 * Safety never rests on timing (§5.2: it must not depend on it); this changes
 * only when the first campaign starts. Nor does it disrupt a running cluster: a
 * node that hears from a leader before the quorum answers does not advance, and
 * one that campaigns anyway starts with PreVote, which followers that heard from
 * their leader within an election timeout reject (CheckQuorum's lease,
 * dissertation §9.6), so no term changes.
 */
export async function advanceElectionAtBoot(host: ElectionAdvanceHost): Promise<void> {
  const ticks = electionTicks(host.options);
  // The configuration in force (a node that joined, or a learner, never campaigns).
  const voters = host.raw.status().conf.voters;
  if (!voters.includes(host.id)) return;
  const others = voters.length - 1;
  const quorum = Math.floor(voters.length / 2) + 1;
  const deadline = performance.now() + host.options.electionMs;
  const noLeaderYet = () => {
    const s = host.raw.status();
    return !host.stopped() && s.role === "follower" &&
      s.lead === NONE;
  };
  let advance = others === 0 ? ticks - 1 : 0;
  while (others > 0 && noLeaderYet() && performance.now() < deadline) {
    const started = performance.now();
    const reachable = await host.transport.reachablePeers(host.options.heartbeatMs * 2);
    if (reachable.length + 1 >= quorum) {
      // No leader heard from: the core's election clock has run since start.
      advance = Math.max(0, ticks - 2 - host.ticksSinceStart());
      break;
    }
    // Refused connections answer at once: wait out a heartbeat before asking again.
    const left = host.options.heartbeatMs - (performance.now() - started);
    if (left > 0) await new Promise((r) => setTimeout(r, left));
  }
  if (advance <= 0 || !noLeaderYet()) return;
  host.log.info("no leader yet and a quorum is reachable: advancing election ticks", {
    ticks: advance,
    of: ticks,
  });
  for (let i = 0; i < advance; i++) host.raw.tick();
  host.kick();
}
