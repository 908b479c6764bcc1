/**
 * The first campaign at boot: how soon a node that starts with no leader in sight
 * campaigns once a quorum can be reached. Its own file because it runs once,
 * beside the Ready loop rather than in it, and needs of the node only what
 * {@link ElectionAdvanceHost} names.
 *
 * @module
 */

import type { Logger } from "../raft/logger.ts";
import type { RawNode } from "../raft/raw_node.ts";
import { type NodeId, NONE } from "../raft/types.ts";
import { electionTicks, type RaftKvNodeOptions } from "./node_options.ts";
import type { PeerTransport } from "./transport.ts";

/** What the first campaign at boot needs of the node. */
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
 * How often a booting node asks its peers whether a quorum answers, as etcd's
 * `adjustTicks` polls `ActivePeers` (every 50 ms): a peer that starts listening
 * just after a probe is seen within this, not a heartbeat later.
 */
export const BOOT_PROBE_INTERVAL_MS = 50;

/**
 * How long a booting node waits at most for a quorum to answer before it leaves
 * its first campaign to its election clock: etcd's `adjustTicks` waits as long
 * (`rafthttp.ConnReadTimeout`, 5 s), or an election timeout if that is longer.
 * Three nodes restarted together on a loaded machine can start seconds apart.
 */
export const BOOT_PROBE_MS = 5_000;

/**
 * After how many ticks (heartbeat intervals) from the moment a quorum answered a
 * voter starts its first campaign at boot, given its `rank`: its place by id
 * (ascending, from 0) among itself and the voters that answered. 1 + 2 × rank: the
 * lowest id goes first, a tick later (a running cluster's leader heartbeats every
 * tick, so a node booting into one hears from it before then); each next voter two
 * ticks after the one before it, so a campaign has its pre-vote and vote rounds to
 * itself before the next starts (no split vote), and a voter that is slow or behind
 * (its pre-vote refused) costs the others two ticks, not an election timeout. A
 * voter that did not answer takes no turn: the slowest of three processes started
 * together would otherwise hold the others back whenever its id is the lowest.
 */
export function bootCampaignTicks(rank: number): number {
  if (!Number.isInteger(rank) || rank < 0) {
    throw new RangeError(`Cannot schedule a boot campaign: rank ${rank} is not an index`);
  }
  return 1 + 2 * rank;
}

/**
 * What a node does about its first campaign at boot, given the voters of the
 * configuration in force (`voters`, in any order) and its own id:
 *
 * - `"none"`: it is not a voter (a learner, or a node that joined and is not yet
 *   promoted): it never campaigns;
 * - `"now"`: it is the only voter. Its own vote is a quorum: there is no one to ask
 *   and no one to split a vote with, so waiting (an election timeout, or even a
 *   probe) buys nothing. It campaigns at once, and wins its pre-vote and vote with
 *   its own (etcd's `campaign` wins at once when its own vote is a quorum: "this is
 *   a single-node cluster");
 * - `"after-quorum"`: there are other voters: it waits until a quorum answers, then
 *   takes its turn ({@link bootCampaignTicks}).
 */
export function bootCampaignPlan(
  id: NodeId,
  voters: Iterable<NodeId>,
): "none" | "now" | "after-quorum" {
  const all = new Set(voters);
  if (!all.has(id)) return "none";
  return all.size === 1 ? "now" : "after-quorum";
}

/**
 * The first campaign at boot, after etcd's initial election tick advance
 * (`--initial-election-tick-advance`, on by default; `EtcdServer.adjustTicks`): a
 * node that boots with no leader in sight need not sit out a whole randomized
 * election timeout (1 to 2 × --election-ms) first. Once a quorum answers (this
 * node and enough peers that an election could be won: campaigning before that
 * only loses the round and costs another timeout), it campaigns
 * {@link bootCampaignTicks} ticks later if it still has heard of no leader and
 * seen no election (its term is the one it booted with, it is still a follower).
 * etcd leaves 2 to electionTick + 2 ticks to chance instead; ordering the voters
 * by id gives the same protection against split votes (§5.2) for the first
 * election, at a fraction of the wait. The only voter of its cluster campaigns
 * at once ({@link bootCampaignPlan}); it also advances electionTick - 1 ticks, as
 * etcd does, so that should the campaign be refused (a configuration change
 * committed and not yet applied: `campaignBlocker`), its clock is a tick from it.
 *
 * Safety never rests on timing (§5.2: it must not depend on it); this changes
 * only when the first campaign starts. Nor does it disrupt a running cluster: a
 * node that hears from a leader first does not campaign, and one that campaigns
 * anyway starts with PreVote, which followers that heard from their leader within
 * an election timeout reject (CheckQuorum's lease, dissertation §9.6), so no term
 * changes. If no quorum answers within {@link BOOT_PROBE_MS}, the election clock
 * decides, as without this.
 */
export async function advanceElectionAtBoot(host: ElectionAdvanceHost): Promise<void> {
  const ticks = electionTicks(host.options);
  // The configuration in force (a node that joined, or a learner, never campaigns).
  const voters = [...host.raw.status().conf.voters].sort((a, b) => a - b);
  const plan = bootCampaignPlan(host.id, voters);
  if (plan === "none") return;
  const bootTerm = host.raw.status().term;
  const noElectionYet = () => {
    const s = host.raw.status();
    return !host.stopped() && s.role === "follower" && s.lead === NONE && s.term === bootTerm;
  };
  if (plan === "now") {
    for (let i = 0; i < ticks - 1; i++) host.raw.tick();
    if (noElectionYet()) {
      host.log.info("the only voter: campaigning at once", {
        ticksSinceStart: host.ticksSinceStart(),
      });
      host.raw.campaign();
    }
    host.kick();
    return;
  }
  const quorum = Math.floor(voters.length / 2) + 1;
  const deadline = performance.now() + Math.max(BOOT_PROBE_MS, host.options.electionMs);
  let answered: NodeId[] | undefined;
  while (noElectionYet() && performance.now() < deadline) {
    const started = performance.now();
    // Voters only: a learner that answers adds nothing to a quorum.
    const reachable = (await host.transport.reachablePeers(host.options.heartbeatMs * 2))
      .filter((id) => voters.includes(id));
    if (reachable.length + 1 >= quorum) {
      answered = [host.id, ...reachable];
      break;
    }
    // Refused connections answer at once: wait a little before asking again.
    const left = BOOT_PROBE_INTERVAL_MS - (performance.now() - started);
    if (left > 0) await new Promise((r) => setTimeout(r, left));
  }
  if (answered === undefined || !noElectionYet()) return;
  // Turns among the voters that answered: a voter still starting (the slowest of
  // three processes started together) takes no turn ahead of those that are up.
  const turn = answered.sort((a, b) => a - b).indexOf(host.id);
  const after = bootCampaignTicks(turn);
  // In short steps, so that a node stopped meanwhile leaves no long timer behind.
  const at = performance.now() + after * host.options.heartbeatMs;
  for (let now = performance.now(); now < at; now = performance.now()) {
    if (!noElectionYet()) return;
    await new Promise((r) => setTimeout(r, Math.min(BOOT_PROBE_INTERVAL_MS, at - now)));
  }
  if (!noElectionYet()) return;
  host.log.info("no leader yet and a quorum is reachable: campaigning", {
    turn,
    answered: answered.join(","),
    afterTicks: after,
    ticksSinceStart: host.ticksSinceStart(),
  });
  host.raw.campaign();
  host.kick();
}
