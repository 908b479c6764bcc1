/**
 * The leader's per-follower progress and a candidate's ballot box.
 *
 * @module
 */

import { committedIndex, type VoteResult, voteResult } from "../quorum/majority.ts";
import type { NodeId } from "../types.ts";
import { Progress } from "./progress.ts";

/** Progress for every voter, and the votes of the election in progress. */
export class ProgressTracker {
  readonly voters: readonly NodeId[];
  readonly progress = new Map<NodeId, Progress>();
  readonly votes = new Map<NodeId, boolean>();
  readonly #maxInflight: number;

  constructor(voters: readonly NodeId[], maxInflight: number) {
    if (new Set(voters).size !== voters.length) {
      throw new Error(`Cannot use voters [${voters.join(", ")}]: ids repeat`);
    }
    this.voters = [...voters].sort((a, b) => a - b);
    this.#maxInflight = maxInflight;
    for (const id of this.voters) this.progress.set(id, new Progress(1, maxInflight));
  }

  /** Forgets all progress: each follower is probed again from `next`. */
  resetProgress(next: number): void {
    for (const id of this.voters) this.progress.set(id, new Progress(next, this.#maxInflight));
  }

  get(id: NodeId): Progress | undefined {
    return this.progress.get(id);
  }

  /** The largest index replicated on a majority. */
  committed(): number {
    return committedIndex(this.voters, (id) => this.progress.get(id)?.match ?? 0);
  }

  /** True when a majority (this node included) was heard from lately. */
  quorumActive(self: NodeId): boolean {
    const active = new Map<NodeId, boolean>();
    for (const id of this.voters) {
      active.set(id, id === self || (this.progress.get(id)?.recentActive ?? false));
    }
    return voteResult(this.voters, active) === "won";
  }

  resetVotes(): void {
    this.votes.clear();
  }

  /** Records a vote; a voter's first answer in an election is the one that counts. */
  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voters) {
      const v = this.votes.get(id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    return { granted, rejected, result: voteResult(this.voters, this.votes) };
  }

  isVoter(id: NodeId): boolean {
    return this.progress.has(id);
  }
}
