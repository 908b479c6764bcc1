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
import {
  abortLeaderTransfer,
  CAMPAIGN_TRANSFER,
  handleTimeoutNow,
  maybeSendTimeoutNow,
  stepTransferLeader,
} from "./leader_transfer.ts";
import { campaignBlocker, checkPendingSelfRemoval } from "./membership.ts";
import { ReadOnly } from "./read_only.ts";
import type { Storage } from "./storage.ts";
import { ProgressTracker } from "./tracker/tracker.ts";
import type { Progress } from "./tracker/progress.ts";
import {
  confMembers,
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
      } else if (m.type === "pre_vote") {
        this.send(
          message({
            type: "pre_vote_resp",
            from: this.id,
            to: m.from,
            term: this.term,
            reject: true,
          }),
        );
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
    this.#step(this, m);
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
      this.send(message({ type: resp, from: this.id, to: m.from, term: this.term, reject: true }));
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
   * InstallSnapshot receiver (§7, Figure 13). The answer is an `app_resp` with the
   * index up to which this log now matches the leader's; it goes out only after
   * the Ready that persists the snapshot (it promises durable state).
   */
  handleSnapshot(m: Message): void {
    const snap = m.snapshot;
    if (snap === undefined) {
      this.logger.warn("ignoring snapshot message without a snapshot", {
        term: this.term,
        from: m.from,
      });
      return;
    }
    const { index, term } = snap.meta;
    if (this.restore(snap)) {
      this.logger.info("restored snapshot from leader", {
        term: this.term,
        from: m.from,
        snapshot: `${term}/${index}`,
        voters: this.trk.voters.join(","),
      });
      this.send(message({ type: "app_resp", from: this.id, to: m.from, index }));
    } else {
      // Stale, or already covered by our log: say how far we are committed, so
      // the leader resumes from there.
      this.send(
        message({ type: "app_resp", from: this.id, to: m.from, index: this.log.committed }),
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
  restore(snap: Snapshot): boolean {
    const { index, term, conf } = snap.meta;
    if (index <= this.log.committed) {
      this.logger.debug("ignoring stale snapshot", {
        term: this.term,
        snapshot: `${term}/${index}`,
        commit: this.log.committed,
      });
      return false;
    }
    invariant(
      this.role === "follower",
      () => `a ${this.role} of term ${this.term} would restore a snapshot`,
    );
    if (!confMembers(conf).includes(this.id)) {
      // A snapshot taken before this node was added (or added back): the leader
      // sends it only to members of its configuration, so the entries after it
      // will add this node. It restores a configuration without itself, under
      // which it never campaigns, until it applies that change. (etcd-io/raft
      // refuses these; raftkv's runtime snapshots seldom, so a node it adds
      // would otherwise wait for the next one.)
      this.logger.info("restoring a snapshot from before this node joined", {
        term: this.term,
        snapshot: `${term}/${index}`,
        voters: conf.voters.join(","),
        learners: conf.learners.join(","),
      });
    }
    if (this.log.matchTerm(index, term)) {
      this.logger.info("snapshot already covered by our log; fast-forwarding commit", {
        term: this.term,
        snapshot: `${term}/${index}`,
        commit: this.log.committed,
      });
      this.log.commitTo(index);
      return false;
    }
    this.log.restore(snap);
    this.trk = new ProgressTracker(conf, this.config.maxInflightMsgs);
    return true;
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
      return this.maybeSendSnapshot(to, pr);
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
   * Sends the follower this node's snapshot, and pauses appends to it until the
   * runtime reports the send finished or failed ({@link reportSnapshot}) or the
   * follower acknowledges an index the log covers (etcd's sendSnapshot).
   */
  private maybeSendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) {
      // A snapshot is big; do not send one to a node not heard from lately
      // (it is probably down). Its next answer to a heartbeat brings us back.
      this.logger.debug("not sending snapshot to a follower not recently active", {
        term: this.term,
        to,
      });
      return false;
    }
    const snap = this.log.snapshot();
    invariant(
      snap.meta.index >= this.log.firstIndex() - 1 && snap.meta.index > 0,
      () =>
        `leader ${this.id} compacted its log up to ${this.log.firstIndex() - 1} but its ` +
        `snapshot covers only up to ${snap.meta.index}`,
    );
    pr.becomeSnapshot(snap.meta.index);
    this.logger.info("sending snapshot to follower behind the compacted log", {
      term: this.term,
      to,
      snapshot: `${snap.meta.term}/${snap.meta.index}`,
      match: pr.match,
      firstIndex: this.log.firstIndex(),
    });
    this.send(message({ type: "snap", from: this.id, to, snapshot: snap }));
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
  reportSnapshot(to: NodeId, status: "finish" | "failure"): void {
    if (this.role !== "leader") return;
    const pr = this.trk.get(to);
    if (pr === undefined || pr.state !== "snapshot") return;
    const pending = pr.pendingSnapshot;
    // On failure, forget the snapshot first, or the probe would start past it.
    if (status === "failure") pr.pendingSnapshot = 0;
    pr.becomeProbe();
    pr.probeSent = true;
    this.logger.info(
      status === "finish"
        ? "snapshot sent; probing follower after it"
        : "snapshot send failed; probing follower again",
      { term: this.term, to, snapshot: pending, next: pr.next },
    );
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

// -----------------------------------------------------------------------------
// Step functions, one per role. Terms are already reconciled by Raft.step.

function stepFollower(r: Raft, m: Message): void {
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
      r.handleSnapshot(m);
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

function stepCandidate(r: Raft, m: Message): void {
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
      r.handleSnapshot(m);
      return;
    case "vote_resp":
    case "pre_vote_resp":
      if (r.countsAsVote(m.type)) r.pollVotes(m);
      return;
    default:
      r.logger.debug("candidate ignoring message", { term: r.term, msg: describeMessage(m) });
  }
}

function stepLeader(r: Raft, m: Message): void {
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
      if (!pr.maybeUpdate(m.index)) return;
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
      pr.probeSent = false;
      // The follower is alive but its window is still full: an append (or its
      // answer) was probably lost. Free the oldest slot so one more append goes
      // out; if something is missing, the follower rejects it and the leader
      // falls back to probing from the follower's match.
      if (pr.state === "replicate" && pr.inflights.full()) pr.inflights.freeFirstOne();
      r.readOnly.ack(m.from, m.context);
      r.readOnly.release(r.id, (valueOf) => r.trk.quorumIndex(valueOf));
      if (pr.match < r.log.lastIndex()) r.maybeSendAppend(m.from, true);
      return;
    case "transfer_leader":
      stepTransferLeader(r, m);
      return;
    default:
      r.logger.debug("leader ignoring message", { term: r.term, msg: describeMessage(m) });
  }
}
