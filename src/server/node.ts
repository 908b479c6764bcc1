/**
 * The runtime of one raftkv node: the only place with timers, disk and awaits.
 * It drives the pure core ({@link RawNode}) through the Ready loop, persists to
 * the write-ahead log, sends through the peer transport, applies committed
 * entries to the key-value store, and answers the services' waiting calls.
 *
 * The pieces around the loop have files of their own: node_boot.ts (opening the
 * data dir and building the core), election_tick_advance.ts, pending_calls.ts
 * (the calls waiting on the loop), leader_watch.ts, node_membership.ts,
 * node_snapshots.ts, with node_error.ts, node_options.ts, waiters.ts and
 * kicker.ts beneath them. This file keeps the node's state and the loop itself.
 *
 * @module
 */

import { AppliedChain } from "../kv/applied_chain.ts";
import { type Command, decodeCommand } from "../kv/command.ts";
import {
  decodeMemberChange,
  type MemberChange,
  type MemberRecord,
  MemberRegistry,
} from "../kv/members.ts";
import type { KvSnapshotState } from "../kv/state_codec.ts";
import { type ApplyResult, KvStore } from "../kv/store.ts";
import { NotLeaderError, ProposalDroppedError } from "../raft/errors.ts";
import { decodeConfChange } from "../raft/confchange/codec.ts";
import type { Logger } from "../raft/logger.ts";
import { mustSync } from "../raft/must_sync.ts";
import { RawNode, type Ready, type Status } from "../raft/raw_node.ts";
import type { MemoryStorage } from "../raft/storage.ts";
import {
  confMembers,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  NONE,
  type Role,
  type Snapshot,
} from "../raft/types.ts";
import type { SnapshotStore } from "../snapshot/store.ts";
import type { Wal } from "../wal/mod.ts";
import type { ConfView } from "./membership.ts";
import { Snapshotter } from "./snapshotter.ts";
import { type PeerAddress, PeerTransport } from "./transport.ts";
import { HeartbeatRoundTrips } from "./heartbeat_round_trips.ts";
import { bootNode } from "./node_boot.ts";
import { advanceElectionAtBoot } from "./election_tick_advance.ts";
import { Kicker } from "./kicker.ts";
import { type LeaderChange, LeaderWatch } from "./leader_watch.ts";
import { NodeError } from "./node_error.ts";
import { NodeMembership } from "./node_membership.ts";
import { NodeSnapshots } from "./node_snapshots.ts";
import {
  DEFAULT_SNAPSHOT_CATCHUP_ENTRIES,
  DEFAULT_SNAPSHOT_ENTRIES,
  type RaftKvNodeOptions,
} from "./node_options.ts";
import { PendingCalls } from "./pending_calls.ts";
import { EntrySlab } from "./entry_slab.ts";

export type { LeaderChange } from "./leader_watch.ts";
export { NodeError } from "./node_error.ts";
export {
  DEFAULT_SNAPSHOT_CATCHUP_ENTRIES,
  DEFAULT_SNAPSHOT_ENTRIES,
  type RaftKvNodeOptions,
} from "./node_options.ts";

/**
 * How long a node that cannot go on keeps answering before it reports the failure
 * through {@link RaftKvNode.failed} (on which main exits): long enough for the calls
 * it just failed, and any that arrive meanwhile, to get UNAVAILABLE with the reason
 * (a full disk, say) rather than a dropped connection.
 */
export const FAIL_GRACE_MS = 1000;

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** One running raftkv node. */
export class RaftKvNode {
  readonly id: NodeId;
  readonly options: RaftKvNodeOptions;
  readonly kv = new KvStore();
  #chain = new AppliedChain();
  /**
   * The configuration this node's cluster was bootstrapped with (its data dir's
   * --peers), the founding identity peers compare (raft_service.ts); empty for a node
   * that joined a running cluster.
   */
  readonly bootstrap: readonly NodeId[];
  /** Addresses of the members added through the log (members.ts): replicated state. */
  #members = new MemberRegistry();
  /** The index of the last membership change applied (or of the snapshot that holds it). */
  #configIndex = 0;
  /** The term of the entry at the applied index (what a snapshot taken now records). */
  #appliedTerm = 0;
  readonly #snapshotter: Snapshotter;
  /** Taking, installing and compacting to snapshots (node_snapshots.ts). */
  readonly #snapshots: NodeSnapshots;
  readonly #log: Logger;
  readonly #raw: RawNode;
  readonly #storage: MemoryStorage;
  readonly #wal: Wal;
  readonly #lock: Deno.FsFile;
  readonly #transport: PeerTransport;
  readonly #kicker = new Kicker();
  readonly #roundTrips = new HeartbeatRoundTrips();
  /** Proposals and reads waiting on the Ready loop (pending_calls.ts). */
  readonly #pending = new PendingCalls();
  /** The bytes of this node's proposals, packed into shared buffers (entry_slab.ts). */
  readonly #slab = new EntrySlab();
  /** The newest hard state the core handed out; the WAL may hold an older commit index. */
  #latestHard: HardState;
  /** Subscribers to leader changes ({@link RaftKvNode.onLeaderChange}): leader_watch.ts. */
  readonly #leaders: LeaderWatch;
  /** The membership calls (node_membership.ts). */
  readonly #membership: NodeMembership;
  #ticker: ReturnType<typeof setInterval> | undefined;
  /** Ticks of the timer so far: with no leader heard from, the core's election clock. */
  #ticksSinceStart = 0;
  #loop: Promise<void> | undefined;
  #stopping = false;
  /** Set when the loop died: the node can no longer make progress. */
  #fatal: Error | undefined;
  #onFatal: ((err: Error) => void) | undefined;
  /** Resolves with the error that stopped the node, if one ever does. */
  readonly failed: Promise<Error> = new Promise((resolve) => this.#onFatal = resolve);

  private constructor(
    options: RaftKvNodeOptions,
    raw: RawNode,
    storage: MemoryStorage,
    wal: Wal,
    lock: Deno.FsFile,
    snapshots: SnapshotStore,
    bootstrap: readonly NodeId[],
  ) {
    this.bootstrap = bootstrap;
    this.#lock = lock;
    this.#snapshotter = new Snapshotter({
      store: snapshots,
      logger: options.logger,
      everyEntries: options.snapshotEntries ?? DEFAULT_SNAPSHOT_ENTRIES,
      startIndex: storage.snapshot().meta.index,
      onFinished: () => this.#kicker.kick(),
    });
    this.id = options.id;
    this.options = options;
    this.#log = options.logger;
    this.#leaders = new LeaderWatch(options.id, options.logger);
    this.#raw = raw;
    this.#storage = storage;
    this.#wal = wal;
    this.#latestHard = storage.hardState();
    this.#transport = new PeerTransport({
      selfId: options.id,
      clusterId: options.clusterId,
      peers: options.peers,
      // Batches state the bootstrap membership, the cluster's founding identity
      // (raft_service.ts); a node that joined knows none and states none.
      members: bootstrap,
      logger: options.logger,
      timeoutMs: Math.max(options.electionMs, 1000),
      dialer: options.dialer,
      rawPeerStream: options.rawPeerStream,
      observer: options.observer,
      // The core sends a follower nothing more until it hears how its snapshot went (§7).
      onSnapshotReport: (to, failed) => {
        if (this.#stopping || this.#fatal !== undefined) return;
        this.#raw.reportSnapshot(to, failed ? "failure" : "finish");
        this.#kicker.kick();
      },
      // The storage holds its snapshot's metadata only (src/snapshot/on_disk.ts).
      readSnapshotFile: (term, index) => snapshots.readFile(term, index),
    });
    this.#snapshots = new NodeSnapshots({
      id: this.id,
      options,
      kv: this.kv,
      raw,
      storage,
      wal,
      store: snapshots,
      snapshotter: this.#snapshotter,
      catchupEntries: options.snapshotCatchupEntries ?? DEFAULT_SNAPSHOT_CATCHUP_ENTRIES,
      log: options.logger,
      chain: () => this.#chain,
      appliedTerm: () => this.#appliedTerm,
      members: () => this.#members,
      restore: (snapshot, state) => this.#restore(snapshot, state),
      checkRunning: () => this.#checkRunning(),
      fail: (err) => this.#fail(err),
    });
    this.#membership = new NodeMembership({
      id: this.id,
      options,
      raw,
      log: options.logger,
      pending: this.#pending,
      members: () => this.#members,
      configIndex: () => this.#configIndex,
      checkRunning: () => this.#checkRunning(),
      stopped: () => this.#stopping || this.#fatal !== undefined,
      kick: () => this.#kicker.kick(),
      onLeaderChange: (listener) => this.onLeaderChange(listener),
    });
  }

  /**
   * Opens the node's data dir (see `data_dir.ts`: its lock, its identity checked
   * against the options, its WAL recovering term, vote and log), builds the core,
   * and starts the Ready loop and the tick timer. Committed entries are replayed
   * into the key-value store by the loop as it starts. Throws a {@link NodeError}
   * when the data dir cannot be used (main prints it and exits 1).
   */
  static async start(options: RaftKvNodeOptions): Promise<RaftKvNode> {
    const { raw, storage, wal, lock, snapshots, bootstrap, snapshot, state } = await bootNode(
      options,
    );
    const node = new RaftKvNode(options, raw, storage, wal, lock, snapshots, bootstrap);
    if (snapshot !== undefined && state !== undefined) {
      node.#restore(snapshot, state);
    }
    node.#loop = node.#run();
    node.#ticker = setInterval(() => {
      node.#ticksSinceStart++;
      node.#raw.tick();
      node.#kicker.kick();
    }, options.heartbeatMs);
    void advanceElectionAtBoot({
      id: node.id,
      options,
      raw: node.#raw,
      transport: node.#transport,
      log: node.#log,
      stopped: () => node.#stopping || node.#fatal !== undefined,
      ticksSinceStart: () => node.#ticksSinceStart,
      kick: () => node.#kicker.kick(),
    });
    return node;
  }

  // ---------------------------------------------------------------------------
  // The Ready loop.

  async #run(): Promise<void> {
    try {
      while (!this.#stopping && this.#fatal === undefined) {
        const finished = this.#snapshotter.takeFinished();
        if (finished !== undefined) this.#snapshots.compact(finished);
        if (!this.#raw.hasReady()) {
          await this.#kicker.wait();
          continue;
        }
        const began = performance.now();
        await this.#handle(this.#raw.ready());
        this.options.observer?.readyHandled?.((performance.now() - began) / 1000);
      }
    } catch (err) {
      this.#fail(err);
    }
  }

  /** The node cannot go on (a failed write, a broken invariant): answer everyone and report it. */
  #fail(err: unknown): void {
    if (this.#fatal !== undefined) return;
    this.#fatal = err instanceof Error ? err : new Error(String(err));
    this.#log.error("the node cannot go on", { error: this.#fatal.message });
    this.#pending.failAll(
      new NodeError("unavailable", `node ${this.id} failed: ${this.#fatal.message}`),
    );
    this.#leaders.report(NONE, true);
    this.#kicker.kick();
    const fatal = this.#fatal;
    setTimeout(() => this.#onFatal?.(fatal), FAIL_GRACE_MS);
  }

  async #handle(rd: Ready): Promise<void> {
    // The leader's appends go out while its own write runs (dissertation §10.2.1).
    this.#roundTrips.sent(rd.messages, performance.now());
    this.#transport.send(rd.messages);
    if (rd.snapshot !== undefined) await this.#snapshots.install(rd.snapshot);
    if (rd.hardState !== undefined) {
      this.#storage.setHardState(rd.hardState);
      this.#latestHard = rd.hardState;
    }
    // One write and one fsync per Ready, and none when the only change is the
    // commit index (mustSync, etcd's MustSync: the commit index is volatile state,
    // recomputed after a restart). The newest hard state rides along with the next
    // save that must sync anyway, so the WAL's commit index lags by one batch at most.
    // A membership change applied syncs too, so that a restart never runs an older
    // configuration than this node applied (see must_sync.ts).
    const wal = this.#wal.savedHardState;
    let saved: Promise<void> | undefined;
    if (mustSync(wal, this.#latestHard, rd)) {
      const changed = !sameHardState(this.#latestHard, wal);
      const began = performance.now();
      saved = this.#wal.save(changed ? this.#latestHard : undefined, rd.entries).then(() => {
        this.options.observer?.walSaved?.((performance.now() - began) / 1000);
      });
    }
    // Committed entries are already durable here and on a majority (the core hands
    // out only entries its log has persisted, RaftLog.nextCommittedEntries): apply
    // them, and answer their clients, while this Ready's own write runs, as etcd's
    // server applies in parallel with its raft loop's WAL write.
    for (const e of rd.committedEntries) this.#apply(e);
    this.#snapshots.maybeSnapshot();
    this.#pending.readsSettled(rd.readStates, rd.abandonedReads);
    if (rd.softState !== undefined) this.#onSoftState(rd.softState.role, rd.softState.lead);
    if (saved !== undefined) await saved;
    this.#storage.append(rd.entries);
    // Votes and acknowledgements promise what is now durable (§5.1).
    this.#transport.send(rd.persistedMessages);
    this.#raw.advance(rd);
    this.#pending.releaseReads(this.kv.appliedIndex);
  }

  /** Replaces the state machine and the applied chain with a snapshot's. */
  #restore(snapshot: Snapshot, state: KvSnapshotState): void {
    this.kv.restore(state.store);
    this.#chain = new AppliedChain(state.chainLink, state.chainGroup);
    this.#members = new MemberRegistry(state.members);
    this.#configIndex = snapshot.meta.index;
    this.#syncPeers(snapshot.meta.conf);
    this.#appliedTerm = snapshot.meta.term;
  }

  #apply(e: Entry): void {
    this.#chain.add(e);
    this.#appliedTerm = e.term;
    let result: ApplyResult;
    if (e.type === "conf_change") {
      this.#applyConfChange(e);
      // The store's applied index moves on like for a no-op: every node does the same.
      result = this.kv.applyCommand(e.index, undefined);
    } else if (e.data.length === 0) {
      result = this.kv.applyCommand(e.index, undefined);
    } else {
      // The command as this node proposed it, if its call still waits; else decoded.
      let command = this.#pending.proposedCommand(e.index, e.term);
      if (command === undefined) {
        try {
          command = decodeCommand(e.data);
        } catch (err) {
          // Every node sees the same bytes and makes the same choice, so the state
          // machines stay equal; proposals are validated, so this means a bug.
          this.#log.error("committed entry is not a command; applying it as a no-op", {
            index: e.index,
            error: (err as Error).message,
          });
        }
      }
      result = this.kv.applyCommand(e.index, command);
    }
    this.#pending.applied(e.index, e.term, result);
  }

  /**
   * Puts a committed membership change in force (etcd's applied-config design: a
   * configuration counts from when it is applied, on every node, in log order, also
   * when entries are applied again after a restart): the core's configuration, the
   * member registry (addresses, from the entry's context) and the peers the
   * transport dials.
   */
  #applyConfChange(e: Entry): void {
    const cc = decodeConfChange(e.data);
    const conf = this.#raw.applyConfChange(cc);
    let change: MemberChange | undefined;
    try {
      change = decodeMemberChange(cc.context);
    } catch (err) {
      // Every node decodes the same bytes the same way: the registry stays equal.
      this.#log.error("a membership change carries a context this node cannot read", {
        index: e.index,
        error: (err as Error).message,
      });
    }
    this.#members.apply(change, {
      voters: [...conf.voters, ...conf.votersOutgoing],
      learners: [...conf.learners, ...conf.learnersNext],
    });
    this.#configIndex = e.index;
    this.#syncPeers(conf);
    this.#log.info("applied a membership change", {
      index: e.index,
      voters: conf.voters.join(","),
      learners: conf.learners.join(","),
      ...(conf.votersOutgoing.length > 0 ? { outgoing: conf.votersOutgoing.join(",") } : {}),
    });
  }

  /**
   * Dials the members of `conf` and the entries of `--peers` (a node that joins
   * knows its leader from there before it knows any configuration), each at the
   * address {@link peerAddress} gives.
   */
  #syncPeers(conf: ConfState): void {
    const peers = new Map<NodeId, PeerAddress>();
    for (const id of new Set([...confMembers(conf), ...this.options.peers.keys()])) {
      const a = this.peerAddress(id);
      if (a !== undefined) peers.set(id, a);
      else if (id !== this.id) {
        this.#log.warn("no address known for a member: it cannot be dialed", { peer: id });
      }
    }
    this.#transport.setPeers(peers);
  }

  #onSoftState(role: Role, lead: NodeId): void {
    if (role !== "leader") this.#pending.leadershipLost(lead);
    this.#leaders.report(lead, false);
    if (role !== "leader") this.#roundTrips.reset();
    this.options.observer?.softStateChanged?.(role, lead, this.#raw.raft.term);
  }

  #checkRunning(): void {
    if (this.#fatal !== undefined) {
      throw new NodeError("unavailable", `node ${this.id} has failed: ${this.#fatal.message}`);
    }
    if (this.#stopping) throw new NodeError("stopped", `node ${this.id} is shutting down`);
  }

  // ---------------------------------------------------------------------------
  // What the services call.

  /** Messages from a peer (RaftService/Send). */
  receive(messages: readonly Message[]): void {
    if (this.#stopping || this.#fatal !== undefined) return;
    try {
      for (const m of messages) {
        const rtt = this.#roundTrips.received(m, performance.now());
        if (rtt !== undefined) this.options.observer?.peerRoundTrip?.(m.from, rtt);
        this.#raw.step(m);
      }
    } catch (err) {
      // Peers are members of this cluster and their messages were checked at
      // the edge: a broken invariant here means this node's own state is wrong.
      this.#fail(err);
      throw err;
    }
    this.#kicker.kick();
  }

  /**
   * Proposes a command on this node, which must be the leader, and resolves when
   * it is committed and applied, with what applying it produced. `command`, if
   * given, is what `data` encode, applied instead of decoding `data` again if this
   * node still leads then (PendingCalls.proposedCommand says what it must be).
   */
  propose(
    data: Uint8Array,
    signal?: AbortSignal,
    command?: Command,
  ): Promise<{ index: number; result: ApplyResult }> {
    this.#checkRunning();
    let proposed: { index: number; term: number };
    try {
      proposed = this.#raw.propose(this.#slab.pack(data));
    } catch (err) {
      if (err instanceof NotLeaderError) {
        throw new NodeError("not_leader", err.message, err.leader);
      }
      // A leadership transfer under way (§3.10: the leader stops taking proposals):
      // nothing was appended; the client retries, soon at the new leader.
      if (err instanceof ProposalDroppedError) throw new NodeError("unavailable", err.message);
      throw err;
    }
    this.#kicker.kick();
    const { index, term } = proposed;
    this.options.observer?.proposed?.();
    const ended = this.#pending.waitForProposal(index, term, signal, lateWrite, command);
    ended.then(this.#proposalCommitted, this.#proposalFailed);
    return ended;
  }

  /** How a proposal ended, for the observer: made once, not twice per write (issue 11's heap profile). */
  readonly #proposalCommitted = (): void => this.options.observer?.proposalEnded?.("committed");
  readonly #proposalFailed = (): void => this.options.observer?.proposalEnded?.("failed");

  /**
   * Waits until this node, the leader, may serve a linearizable read: its
   * leadership is confirmed by a quorum after the call began, and its state
   * machine has applied everything committed before it (ReadIndex, §6.4).
   */
  async linearizableRead(signal?: AbortSignal): Promise<void> {
    this.#checkRunning();
    const id = this.#pending.nextReadId();
    try {
      this.#raw.readIndex(id);
    } catch (err) {
      if (err instanceof NotLeaderError) {
        throw new NodeError("not_leader", err.message, err.leader);
      }
      throw err;
    }
    this.#kicker.kick();
    const index = await this.#pending.waitForReadConfirmed(id, signal);
    if (index <= this.kv.appliedIndex) return;
    await this.#pending.waitForReadApplied(index, signal);
  }

  /** The leader this node knows of, or {@link NONE}. */
  leader(): NodeId {
    return this.#raw.raft.lead;
  }

  /** Resolves with the leader's id once one is known, or rejects when `signal` aborts. */
  waitForLeader(signal?: AbortSignal): Promise<NodeId> {
    this.#checkRunning();
    return this.#leaders.waitForLeader(this.leader(), signal);
  }

  /**
   * Calls `listener` each time the leader this node knows of changes (with NONE
   * when it loses it), and a last time, with `final` set, when the node stops or
   * fails. Returns a function that unsubscribes. Subscribing after the end gets
   * the final report on a microtask.
   */
  onLeaderChange(listener: (change: LeaderChange) => void): () => void {
    return this.#leaders.onLeaderChange(listener);
  }

  /**
   * The core's status plus the state machine's applied index, the index of the
   * newest snapshot and the first index the log holds.
   */
  status(): Status & {
    kvApplied: number;
    snapshotIndex: number;
    firstIndex: number;
    snapshotsTaken: number;
  } {
    return {
      ...this.#raw.status(),
      kvApplied: this.kv.appliedIndex,
      snapshotIndex: this.#storage.snapshot().meta.index,
      firstIndex: this.#storage.firstIndex(),
      snapshotsTaken: this.#snapshotter.taken,
    };
  }

  /** The role, term and last log index, as {@link status} reports them, without its copies. */
  logEnd(): { role: Role; term: number; lastIndex: number } {
    const r = this.#raw.raft;
    return { role: r.role, term: r.term, lastIndex: r.log.lastIndex() };
  }

  /**
   * Fingerprints of what this node applied: the key-value state's digest and a
   * hash chain over the applied entries. Equal on two nodes at the same applied
   * index exactly when they applied the same sequence (tests and chaos runs
   * compare them).
   */
  fingerprints(): { state: string; chain: string } {
    return { state: this.kv.digest(), chain: this.#chain.hex() };
  }

  /** See {@link NodeSnapshots.backupSnapshot}. */
  backupSnapshot(): Promise<Snapshot> {
    return this.#snapshots.backupSnapshot();
  }

  // ---------------------------------------------------------------------------
  // Membership (ClusterService's membership calls; node_membership.ts has them,
  // membership.ts the rules).

  /** See {@link NodeMembership.changeMembership}. */
  changeMembership(
    change: MemberChange & { readonly learner?: boolean },
    signal?: AbortSignal,
  ): Promise<{ members: MemberRecord[]; configIndex: number }> {
    return this.#membership.changeMembership(change, signal);
  }

  /** See {@link NodeMembership.transferLeadership}. */
  transferLeadership(
    target: NodeId,
    signal?: AbortSignal,
  ): Promise<{ leader: NodeId; term: number }> {
    return this.#membership.transferLeadership(target, signal);
  }

  /** See {@link NodeMembership.handOffLeadership}. */
  handOffLeadership(): Promise<void> {
    return this.#membership.handOffLeadership();
  }

  /** See {@link NodeMembership.knows}. */
  knows(id: NodeId): boolean {
    return this.#membership.knows(id);
  }

  /** See {@link NodeMembership.membership}. */
  membership(): { conf: ConfView; members: MemberRecord[]; configIndex: number } {
    return this.#membership.membership();
  }

  /** See {@link NodeMembership.peerAddress}. */
  peerAddress(id: NodeId): PeerAddress | undefined {
    return this.#membership.peerAddress(id);
  }

  /**
   * A clean stop writes the newest commit index, which the Ready loop does not
   * sync by itself (see #handle), so that the next start applies everything
   * committed at once instead of after hearing from a leader. A failure only
   * costs that: it is logged.
   */
  async #saveLatestHardState(): Promise<void> {
    if (sameHardState(this.#latestHard, this.#wal.savedHardState)) return;
    try {
      await this.#wal.save(this.#latestHard, []);
    } catch (err) {
      this.#log.warn("could not save the commit index on stopping", {
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }

  /**
   * Stops the node: no more ticks or messages, the write under way finishes,
   * the log is synced and closed. Calls still waiting are answered UNAVAILABLE.
   */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    clearInterval(this.#ticker);
    this.#kicker.kick();
    try {
      await this.#loop;
    } catch {
      // Already logged by the loop.
    }
    this.#pending.failAll(new NodeError("stopped", `node ${this.id} is shutting down`));
    this.#leaders.report(NONE, true);
    await this.#transport.close();
    await this.#snapshotter.idle();
    if (this.#fatal === undefined) await this.#snapshots.snapshotOnStop();
    if (this.#fatal === undefined) await this.#saveLatestHardState();
    await this.#wal.close();
    this.#lock.close();
    this.#log.info("node stopped", {});
  }
}

/**
 * The error of a write whose caller's signal aborted before it committed. Made
 * only if needed (an Error captures a stack, which costs every write: issue 11),
 * by one function for every write rather than a closure each.
 */
function lateWrite(): NodeError {
  return new NodeError("deadline", "the deadline passed before the write committed");
}
