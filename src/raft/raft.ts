/**
 * The Raft protocol: roles, elections, replication and commitment, as a
 * deterministic state machine. It performs no I/O: time arrives as `tick()`,
 * messages as `step()`, and everything it wants done is queued in `msgs` and
 * `msgsAfterAppend` for {@link RawNode} to hand out in a Ready.
 *
 * Section numbers cite "In Search of an Understandable Consensus Algorithm"
 * (Ongaro & Ousterhout, 2014); "dissertation" is Ongaro's PhD thesis (2014).
 *
 * @module
 */

import { type Config, validateConfig } from "./config.ts";
import { describeMessage } from "./describe.ts";
import { NotLeaderError, ProposalDroppedError } from "./errors.ts";
import { invariant, InvariantError } from "./invariant.ts";
import type { Logger } from "./logger.ts";
import { randomInt } from "./rand.ts";
import { RaftLog } from "./raft_log.ts";
import { abortLeaderTransfer, CAMPAIGN_TRANSFER } from "./leader_transfer.ts";
import { campaignBlocker, checkPendingSelfRemoval } from "./membership.ts";
import { ReadOnly } from "./read_only.ts";
import { maybeSendSnapshot, reportSnapshot, restoreSnapshot } from "./snapshot.ts";
import { stepCandidate, stepFollower, stepLeader } from "./step.ts";
import type { Storage } from "./storage.ts";
import { ProgressTracker } from "./tracker/tracker.ts";
import {
  type Entry,
  type EntryType,
  type HardState,
  isVoteRequest,
  type Message,
  message,
  type MessageType,
  type NodeId,
  NONE,
  type Role,
  type Snapshot,
  voteResponseType,
} from "./types.ts";

type StepFn = (r: Raft, m: Message) => void;

/** One node's Raft state machine. Drive it through {@link RawNode}. */
export class Raft {
  readonly id: NodeId;
  readonly config: Config;
  readonly log: RaftLog;
  /**
   * Progress and votes over the configuration in force; replaced when a
   * membership change is applied or a snapshot restores another.
   */
  trk: ProgressTracker;
  readonly logger: Logger;

  // Persistent state (Figure 2), saved through the Ready's hard state.
  term = 0;
  vote: NodeId = NONE;

  // Volatile state.
  role: Role = "follower";
  /** The leader of the current term as far as this node knows. */
  lead: NodeId = NONE;

  /** Messages that may go out at once. */
  msgs: Message[] = [];
  /**
   * Messages that may go out only once the entries and hard state now pending are
   * durable: acknowledgements and votes, whose promise must survive a crash.
   * Self-addressed ones are stepped back in by RawNode after the write.
   */
  msgsAfterAppend: Message[] = [];

  /**
   * Ticks since the last election timeout reset (followers and candidates), or
   * since the last CheckQuorum round (leaders).
   */
  electionElapsed = 0;
  heartbeatElapsed = 0;
  /** Drawn from [electionTick, 2 * electionTick) at every reset (§5.2). */
  randomizedElectionTimeout = 0;

  /** Proposals appended since the last broadcast; RawNode flushes them in one append per follower. */
  pendingBroadcast = false;

  /**
   * The index of the last membership change this leader appended, or of its
   * last entry when it was elected (any change in its log before it). No new
   * change is accepted until the application has applied up to it: at most one
   * unapplied change is in the log (etcd-io/raft's pendingConfIndex).
   */
  pendingConfIndex = 0;
  /**
   * The node leadership is being transferred to (dissertation §3.10), or
   * {@link NONE}. Proposals are refused meanwhile. See leader_transfer.ts.
   */
  leadTransferee: NodeId = NONE;
  /**
   * Leader only: a change in its log removes or demotes this node; it appends
   * nothing more and steps down once the change is applied (membership.ts).
   */
  selfRemovalPending = false;

  /** ReadIndex reads in flight (leader only). */
  readOnly = new ReadOnly();
  /** Reads dropped because leadership changed before they were confirmed. */
  abandonedReads: number[] = [];

  #step: StepFn = stepFollower;
  #tick: () => void = () => this.tickElection();

  constructor(config: Partial<Config> & Pick<Config, "id" | "random">, storage: Storage) {
    this.config = validateConfig(config);
    this.id = this.config.id;
    this.logger = this.config.logger;
    const { hardState, conf } = storage.initialState();
    // A node started to join a running cluster has an empty configuration: it
    // never campaigns (it is no voter) and learns the configuration from the
    // leader's snapshot or the conf changes it applies.
    this.trk = new ProgressTracker(conf, this.config.maxInflightMsgs);
    this.log = new RaftLog(storage, hardState.commit, this.config.applied);
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.becomeFollower(this.term, NONE);
    this.logger.info("raft node started", {
      term: this.term,
      vote: this.vote,
      commit: this.log.committed,
      applied: this.log.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      snapshot: storage.snapshot().meta.index,
      voters: this.trk.voters.join(","),
      learners: this.trk.learners.join(","),
    });
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  // ---------------------------------------------------------------------------
  // Role transitions. Each installs its own step and tick functions.

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.#step = stepFollower;
    this.#tick = () => this.tickElection();
    this.setLead(lead);
    this.setRole("follower");
  }

  /** PreVote (dissertation §9.6): ask first, without raising the term, whether an election could be won. */
  becomePreCandidate(): void {
    invariant(this.role !== "leader", () => "invalid transition [leader -> pre_candidate]");
    // Neither term nor vote changes: a failed pre-election leaves no trace.
    this.#step = stepCandidate;
    this.#tick = () => this.tickElection();
    this.trk.resetVotes();
    this.setLead(NONE);
    this.setRole("pre_candidate");
  }

  becomeCandidate(): void {
    invariant(this.role !== "leader", () => "invalid transition [leader -> candidate]");
    this.reset(this.term + 1);
    this.vote = this.id;
    this.#step = stepCandidate;
    this.#tick = () => this.tickElection();
    this.setRole("candidate");
  }

  becomeLeader(): void {
    invariant(this.role === "candidate", () => `invalid transition [${this.role} -> leader]`);
    // Invariant: a leader's term is durable before it leads. Its own vote comes
    // back only after the Ready that persists term and vote (see campaign), so
    // requiring it here means nothing of this term (appends, heartbeats) can be
    // sent before the term is on disk: a crash cannot bring the node back at an
    // older term to win the same term a second time with another log.
    invariant(
      this.trk.votes.get(this.id) === true,
      () =>
        `leader term durable: node ${this.id} would lead term ${this.term} before its own ` +
        `vote (and so the term) is durable`,
    );
    this.reset(this.term);
    this.#step = stepLeader;
    this.#tick = () => this.tickHeartbeat();
    this.setLead(this.id);
    this.setRole("leader");
    // A snapshot is pending only between its restore (as a follower) and the
    // Ready that persists it, which also carries this node's vote; the win comes
    // after that Ready, so a leader's log is never a pending snapshot.
    invariant(
      this.log.unstable.snapshot === undefined,
      () => `node ${this.id} would lead term ${this.term} with a snapshot not yet durable`,
    );
    // Any membership change in the log before this term's no-op must be applied
    // before this leader accepts another (see pendingConfIndex).
    this.pendingConfIndex = this.log.lastIndex();
    // The leader's own progress starts at what it has made durable.
    const self = this.trk.get(this.id)!;
    self.match = this.log.stableIndex();
    self.becomeReplicate();
    // A no-op entry of the new term (§8): once it commits, every entry before it
    // is committed too, which a leader could never conclude by counting replicas
    // of older-term entries (§5.4.2).
    this.appendEntries([{ type: "normal", data: new Uint8Array() }]);
    checkPendingSelfRemoval(this);
    this.logger.info("became leader", { term: this.term, lastIndex: this.log.lastIndex() });
  }

  /** Common to every transition: a new term clears the vote (one vote per term, §5.2). */
  private reset(term: number): void {
    if (this.term !== term) {
      invariant(
        term > this.term,
        () => `term must never decrease: ${this.term} -> ${term}`,
      );
      this.logger.info("term changed", { from: this.term, to: term });
      this.term = term;
      this.vote = NONE;
    }
    this.setLead(NONE);
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.trk.resetVotes();
    this.trk.resetProgress(this.log.lastIndex() + 1);
    this.pendingBroadcast = false;
    this.leadTransferee = NONE;
    this.selfRemovalPending = false;
    // Unconfirmed reads cannot survive a change of leadership: this node may no
    // longer be the leader they need. Confirmed ones stay valid.
    const ro = this.readOnly;
    this.abandonedReads.push(...ro.waitingForCommit, ...ro.pending.map((p) => p.requestId));
    this.readOnly = new ReadOnly();
    this.readOnly.ready = ro.ready;
  }

  private resetRandomizedElectionTimeout(): void {
    const t = this.config.electionTick;
    this.randomizedElectionTimeout = randomInt(this.config.random, t, 2 * t);
  }

  private setRole(role: Role): void {
    this.role = role;
  }

  private setLead(lead: NodeId): void {
    if (lead !== this.lead && lead !== NONE && lead !== this.id) {
      this.logger.info("following leader", { term: this.term, leader: lead });
    }
    this.lead = lead;
  }

  // ---------------------------------------------------------------------------
  // Time.

  tick(): void {
    this.#tick();
  }

  /** Followers and candidates: campaign when no leader was heard from in time (§5.2). */
  private tickElection(): void {
    this.electionElapsed++;
    // A node that may not campaign (a learner, a removed or joining node) lets
    // the time run on rather than restart it: its lease on the leader it last
    // heard from must expire, or it would ignore the votes of the next one
    // forever (etcd-io/raft: promotable() && pastElectionTimeout()).
    if (
      this.electionElapsed >= this.randomizedElectionTimeout &&
      campaignBlocker(this) === undefined
    ) {
      this.electionElapsed = 0;
      this.logger.info("election timeout elapsed", {
        term: this.term,
        role: this.role,
        leader: this.lead,
      });
      this.hup();
    }
  }

  /** Leaders: heartbeats every heartbeatTick, and CheckQuorum every electionTick. */
  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.config.electionTick) {
      this.electionElapsed = 0;
      // A transfer not done within an election timeout has failed (the
      // transferee is down or cut off): accept proposals again (§3.10).
      if (this.leadTransferee !== NONE) abortLeaderTransfer(this, "it timed out");
      if (this.config.checkQuorum) {
        // §6.2 / dissertation §6.2: a leader that cannot reach a majority steps
        // down, so clients stop waiting on it and the majority side can elect.
        if (!this.trk.quorumActive(this.id)) {
          this.logger.warn("stepping down: no quorum heard from within an election timeout", {
            term: this.term,
          });
          this.becomeFollower(this.term, NONE);
          return;
        }
        for (const [id, pr] of this.trk.progress) if (id !== this.id) pr.recentActive = false;
      }
    }
    if (this.role === "leader" && this.heartbeatElapsed >= this.config.heartbeatTick) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
  }

  // ---------------------------------------------------------------------------
  // Elections.

  /**
   * Starts an election (or a pre-election) now, unless this node leads already
   * or may not campaign (see membership.ts's campaignBlocker). A leadership
   * transfer's campaign (`transfer`) skips PreVote: the leader asked for it.
   */
  hup(transfer = false): void {
    if (this.role === "leader") {
      this.logger.debug("ignoring campaign: already leader", { term: this.term });
      return;
    }
    const blocker = campaignBlocker(this);
    if (blocker !== undefined) {
      this.logger.debug("not campaigning", { term: this.term, reason: blocker });
      return;
    }
    this.campaign(this.config.preVote && !transfer ? "pre_vote" : "vote", transfer);
  }

  private campaign(kind: "pre_vote" | "vote", transfer = false): void {
    let term: number;
    if (kind === "pre_vote") {
      this.becomePreCandidate();
      // The term we would campaign in; our own term stays until the pre-vote is won.
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      term = this.term;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    this.logger.info(kind === "pre_vote" ? "starting pre-election" : "starting election", {
      term,
      lastIndex,
      lastTerm,
    });
    for (const id of this.trk.voters) {
      if (id === this.id) {
        // The vote for ourselves counts only once it is durable: it is handed
        // back to us after the Ready that persists it.
        this.send(message({ type: voteResponseType(kind), from: this.id, to: id, term }));
        continue;
      }
      this.logger.info(kind === "pre_vote" ? "requesting pre-vote" : "requesting vote", {
        term,
        to: id,
      });
      this.send(
        message({
          type: kind,
          from: this.id,
          to: id,
          term,
          index: lastIndex,
          logTerm: lastTerm,
          context: transfer ? CAMPAIGN_TRANSFER : 0,
        }),
      );
    }
  }

  /** Counts a vote and acts on the outcome once it is decided. */
  pollVotes(m: Message): void {
    const granted = !m.reject;
    this.trk.recordVote(m.from, granted);
    const { granted: g, rejected: r, result } = this.trk.tallyVotes();
    this.logger.debug(granted ? "received vote" : "received rejection", {
      term: this.term,
      from: m.from,
      kind: m.type,
      granted: g,
      rejected: r,
    });
    if (result === "won" && this.role === "candidate" && this.trk.votes.get(this.id) !== true) {
      // Peers alone make a majority, but our own vote is not durable yet. Grants
      // addressed to an earlier incarnation of this node (one that campaigned in
      // this same term and crashed before persisting it) can arrive before any
      // Ready: winning on them would send appends of a term this node could
      // forget (Figure 2: "respond to RPCs only after updating stable storage";
      // etcd-io/raft sends nothing of a term before its HardState is durable).
      // The win waits for our vote, stepped back in after the write.
      this.logger.debug("majority granted; waiting for our own vote to be durable", {
        term: this.term,
        granted: g,
      });
      return;
    }
    if (result === "won") {
      if (this.role === "pre_candidate") {
        this.logger.info("won pre-election", { term: this.term, granted: g });
        this.campaign("vote");
      } else {
        this.logger.info("won election", { term: this.term, granted: g });
        this.becomeLeader();
        this.bcastAppend();
      }
    } else if (result === "lost") {
      this.logger.info(
        this.role === "pre_candidate" ? "lost pre-election" : "lost election",
        { term: this.term, granted: g, rejected: r },
      );
      // A candidate that lost (or was never wanted) waits as a follower; its
      // randomized timeout will make it try again if nobody else wins (§5.2).
      this.becomeFollower(this.term, NONE);
    }
  }

  // ---------------------------------------------------------------------------
  // Messages in.

  /**
   * Steps a message from the network. Stale messages are dropped or answered so
   * the sender learns the newer term; everything else goes to the role's step.
   */
  step(m: Message): void {
    invariant(m.to === this.id, () => `message for node ${m.to} stepped on node ${this.id}`);
    if (m.term > this.term) {
      if (isVoteRequest(m.type)) {
        // Dissertation §4.2.3 / §9.6: a node that heard from a leader within the
        // minimum election timeout ignores vote requests, so a partitioned node
        // that comes back with a high term cannot depose a working leader.
        // A campaign the leader itself asked for (leadership transfer, §3.10)
        // is the exception: it must depose the leader.
        const force = m.type === "vote" && m.context === CAMPAIGN_TRANSFER;
        const inLease = !force && this.config.checkQuorum && this.lead !== NONE &&
          this.electionElapsed < this.config.electionTick;
        if (inLease) {
          this.logger.info("ignoring vote request: leader lease still valid", {
            term: this.term,
            from: m.from,
            candidateTerm: m.term,
            leader: this.lead,
          });
          return;
        }
      }
      if (m.type === "pre_vote") {
        // A pre-vote never changes our term.
      } else if (m.type === "pre_vote_resp" && !m.reject) {
        // A granted pre-vote carries the term we would campaign in; the term is
        // raised only when the pre-election is won.
      } else {
        this.logger.info("received a higher term", {
          term: this.term,
          from: m.from,
          msgTerm: m.term,
          type: m.type,
        });
        const lead = m.type === "app" || m.type === "heartbeat" || m.type === "snap"
          ? m.from
          : NONE;
        this.becomeFollower(m.term, lead);
      }
    } else if (m.term < this.term) {
      if (m.type === "app" || m.type === "heartbeat" || m.type === "snap") {
        // A stale leader: answer so it learns the newer term and steps down.
        // Without this, a leader cut off by PreVote/CheckQuorum rules could go on
        // believing in itself (dissertation §9.6).
        this.send(message({ type: "app_resp", from: this.id, to: m.from, term: this.term }));
      } else if (isVoteRequest(m.type)) {
        // Figure 2, RequestVote: "reply false if term < currentTerm", with our
        // term, so the candidate catches up. etcd answers only pre-votes here; but
        // a candidate whose peers are kept ahead by another node's campaigns (a
        // removed node on an old configuration that sends its votes to them and
        // not to us, without PreVote) would otherwise never learn their term and
        // could never win (random runs, seeds 2726 and 3819 of random_test.ts).
        this.rejectVote(m);
      } else {
        this.logger.debug("ignoring message with a lower term", {
          term: this.term,
          msg: describeMessage(m),
        });
      }
      return;
    }

    if (isVoteRequest(m.type)) {
      this.handleVoteRequest(m);
      return;
    }
    if ((m.type === "vote_resp" || m.type === "pre_vote_resp") && m.reject) {
      this.learnCommitFromRejection(m);
    }
    this.#step(this, m);
  }

  /**
   * A voter that refuses us tells us its commit index and the term of the entry
   * there (see handleVoteRequest). If our log holds that entry with the same term,
   * our log equals the voter's up to it (Log Matching, §5.3), so everything up to
   * it is committed and we may commit it too.
   *
   * Why: the configuration in force is the last one *applied* (etcd's design), and
   * a commit index is not always durable. A voter in the new configuration can
   * crash before persisting that it committed the change, restart in the old one,
   * and need votes from nodes that have applied the new one: a demoted node there
   * is a learner that never campaigns, and it refuses a candidate whose log is
   * behind its own. Nobody could then win (found by the random runs, seed 3192 of
   * tests/raft/random_test.ts). Learning the commit index lets the candidate apply
   * the change it already holds and campaign in the configuration everyone else runs.
   */
  private learnCommitFromRejection(m: Message): void {
    // A leader commits by its own quorum (§5.4.2); a rejection that arrives after
    // it won is of no use to it. Only candidates and followers learn this way.
    if (this.role === "leader") return;
    if (m.commit <= this.log.committed || m.logTerm === 0) return;
    if (m.commit > this.log.lastIndex() || !this.log.matchTerm(m.commit, m.logTerm)) return;
    this.logger.info("learned commit index from a vote rejection", {
      term: this.term,
      from: m.from,
      commit: m.commit,
      was: this.log.committed,
    });
    this.log.commitTo(m.commit);
  }

  /**
   * Refuses the vote or pre-vote request `m` in our term, with our commit index and
   * its entry's term, from which the candidate may learn what is committed (see
   * {@link learnCommitFromRejection}).
   */
  private rejectVote(m: Message): void {
    this.send(
      message({
        type: voteResponseType(m.type),
        from: this.id,
        to: m.from,
        term: this.term,
        reject: true,
        commit: this.log.committed,
        logTerm: this.log.term(this.log.committed) ?? 0,
      }),
    );
  }

  /** RequestVote receiver rules (Figure 2; §5.2, §5.4.1; PreVote, dissertation §9.6). */
  private handleVoteRequest(m: Message): void {
    // One vote per term: we may repeat a vote for the same candidate (a
    // retransmitted request), or cast one if we have neither voted nor know a
    // leader; a pre-vote for a future term binds us to nothing.
    const canVote = this.vote === m.from ||
      (this.vote === NONE && this.lead === NONE) ||
      (m.type === "pre_vote" && m.term > this.term);
    const upToDate = this.log.isUpToDate(m.index, m.logTerm);
    const resp = voteResponseType(m.type);
    if (canVote && upToDate) {
      this.logger.info(m.type === "vote" ? "casting vote" : "granting pre-vote", {
        term: this.term,
        candidate: m.from,
        candidateTerm: m.term,
        candidateLast: `${m.logTerm}/${m.index}`,
      });
      // The response carries the candidate's term so it is not taken as stale.
      this.send(message({ type: resp, from: this.id, to: m.from, term: m.term }));
      if (m.type === "vote") {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.logger.info(m.type === "vote" ? "rejecting vote" : "rejecting pre-vote", {
        term: this.term,
        candidate: m.from,
        candidateTerm: m.term,
        reason: canVote ? "candidate log is behind ours" : `already voted for ${this.vote}`,
        ourLast: `${this.log.lastTerm()}/${this.log.lastIndex()}`,
        candidateLast: `${m.logTerm}/${m.index}`,
      });
      this.rejectVote(m);
    }
  }

  /** AppendEntries receiver (Figure 2; consistency check §5.3). */
  handleAppendEntries(m: Message): void {
    if (m.index < this.log.committed) {
      // Everything up to our commit index is settled: acknowledge it so the
      // leader moves on, without touching the log.
      this.send(
        message({ type: "app_resp", from: this.id, to: m.from, index: this.log.committed }),
      );
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      if (m.entries.length > 0) {
        this.logger.debug("appended entries from leader", {
          term: this.term,
          from: m.from,
          count: m.entries.length,
          lastNew,
          commit: this.log.committed,
        });
      } else {
        this.logger.debug("append check passed", { term: this.term, from: m.from, index: lastNew });
      }
      this.send(message({ type: "app_resp", from: this.id, to: m.from, index: lastNew }));
      return;
    }
    // The consistency check failed. Hint where the leader should look next: the
    // last index at or below the probe whose term is no greater than the
    // leader's entry there; every entry in between must conflict (§5.3).
    const [hintIndex, hintTerm] = this.log.findConflictByTerm(
      Math.min(m.index, this.log.lastIndex()),
      m.logTerm,
    );
    this.logger.debug("rejected append: logs disagree", {
      term: this.term,
      from: m.from,
      prev: `${m.logTerm}/${m.index}`,
      ourTermThere: this.log.term(m.index) ?? "none",
      hint: `${hintTerm}/${hintIndex}`,
    });
    this.send(
      message({
        type: "app_resp",
        from: this.id,
        to: m.from,
        index: m.index,
        reject: true,
        rejectHint: hintIndex,
        logTerm: hintTerm,
      }),
    );
  }

  handleHeartbeat(m: Message): void {
    this.logger.debug("received heartbeat", { term: this.term, from: m.from, commit: m.commit });
    // The leader caps the commit index at what we acknowledged (bcastHeartbeat),
    // so a commit past our log means we lost entries we had acknowledged: the
    // disk lied about a sync, or the data dir was restored from an older copy.
    // Going on could break quorum intersection; stop instead (etcd does too).
    invariant(
      m.commit <= this.log.lastIndex(),
      () =>
        `leader ${m.from} says index ${m.commit} is committed here, but this log ends at ` +
        `${this.log.lastIndex()}: it lost entries it had acknowledged (was the data dir ` +
        `truncated or restored from an old copy?)`,
    );
    this.log.commitTo(m.commit);
    this.send(
      message({ type: "heartbeat_resp", from: this.id, to: m.from, context: m.context }),
    );
  }

  /**
   * Restores `snap` unless it tells nothing new; returns whether the log was
   * replaced (see snapshot.ts). A method so tests can replace it.
   */
  restore(snap: Snapshot): boolean {
    return restoreSnapshot(this, snap);
  }

  /** The runtime's report on a snapshot sent to `to` (see snapshot.ts). */
  reportSnapshot(to: NodeId, status: "finish" | "failure"): void {
    reportSnapshot(this, to, status);
  }

  // ---------------------------------------------------------------------------
  // Messages out (leader).

  /** Queues a message; the term is stamped here unless the caller set one (votes). */
  send(m: Message): void {
    const out = m.term === 0 ? { ...m, term: this.term } : m;
    if (out.type === "app_resp" || out.type === "vote_resp" || out.type === "pre_vote_resp") {
      // These promise something about our durable state (§5.1: "respond to RPCs
      // only after updating stable storage").
      this.msgsAfterAppend.push(out);
    } else {
      invariant(out.to !== this.id, () => `${out.type} addressed to self on node ${this.id}`);
      this.msgs.push(out);
    }
  }

  /**
   * Sends the follower the entries it lacks, if its progress allows. With
   * `sendIfEmpty`, an empty append still goes out (to carry the commit index or
   * probe for a match).
   */
  maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.trk.get(to)!;
    if (pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    if (prevIndex < this.log.firstIndex() - 1) {
      // The entries this follower needs, or the term of the one before them,
      // are compacted: only the snapshot can bring it up to date (§7).
      return maybeSendSnapshot(this, to, pr);
    }
    const prevTerm = this.log.term(prevIndex);
    invariant(
      prevTerm !== undefined,
      () => `progress of ${to} has next ${pr.next} beyond last index ${this.log.lastIndex()}`,
    );
    const entries = this.log.entriesFrom(pr.next, this.config.maxSizePerMsg);
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send(
      message({
        type: "app",
        from: this.id,
        to,
        index: prevIndex,
        logTerm: prevTerm,
        entries,
        commit: this.log.committed,
      }),
    );
    if (entries.length > 0) {
      pr.sentEntries(entries.length, entries[entries.length - 1]!.index);
      this.logger.debug("sent entries", {
        term: this.term,
        to,
        from: entries[0]!.index,
        count: entries.length,
        state: pr.state,
      });
    }
    return true;
  }

  /**
   * Sends every follower (learners included) what it lacks, or an empty append
   * carrying the commit index.
   */
  bcastAppend(): void {
    for (const id of this.trk.progress.keys()) if (id !== this.id) this.maybeSendAppend(id, true);
    this.pendingBroadcast = false;
  }

  /** Sends new entries to every follower (learners included) that can take them. */
  flushAppends(): void {
    if (!this.pendingBroadcast) return;
    for (const id of this.trk.progress.keys()) {
      if (id !== this.id) this.maybeSendAppend(id, false);
    }
    this.pendingBroadcast = false;
  }

  private bcastHeartbeat(): void {
    const round = this.readOnly.round;
    this.logger.debug("sending heartbeats", {
      term: this.term,
      commit: this.log.committed,
      round,
    });
    for (const [id, pr] of this.trk.progress) {
      if (id === this.id) continue;
      // Never tell a follower to commit past what it is known to hold: its log
      // beyond `match` may still differ from ours.
      this.send(
        message({
          type: "heartbeat",
          from: this.id,
          to: id,
          commit: Math.min(pr.match, this.log.committed),
          context: round,
        }),
      );
    }
  }

  /**
   * Appends entries of the current term to the leader's log. The leader's own
   * copy counts toward commitment only when it is durable: the acknowledgement
   * to itself goes out after the write, while replication to followers runs beside
   * it (dissertation §10.2.1).
   */
  appendEntries(items: readonly { type: EntryType; data: Uint8Array }[]): number {
    invariant(this.role === "leader", () => `appendEntries on a ${this.role}`);
    let index = this.log.lastIndex();
    const ents: Entry[] = items.map(({ type, data }) => ({
      term: this.term,
      index: ++index,
      type,
      data,
    }));
    const last = this.log.append(ents);
    this.send(message({ type: "app_resp", from: this.id, to: this.id, index: last }));
    this.pendingBroadcast = true;
    return last;
  }

  /**
   * A client's command (§5.3). Only a leader accepts; others say whom to ask. A
   * leader transferring its leadership refuses (§3.10: the transfer would
   * otherwise chase a log that keeps growing).
   */
  propose(data: Uint8Array): { index: number; term: number } {
    if (this.role !== "leader") throw new NotLeaderError(this.lead);
    if (this.leadTransferee !== NONE) {
      throw new ProposalDroppedError(
        `leadership is being transferred to node ${this.leadTransferee}`,
      );
    }
    if (this.selfRemovalPending) {
      throw new ProposalDroppedError(
        "this leader is being removed from the configuration; propose at the next leader",
      );
    }
    const index = this.appendEntries([{ type: "normal", data }]);
    return { index, term: this.term };
  }

  /** Advances the commit index to what a majority holds, if that is of this term. */
  maybeCommit(): boolean {
    const before = this.log.committed;
    const committed = this.log.maybeCommit(this.trk.committed(), this.term);
    if (committed) {
      this.logger.debug("commit index advanced", {
        term: this.term,
        from: before,
        to: this.log.committed,
      });
      // The leader's commit index is now current (§6.4 step 1): reads that
      // waited for it can be registered at it.
      const waiting = this.readOnly.waitingForCommit;
      this.readOnly.waitingForCommit = [];
      for (const id of waiting) this.readOnly.add(id, this.log.committed);
    }
    return committed;
  }

  /**
   * Starts a linearizable read (ReadIndex, dissertation §6.4). When confirmed it
   * comes back in a Ready's `readStates` with the index the state machine must
   * have applied before the read is served; if leadership is lost first, its id
   * comes back in `abandonedReads`. Only the leader accepts.
   */
  readIndex(requestId: number): void {
    if (this.role !== "leader") throw new NotLeaderError(this.lead);
    if (this.log.term(this.log.committed) !== this.term) {
      this.readOnly.waitingForCommit.push(requestId);
    } else {
      this.readOnly.add(requestId, this.log.committed);
    }
  }

  /** Broadcasts one heartbeat round for every read registered since the last one. */
  flushReads(): void {
    if (this.role !== "leader" || !this.readOnly.needsBroadcast()) return;
    this.readOnly.round++;
    this.bcastHeartbeat();
    this.readOnly.release(this.id, (valueOf) => this.trk.quorumIndex(valueOf));
  }

  /** Makes sure a stepped function is of the right role (a bug otherwise). */
  assertRole(roles: readonly Role[], m: Message): void {
    if (!roles.includes(this.role)) {
      throw new InvariantError(
        `step function of [${roles.join("|")}] called on a ${this.role} for ${describeMessage(m)}`,
      );
    }
  }

  /** True when `type` is a response that a candidate in this role counts. */
  countsAsVote(type: MessageType): boolean {
    return (this.role === "pre_candidate" && type === "pre_vote_resp") ||
      (this.role === "candidate" && type === "vote_resp");
  }
}
