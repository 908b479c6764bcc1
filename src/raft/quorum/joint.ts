/**
 * Joint consensus math (dissertation §4.3): while a configuration changes
 * from C_old to C_new, every decision (commitment, elections, CheckQuorum,
 * ReadIndex) needs a majority of BOTH, so neither can decide alone
 * (etcd-io/raft's quorum.JointConfig). When not joint, the outgoing half is
 * empty and a majority of the incoming one decides.
 *
 * @module
 */

import type { NodeId } from "../types.ts";
import { committedIndex, type VoteResult, voteResult } from "./majority.ts";

/** Two majority configurations; `outgoing` is empty unless joint. */
export interface JointConfig {
  readonly incoming: readonly NodeId[];
  readonly outgoing: readonly NodeId[];
}

/**
 * The largest index held by a majority of each half: the smaller of the two
 * halves' committed indexes. An empty half places no constraint (etcd returns
 * the largest index for it); both empty gives 0, nothing can commit.
 */
export function jointCommittedIndex(
  c: JointConfig,
  matchOf: (id: NodeId) => number,
): number {
  if (c.incoming.length === 0 && c.outgoing.length === 0) return 0;
  const half = (ids: readonly NodeId[]) =>
    ids.length === 0 ? Number.POSITIVE_INFINITY : committedIndex(ids, matchOf);
  return Math.min(half(c.incoming), half(c.outgoing));
}

/**
 * The outcome of an election under a joint configuration: won when both halves
 * are won, lost when either is lost, else pending. An empty half counts as won
 * (it has no say), so a simple configuration behaves as its majority does.
 */
export function jointVoteResult(
  c: JointConfig,
  votes: ReadonlyMap<NodeId, boolean>,
): VoteResult {
  const half = (ids: readonly NodeId[]): VoteResult =>
    ids.length === 0 ? "won" : voteResult(ids, votes);
  const a = half(c.incoming);
  const b = half(c.outgoing);
  if (a === b) return a;
  if (a === "lost" || b === "lost") return "lost";
  return "pending";
}

/** Every voter of either half, ascending, without repeats. */
export function jointVoters(c: JointConfig): NodeId[] {
  return [...new Set([...c.incoming, ...c.outgoing])].sort((a, b) => a - b);
}
