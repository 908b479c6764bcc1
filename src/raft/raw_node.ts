/**
 * The driver API: how a runtime (or a simulated cluster) runs the core.
 *
 * The loop, as in etcd-io/raft's RawNode:
 * 1. feed the node: `tick()` on a timer, `step(m)` for each message received,
 *    `propose(data)` for each client command, `reportSnapshot(to, status)` when
 *    the transport finished (or failed) sending a `snap` message;
 * 2. while `hasReady()`: take `ready()`, then
 *    - send `messages` at once (they promise nothing about this node's disk),
 *    - persist, in this order, and make durable: `snapshot` if present (it
 *      replaces the whole log: `MemoryStorage.applySnapshot`), then `entries`
 *      (append, replacing any conflicting suffix; they follow the snapshot), then
 *      `hardState`,
 *    - then send `persistedMessages`,
 *    - if `snapshot` is present, restore the state machine from `snapshot.data`
 *      (replacing its whole state); the applied index becomes
 *      `snapshot.meta.index`. It comes before anything applied after it; a Ready
 *      with a snapshot has no `committedEntries`,
 *    - apply `committedEntries` in order,
 *    - call `advance(rd)`.
 *
 * The returned Ready must be handled and passed back through `advance()` before
 * the next one is taken.
 *
 * Snapshots and compaction (§7), the runtime's side:
 * - Taking one: once the state machine has applied up to index `i`, serialize it
 *   and call `MemoryStorage.createSnapshot(i, conf, data)` (after making the
 *   snapshot durable in its own file), then `compact(j)` for some `j <= i` (keeping
 *   `i - j` entries lets a follower slightly behind catch up from the log). The
 *   core reads the storage afresh, so nothing needs to be told to the RawNode.
 * - Sending one: a leader whose follower needs compacted entries emits a
 *   `snap` message carrying `storage.snapshot()` (metadata and data). The
 *   transport delivers it (it may be large: stream it) and calls
 *   `reportSnapshot(to, "finish")` once the follower received it, or
 *   `reportSnapshot(to, "failure")` if it could not. Until then the leader sends
 *   that follower nothing else; a send that is never reported stalls the follower
 *   until leadership changes.
 * - Receiving one: the follower's core decides (Figure 13) and, when it takes
 *   the snapshot, hands it back in `Ready.snapshot` as above. Its answer, an
 *   `app_resp`, is in `persistedMessages` of that Ready.
 * - Restarting: restore the state machine from `storage.snapshot()` (when its
 *   index is not 0) and construct the RawNode with `applied` at least its index;
 *   the core hands out the committed entries after it.
 *
 * @module
 */

import type { Config } from "./config.ts";
import { invariant } from "./invariant.ts";
import { transferLeader } from "./leader_transfer.ts";
import { applyConfChange, maybeAutoLeave, proposeConfChange } from "./membership.ts";
import { Raft } from "./raft.ts";
import type { ReadState } from "./read_only.ts";
import type { Storage } from "./storage.ts";
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  Message,
  NodeId,
  Role,
  Snapshot,
} from "./types.ts";

/** Volatile state a runtime may want to show or act on. */
export interface SoftState {
  readonly lead: NodeId;
  readonly role: Role;
}

/** The work the core hands the runtime. See the module doc for the order. */
export interface Ready {
  /** Present when the role or known leader changed since the last Ready. */
  readonly softState?: SoftState;
  /** Present when term, vote or commit changed: persist it. */
  readonly hardState?: HardState;
  /**
   * A snapshot received from the leader and taken by this node's core (§7). Persist
   * it before `entries` (it replaces the whole log; `entries` follow it), and
   * restore the state machine from it before applying anything after it: the
   * applied index becomes `snapshot.meta.index`. When present, `committedEntries`
   * is empty.
   */
  readonly snapshot?: Snapshot;
  /** Entries to persist, after `snapshot` if any. The first may replace a suffix already on disk. */
  readonly entries: readonly Entry[];
  /** May be sent immediately, even before this Ready's write completes. */
  readonly messages: readonly Message[];
  /** Must not be sent before `snapshot`, `hardState` and `entries` are durable. */
  readonly persistedMessages: readonly Message[];
  /** Committed, durable entries to apply, in order. */
  readonly committedEntries: readonly Entry[];
  /** Confirmed reads: serve each once the state machine has applied its index. */
  readonly readStates: readonly ReadState[];
  /** Reads (by request id) dropped because leadership changed: fail them, the client may retry. */
  readonly abandonedReads: readonly number[];
}

/** A snapshot of a node's state for status pages and tests. */
export interface Status {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly vote: NodeId;
  readonly lead: NodeId;
  readonly commit: number;
  readonly applied: number;
  /** The first index the log holds an entry for: entries below it are compacted. */
  readonly firstIndex: number;
  readonly lastIndex: number;
  /** The configuration in force: the last one applied (or restored from a snapshot). */
  readonly conf: ConfState;
  /** On a leader: the node leadership is being transferred to, else {@link NONE}. */
  readonly leadTransferee: NodeId;
  /**
   * On a leader: each member's replication progress (learners included);
   * `pendingSnapshot` is the index of the snapshot in flight to it in state
   * `snapshot`, else 0.
   */
  readonly progress?: ReadonlyMap<NodeId, ProgressStatus>;
}

/** One follower's replication progress, as a leader's {@link Status} shows it. */
export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: "probe" | "replicate" | "snapshot";
  readonly pendingSnapshot: number;
  /** A learner: replicated to, but it neither votes nor counts for commitment. */
  readonly isLearner: boolean;
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** A Raft node driven by Ready/Advance. */
export class RawNode {
  readonly raft: Raft;
  #prevSoft: SoftState;
  #prevHard: HardState;
  /** The Ready handed out and not yet advanced. */
  #outstanding: Ready | undefined;
  /** Self-addressed messages of the outstanding Ready, stepped back in on advance. */
  #selfMessages: Message[] = [];

  constructor(config: Partial<Config> & Pick<Config, "id" | "random">, storage: Storage) {
    this.raft = new Raft(config, storage);
    this.#prevSoft = this.#softState();
    this.#prevHard = storage.initialState().hardState;
  }

  /** Advances logical time by one tick (election and heartbeat timers count ticks). */
  tick(): void {
    this.raft.tick();
  }

  /** Steps a message received from a peer. Messages for other nodes are a caller bug. */
  step(m: Message): void {
    this.raft.step(m);
  }

  /**
   * Proposes a command. On the leader it is appended and will be replicated;
   * the returned index and term identify it (it committed if the entry applied at
   * that index has that term). Elsewhere it throws NotLeaderError.
   */
  propose(data: Uint8Array): { index: number; term: number } {
    return this.raft.propose(data);
  }

  /**
   * Proposes a membership change (see membership.ts). On the leader it is
   * appended as a `conf_change` entry; it takes effect on each node when the
   * application applies that entry and calls {@link applyConfChange}. Throws
   * NotLeaderError off the leader, ProposalDroppedError while a leadership
   * transfer is under way or another change is not applied yet, and
   * ConfChangeRejected for a change invalid against the configuration in force
   * (removing the last voter, adding a member in the role it has, leaving a joint
   * configuration that is not joint, ...).
   */
  proposeConfChange(cc: ConfChange): { index: number; term: number } {
    return proposeConfChange(this.raft, cc);
  }

  /**
   * Puts a committed membership change in force. Call it when applying a
   * committed `conf_change` entry (decodeConfChange of its data), in log order,
   * also when applying it again after a restart. Returns the configuration now in
   * force: keep it with the applied state (a snapshot taken at or after this
   * entry carries it in its meta). When a leader applies its own removal it steps
   * down; when it applies the entry of an automatic joint change, it proposes
   * leaving the joint configuration at the next {@link advance}.
   */
  applyConfChange(cc: ConfChange): ConfState {
    return applyConfChange(this.raft, cc);
  }

  /**
   * Transfers leadership to `to` (dissertation §3.10). On the leader: stops
   * accepting proposals, brings `to` up to date, then tells it to campaign; gives
   * up after an election timeout. Elsewhere the request is forwarded to the
   * leader. Throws LeaderTransferRefused for self, a learner or a non-member, and
   * NotLeaderError on a node that knows no leader.
   */
  transferLeader(to: NodeId): void {
    transferLeader(this.raft, to);
  }

  /**
   * Starts a linearizable read identified by `requestId` (unique among reads in
   * flight). See {@link Ready.readStates}. Throws NotLeaderError off the leader.
   */
  readIndex(requestId: number): void {
    this.raft.readIndex(requestId);
  }

  /**
   * The transport's report on a `snap` message this node sent to `to`:
   * `finish` once the follower received it, `failure` if it could not be
   * delivered. The leader resumes replicating to that follower (and sends a new
   * snapshot if it still needs one). Ignored when this node no longer leads or no
   * snapshot is pending for `to`.
   */
  reportSnapshot(to: NodeId, status: "finish" | "failure"): void {
    this.raft.reportSnapshot(to, status);
  }

  /** Starts an election now, as if the election timeout had elapsed. */
  campaign(): void {
    this.raft.hup();
  }

  #softState(): SoftState {
    return { lead: this.raft.lead, role: this.raft.role };
  }

  /** True when `ready()` has work to hand out (and no Ready is outstanding). */
  hasReady(): boolean {
    if (this.#outstanding !== undefined) return false;
    const r = this.raft;
    const soft = this.#softState();
    return r.pendingBroadcast || r.readOnly.needsBroadcast() ||
      r.readOnly.ready.length > 0 || r.abandonedReads.length > 0 ||
      soft.lead !== this.#prevSoft.lead || soft.role !== this.#prevSoft.role ||
      !sameHardState(r.hardState(), this.#prevHard) ||
      r.log.unstable.snapshot !== undefined ||
      r.log.unstable.entries.length > 0 ||
      r.msgs.length > 0 || r.msgsAfterAppend.length > 0 ||
      r.log.hasNextCommittedEntries();
  }

  /** Takes the outstanding work. Call `advance()` with it once it is handled. */
  ready(): Ready {
    invariant(this.#outstanding === undefined, () => "ready() called again before advance()");
    const r = this.raft;
    r.flushAppends();
    r.flushReads();
    const soft = this.#softState();
    const hard = r.hardState();
    const committedEntries = r.log.nextCommittedEntries();
    const snapshot = r.log.unstable.snapshot;
    invariant(
      snapshot === undefined || committedEntries.length === 0,
      () => `a Ready would apply entries beside the snapshot at ${snapshot!.meta.index}`,
    );
    const after = r.msgsAfterAppend;
    const rd: Ready = {
      softState: soft.lead !== this.#prevSoft.lead || soft.role !== this.#prevSoft.role
        ? soft
        : undefined,
      hardState: sameHardState(hard, this.#prevHard) ? undefined : hard,
      ...(snapshot === undefined ? {} : { snapshot }),
      entries: r.log.unstableEntries(),
      messages: r.msgs,
      persistedMessages: after.filter((m) => m.to !== r.id),
      committedEntries,
      readStates: r.readOnly.ready,
      abandonedReads: r.abandonedReads,
    };
    r.readOnly.ready = [];
    r.abandonedReads = [];
    this.#selfMessages = after.filter((m) => m.to === r.id);
    r.msgs = [];
    r.msgsAfterAppend = [];
    if (snapshot !== undefined) r.log.applyingSnapshot(snapshot);
    if (committedEntries.length > 0) {
      r.log.applyingTo(committedEntries[committedEntries.length - 1]!.index);
    }
    this.#prevSoft = soft;
    if (rd.hardState !== undefined) this.#prevHard = hard;
    this.#outstanding = rd;
    return rd;
  }

  /**
   * The Ready was handled: its snapshot, entries and hard state are durable, its
   * messages sent, its snapshot and committed entries applied.
   */
  advance(rd: Ready): void {
    invariant(rd === this.#outstanding, () => "advance() called with a Ready not handed out last");
    this.#outstanding = undefined;
    const r = this.raft;
    if (rd.snapshot !== undefined) {
      r.log.stableSnapTo(rd.snapshot.meta.index);
      r.log.appliedTo(rd.snapshot.meta.index);
    }
    const last = rd.entries[rd.entries.length - 1];
    if (last !== undefined) r.log.stableTo(last.index, last.term);
    const applied = rd.committedEntries[rd.committedEntries.length - 1];
    if (applied !== undefined) r.log.appliedTo(applied.index);
    maybeAutoLeave(r);
    const self = this.#selfMessages;
    this.#selfMessages = [];
    for (const m of self) r.step(m);
  }

  status(): Status {
    const r = this.raft;
    const base = {
      id: r.id,
      role: r.role,
      term: r.term,
      vote: r.vote,
      lead: r.lead,
      commit: r.log.committed,
      applied: r.log.applied,
      firstIndex: r.log.firstIndex(),
      lastIndex: r.log.lastIndex(),
      conf: r.trk.confState(),
      leadTransferee: r.leadTransferee,
    };
    if (r.role !== "leader") return base;
    const progress = new Map<NodeId, ProgressStatus>();
    for (const [id, pr] of r.trk.progress) {
      progress.set(id, {
        match: pr.match,
        next: pr.next,
        state: pr.state,
        pendingSnapshot: pr.pendingSnapshot,
        isLearner: pr.isLearner,
      });
    }
    return { ...base, progress };
  }
}
