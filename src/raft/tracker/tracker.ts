/**
 * The leader's per-member progress and a candidate's ballot box, over the
 * configuration in force: a (possibly joint) voter configuration and learners
 * (etcd-io/raft's tracker.ProgressTracker). Every member, learner or voter, has
 * a progress, so the leader replicates to all of them; only voters vote and
 * count toward a quorum.
 *
 * @module
 */

import { invariant } from "../invariant.ts";
import {
  jointCommittedIndex,
  type JointConfig,
  jointVoteResult,
  jointVoters,
} from "../quorum/joint.ts";
import type { VoteResult } from "../quorum/majority.ts";
import type { ConfState, NodeId } from "../types.ts";
import { Progress } from "./progress.ts";

const ascending = (ids: Iterable<NodeId>): NodeId[] => [...ids].sort((a, b) => a - b);

/** Progress for every member, and the votes of the election in progress. */
export class ProgressTracker {
  /** The voter configuration: the incoming half, and the outgoing one while joint. */
  readonly config: JointConfig;
  readonly learners: readonly NodeId[];
  /** Outgoing voters that become learners when the joint configuration is left. */
  readonly learnersNext: readonly NodeId[];
  readonly autoLeave: boolean;
  /** Every voter of either half, ascending: whom a candidate asks for votes. */
  readonly voters: readonly NodeId[];
  readonly progress = new Map<NodeId, Progress>();
  readonly votes = new Map<NodeId, boolean>();
  readonly #maxInflight: number;

  /**
   * Tracks `cs`. Members carried over from `previous` keep their progress (a
   * membership change must not make the leader forget where its followers are);
   * new ones are probed from `next` and count as recently active, so CheckQuorum
   * does not depose the leader before they had a chance to answer (etcd does the same).
   */
  constructor(
    cs: ConfState,
    maxInflight: number,
    next = 1,
    previous?: ProgressTracker,
  ) {
    for (const [what, ids] of Object.entries(cs)) {
      if (Array.isArray(ids) && new Set(ids).size !== ids.length) {
        throw new Error(`Cannot use ${what} [${ids.join(", ")}]: ids repeat`);
      }
    }
    this.config = { incoming: ascending(cs.voters), outgoing: ascending(cs.votersOutgoing) };
    this.learners = ascending(cs.learners);
    this.learnersNext = ascending(cs.learnersNext);
    this.autoLeave = cs.autoLeave;
    this.voters = jointVoters(this.config);
    this.#maxInflight = maxInflight;
    checkConfState(cs);
    for (const id of [...this.voters, ...this.learners]) {
      let pr = previous?.progress.get(id);
      if (pr === undefined) {
        pr = new Progress(Math.max(next, 1), maxInflight);
        if (previous !== undefined) pr.recentActive = true;
      }
      pr.isLearner = this.learners.includes(id);
      this.progress.set(id, pr);
    }
    if (previous !== undefined) {
      for (const [id, v] of previous.votes) if (this.progress.has(id)) this.votes.set(id, v);
    }
  }

  /** The configuration as the application stores it (in snapshots, with its applied state). */
  confState(): ConfState {
    return {
      voters: this.config.incoming,
      learners: this.learners,
      votersOutgoing: this.config.outgoing,
      learnersNext: this.learnersNext,
      autoLeave: this.autoLeave,
    };
  }

  /** True while a joint configuration is in force. */
  isJoint(): boolean {
    return this.config.outgoing.length > 0;
  }

  /** Forgets all progress: each member is probed again from `next`. */
  resetProgress(next: number): void {
    for (const [id, old] of this.progress) {
      const pr = new Progress(next, this.#maxInflight);
      pr.isLearner = old.isLearner;
      this.progress.set(id, pr);
    }
  }

  get(id: NodeId): Progress | undefined {
    return this.progress.get(id);
  }

  /** The largest index replicated on a quorum (a majority of each half while joint). */
  committed(): number {
    return jointCommittedIndex(this.config, (id) => this.progress.get(id)?.match ?? 0);
  }

  /**
   * The largest value a quorum of voters has reached, given each voter's value
   * (ReadIndex rounds confirmed by a quorum, for instance).
   */
  quorumIndex(valueOf: (id: NodeId) => number): number {
    return jointCommittedIndex(this.config, valueOf);
  }

  /** True when a quorum (this node included) was heard from lately. */
  quorumActive(self: NodeId): boolean {
    const active = new Map<NodeId, boolean>();
    for (const id of this.voters) {
      active.set(id, id === self || (this.progress.get(id)?.recentActive ?? false));
    }
    return jointVoteResult(this.config, active) === "won";
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
    return { granted, rejected, result: jointVoteResult(this.config, this.votes) };
  }

  /** A voter of either half (not a learner, not a stranger). */
  isVoter(id: NodeId): boolean {
    const pr = this.progress.get(id);
    return pr !== undefined && !pr.isLearner;
  }

  isLearner(id: NodeId): boolean {
    return this.progress.get(id)?.isLearner ?? false;
  }

  /** A member in any role. */
  isMember(id: NodeId): boolean {
    return this.progress.has(id);
  }
}

/** Throws unless `cs` is well formed (etcd's confchange checkInvariants). */
export function checkConfState(cs: ConfState): void {
  const voters = new Set([...cs.voters, ...cs.votersOutgoing]);
  for (const id of [...voters, ...cs.learners]) {
    invariant(Number.isSafeInteger(id) && id > 0, () => `conf state has node id ${id}`);
  }
  for (const id of cs.learners) {
    invariant(!voters.has(id), () => `conf state: node ${id} is both a voter and a learner`);
  }
  for (const id of cs.learnersNext) {
    invariant(
      cs.votersOutgoing.includes(id),
      () => `conf state: learner-to-be ${id} is not an outgoing voter`,
    );
  }
  if (cs.votersOutgoing.length === 0) {
    invariant(
      cs.learnersNext.length === 0 && !cs.autoLeave,
      () => "conf state: learnersNext or autoLeave set outside a joint configuration",
    );
  }
}
