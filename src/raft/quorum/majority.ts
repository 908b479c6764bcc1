/**
 * Majority math: what "a quorum" of one configuration means. A joint
 * configuration (membership change, dissertation §4.3) combines two of these in
 * joint.ts.
 *
 * @module
 */

import type { NodeId } from "../types.ts";

/** The outcome of an election as far as the votes so far decide it. */
export type VoteResult = "won" | "lost" | "pending";

/** How many voters make a majority. */
export function quorumSize(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/**
 * The largest index stored on a majority of `voters`: sort the match indexes
 * descending, and the quorum-th one is held by at least a quorum.
 */
export function committedIndex(
  voters: readonly NodeId[],
  matchOf: (id: NodeId) => number,
): number {
  if (voters.length === 0) return 0;
  const matches = voters.map(matchOf).sort((a, b) => b - a);
  return matches[quorumSize(voters.length) - 1]!;
}

/** Tallies `votes` (granted or not, per voter) into an election result. */
export function voteResult(
  voters: readonly NodeId[],
  votes: ReadonlyMap<NodeId, boolean>,
): VoteResult {
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const q = quorumSize(voters.length);
  if (granted >= q) return "won";
  if (granted + missing >= q) return "pending";
  return "lost";
}
