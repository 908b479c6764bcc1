/**
 * A deterministic simulated Raft cluster: N {@link RawNode}s on a
 * {@link SimNetwork} with a virtual clock, each with its own "disk" (a
 * `MemoryStorage` that holds only what was persisted) and state machine (a hash
 * chain over what it applied, see state_machine.ts, and the entries it applied
 * since it was last restored).
 *
 * The driver follows the Ready contract: after every tick, message or proposal,
 * while the node has a Ready, it sends `messages` at once, applies
 * `committedEntries` (already durable; the runtime applies them while the Ready's
 * own write runs), persists `snapshot`, `entries` and `hardState` (the hard state
 * only when mustSync says so), then sends `persistedMessages`, restores its state
 * machine from `snapshot` and calls `advance`. In
 * checked mode the safety properties of `invariants.ts` are checked after every
 * one of those steps.
 *
 * Writes take time, as in the runtime (`src/server/node.ts` awaits the WAL's
 * fsync between sending `messages` and `persistedMessages`). With `writeDelay`,
 * a Ready that persists something is finished only when its write completes, a
 * random delay later; meanwhile the node keeps stepping messages, ticking, taking
 * proposals and reads, exactly as the runtime does while its save is awaited, and
 * takes no other Ready. A node that crashes with a write in flight keeps none of
 * it, a prefix of its entries (the WAL cuts a torn save back to whole records;
 * the hard state is written last), or all of it, as its disk PRNG decides.
 *
 * Reads: `readIndex` starts a ReadIndex read; when a Ready confirms it, the
 * checker verifies its index against the highest index committed anywhere when
 * it began (linearizability), and the read is served once the node has applied
 * that index.
 *
 * Snapshots (§7): `compact(id, keep)` makes a node snapshot its state machine at
 * its applied index and compact its disk's log up to `keep` entries behind it.
 * Taking the snapshot is a write of its own, beside the Ready writes: it takes
 * time when writes do, and a crash in the middle keeps the old snapshot or the
 * new one, never a mix (the runtime writes snapshot files atomically). A leader
 * whose follower needs compacted entries sends a `snap` message, which the
 * network treats like any other; when it is delivered the cluster reports
 * `finish` to the sender, and `failure` when it is lost, as the runtime's
 * transport will. A follower that takes it gets it in a Ready, persists it (a
 * crash while that write is in flight keeps none of the Ready, the snapshot and a
 * prefix of the entries after it, or all of it) and restores its state machine.
 *
 * Restart semantics: a restarted node gets a new RawNode over a `clone()` of its
 * disk. With no snapshot on its disk its state machine starts empty, with
 * `applied: 0`: the core hands back every committed entry again and the state
 * machine is rebuilt from index 1 (the checker verifies the replay matches what
 * was applied before). With one, the state machine is restored from it and the
 * core starts at `applied` = its index, handing back the committed entries after it.
 *
 * Everything random comes from PRNGs derived from the cluster seed (the network's
 * from `seed * 31`, node `id`'s from `seed * 31 + id`), so a run is a function of
 * its seed and the calls made on the cluster.
 *
 * @module
 */

import { decodeConfChange, describeConfChange } from "../../../src/raft/confchange/codec.ts";
import { describeConfState } from "../../../src/raft/describe.ts";
import { NotLeaderError } from "../../../src/raft/errors.ts";
import type { Logger } from "../../../src/raft/logger.ts";
import { type Random, randomInt, seededRandom } from "../../../src/raft/rand.ts";
import { mustSync } from "../../../src/raft/must_sync.ts";
import { RawNode, type Ready } from "../../../src/raft/raw_node.ts";
import { MemoryStorage } from "../../../src/raft/storage.ts";
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  Message,
  NodeId,
  Role,
  Snapshot,
} from "../../../src/raft/types.ts";
import {
  type AppliedEntry,
  checkCommitQuorum,
  InvariantChecker,
  type LogView,
  showData,
} from "./invariants.ts";
import { CLEAN_FAULTS, type NetworkFaults, SimNetwork } from "./network.ts";
import {
  applyEntry,
  decodeState,
  encodeState,
  INITIAL_STATE,
  type MachineState,
  showHash,
} from "./state_machine.ts";
import { Trace } from "./trace.ts";

export type { AppliedEntry } from "./invariants.ts";

/** The range of a write's duration, in virtual ms (both inclusive). */
export interface WriteDelay {
  readonly min: number;
  readonly max: number;
}

/** How a simulated cluster is built. */
export interface SimClusterOptions {
  /** Number of nodes that form the cluster at first (its voters); ids are 1..size. */
  readonly size: number;
  /**
   * Nodes started with an empty configuration, as a runtime starts a node that
   * is to join a running cluster: ids size+1..size+spares. They never campaign;
   * they take part once a membership change adds them (default 0).
   */
  readonly spares?: number;
  /** The seed every PRNG of the run derives from. */
  readonly seed: number;
  /** Virtual ms per tick (default 10). */
  readonly tickMs?: number;
  /** Core options, passed to every node (defaults: the core's). */
  readonly electionTick?: number;
  readonly heartbeatTick?: number;
  readonly preVote?: boolean;
  readonly checkQuorum?: boolean;
  readonly maxSizePerMsg?: number;
  readonly maxInflightMsgs?: number;
  readonly logger?: Logger;
  /**
   * How long a Ready's write takes (default: none, every Ready is handled at once,
   * inside the step that produced it).
   */
  readonly writeDelay?: WriteDelay;
  /** Initial network knobs (default {@link CLEAN_FAULTS}). */
  readonly faults?: Partial<NetworkFaults>;
  /** Check the safety properties after every step (default true). */
  readonly checked?: boolean;
  /** Trace lines kept (default 2,000). */
  readonly traceCapacity?: number;
}

/** Where a node armed with {@link SimCluster.crashMidReady} dies inside its next Ready. */
export type CrashPoint = "before_persist" | "after_persist";

/** The status a RawNode reports. */
export type NodeStatus = ReturnType<RawNode["status"]>;

/** Counters of one run. */
export interface ClusterStats {
  ticks: number;
  steps: number;
  readies: number;
  proposals: number;
  proposalsRejected: number;
  crashes: number;
  crashesMidReady: number;
  /** Readies whose only change was the commit index: nothing written (mustSync). */
  commitOnlyUnsynced: number;
  restarts: number;
  /** Readies whose write took time (the node ran on while it was in flight). */
  asyncWrites: number;
  /** Messages stepped, ticks, and proposals taken by a node while its write was in flight. */
  stepsDuringWrite: number;
  ticksDuringWrite: number;
  proposalsDuringWrite: number;
  /** Crashes with a write in flight, and of those, how many left a prefix of its entries. */
  crashesDuringWrite: number;
  tornWrites: number;
  /** ReadIndex reads: started, refused (not leader), confirmed and checked, abandoned, lost in a crash, served. */
  readsStarted: number;
  readsRejected: number;
  readsConfirmed: number;
  readsAbandoned: number;
  readsLost: number;
  readsServed: number;
  /** Snapshots nodes took of their own state (and compacted after), and those discarded. */
  snapshotsTaken: number;
  snapshotsDiscarded: number;
  /** `snap` messages sent by leaders, and the cluster's reports on them. */
  snapshotsSent: number;
  snapshotsReportedFinished: number;
  snapshotsReportedFailed: number;
  /** Snapshots a follower took from its leader and restored its state machine from. */
  snapshotsInstalled: number;
  /** Restarts whose state machine came back from a snapshot on disk. */
  restartsFromSnapshot: number;
  /** Crashes with a snapshot write in flight: taking one, or installing one from the leader. */
  crashesDuringSnapshotTake: number;
  crashesDuringSnapshotInstall: number;
  /** Conf change entries applied, on any node (each node counts its own). */
  confChangesApplied: number;
}

/** A Ready whose write is in flight. */
interface PendingWrite {
  readonly raw: RawNode;
  readonly rd: Ready;
  readonly doneAt: number;
}

/** A snapshot of a node's own state machine being written (then the log compacted). */
interface PendingSnapshot {
  readonly state: MachineState;
  readonly conf: ConfState;
  readonly keep: number;
  readonly doneAt: number;
}

/** The state machine of one node. */
interface Machine {
  state: MachineState;
  /**
   * The configuration as of `state.index`, kept with the applied state as the
   * runtime keeps it: from the snapshot it was restored from (or the bootstrap
   * one), then what each applied conf change returned. Snapshots carry it.
   */
  conf: ConfState;
  /** The entries applied since it was last restored (from nothing, or from a snapshot). */
  entries: AppliedEntry[];
}

/** A report to a leader on a `snap` message it sent. */
interface SnapshotReport {
  readonly leader: NodeId;
  readonly to: NodeId;
  readonly status: "finish" | "failure";
}

/** A read the cluster started and has not seen confirmed or abandoned. */
interface PendingRead {
  readonly node: NodeId;
  /** The highest index committed anywhere when the read began. */
  readonly committedAtStart: number;
}

interface SimNode {
  readonly id: NodeId;
  readonly random: Random;
  raw: RawNode | undefined;
  disk: MemoryStorage;
  machine: Machine;
  crashAt: CrashPoint | undefined;
  /** The role last traced, to report role changes once. */
  role: Role;
  /** The Ready whose write is in flight, if any. */
  write: PendingWrite | undefined;
  /** The snapshot of its own state being written, if any. */
  snapshotWrite: PendingSnapshot | undefined;
  /** This node's disk's write durations, when they differ from the cluster's (a slow disk). */
  writeDelay: WriteDelay | undefined;
  /** Confirmed reads (request id -> index) waiting for the state machine to reach their index. */
  confirmedReads: Map<number, number>;
  /**
   * The newest hard state its core handed out, which the disk may not hold: as in
   * the runtime (node.ts), a Ready whose only change is the commit index writes
   * nothing (mustSync), and the next write that syncs carries the newest one. A
   * crash forgets it.
   */
  hard: HardState | undefined;
  /** The leader's term and commit index last seen by the commit quorum check. */
  checkedCommit?: { term: number; commit: number };
}

/** A cluster of simulated nodes driven in virtual time. */
export class SimCluster {
  readonly ids: readonly NodeId[];
  readonly seed: number;
  readonly tickMs: number;
  readonly network: SimNetwork;
  readonly trace: Trace;
  readonly checker: InvariantChecker;
  readonly checked: boolean;
  readonly stats: ClusterStats = {
    ticks: 0,
    steps: 0,
    readies: 0,
    proposals: 0,
    proposalsRejected: 0,
    crashes: 0,
    crashesMidReady: 0,
    commitOnlyUnsynced: 0,
    restarts: 0,
    asyncWrites: 0,
    stepsDuringWrite: 0,
    ticksDuringWrite: 0,
    proposalsDuringWrite: 0,
    crashesDuringWrite: 0,
    tornWrites: 0,
    readsStarted: 0,
    readsRejected: 0,
    readsConfirmed: 0,
    readsAbandoned: 0,
    readsLost: 0,
    readsServed: 0,
    snapshotsTaken: 0,
    snapshotsDiscarded: 0,
    snapshotsSent: 0,
    snapshotsReportedFinished: 0,
    snapshotsReportedFailed: 0,
    snapshotsInstalled: 0,
    restartsFromSnapshot: 0,
    crashesDuringSnapshotTake: 0,
    crashesDuringSnapshotInstall: 0,
    confChangesApplied: 0,
  };
  readonly #options: SimClusterOptions;
  readonly #nodes = new Map<NodeId, SimNode>();
  /** Write durations and what a crash leaves of a write in flight. */
  readonly #diskRandom: Random;
  readonly #reads = new Map<number, PendingRead>();
  #nextReadId = 1;
  /** Reports on `snap` messages, handed to their senders at the next event. */
  #reports: SnapshotReport[] = [];

  constructor(options: SimClusterOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) {
      throw new Error(`Cannot build a cluster of ${options.size} nodes`);
    }
    this.#options = options;
    this.seed = options.seed;
    this.tickMs = options.tickMs ?? 10;
    this.checked = options.checked ?? true;
    const spares = options.spares ?? 0;
    this.ids = Array.from({ length: options.size + spares }, (_, i) => i + 1);
    const voters = this.ids.slice(0, options.size);
    const wd = options.writeDelay;
    if (wd !== undefined && !(Number.isInteger(wd.min) && wd.min >= 0 && wd.max >= wd.min)) {
      throw new Error(`Cannot use write delays from ${wd.min} to ${wd.max} ms`);
    }
    // Nodes draw from seed*31+id (ids <= 5 here; the random runs use +29).
    this.#diskRandom = seededRandom(options.seed * 31 + 13);
    this.trace = new Trace(options.traceCapacity ?? 2000);
    this.checker = new InvariantChecker();
    this.network = new SimNetwork(
      seededRandom(options.seed * 31),
      (id) => this.isUp(id),
      this.trace,
    );
    if (options.faults !== undefined) {
      this.network.setFaults({ ...CLEAN_FAULTS, ...options.faults });
    }
    // The transport's side of snapshot sending: a lost `snap` is a failed send.
    this.network.onDrop((m) => {
      if (m.type === "snap") this.#reports.push({ leader: m.from, to: m.to, status: "failure" });
    });
    for (const id of this.ids) {
      const node: SimNode = {
        id,
        random: seededRandom(options.seed * 31 + id),
        raw: undefined,
        disk: new MemoryStorage(id <= options.size ? voters : []),
        machine: { state: INITIAL_STATE, entries: [], conf: confOf([]) },
        crashAt: undefined,
        role: "follower",
        write: undefined,
        snapshotWrite: undefined,
        writeDelay: undefined,
        confirmedReads: new Map(),
        hard: undefined,
      };
      node.machine.conf = node.disk.snapshot().meta.conf;
      this.#nodes.set(id, node);
      node.raw = this.#newRawNode(node);
    }
    for (const id of this.ids) this.#settle(this.#node(id));
  }

  #newRawNode(node: SimNode): RawNode {
    const o = this.#options;
    return new RawNode(
      {
        id: node.id,
        random: node.random,
        applied: node.machine.state.index,
        ...(o.electionTick === undefined ? {} : { electionTick: o.electionTick }),
        ...(o.heartbeatTick === undefined ? {} : { heartbeatTick: o.heartbeatTick }),
        ...(o.preVote === undefined ? {} : { preVote: o.preVote }),
        ...(o.checkQuorum === undefined ? {} : { checkQuorum: o.checkQuorum }),
        ...(o.maxSizePerMsg === undefined ? {} : { maxSizePerMsg: o.maxSizePerMsg }),
        ...(o.maxInflightMsgs === undefined ? {} : { maxInflightMsgs: o.maxInflightMsgs }),
        ...(o.logger === undefined ? {} : { logger: o.logger }),
      },
      node.disk,
    );
  }

  #node(id: NodeId): SimNode {
    const n = this.#nodes.get(id);
    if (n === undefined) throw new Error(`No node ${id} in a cluster of ${this.ids.length}`);
    return n;
  }

  #up(id: NodeId, what: string): RawNode {
    const raw = this.#node(id).raw;
    if (raw === undefined) throw new Error(`Cannot ${what} node ${id}: it is down`);
    return raw;
  }

  /** The virtual time, in ms. */
  get now(): number {
    return this.network.now;
  }

  /** Whether node `id` is running. */
  isUp(id: NodeId): boolean {
    return this.#nodes.get(id)?.raw !== undefined;
  }

  /**
   * The running nodes with a snapshot write in flight: taking one of their own
   * state, or installing one from the leader (a Ready carrying it).
   */
  snapshotting(): NodeId[] {
    return this.ids.filter((id) => {
      const n = this.#node(id);
      return n.raw !== undefined &&
        (n.snapshotWrite !== undefined || n.write?.rd.snapshot !== undefined);
    });
  }

  /** The ids of the running nodes. */
  upIds(): NodeId[] {
    return this.ids.filter((id) => this.isUp(id));
  }

  /** The status of node `id`, or undefined when it is down. */
  status(id: NodeId): NodeStatus | undefined {
    return this.#node(id).raw?.status();
  }

  /**
   * The entries node `id`'s state machine applied since it was last restored, in
   * order: from index 1 if from nothing, else from just after the snapshot.
   */
  applied(id: NodeId): readonly AppliedEntry[] {
    return this.#node(id).machine.entries;
  }

  /** The state of node `id`'s state machine: the index it applied last and its hash chain. */
  machineState(id: NodeId): MachineState {
    return this.#node(id).machine.state;
  }

  /** The durable storage of node `id` (survives crashes). */
  disk(id: NodeId): MemoryStorage {
    return this.#node(id).disk;
  }

  /**
   * Advances virtual time by `n` ticks. For each: delivers the messages due
   * before the tick's time, then ticks every running node (the starting node
   * rotates, so none is always first).
   */
  tick(n = 1): void {
    for (let k = 0; k < n; k++) this.#tickOnce();
  }

  #tickOnce(): void {
    this.#advanceTo(this.network.now + this.tickMs);
    this.#flushReports();
    const count = this.ids.length;
    const start = this.stats.ticks % count;
    this.stats.ticks++;
    for (let j = 0; j < count; j++) {
      const node = this.#node(this.ids[(start + j) % count]!);
      if (node.raw === undefined) continue;
      node.raw.tick();
      this.stats.steps++;
      if (node.write !== undefined) this.stats.ticksDuringWrite++;
      this.#settle(node);
    }
  }

  /**
   * Ticks until `predicate` holds (checked before every tick) or `maxTicks` ticks
   * have passed. Returns whether it held.
   */
  runUntil(predicate: () => boolean, maxTicks: number): boolean {
    for (let k = 0; k < maxTicks; k++) {
      if (predicate()) return true;
      this.#tickOnce();
    }
    return predicate();
  }

  /**
   * Moves virtual time to `time`, delivering messages and completing writes in
   * the order they fall due (a message due at the same instant as a write first;
   * a Ready's write before a snapshot's at the same instant).
   */
  #advanceTo(time: number): void {
    for (;;) {
      this.#flushReports();
      let next: SimNode | undefined;
      let nextAt = Infinity;
      let snapshotWrite = false;
      for (const node of this.#nodes.values()) {
        const w = node.write;
        if (w !== undefined && w.doneAt <= time && w.doneAt < nextAt) {
          next = node;
          nextAt = w.doneAt;
          snapshotWrite = false;
        }
        const sw = node.snapshotWrite;
        if (sw !== undefined && sw.doneAt <= time && sw.doneAt < nextAt) {
          next = node;
          nextAt = sw.doneAt;
          snapshotWrite = true;
        }
      }
      const due = this.network.nextDue();
      if (due !== undefined && due <= time && (next === undefined || due <= nextAt)) {
        // Messages due first go first: stepping them may start writes that end sooner.
        this.network.advanceTo(due, (m) => this.#deliver(m));
        continue;
      }
      if (next === undefined) break;
      this.network.advanceTo(nextAt, (m) => this.#deliver(m));
      if (snapshotWrite) this.#completeSnapshotWrite(next);
      else this.#completeWrite(next);
    }
    this.network.advanceTo(time, (m) => this.#deliver(m));
    this.#flushReports();
  }

  #deliver(m: Message): void {
    const node = this.#node(m.to);
    if (node.raw === undefined) return; // The network checks first; defensive.
    node.raw.step(m);
    this.stats.steps++;
    if (node.write !== undefined) this.stats.stepsDuringWrite++;
    this.#settle(node);
    if (m.type === "snap") {
      // The transport handed the whole snapshot over: the send finished.
      this.#reports.push({ leader: m.from, to: m.to, status: "finish" });
      this.#flushReports();
    }
  }

  /**
   * Hands the queued snapshot reports to their senders, if they are up (a report
   * for an earlier incarnation, or for a node no longer leading, is ignored by
   * the core).
   */
  #flushReports(): void {
    while (this.#reports.length > 0) {
      const r = this.#reports.shift()!;
      if (r.status === "finish") this.stats.snapshotsReportedFinished++;
      else this.stats.snapshotsReportedFailed++;
      const node = this.#node(r.leader);
      if (node.raw === undefined) continue;
      this.trace.add(this.now, `report snapshot to ${r.to} at ${r.leader}: ${r.status}`);
      node.raw.reportSnapshot(r.to, r.status);
      this.stats.steps++;
      this.#settle(node);
    }
  }

  /**
   * Proposes `data` at node `id`. Returns the entry's index and term, or throws the
   * core's NotLeaderError (also counted and traced).
   */
  propose(id: NodeId, data: Uint8Array): { index: number; term: number } {
    const node = this.#node(id);
    const raw = this.#up(id, "propose at");
    this.stats.proposals++;
    let r: { index: number; term: number };
    try {
      r = raw.propose(data);
    } catch (e) {
      if (e instanceof NotLeaderError) {
        this.stats.proposalsRejected++;
        this.trace.add(this.now, `propose ${showData(data)} at ${id}: not leader`);
      }
      throw e;
    }
    this.trace.add(this.now, `propose ${showData(data)} at ${id}: ${r.term}/${r.index}`);
    this.stats.steps++;
    if (node.write !== undefined) this.stats.proposalsDuringWrite++;
    this.#settle(node);
    return r;
  }

  /**
   * Proposes membership change `cc` at node `id`. Returns the entry's index and
   * term, or throws what the core throws (not leader, dropped, rejected).
   */
  proposeConfChange(id: NodeId, cc: ConfChange): { index: number; term: number } {
    const node = this.#node(id);
    const raw = this.#up(id, "propose a conf change at");
    let r: { index: number; term: number };
    try {
      r = raw.proposeConfChange(cc);
    } catch (e) {
      this.trace.add(
        this.now,
        `conf change ${describeConfChange(cc)} at ${id}: ${(e as Error).message}`,
      );
      throw e;
    }
    this.trace.add(
      this.now,
      `conf change ${describeConfChange(cc)} at ${id}: ${r.term}/${r.index}`,
    );
    this.stats.steps++;
    this.#settle(node);
    return r;
  }

  /** Asks node `id` to transfer leadership to `to`; throws what the core throws. */
  transferLeader(id: NodeId, to: NodeId): void {
    const node = this.#node(id);
    const raw = this.#up(id, "transfer leadership at");
    try {
      raw.transferLeader(to);
    } catch (e) {
      this.trace.add(this.now, `transfer leader to ${to} at ${id}: ${(e as Error).message}`);
      throw e;
    }
    this.trace.add(this.now, `transfer leader to ${to} at ${id}`);
    this.stats.steps++;
    this.#settle(node);
  }

  /** The configuration node `id` applied last (its state machine's, kept across crashes). */
  conf(id: NodeId): ConfState {
    return this.#node(id).machine.conf;
  }

  /**
   * Starts a ReadIndex read at node `id` and returns its request id, or throws the
   * core's NotLeaderError (counted). The checker verifies it when confirmed.
   */
  readIndex(id: NodeId): number {
    const node = this.#node(id);
    const raw = this.#up(id, "read at");
    const requestId = this.#nextReadId++;
    try {
      raw.readIndex(requestId);
    } catch (e) {
      if (e instanceof NotLeaderError) this.stats.readsRejected++;
      throw e;
    }
    this.stats.readsStarted++;
    const committedAtStart = this.checker.stats().committed;
    this.#reads.set(requestId, { node: id, committedAtStart });
    this.trace.add(this.now, `read ${requestId} at ${id}: committed anywhere ${committedAtStart}`);
    this.stats.steps++;
    this.#settle(node);
    return requestId;
  }

  /** Makes node `id` campaign now (a forced election). */
  campaign(id: NodeId): void {
    const raw = this.#up(id, "campaign at");
    this.trace.add(this.now, `campaign ${id}`);
    raw.campaign();
    this.stats.steps++;
    this.#settle(this.#node(id));
  }

  /**
   * Makes node `id` snapshot its state machine at the index it applied last and
   * compact its disk's log to `keep` entries behind it (fewer if it is already
   * compacted further). The snapshot is written like a Ready: at once, or a write
   * delay later while the node runs on. Returns false when there is nothing new
   * to snapshot, or a snapshot is already being written.
   */
  compact(id: NodeId, keep = 0): boolean {
    const node = this.#node(id);
    this.#up(id, "compact at");
    if (!Number.isInteger(keep) || keep < 0) {
      throw new Error(`Cannot keep ${keep} entries behind a snapshot`);
    }
    const state = node.machine.state;
    if (node.snapshotWrite !== undefined || state.index <= node.disk.snapshot().meta.index) {
      return false;
    }
    const conf: ConfState = node.machine.conf;
    const wd = node.writeDelay ?? this.#options.writeDelay;
    const took = wd !== undefined && wd.max > 0
      ? randomInt(this.#diskRandom, wd.min, wd.max + 1)
      : 0;
    this.trace.add(
      this.now,
      `snapshot ${id} at ${state.index} (state ${showHash(state.hash)}), keep ${keep}` +
        (took > 0 ? `, writing for ${took} ms` : ""),
    );
    const pending: PendingSnapshot = { state, conf, keep, doneAt: this.now + took };
    if (took > 0) node.snapshotWrite = pending;
    else this.#takeSnapshot(node, pending);
    return true;
  }

  /** The snapshot write is durable: record it in storage, then compact the log. */
  #takeSnapshot(node: SimNode, p: PendingSnapshot): void {
    const disk = node.disk;
    const current = disk.snapshot().meta.index;
    if (p.state.index < current) {
      // A newer snapshot from the leader was installed meanwhile: this one is
      // obsolete (the runtime's snapshotter discards it the same way).
      this.stats.snapshotsDiscarded++;
      this.trace.add(
        this.now,
        `snapshot ${node.id} at ${p.state.index} discarded: disk has ${current}`,
      );
      return;
    }
    disk.createSnapshot(p.state.index, p.conf, encodeState(p.state));
    disk.compact(Math.max(p.state.index - p.keep, disk.firstIndex() - 1));
    this.stats.snapshotsTaken++;
    this.trace.add(
      this.now,
      `snapshot ${node.id} at ${p.state.index} durable; log from ${disk.firstIndex()}`,
    );
  }

  #completeSnapshotWrite(node: SimNode): void {
    const p = node.snapshotWrite!;
    node.snapshotWrite = undefined;
    this.#takeSnapshot(node, p);
    this.#settle(node);
  }

  /** Crashes node `id` now: its volatile state is gone, its disk stays. */
  crash(id: NodeId): void {
    const node = this.#node(id);
    if (node.raw === undefined) return;
    this.#crash(node, "crash");
  }

  #crash(node: SimNode, how: string): void {
    node.raw = undefined;
    node.hard = undefined;
    node.crashAt = undefined;
    node.role = "follower";
    this.stats.crashes++;
    this.trace.add(this.now, `${how} ${node.id}`);
    this.checker.observeCrash(node.id);
    const w = node.write;
    node.write = undefined;
    if (w !== undefined) this.#tearWrite(node, w.rd);
    const sw = node.snapshotWrite;
    node.snapshotWrite = undefined;
    if (sw !== undefined) {
      // Snapshot files are written whole, then renamed: the old one or the new one.
      this.stats.crashesDuringSnapshotTake++;
      const kept = this.#diskRandom() < 0.5;
      this.trace.add(
        this.now,
        `snapshot write of ${node.id} at ${sw.state.index} cut by the crash: ${
          kept ? "new snapshot kept" : "old snapshot kept"
        }`,
      );
      if (kept) this.#takeSnapshot(node, sw);
    }
    for (const [requestId, read] of this.#reads) {
      if (read.node !== node.id) continue;
      this.#reads.delete(requestId);
      this.stats.readsLost++;
    }
    this.stats.readsLost += node.confirmedReads.size;
    node.confirmedReads.clear();
  }

  /**
   * Node crashed with `rd`'s write in flight. Like the WAL after a crash (records
   * in order: the snapshot first, then entries, the hard state last; a torn tail
   * cut back to whole records), its disk keeps none of the write, a prefix of its
   * records (the snapshot is one, kept whole or not at all), or all of it.
   */
  #tearWrite(node: SimNode, rd: Ready): void {
    this.stats.crashesDuringWrite++;
    if (rd.snapshot !== undefined) this.stats.crashesDuringSnapshotInstall++;
    const records = (rd.snapshot === undefined ? 0 : 1) + rd.entries.length;
    const x = this.#diskRandom();
    let kept = 0;
    let hard = false;
    if (x < 0.25 && records > 0) {
      kept = randomInt(this.#diskRandom, 1, records + 1);
      this.stats.tornWrites++;
    } else if (x >= 0.75) {
      kept = records;
      hard = true;
    }
    const snap = rd.snapshot !== undefined && kept > 0;
    const entries = kept - (rd.snapshot === undefined ? 0 : Math.min(kept, 1));
    this.trace.add(
      this.now,
      `write of ${node.id} torn: kept ${
        rd.snapshot === undefined ? "" : snap ? "the snapshot, " : "not the snapshot, "
      }${entries} of ${rd.entries.length} entries` +
        `${
          rd.hardState === undefined ? "" : hard ? " and the hard state" : ", not the hard state"
        }`,
    );
    if (snap) node.disk.applySnapshot(rd.snapshot!);
    if (entries > 0) this.#persistEntries(node, rd.entries.slice(0, entries));
    if (hard && node.hard !== undefined) node.disk.setHardState(node.hard);
  }

  /**
   * Arms node `id` to crash inside its next Ready that has something to persist:
   * after sending `messages` and before persisting (`before_persist`: its disk
   * keeps the previous state), or after persisting and before sending
   * `persistedMessages` and applying (`after_persist`).
   */
  crashMidReady(id: NodeId, at: CrashPoint = "before_persist"): void {
    const node = this.#node(id);
    if (node.raw === undefined) return;
    node.crashAt = at;
    this.trace.add(this.now, `arm crash ${at} at ${id}`);
  }

  /**
   * Gives node `id`'s disk its own write durations (a disk that stalls or slows
   * down; it stays so across crashes), or back the cluster's with undefined.
   */
  setWriteDelay(id: NodeId, delay: WriteDelay | undefined): void {
    const node = this.#node(id);
    node.writeDelay = delay;
    this.trace.add(
      this.now,
      delay === undefined
        ? `disk of ${id} back to normal`
        : `disk of ${id} slow: writes take ${delay.min}-${delay.max} ms`,
    );
  }

  /** Disarms a pending {@link crashMidReady} of node `id`. */
  cancelCrashMidReady(id: NodeId): void {
    const node = this.#node(id);
    if (node.crashAt === undefined) return;
    node.crashAt = undefined;
    this.trace.add(this.now, `disarm crash at ${id}`);
  }

  /**
   * Ends every fault: restores all links, makes the network clean (keeping
   * messages in flight), disarms mid-Ready crashes, gives slow disks back their
   * normal speed and restarts every down node.
   */
  recover(): void {
    this.network.heal();
    this.network.setFaults(CLEAN_FAULTS);
    for (const id of this.ids) {
      this.cancelCrashMidReady(id);
      if (this.#node(id).writeDelay !== undefined) this.setWriteDelay(id, undefined);
      if (!this.isUp(id)) this.restart(id);
    }
  }

  /**
   * Restarts node `id` from its disk: its state machine restored from the disk's
   * snapshot if there is one, else empty, and the core refills it from there
   * (`applied` = the snapshot's index, or 0).
   */
  restart(id: NodeId): void {
    const node = this.#node(id);
    if (node.raw !== undefined) throw new Error(`Cannot restart node ${id}: it is up`);
    node.disk = node.disk.clone();
    node.hard = undefined;
    const snap = node.disk.snapshot();
    // With no snapshot, the configuration is the bootstrap one (the disk's
    // index-0 snapshot holds it) and the conf changes are applied again.
    node.machine = { state: INITIAL_STATE, entries: [], conf: snap.meta.conf };
    this.stats.restarts++;
    const hs = node.disk.hardState();
    this.trace.add(
      this.now,
      `restart ${id} term:${hs.term} vote:${hs.vote} commit:${hs.commit}` +
        ` snapshot:${snap.meta.term}/${snap.meta.index} first:${node.disk.firstIndex()}` +
        ` last:${node.disk.lastIndex()}`,
    );
    this.checker.observeRestart(id);
    if (snap.meta.index > 0) {
      this.stats.restartsFromSnapshot++;
      this.#restoreMachine(node, snap);
    }
    node.raw = this.#newRawNode(node);
    this.#settle(node);
  }

  /** Replaces node's state machine with the state in `snap`. */
  #restoreMachine(node: SimNode, snap: Snapshot): void {
    const state = decodeState(snap.data);
    if (state.index !== snap.meta.index) {
      throw new Error(
        `node ${node.id} got a snapshot at index ${snap.meta.index} whose state is at index` +
          ` ${state.index}`,
      );
    }
    if (this.checked) this.checker.observeRestore(node.id, state.index, state.hash);
    node.machine = { state, entries: [], conf: snap.meta.conf };
    this.trace.add(
      this.now,
      `state machine of ${node.id} restored at ${state.index} (state ${showHash(state.hash)})`,
    );
  }

  /**
   * The leader of the highest term among the running nodes that think they are
   * leader, or undefined when none (or, impossibly, two in that term).
   */
  leader(): NodeId | undefined {
    let best: NodeId | undefined;
    let bestTerm = -1;
    let tie = false;
    for (const node of this.#nodes.values()) {
      if (node.raw === undefined) continue;
      const s = node.raw.status();
      if (s.role !== "leader") continue;
      if (s.term > bestTerm) {
        best = node.id;
        bestTerm = s.term;
        tie = false;
      } else if (s.term === bestTerm) {
        tie = true;
      }
    }
    return tie ? undefined : best;
  }

  /**
   * A leader every running node follows: it leads the highest term of any running
   * node, and every running node names it as leader. Undefined otherwise.
   */
  stableLeader(): NodeId | undefined {
    const lead = this.leader();
    if (lead === undefined) return undefined;
    const ls = this.#node(lead).raw!.status();
    const term = ls.term;
    const members = new Set(this.members(ls.conf));
    for (const node of this.#nodes.values()) {
      // Nodes outside the leader's configuration (removed, or not yet added)
      // hear nothing from it.
      if (node.raw === undefined || !members.has(node.id)) continue;
      const s = node.raw.status();
      if (s.term !== term || s.lead !== lead) return undefined;
    }
    return lead;
  }

  /** Every member of `conf`, voters and learners, ascending. */
  members(conf: ConfState): NodeId[] {
    return [...new Set([...conf.voters, ...conf.votersOutgoing, ...conf.learners])]
      .sort((a, b) => a - b);
  }

  /** Cuts every link between the groups, both ways (adds to existing cuts). */
  partition(...groups: readonly (readonly NodeId[])[]): void {
    this.network.partition(...groups);
  }

  /** Cuts the link from `from` to `to` only. */
  cut(from: NodeId, to: NodeId): void {
    this.network.cut(from, to);
  }

  /** Cuts node `id` off from all others, both ways. */
  isolate(id: NodeId): void {
    this.network.isolate(id, this.ids);
  }

  /** Restores every link. */
  heal(): void {
    this.network.heal();
  }

  /**
   * Drains node's Readies (up to the first whose write takes time), then checks
   * the invariants.
   */
  #settle(node: SimNode): void {
    for (
      let guard = 0;
      node.raw !== undefined && node.write === undefined && node.raw.hasReady();
      guard++
    ) {
      if (guard >= 10_000) {
        throw new Error(
          `node ${node.id} still has a Ready after 10000 rounds: hasReady() is stuck`,
        );
      }
      this.#handleReady(node, node.raw, node.raw.ready());
    }
    this.#check(node);
  }

  /** Starts handling a Ready: sends `messages`, then writes (now, or later with a write delay). */
  #handleReady(node: SimNode, raw: RawNode, rd: Ready): void {
    this.stats.readies++;
    if (rd.softState !== undefined && rd.softState.role !== node.role) {
      const s = raw.status();
      this.trace.add(
        this.now,
        `role ${node.id} ${node.role} -> ${rd.softState.role} term:${s.term} lead:${rd.softState.lead}`,
      );
      node.role = rd.softState.role;
      if (this.checked) this.checker.observeRole(node.id, s.term, rd.softState.role);
    }
    if (this.checked) {
      const durableTerm = node.disk.hardState().term;
      for (const m of rd.messages) {
        if (m.type === "app" || m.type === "heartbeat" || m.type === "snap") {
          this.checker.checkLeaderTermDurable(node.id, m.type, m.term, durableTerm);
        }
      }
    }
    for (const m of rd.messages) this.#send(node, m);
    if (rd.hardState !== undefined) node.hard = rd.hardState;
    const persists = this.#persists(node, rd);
    if (!persists && rd.hardState !== undefined) this.stats.commitOnlyUnsynced++;
    if (persists && node.crashAt === "before_persist") {
      this.stats.crashesMidReady++;
      this.#crash(node, "crash before persist");
      return;
    }
    if (this.checked && rd.committedEntries.length > 0) {
      this.checker.checkCommittedDurable(
        node.id,
        rd.committedEntries,
        node.disk,
        rd.entries[0]?.index,
      );
    }
    this.#applyCommitted(node, raw, rd);
    const wd = node.writeDelay ?? this.#options.writeDelay;
    if (persists && wd !== undefined && wd.max > 0) {
      const took = randomInt(this.#diskRandom, wd.min, wd.max + 1);
      if (took > 0) {
        node.write = { raw, rd, doneAt: this.now + took };
        this.stats.asyncWrites++;
        return;
      }
    }
    this.#finishReady(node, raw, rd);
  }

  /** Node's write is done: finish its Ready, then take the next ones. */
  #completeWrite(node: SimNode): void {
    const w = node.write!;
    node.write = undefined;
    this.#finishReady(node, w.raw, w.rd);
    this.#settle(node);
  }

  #persistEntries(node: SimNode, entries: readonly Entry[]): void {
    const prior = node.disk.lastIndex();
    node.disk.append(entries);
    if (this.checked) this.checker.observeAppend(node.id, entries, node.disk, prior);
  }

  /**
   * Applies `rd.committedEntries`. As in the runtime (node.ts), this happens when the
   * Ready is taken, while its own write is still in flight: the entries are
   * committed and already durable on this node (checkCommittedDurable).
   */
  #applyCommitted(node: SimNode, raw: RawNode, rd: Ready): void {
    if (rd.committedEntries.length > 0) {
      const term = this.checked ? raw.status().term : 0;
      const m = node.machine;
      for (const e of rd.committedEntries) {
        const a: AppliedEntry = {
          index: e.index,
          term: e.term,
          data: e.data,
          ...(e.type === "conf_change" ? { type: e.type } : {}),
        };
        if (this.checked) this.checker.observeApply(node.id, term, a, node.disk);
        if (e.type === "conf_change") {
          // As the runtime does: the change takes effect now, in log order.
          if (this.checked) this.#checkCommitQuorum(node);
          const cc = decodeConfChange(e.data);
          m.conf = raw.applyConfChange(cc);
          this.stats.confChangesApplied++;
          this.trace.add(
            this.now,
            `conf change ${describeConfChange(cc)} applied at ${node.id} (${e.term}/${e.index}):` +
              ` ${describeConfState(m.conf)}`,
          );
        }
        m.state = applyEntry(m.state, a);
        if (this.checked) this.checker.observeState(node.id, a.index, m.state.hash, "applied");
        m.entries.push(a);
      }
    }
  }

  /**
   * Whether `rd` writes anything: a snapshot, entries, a term or vote change, a
   * membership change applied (mustSync); a commit index alone is not written (see
   * {@link SimNode.hard}).
   */
  #persists(node: SimNode, rd: Ready): boolean {
    return mustSync(node.disk.hardState(), node.hard, rd);
  }

  /** The rest of a Ready once its write is durable: persisted messages, apply, reads, advance. */
  #finishReady(node: SimNode, raw: RawNode, rd: Ready): void {
    const persists = this.#persists(node, rd);
    if (rd.snapshot !== undefined) {
      node.disk.applySnapshot(rd.snapshot);
      this.trace.add(
        this.now,
        `snapshot ${rd.snapshot.meta.term}/${rd.snapshot.meta.index} durable at ${node.id}`,
      );
    }
    if (rd.entries.length > 0) this.#persistEntries(node, rd.entries);
    if (persists && node.hard !== undefined) node.disk.setHardState(node.hard);
    if (persists && node.crashAt === "after_persist") {
      this.stats.crashesMidReady++;
      this.#crash(node, "crash after persist");
      return;
    }
    for (const m of rd.persistedMessages) this.#send(node, m);
    if (rd.snapshot !== undefined) {
      this.#restoreMachine(node, rd.snapshot);
      this.stats.snapshotsInstalled++;
    }
    for (const rs of rd.readStates) {
      const read = this.#reads.get(rs.requestId);
      if (read === undefined || read.node !== node.id) {
        throw new Error(`node ${node.id} confirmed read ${rs.requestId}, which it never started`);
      }
      this.#reads.delete(rs.requestId);
      this.stats.readsConfirmed++;
      this.trace.add(this.now, `read ${rs.requestId} confirmed at ${node.id}: index ${rs.index}`);
      if (this.checked) {
        this.checker.checkReadConfirmed(node.id, rs.requestId, rs.index, read.committedAtStart);
      }
      node.confirmedReads.set(rs.requestId, rs.index);
    }
    for (const requestId of rd.abandonedReads) {
      if (this.#reads.delete(requestId)) this.stats.readsAbandoned++;
    }
    raw.advance(rd);
    if (this.checked) this.#checkCommitQuorum(node);
    // Serve the reads whose index the state machine has reached (§6.4 step 4).
    const applied = node.machine.state.index;
    for (const [requestId, index] of node.confirmedReads) {
      if (index > applied) continue;
      node.confirmedReads.delete(requestId);
      this.stats.readsServed++;
    }
  }

  #send(node: SimNode, m: Message): void {
    if (m.from !== node.id || m.to === node.id || !this.#nodes.has(m.to)) {
      throw new Error(
        `node ${node.id} emitted a misaddressed message: from ${m.from} to ${m.to} (${m.type})`,
      );
    }
    if (m.type === "snap") this.stats.snapshotsSent++;
    this.network.send(m);
  }

  #check(node: SimNode): void {
    if (!this.checked || node.raw === undefined) return;
    const s = node.raw.status();
    const log = coreLog(node.raw);
    this.checker.observeRole(node.id, s.term, s.role);
    this.checker.observeCommit(node.id, s.term, s.commit, log);
    if (s.role === "leader") this.checker.checkLeaderCompleteness(node.id, s.term, log);
    this.#checkCommitQuorum(node);
  }

  /**
   * On a leader whose commit index moved since the last check: the entry there
   * is durable on a quorum of the configuration in force. Called whenever the
   * configuration may be about to change (before each conf change is applied)
   * and after every step, so no commit escapes the configuration it was made under.
   */
  #checkCommitQuorum(node: SimNode): void {
    const r = node.raw?.raft;
    if (r === undefined || r.role !== "leader") return;
    const last = node.checkedCommit;
    const commit = r.log.committed;
    if (last !== undefined && last.term === r.term && last.commit === commit) return;
    node.checkedCommit = { term: r.term, commit };
    // What it knew committed when it won was decided under earlier
    // configurations; only what it commits itself is counted under its own.
    if (last === undefined || last.term !== r.term || last.commit >= commit) return;
    const term = r.log.term(commit);
    if (term === undefined || commit === 0) return;
    checkCommitQuorum(node.id, r.term, commit, r.trk.confState(), (voter) => {
      const disk = this.#node(voter).disk;
      if (disk.snapshot().meta.index >= commit) return true;
      if (disk.lastIndex() < commit || commit < disk.firstIndex() - 1) return false;
      return disk.term(commit) === term;
    });
  }

  /** A short, human summary of every node's state, for failure reports. */
  describe(): string {
    const lines: string[] = [];
    for (const node of this.#nodes.values()) {
      const disk = node.disk;
      const hs = disk.hardState();
      const snap = disk.snapshot().meta;
      const durable = `disk term:${hs.term} vote:${hs.vote} commit:${hs.commit}` +
        ` snapshot:${snap.term}/${snap.index} first:${disk.firstIndex()}` +
        ` last:${disk.lastIndex()}/${disk.term(disk.lastIndex())}`;
      const sm = node.machine.state;
      const machine = `state machine at ${sm.index} (${showHash(sm.hash)})` +
        (node.snapshotWrite === undefined
          ? ""
          : `; snapshot at ${node.snapshotWrite.state.index} writing until ${node.snapshotWrite.doneAt}`);
      if (node.raw === undefined) {
        lines.push(`node ${node.id}: DOWN; ${durable}; ${machine}`);
        continue;
      }
      const writing = node.write === undefined
        ? ""
        : `; writing until ${node.write.doneAt} (${node.write.rd.entries.length} entries)`;
      const s = node.raw.status();
      lines.push(
        `node ${node.id}: ${s.role} term:${s.term} vote:${s.vote} lead:${s.lead}` +
          ` commit:${s.commit} applied:${s.applied} first:${s.firstIndex} last:${s.lastIndex};` +
          ` ${describeConfState(s.conf)}; ${durable}; ${machine}${writing}`,
      );
      if (s.progress !== undefined) {
        const pr = [...s.progress].map(([id, p]) =>
          `${id}:${p.state} match:${p.match} next:${p.next}` +
          (p.state === "snapshot" ? ` snap:${p.pendingSnapshot}` : "")
        );
        lines.push(`  progress ${pr.join(", ")}`);
      }
    }
    return lines.join("\n");
  }
}

function confOf(voters: readonly NodeId[]): ConfState {
  return { voters, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
}

/** The log as node `raw`'s core sees it: durable entries and the unstable tail. */
function coreLog(raw: RawNode): LogView {
  const log = raw.raft.log;
  return {
    firstIndex: () => log.firstIndex(),
    lastIndex: () => log.lastIndex(),
    term: (index) => log.term(index) ?? 0,
    entries: (lo, hi) => log.slice(lo, hi),
  };
}
