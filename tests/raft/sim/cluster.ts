/**
 * A deterministic simulated Raft cluster: N {@link RawNode}s on a
 * {@link SimNetwork} with a virtual clock, each with its own "disk" (a
 * `MemoryStorage` that holds only what was persisted) and state machine (the
 * list of entries it applied, in order).
 *
 * The driver follows the Ready contract: after every tick, message or proposal,
 * while the node has a Ready, it sends `messages` at once, persists `entries` and
 * `hardState`, then sends `persistedMessages`, applies `committedEntries` and
 * calls `advance`. In checked mode the safety properties of `invariants.ts` are
 * checked after every one of those steps.
 *
 * Restart semantics: a restarted node gets a new RawNode over a `clone()` of its
 * disk and an empty state machine, with `applied: 0`; the core hands back every
 * committed entry again and the state machine is rebuilt from index 1 (the
 * checker verifies the replay matches what was applied before).
 *
 * Everything random comes from PRNGs derived from the cluster seed (the network's
 * from `seed * 31`, node `id`'s from `seed * 31 + id`), so a run is a function of
 * its seed and the calls made on the cluster.
 *
 * @module
 */

import { NotLeaderError } from "../../../src/raft/errors.ts";
import type { Logger } from "../../../src/raft/logger.ts";
import { type Random, seededRandom } from "../../../src/raft/rand.ts";
import { RawNode, type Ready } from "../../../src/raft/raw_node.ts";
import { MemoryStorage } from "../../../src/raft/storage.ts";
import type { Message, NodeId, Role } from "../../../src/raft/types.ts";
import { type AppliedEntry, InvariantChecker, showData } from "./invariants.ts";
import { CLEAN_FAULTS, type NetworkFaults, SimNetwork } from "./network.ts";
import { Trace } from "./trace.ts";

export type { AppliedEntry } from "./invariants.ts";

/** How a simulated cluster is built. */
export interface SimClusterOptions {
  /** Number of nodes; ids are 1..size. */
  readonly size: number;
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
  restarts: number;
}

interface SimNode {
  readonly id: NodeId;
  readonly random: Random;
  raw: RawNode | undefined;
  disk: MemoryStorage;
  applied: AppliedEntry[];
  crashAt: CrashPoint | undefined;
  /** The role last traced, to report role changes once. */
  role: Role;
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
    restarts: 0,
  };
  readonly #options: SimClusterOptions;
  readonly #nodes = new Map<NodeId, SimNode>();

  constructor(options: SimClusterOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) {
      throw new Error(`Cannot build a cluster of ${options.size} nodes`);
    }
    this.#options = options;
    this.seed = options.seed;
    this.tickMs = options.tickMs ?? 10;
    this.checked = options.checked ?? true;
    this.ids = Array.from({ length: options.size }, (_, i) => i + 1);
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
    for (const id of this.ids) {
      const node: SimNode = {
        id,
        random: seededRandom(options.seed * 31 + id),
        raw: undefined,
        disk: new MemoryStorage(this.ids),
        applied: [],
        crashAt: undefined,
        role: "follower",
      };
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
        applied: 0,
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

  /** The ids of the running nodes. */
  upIds(): NodeId[] {
    return this.ids.filter((id) => this.isUp(id));
  }

  /** The status of node `id`, or undefined when it is down. */
  status(id: NodeId): NodeStatus | undefined {
    return this.#node(id).raw?.status();
  }

  /** The state machine of node `id`: the entries it applied since it (re)started, in order. */
  applied(id: NodeId): readonly AppliedEntry[] {
    return this.#node(id).applied;
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
    this.network.advanceTo(this.network.now + this.tickMs, (m) => this.#deliver(m));
    const count = this.ids.length;
    const start = this.stats.ticks % count;
    this.stats.ticks++;
    for (let j = 0; j < count; j++) {
      const node = this.#node(this.ids[(start + j) % count]!);
      if (node.raw === undefined) continue;
      node.raw.tick();
      this.stats.steps++;
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

  #deliver(m: Message): void {
    const node = this.#node(m.to);
    if (node.raw === undefined) return; // The network checks first; defensive.
    node.raw.step(m);
    this.stats.steps++;
    this.#settle(node);
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
    this.#settle(node);
    return r;
  }

  /** Makes node `id` campaign now (a forced election). */
  campaign(id: NodeId): void {
    const raw = this.#up(id, "campaign at");
    this.trace.add(this.now, `campaign ${id}`);
    raw.campaign();
    this.stats.steps++;
    this.#settle(this.#node(id));
  }

  /** Crashes node `id` now: its volatile state is gone, its disk stays. */
  crash(id: NodeId): void {
    const node = this.#node(id);
    if (node.raw === undefined) return;
    this.#crash(node, "crash");
  }

  #crash(node: SimNode, how: string): void {
    node.raw = undefined;
    node.crashAt = undefined;
    node.role = "follower";
    this.stats.crashes++;
    this.trace.add(this.now, `${how} ${node.id}`);
    this.checker.observeCrash(node.id);
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

  /** Disarms a pending {@link crashMidReady} of node `id`. */
  cancelCrashMidReady(id: NodeId): void {
    const node = this.#node(id);
    if (node.crashAt === undefined) return;
    node.crashAt = undefined;
    this.trace.add(this.now, `disarm crash at ${id}`);
  }

  /**
   * Ends every fault: restores all links, makes the network clean (keeping
   * messages in flight), disarms mid-Ready crashes and restarts every down node.
   */
  recover(): void {
    this.network.heal();
    this.network.setFaults(CLEAN_FAULTS);
    for (const id of this.ids) {
      this.cancelCrashMidReady(id);
      if (!this.isUp(id)) this.restart(id);
    }
  }

  /**
   * Restarts node `id` from its disk, with an empty state machine that the core
   * refills from index 1 (`applied: 0`).
   */
  restart(id: NodeId): void {
    const node = this.#node(id);
    if (node.raw !== undefined) throw new Error(`Cannot restart node ${id}: it is up`);
    node.disk = node.disk.clone();
    node.applied = [];
    this.stats.restarts++;
    const hs = node.disk.hardState();
    this.trace.add(
      this.now,
      `restart ${id} term:${hs.term} vote:${hs.vote} commit:${hs.commit}` +
        ` last:${node.disk.lastIndex()}`,
    );
    this.checker.observeRestart(id);
    node.raw = this.#newRawNode(node);
    this.#settle(node);
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
    const term = this.#node(lead).raw!.status().term;
    for (const node of this.#nodes.values()) {
      if (node.raw === undefined) continue;
      const s = node.raw.status();
      if (s.term !== term || s.lead !== lead) return undefined;
    }
    return lead;
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

  /** Drains node's Readies, then checks the invariants. */
  #settle(node: SimNode): void {
    for (let guard = 0; node.raw !== undefined && node.raw.hasReady(); guard++) {
      if (guard >= 10_000) {
        throw new Error(
          `node ${node.id} still has a Ready after 10000 rounds: hasReady() is stuck`,
        );
      }
      this.#handleReady(node, node.raw, node.raw.ready());
    }
    this.#check(node);
  }

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
    for (const m of rd.messages) this.#send(node, m);
    const persists = rd.hardState !== undefined || rd.entries.length > 0;
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
    if (rd.entries.length > 0) {
      const prior = node.disk.lastIndex();
      node.disk.append(rd.entries);
      if (this.checked) this.checker.observeAppend(node.id, rd.entries, node.disk, prior);
    }
    if (rd.hardState !== undefined) node.disk.setHardState(rd.hardState);
    if (persists && node.crashAt === "after_persist") {
      this.stats.crashesMidReady++;
      this.#crash(node, "crash after persist");
      return;
    }
    for (const m of rd.persistedMessages) this.#send(node, m);
    if (rd.committedEntries.length > 0) {
      const term = this.checked ? raw.status().term : 0;
      for (const e of rd.committedEntries) {
        const a: AppliedEntry = { index: e.index, term: e.term, data: e.data };
        if (this.checked) this.checker.observeApply(node.id, term, a, node.disk);
        node.applied.push(a);
      }
    }
    raw.advance(rd);
  }

  #send(node: SimNode, m: Message): void {
    if (m.from !== node.id || m.to === node.id || !this.#nodes.has(m.to)) {
      throw new Error(
        `node ${node.id} emitted a misaddressed message: from ${m.from} to ${m.to} (${m.type})`,
      );
    }
    this.network.send(m);
  }

  #check(node: SimNode): void {
    if (!this.checked || node.raw === undefined) return;
    const s = node.raw.status();
    this.checker.observeRole(node.id, s.term, s.role);
    this.checker.observeCommit(node.id, s.term, s.commit, node.disk);
    if (s.role === "leader") this.checker.checkLeaderCompleteness(node.id, s.term, node.disk);
  }

  /** A short, human summary of every node's state, for failure reports. */
  describe(): string {
    const lines: string[] = [];
    for (const node of this.#nodes.values()) {
      const disk = node.disk;
      const hs = disk.hardState();
      const durable = `disk term:${hs.term} vote:${hs.vote} commit:${hs.commit}` +
        ` last:${disk.lastIndex()}/${disk.term(disk.lastIndex())}`;
      if (node.raw === undefined) {
        lines.push(`node ${node.id}: DOWN; ${durable}; applied ${node.applied.length}`);
        continue;
      }
      const s = node.raw.status();
      lines.push(
        `node ${node.id}: ${s.role} term:${s.term} vote:${s.vote} lead:${s.lead}` +
          ` commit:${s.commit} applied:${s.applied} last:${s.lastIndex}; ${durable};` +
          ` applied ${node.applied.length}`,
      );
      if (s.progress !== undefined) {
        const pr = [...s.progress].map(([id, p]) =>
          `${id}:${p.state} match:${p.match} next:${p.next}`
        );
        lines.push(`  progress ${pr.join(", ")}`);
      }
    }
    return lines.join("\n");
  }
}
