/**
 * The runtime of one raftkv node: the only place with timers, disk and awaits.
 * It drives the pure core ({@link RawNode}) through the Ready loop, persists to
 * the write-ahead log, sends through the peer transport, applies committed
 * entries to the key-value store, and answers the services' waiting calls.
 *
 * @module
 */

import { AppliedChain } from "../kv/applied_chain.ts";
import { decodeCommand } from "../kv/command.ts";
import { encodeKvStateInSteps, type KvSnapshotState } from "../kv/state_codec.ts";
import { type ApplyResult, KvStore } from "../kv/store.ts";
import { NotLeaderError } from "../raft/errors.ts";
import type { Logger } from "../raft/logger.ts";
import type { Random } from "../raft/rand.ts";
import { RawNode, type Ready, type Status } from "../raft/raw_node.ts";
import type { MemoryStorage } from "../raft/storage.ts";
import {
  type Entry,
  type Message,
  type NodeId,
  NONE,
  type Role,
  type Snapshot,
} from "../raft/types.ts";
import type { SnapshotStore } from "../snapshot/store.ts";
import type { Wal } from "../wal/mod.ts";
import { DataDirError, openDataDir } from "./data_dir.ts";
import type { NodeObserver } from "./node_observer.ts";
import { decodeSnapshotState, restoreStorage, SnapshotRestoreError } from "./restore.ts";
import { type FinishedSnapshot, Snapshotter } from "./snapshotter.ts";
import { type PeerAddress, PeerTransport } from "./transport.ts";

/** Why a call could not be completed; the services map it to a gRPC status. */
export class NodeError extends Error {
  override name = "NodeError";
  constructor(
    readonly kind: "not_leader" | "unavailable" | "deadline" | "stopped",
    message: string,
    readonly leader: NodeId = NONE,
  ) {
    super(message);
  }
}

/**
 * How long a node that cannot go on keeps answering before it reports the failure
 * through {@link RaftKvNode.failed} (on which main exits): long enough for the calls
 * it just failed, and any that arrive meanwhile, to get UNAVAILABLE with the reason
 * (a full disk, say) rather than a dropped connection.
 */
export const FAIL_GRACE_MS = 1000;

/** A change of the leader a node knows of, as {@link RaftKvNode.onLeaderChange} reports it. */
export interface LeaderChange {
  /** The leader the node now knows of, or {@link NONE}. */
  readonly leader: NodeId;
  /** True on the last report, when the node stops or fails (`leader` is then NONE). */
  readonly final: boolean;
}

/** Options of a {@link RaftKvNode}. */
export interface RaftKvNodeOptions {
  readonly id: NodeId;
  readonly clusterId: string;
  /** Every member, this node included, at the address this node dials it. */
  readonly peers: ReadonlyMap<NodeId, PeerAddress>;
  readonly dataDir: string;
  readonly heartbeatMs: number;
  readonly electionMs: number;
  /** The logger for this node; its context should name node, term and role. */
  readonly logger: Logger;
  /** Randomness for election timeouts. */
  readonly random: Random;
  /** A snapshot is taken every this many applied entries (`--snapshot-entries`). */
  readonly snapshotEntries?: number;
  /** Entries kept behind a snapshot for slow followers (`--snapshot-catchup-entries`). */
  readonly snapshotCatchupEntries?: number;
  /** Told of what the node does, for metrics (node_observer.ts); none by default. */
  readonly observer?: NodeObserver;
}

/** `--snapshot-entries` by default, etcd's `--snapshot-count` of late. */
export const DEFAULT_SNAPSHOT_ENTRIES = 10_000;
/** `--snapshot-catchup-entries` by default, etcd's `SnapshotCatchUpEntries`. */
export const DEFAULT_SNAPSHOT_CATCHUP_ENTRIES = 5_000;

/** The election timeout in ticks of --heartbeat-ms (the core's electionTick). */
function electionTicks(options: RaftKvNodeOptions): number {
  return Math.max(2, Math.round(options.electionMs / options.heartbeatMs));
}

/** A promise that settles once, with its resolvers at hand. */
interface Waiter<T> {
  resolve(value: T): void;
  reject(err: Error): void;
}

interface ProposalWaiter extends Waiter<{ index: number; result: ApplyResult }> {
  readonly term: number;
}

/** A confirmed read waiting for the state machine to apply `index`. */
interface PendingApply {
  readonly index: number;
  readonly waiter: Waiter<void>;
}

/** Wakes the Ready loop. Many kicks between two waits count as one. */
class Kicker {
  #pending = false;
  #wake: (() => void) | undefined;

  kick(): void {
    this.#pending = true;
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  wait(): Promise<void> {
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.#wake = () => {
        this.#pending = false;
        resolve();
      };
    });
  }
}

/**
 * Waits for a waiter that `register` files somewhere, or rejects with a
 * deadline error when `signal` aborts first; `register` returns how to unfile it.
 */
function abortableWait<T>(
  signal: AbortSignal | undefined,
  onAbortError: NodeError,
  register: (waiter: Waiter<T>) => () => void,
): Promise<T> {
  if (signal?.aborted) return Promise.reject(onAbortError);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      unregister();
      reject(onAbortError);
    };
    const unregister = register({
      resolve: (v) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(v);
      },
      reject: (e) => {
        signal?.removeEventListener("abort", onAbort);
        reject(e);
      },
    });
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** One running raftkv node. */
export class RaftKvNode {
  readonly id: NodeId;
  readonly options: RaftKvNodeOptions;
  readonly kv = new KvStore();
  #chain = new AppliedChain();
  /** The term of the entry at the applied index (what a snapshot taken now records). */
  #appliedTerm = 0;
  readonly #snapshots: SnapshotStore;
  readonly #snapshotter: Snapshotter;
  readonly #catchupEntries: number;
  readonly #log: Logger;
  readonly #raw: RawNode;
  readonly #storage: MemoryStorage;
  readonly #wal: Wal;
  readonly #lock: Deno.FsFile;
  readonly #transport: PeerTransport;
  readonly #kicker = new Kicker();
  readonly #proposals = new Map<number, ProposalWaiter>();
  readonly #reads = new Map<number, Waiter<number>>();
  #nextReadId = 1;
  /** Reads confirmed, waiting for the state machine to reach their index. */
  #readsAwaitingApply: PendingApply[] = [];
  /** Subscribers to leader changes ({@link RaftKvNode.onLeaderChange}), and what they last heard. */
  readonly #leaderListeners = new Set<(change: LeaderChange) => void>();
  #reportedLeader: NodeId = NONE;
  #leaderFinal = false;
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
  ) {
    this.#lock = lock;
    this.#snapshots = snapshots;
    this.#catchupEntries = options.snapshotCatchupEntries ?? DEFAULT_SNAPSHOT_CATCHUP_ENTRIES;
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
    this.#raw = raw;
    this.#storage = storage;
    this.#wal = wal;
    this.#transport = new PeerTransport({
      selfId: options.id,
      clusterId: options.clusterId,
      peers: options.peers,
      logger: options.logger,
      timeoutMs: Math.max(options.electionMs, 1000),
      observer: options.observer,
      // The core sends a follower nothing more until it hears how its snapshot went (§7).
      onSnapshotReport: (to, failed) => {
        if (this.#stopping || this.#fatal !== undefined) return;
        this.#raw.reportSnapshot(to, failed ? "failure" : "finish");
        this.#kicker.kick();
      },
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
    const log = options.logger;
    let opened;
    try {
      opened = await openDataDir({
        dir: options.dataDir,
        identity: { nodeId: options.id, clusterId: options.clusterId, peers: options.peers },
        logger: log,
        io: options.observer?.walIo,
      });
    } catch (err) {
      if (err instanceof DataDirError) throw new NodeError("unavailable", err.message);
      throw err;
    }
    const { lock, wal, recovery, snapshots, snapshot, snapshotPath } = opened;
    let restored;
    try {
      restored = await restoreStorage(
        [...options.peers.keys()],
        snapshot,
        snapshotPath,
        wal,
        recovery,
        log,
      );
    } catch (err) {
      await wal.close();
      lock.close();
      if (err instanceof SnapshotRestoreError) throw new NodeError("unavailable", err.message);
      throw err;
    }
    const { storage, hardState } = restored;
    log.info("recovered from the snapshot and the write-ahead log", {
      snapshot: restored.applied,
      term: hardState.term,
      vote: hardState.vote,
      commit: hardState.commit,
      firstIndex: storage.firstIndex(),
      lastIndex: storage.lastIndex(),
    });
    const electionTick = electionTicks(options);
    const raw = new RawNode(
      {
        id: options.id,
        random: options.random,
        electionTick,
        heartbeatTick: 1,
        logger: log,
        // Restarting (see raw_node.ts): the state machine holds the snapshot, so
        // the core hands out only the committed entries after it.
        applied: restored.applied,
      },
      storage,
    );
    const node = new RaftKvNode(options, raw, storage, wal, lock, snapshots);
    if (snapshot !== undefined && restored.state !== undefined) {
      node.#restore(snapshot, restored.state);
    }
    node.#loop = node.#run();
    node.#ticker = setInterval(() => {
      node.#ticksSinceStart++;
      node.#raw.tick();
      node.#kicker.kick();
    }, options.heartbeatMs);
    void node.#advanceElectionAtBoot();
    return node;
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
  async #advanceElectionAtBoot(): Promise<void> {
    const ticks = electionTicks(this.options);
    const others = this.options.peers.size - 1;
    const quorum = Math.floor(this.options.peers.size / 2) + 1;
    const deadline = performance.now() + this.options.electionMs;
    const noLeaderYet = () => {
      const s = this.#raw.status();
      return !this.#stopping && this.#fatal === undefined && s.role === "follower" &&
        s.lead === NONE;
    };
    let advance = others === 0 ? ticks - 1 : 0;
    while (others > 0 && noLeaderYet() && performance.now() < deadline) {
      const started = performance.now();
      const reachable = await this.#transport.reachablePeers(this.options.heartbeatMs * 2);
      if (reachable.length + 1 >= quorum) {
        // No leader heard from: the core's election clock has run since start.
        advance = Math.max(0, ticks - 2 - this.#ticksSinceStart);
        break;
      }
      // Refused connections answer at once: wait out a heartbeat before asking again.
      const left = this.options.heartbeatMs - (performance.now() - started);
      if (left > 0) await new Promise((r) => setTimeout(r, left));
    }
    if (advance <= 0 || !noLeaderYet()) return;
    this.#log.info("no leader yet and a quorum is reachable: advancing election ticks", {
      ticks: advance,
      of: ticks,
    });
    for (let i = 0; i < advance; i++) this.#raw.tick();
    this.#kicker.kick();
  }

  // ---------------------------------------------------------------------------
  // The Ready loop.

  async #run(): Promise<void> {
    try {
      while (!this.#stopping && this.#fatal === undefined) {
        const finished = this.#snapshotter.takeFinished();
        if (finished !== undefined) this.#compact(finished);
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
    this.#failAll(new NodeError("unavailable", `node ${this.id} failed: ${this.#fatal.message}`));
    this.#reportLeader(NONE, true);
    this.#kicker.kick();
    const fatal = this.#fatal;
    setTimeout(() => this.#onFatal?.(fatal), FAIL_GRACE_MS);
  }

  async #handle(rd: Ready): Promise<void> {
    // The leader's appends go out while its own write runs (dissertation §10.2.1).
    this.#transport.send(rd.messages);
    if (rd.snapshot !== undefined) await this.#install(rd.snapshot);
    if (rd.hardState !== undefined || rd.entries.length > 0) {
      const began = performance.now();
      await this.#wal.save(rd.hardState, rd.entries);
      this.options.observer?.walSaved?.((performance.now() - began) / 1000);
      if (rd.hardState !== undefined) this.#storage.setHardState(rd.hardState);
      this.#storage.append(rd.entries);
    }
    // Votes and acknowledgements promise what is now durable (§5.1).
    this.#transport.send(rd.persistedMessages);
    for (const e of rd.committedEntries) this.#apply(e);
    this.#maybeSnapshot();
    for (const rs of rd.readStates) {
      const w = this.#reads.get(rs.requestId);
      this.#reads.delete(rs.requestId);
      w?.resolve(rs.index);
    }
    for (const id of rd.abandonedReads) {
      const w = this.#reads.get(id);
      this.#reads.delete(id);
      w?.reject(
        new NodeError("unavailable", "leadership changed before the read was confirmed"),
      );
    }
    if (rd.softState !== undefined) this.#onSoftState(rd.softState.role, rd.softState.lead);
    this.#raw.advance(rd);
    this.#releaseReads();
  }

  /**
   * Installs a snapshot from the leader (§7, a Ready's `snapshot`): its file is
   * made durable first, then the WAL starts over after it, then the storage and
   * the state machine take it, all before anything after it is persisted or
   * applied. A crash after the file is durable restarts from the file.
   */
  async #install(snapshot: Snapshot): Promise<void> {
    const { index, term } = snapshot.meta;
    const state = decodeSnapshotState(snapshot, "the snapshot from the leader");
    await this.#snapshotter.idle(); // one snapshot file written at a time
    this.#snapshotter.takeFinished(); // older than this one: nothing to compact to
    const path = await this.#snapshots.save(snapshot);
    await this.#wal.resetTo(index);
    this.#storage.applySnapshot(snapshot);
    this.#restore(snapshot, state);
    this.#snapshotter.noteInstalled(index);
    this.#log.info("installed a snapshot from the leader", { index, term, file: path });
    this.options.observer?.snapshotInstalled?.();
  }

  /** Replaces the state machine and the applied chain with a snapshot's. */
  #restore(snapshot: Snapshot, state: KvSnapshotState): void {
    this.kv.restore(state.store);
    this.#chain = new AppliedChain(state.chainLink);
    this.#appliedTerm = snapshot.meta.term;
  }

  /**
   * Every `--snapshot-entries` applied entries, captures the state at the applied
   * index (synchronously, cheaply) and lets the snapshotter write it in the
   * background; see `snapshotter.ts`.
   */
  #maybeSnapshot(): void {
    const applied = this.kv.appliedIndex;
    if (!this.#snapshotter.due(applied)) return;
    const conf = this.#storage.snapshot().meta.index > 0
      ? this.#storage.snapshot().meta.conf
      : { voters: [...this.options.peers.keys()].sort((a, b) => a - b) };
    this.#snapshotter.start(
      { index: applied, term: this.#appliedTerm, conf },
      { store: this.kv.exportState(), appliedTerm: this.#appliedTerm, chainLink: this.#chain.link },
    );
  }

  /**
   * A snapshot's file is durable: record it in the storage, compact the log
   * behind it keeping `--snapshot-catchup-entries` entries for followers a
   * little behind (etcd keeps 5,000), and release the WAL segments below.
   * Runs between two Readies, so the core sees the storage change at once.
   */
  #compact(finished: FinishedSnapshot): void {
    const { meta, data } = finished.snapshot;
    if (meta.index <= this.#storage.snapshot().meta.index) return; // one was installed meanwhile
    this.#storage.createSnapshot(meta.index, meta.conf, data);
    const keepAfter = Math.max(this.#storage.firstIndex() - 1, meta.index - this.#catchupEntries);
    this.#storage.compact(keepAfter);
    this.#wal.releaseBefore(keepAfter + 1).catch((err) => this.#fail(err));
    this.options.observer?.compacted?.();
    this.#log.info("took a snapshot", {
      index: meta.index,
      term: meta.term,
      bytes: data.length,
      ms: Math.round(finished.tookMs),
      firstIndex: this.#storage.firstIndex(),
    });
  }

  #apply(e: Entry): void {
    this.#chain.add(e);
    this.#appliedTerm = e.term;
    let result: ApplyResult;
    if (e.data.length === 0) {
      result = this.kv.applyCommand(e.index, undefined);
    } else {
      let command;
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
      result = this.kv.applyCommand(e.index, command);
    }
    const w = this.#proposals.get(e.index);
    if (w === undefined) return;
    this.#proposals.delete(e.index);
    if (w.term === e.term) {
      w.resolve({ index: e.index, result });
    } else {
      // Another leader's entry took the slot: ours can never commit.
      w.reject(
        new NodeError("unavailable", "the write was superseded by a new leader and did not commit"),
      );
    }
  }

  #onSoftState(role: Role, lead: NodeId): void {
    if (role !== "leader" && this.#proposals.size > 0) {
      const err = new NodeError(
        "unavailable",
        "leadership was lost before the write committed; it may or may not take effect",
        lead,
      );
      for (const w of this.#proposals.values()) w.reject(err);
      this.#proposals.clear();
    }
    this.#reportLeader(lead, false);
    this.options.observer?.softStateChanged?.(role, lead, this.#raw.raft.term);
  }

  /** Tells the leader listeners of a change of leader (once per change), or of the end. */
  #reportLeader(lead: NodeId, final: boolean): void {
    if (this.#leaderFinal || (!final && lead === this.#reportedLeader)) return;
    this.#reportedLeader = lead;
    this.#leaderFinal = final;
    const change: LeaderChange = { leader: lead, final };
    for (const l of [...this.#leaderListeners]) {
      try {
        l(change);
      } catch (err) {
        this.#log.error("a leader-change listener threw", { error: String(err) });
      }
    }
    if (final) this.#leaderListeners.clear();
  }

  #releaseReads(): void {
    if (this.#readsAwaitingApply.length === 0) return;
    const applied = this.kv.appliedIndex;
    const still: PendingApply[] = [];
    for (const r of this.#readsAwaitingApply) {
      if (r.index <= applied) r.waiter.resolve();
      else still.push(r);
    }
    this.#readsAwaitingApply = still;
  }

  #failAll(err: NodeError): void {
    for (const w of this.#proposals.values()) w.reject(err);
    this.#proposals.clear();
    for (const w of this.#reads.values()) w.reject(err);
    this.#reads.clear();
    for (const r of this.#readsAwaitingApply) r.waiter.reject(err);
    this.#readsAwaitingApply = [];
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
      for (const m of messages) this.#raw.step(m);
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
   * it is committed and applied, with what applying it produced.
   */
  propose(data: Uint8Array, signal?: AbortSignal): Promise<{ index: number; result: ApplyResult }> {
    this.#checkRunning();
    let proposed: { index: number; term: number };
    try {
      proposed = this.#raw.propose(data);
    } catch (err) {
      if (err instanceof NotLeaderError) {
        throw new NodeError("not_leader", err.message, err.leader);
      }
      throw err;
    }
    this.#kicker.kick();
    const { index, term } = proposed;
    const late = new NodeError("deadline", "the deadline passed before the write committed");
    const observer = this.options.observer;
    observer?.proposed?.();
    const ended = abortableWait<{ index: number; result: ApplyResult }>(signal, late, (w) => {
      const waiter: ProposalWaiter = { ...w, term };
      this.#proposals.set(index, waiter);
      return () => {
        if (this.#proposals.get(index) === waiter) this.#proposals.delete(index);
      };
    });
    ended.then(() => observer?.proposalEnded?.("committed"), () => {
      observer?.proposalEnded?.("failed");
    });
    return ended;
  }

  /**
   * Waits until this node, the leader, may serve a linearizable read: its
   * leadership is confirmed by a quorum after the call began, and its state
   * machine has applied everything committed before it (ReadIndex, §6.4).
   */
  async linearizableRead(signal?: AbortSignal): Promise<void> {
    this.#checkRunning();
    const id = this.#nextReadId++;
    try {
      this.#raw.readIndex(id);
    } catch (err) {
      if (err instanceof NotLeaderError) {
        throw new NodeError("not_leader", err.message, err.leader);
      }
      throw err;
    }
    this.#kicker.kick();
    const index = await abortableWait<number>(
      signal,
      new NodeError("deadline", "the deadline passed before the read was confirmed"),
      (w) => {
        this.#reads.set(id, w);
        return () => this.#reads.delete(id);
      },
    );
    if (index <= this.kv.appliedIndex) return;
    await abortableWait<void>(
      signal,
      new NodeError("deadline", "the deadline passed before the read could be served"),
      (w) => {
        const entry: PendingApply = { index, waiter: w };
        this.#readsAwaitingApply.push(entry);
        return () => {
          this.#readsAwaitingApply = this.#readsAwaitingApply.filter((r) => r !== entry);
        };
      },
    );
  }

  /** The leader this node knows of, or {@link NONE}. */
  leader(): NodeId {
    return this.#raw.raft.lead;
  }

  /** Resolves with the leader's id once one is known, or rejects when `signal` aborts. */
  waitForLeader(signal?: AbortSignal): Promise<NodeId> {
    this.#checkRunning();
    const now = this.leader();
    if (now !== NONE) return Promise.resolve(now);
    const none = new NodeError("unavailable", "no leader is known: the cluster has no quorum");
    return abortableWait(signal, none, (w) => {
      const off = this.onLeaderChange((change) => {
        if (change.final) {
          off();
          w.reject(new NodeError("stopped", `node ${this.id} is shutting down`));
        } else if (change.leader !== NONE) {
          off();
          w.resolve(change.leader);
        }
      });
      return off;
    });
  }

  /**
   * Calls `listener` each time the leader this node knows of changes (with NONE
   * when it loses it), and a last time, with `final` set, when the node stops or
   * fails. Returns a function that unsubscribes. Subscribing after the end gets
   * the final report on a microtask.
   */
  onLeaderChange(listener: (change: LeaderChange) => void): () => void {
    if (this.#leaderFinal) {
      queueMicrotask(() => listener({ leader: NONE, final: true }));
      return () => {};
    }
    this.#leaderListeners.add(listener);
    return () => this.#leaderListeners.delete(listener);
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

  /**
   * Fingerprints of what this node applied: the key-value state's digest and a
   * hash chain over the applied entries. Equal on two nodes at the same applied
   * index exactly when they applied the same sequence (tests and chaos runs
   * compare them).
   */
  fingerprints(): { state: string; chain: string } {
    return { state: this.kv.digest(), chain: this.#chain.hex() };
  }

  /**
   * A snapshot of the state this node has applied, as of one index: a backup
   * (ClusterService/SnapshotSave, etcd's `snapshot save`). The state is taken at
   * one instant (KvStore.exportState shares the values, it does not copy them) and
   * then encoded a slice at a time, letting the Ready loop run between slices. Its
   * membership is the one the core runs with. Throws a NodeError before the node
   * has applied anything (a snapshot at index 0 stands for nothing).
   */
  async backupSnapshot(): Promise<Snapshot> {
    this.#checkRunning();
    const store = this.kv.exportState();
    const index = store.appliedIndex;
    if (index === 0) {
      throw new NodeError("unavailable", `node ${this.id} has applied nothing yet; try again`);
    }
    // Taken with the state, before the first await: all as of `index`. The
    // membership as #maybeSnapshot takes it.
    const term = this.#appliedTerm;
    const conf = this.#storage.snapshot().meta.index > 0
      ? this.#storage.snapshot().meta.conf
      : { voters: [...this.options.peers.keys()].sort((a, b) => a - b) };
    const steps = encodeKvStateInSteps({ store, appliedTerm: term, chainLink: this.#chain.link });
    for (;;) {
      const step = steps.next();
      if (step.done) return { meta: { index, term, conf }, data: step.value };
      await new Promise((resolve) => setTimeout(resolve, 0));
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
    this.#failAll(new NodeError("stopped", `node ${this.id} is shutting down`));
    this.#reportLeader(NONE, true);
    await this.#transport.close();
    await this.#snapshotter.idle();
    await this.#wal.close();
    this.#lock.close();
    this.#log.info("node stopped", {});
  }
}
