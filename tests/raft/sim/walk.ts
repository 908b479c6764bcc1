/**
 * A random walk over the interleavings the runtime allows, with the network as a
 * bag: the model of the Raft TLA+ specification (Ongaro's raft.tla), where every
 * message once sent may be delivered any number of times, in any order, at any
 * later point, or never.
 *
 * The timed simulator (cluster.ts) delivers each message once or twice within a
 * bounded delay and takes a node's Ready as soon as it has one and no write is
 * in flight. Both are realistic, and both make some interleavings vanishingly
 * rare: a message from before a crash arriving after the restart and a new
 * campaign; a message stepped between the event that made a Ready and the
 * runtime taking it (in `src/server/node.ts` the Ready loop runs in its own task,
 * so RPC handlers step messages in between). The walk makes each of those a
 * single random choice. At every step it picks one action:
 *
 * - tick a running node;
 * - deliver a message from the bag to its (running) destination, and keep it in
 *   the bag or not (a duplicate may come again later);
 * - take a running node's Ready (only when its previous write is done): send
 *   `messages` to the bag, start the write;
 * - finish a node's write: persist, send `persistedMessages`, apply, advance;
 * - crash a node (its write in flight kept whole, torn to a prefix, or lost),
 *   restart a crashed one from its disk, propose on a leader, lose a message.
 *
 * Every safety property of invariants.ts is checked after every action, as in the
 * timed runs. No snapshots and no reads here: the timed runs cover them; the walk
 * is about elections, terms and durability.
 *
 * @module
 */

import { NotLeaderError } from "../../../src/raft/errors.ts";
import { type Random, randomInt, seededRandom } from "../../../src/raft/rand.ts";
import { RawNode, type Ready } from "../../../src/raft/raw_node.ts";
import { MemoryStorage } from "../../../src/raft/storage.ts";
import type { Entry, Message, NodeId } from "../../../src/raft/types.ts";
import { InvariantChecker, type LogView } from "./invariants.ts";
import { applyEntry, INITIAL_STATE, type MachineState } from "./state_machine.ts";
import { Trace } from "./trace.ts";

/** The shape of one walk, drawn from its seed. */
export interface WalkOptions {
  readonly seed: number;
  /** Actions to take. */
  readonly steps: number;
  readonly traceCapacity?: number;
}

/** What one walk did, for the summary. */
export interface WalkStats {
  size: number;
  preVote: boolean;
  checkQuorum: boolean;
  ticks: number;
  delivered: number;
  /** Deliveries of a message that had been delivered before (duplicates). */
  redelivered: number;
  /** Deliveries to a node of a message sent before its latest restart. */
  acrossRestart: number;
  /** Messages stepped while the node had a Ready waiting to be taken. */
  steppedBeforeReady: number;
  /** Messages stepped while the node had a write in flight. */
  steppedDuringWrite: number;
  readies: number;
  crashes: number;
  restarts: number;
  proposals: number;
  leaderTerms: number;
  committed: number;
}

interface BagItem {
  readonly message: Message;
  delivered: boolean;
}

interface WalkNode {
  readonly id: NodeId;
  readonly random: Random;
  raw: RawNode | undefined;
  disk: MemoryStorage;
  /** The Ready whose write is in flight. */
  write: Ready | undefined;
  machine: MachineState;
  /** Bumped on every restart: messages sent to an earlier incarnation are stale. */
  incarnation: number;
}

/** electionTick kept small so that elections come within a few dozen steps. */
const ELECTION_TICK = 3;

/** The bag's size bound: beyond it, the oldest message is lost. */
const BAG_LIMIT = 256;

/** Relative weights of the actions. */
const ACTIONS = [
  ["tick", 6],
  ["deliver", 10],
  ["flush", 2],
  ["ready", 5],
  ["finish", 4],
  ["crash", 1],
  ["restart", 2],
  ["propose", 2],
  ["lose", 1],
] as const;
type Action = typeof ACTIONS[number][0];

function coreLog(raw: RawNode): LogView {
  const log = raw.raft.log;
  return {
    firstIndex: () => log.firstIndex(),
    lastIndex: () => log.lastIndex(),
    term: (index) => log.term(index) ?? 0,
    entries: (lo, hi) => log.slice(lo, hi),
  };
}

/** One random walk. `run` throws on the first violated property. */
export class Walk {
  readonly trace: Trace;
  readonly checker = new InvariantChecker();
  readonly stats: WalkStats;
  readonly #rng: Random;
  readonly #nodes = new Map<NodeId, WalkNode>();
  readonly #ids: NodeId[];
  readonly #bag: BagItem[] = [];
  /** node id -> the bag items sent to it, with the incarnation they were sent to. */
  readonly #sentTo = new WeakMap<BagItem, number>();
  readonly #options: WalkOptions;
  #step = 0;
  #proposalNo = 0;
  /** This walk's action weights: the base weights, each scaled by a factor drawn from the seed. */
  readonly #weights: (readonly [Action, number])[];
  readonly #totalWeight: number;
  /** Probability that a delivered message leaves the bag (else it may come again). */
  readonly #consume: number;

  constructor(options: WalkOptions) {
    this.#options = options;
    this.#rng = seededRandom(options.seed * 37 + 11);
    const size = this.#rng() < 0.5 ? 3 : 5;
    const preVote = this.#rng() < 0.5;
    const checkQuorum = this.#rng() < 0.5;
    this.#ids = Array.from({ length: size }, (_, i) => i + 1);
    // Swarm testing (Groce et al., ISSTA 2012): each walk gets its own mix of
    // actions, some nearly absent, so walks differ in kind and not only in order;
    // rare interleavings that a fixed mix dilutes become common in some walks.
    this.#weights = ACTIONS.map(([a, w]) => [a, w * (0.1 + 2 * this.#rng() ** 2)] as const);
    this.#totalWeight = this.#weights.reduce((s, [, w]) => s + w, 0);
    this.#consume = this.#rng();
    this.trace = new Trace(options.traceCapacity ?? 400);
    this.stats = {
      size,
      preVote,
      checkQuorum,
      ticks: 0,
      delivered: 0,
      redelivered: 0,
      acrossRestart: 0,
      steppedBeforeReady: 0,
      steppedDuringWrite: 0,
      readies: 0,
      crashes: 0,
      restarts: 0,
      proposals: 0,
      leaderTerms: 0,
      committed: 0,
    };
    this.trace.add(
      0,
      `walk ${options.seed}: ${size} nodes, preVote:${preVote} checkQuorum:${checkQuorum}`,
    );
    for (const id of this.#ids) {
      const node: WalkNode = {
        id,
        random: seededRandom(options.seed * 37 + id),
        raw: undefined,
        disk: new MemoryStorage(this.#ids),
        write: undefined,
        machine: INITIAL_STATE,
        incarnation: 0,
      };
      this.#nodes.set(id, node);
      node.raw = this.#newRawNode(node);
    }
  }

  /** Takes every step; throws an InvariantViolation (or any error) on the first failure. */
  run(): WalkStats {
    for (this.#step = 1; this.#step <= this.#options.steps; this.#step++) {
      this.#act(this.#pickAction());
    }
    const c = this.checker.stats();
    this.stats.leaderTerms = c.leaderTerms;
    this.stats.committed = c.committed;
    return this.stats;
  }

  #newRawNode(node: WalkNode): RawNode {
    return new RawNode(
      {
        id: node.id,
        random: node.random,
        applied: node.machine.index,
        electionTick: ELECTION_TICK,
        heartbeatTick: 1,
        preVote: this.stats.preVote,
        checkQuorum: this.stats.checkQuorum,
      },
      node.disk,
    );
  }

  #pickAction(): Action {
    let x = this.#rng() * this.#totalWeight;
    for (const [a, w] of this.#weights) {
      x -= w;
      if (x < 0) return a;
    }
    return "tick";
  }

  #pick<T>(xs: readonly T[]): T | undefined {
    return xs.length === 0 ? undefined : xs[randomInt(this.#rng, 0, xs.length)];
  }

  #up(): WalkNode[] {
    return [...this.#nodes.values()].filter((n) => n.raw !== undefined);
  }

  #act(action: Action): void {
    switch (action) {
      case "tick": {
        const n = this.#pick(this.#up());
        if (n === undefined) return;
        this.stats.ticks++;
        n.raw!.tick();
        this.#check(n);
        return;
      }
      case "deliver": {
        const items = this.#bag.filter((b) => this.#nodes.get(b.message.to)!.raw !== undefined);
        const item = this.#pick(items);
        if (item === undefined) return;
        this.#deliver(this.#nodes.get(item.message.to)!, item);
        return;
      }
      case "flush": {
        // Everything in the bag for one node, oldest first: a link that held its
        // messages (a stalled connection, a paused process) lets them all go at once.
        const n = this.#pick(this.#up());
        if (n === undefined) return;
        const items = this.#bag.filter((b) => b.message.to === n.id);
        if (items.length === 0) return;
        this.trace.add(this.#step, `flush ${items.length} messages to ${n.id}`);
        for (const item of items) {
          if (n.raw === undefined) return;
          this.#deliver(n, item);
        }
        return;
      }
      case "ready": {
        const n = this.#pick(this.#up().filter((x) => x.write === undefined && x.raw!.hasReady()));
        if (n === undefined) return;
        this.#takeReady(n, n.raw!);
        return;
      }
      case "finish": {
        const n = this.#pick(this.#up().filter((x) => x.write !== undefined));
        if (n === undefined) return;
        const rd = n.write!;
        n.write = undefined;
        this.#finish(n, n.raw!, rd);
        return;
      }
      case "crash": {
        // A node with a write in flight half the time: the window where a crash
        // loses a term or vote the node already acted on in memory.
        const writing = this.#up().filter((x) => x.write !== undefined);
        const n = writing.length > 0 && this.#rng() < 0.5
          ? this.#pick(writing)
          : this.#pick(this.#up());
        if (n === undefined) return;
        this.#crash(n);
        return;
      }
      case "restart": {
        const n = this.#pick([...this.#nodes.values()].filter((x) => x.raw === undefined));
        if (n === undefined) return;
        this.#restart(n);
        return;
      }
      case "propose": {
        const n = this.#pick(this.#up().filter((x) => x.raw!.status().role === "leader"));
        if (n === undefined) return;
        const data = new TextEncoder().encode(`p${++this.#proposalNo}`);
        try {
          n.raw!.propose(data);
          this.stats.proposals++;
          this.trace.add(this.#step, `propose p${this.#proposalNo} at ${n.id}`);
        } catch (e) {
          if (!(e instanceof NotLeaderError)) throw e;
        }
        this.#check(n);
        return;
      }
      case "lose": {
        if (this.#bag.length > 0) this.#bag.splice(randomInt(this.#rng, 0, this.#bag.length), 1);
        return;
      }
    }
  }

  #deliver(n: WalkNode, item: BagItem): void {
    const raw = n.raw!;
    this.stats.delivered++;
    if (item.delivered) this.stats.redelivered++;
    if ((this.#sentTo.get(item) ?? 0) < n.incarnation) this.stats.acrossRestart++;
    if (n.write !== undefined) this.stats.steppedDuringWrite++;
    else if (raw.hasReady()) this.stats.steppedBeforeReady++;
    item.delivered = true;
    // Sometimes kept for another delivery: the bag model's duplicates.
    if (this.#rng() < this.#consume) this.#bag.splice(this.#bag.indexOf(item), 1);
    this.trace.add(this.#step, `deliver ${describe(item.message)}`);
    raw.step(item.message);
    this.#check(n);
  }

  #send(m: Message): void {
    const to = this.#nodes.get(m.to);
    if (to === undefined || m.to === m.from) {
      throw new Error(`misaddressed message: from ${m.from} to ${m.to} (${m.type})`);
    }
    const item: BagItem = { message: m, delivered: false };
    this.#sentTo.set(item, to.incarnation);
    this.#bag.push(item);
    if (this.#bag.length > BAG_LIMIT) this.#bag.shift();
  }

  #takeReady(n: WalkNode, raw: RawNode): void {
    const rd = raw.ready();
    this.stats.readies++;
    const durableTerm = n.disk.hardState().term;
    for (const m of rd.messages) {
      if (m.type === "app" || m.type === "heartbeat" || m.type === "snap") {
        this.checker.checkLeaderTermDurable(n.id, m.type, m.term, durableTerm);
      }
    }
    this.trace.add(
      this.#step,
      `ready ${n.id}: hs ${
        rd.hardState === undefined
          ? "-"
          : `${rd.hardState.term}/${rd.hardState.vote}/${rd.hardState.commit}`
      }` +
        ` entries ${rd.entries.length} msgs ${rd.messages.map(describe).join(", ")}`,
    );
    for (const m of rd.messages) this.#send(m);
    if (rd.committedEntries.length > 0) {
      this.checker.checkCommittedDurable(n.id, rd.committedEntries, n.disk, rd.entries[0]?.index);
    }
    const persists = rd.hardState !== undefined || rd.entries.length > 0;
    if (persists) n.write = rd;
    else this.#finish(n, raw, rd);
  }

  #finish(n: WalkNode, raw: RawNode, rd: Ready): void {
    if (rd.entries.length > 0) this.#persist(n, rd.entries);
    if (rd.hardState !== undefined) n.disk.setHardState(rd.hardState);
    for (const m of rd.persistedMessages) this.#send(m);
    const term = raw.status().term;
    for (const e of rd.committedEntries) {
      const a = { index: e.index, term: e.term, data: e.data };
      this.checker.observeApply(n.id, term, a, n.disk);
      n.machine = applyEntry(n.machine, a);
      this.checker.observeState(n.id, a.index, n.machine.hash, "applied");
    }
    raw.advance(rd);
    this.#check(n);
  }

  #persist(n: WalkNode, entries: readonly Entry[]): void {
    const prior = n.disk.lastIndex();
    n.disk.append(entries);
    this.checker.observeAppend(n.id, entries, n.disk, prior);
  }

  #crash(n: WalkNode): void {
    this.stats.crashes++;
    const w = n.write;
    n.raw = undefined;
    n.write = undefined;
    this.checker.observeCrash(n.id);
    let kept = "nothing in flight";
    if (w !== undefined) {
      // The WAL's order: entries first, the hard state last; a torn tail is cut
      // back to whole records. So: none of it, a prefix of the entries, or all.
      const r = this.#rng();
      if (r < 0.4) kept = "write lost";
      else if (r < 0.7 && w.entries.length > 0) {
        const k = randomInt(this.#rng, 0, w.entries.length + 1);
        if (k > 0) this.#persist(n, w.entries.slice(0, k));
        kept = `write torn: ${k} of ${w.entries.length} entries kept`;
      } else {
        if (w.entries.length > 0) this.#persist(n, w.entries);
        if (w.hardState !== undefined) n.disk.setHardState(w.hardState);
        kept = "write kept whole";
      }
    }
    this.trace.add(this.#step, `crash ${n.id} (${kept})`);
  }

  #restart(n: WalkNode): void {
    this.stats.restarts++;
    n.incarnation++;
    n.disk = n.disk.clone();
    n.machine = INITIAL_STATE;
    const hs = n.disk.hardState();
    this.trace.add(
      this.#step,
      `restart ${n.id} term:${hs.term} vote:${hs.vote} commit:${hs.commit} last:${n.disk.lastIndex()}`,
    );
    this.checker.observeRestart(n.id);
    n.raw = this.#newRawNode(n);
    this.#check(n);
  }

  #check(n: WalkNode): void {
    const raw = n.raw;
    if (raw === undefined) return;
    const s = raw.status();
    const log = coreLog(raw);
    this.checker.observeRole(n.id, s.term, s.role);
    this.checker.observeCommit(n.id, s.term, s.commit, log);
    if (s.role === "leader") this.checker.checkLeaderCompleteness(n.id, s.term, log);
  }

  /** Every node's state, for failure reports. */
  describe(): string {
    return [...this.#nodes.values()].map((n) => {
      if (n.raw === undefined) return `  ${n.id}: down, disk term ${n.disk.hardState().term}`;
      const s = n.raw.status();
      return `  ${n.id}: ${s.role} term ${s.term} commit ${s.commit} last ${n.raw.raft.log.lastIndex()}${
        n.write === undefined ? "" : " (write in flight)"
      }`;
    }).join("\n");
  }
}

function describe(m: Message): string {
  const extra = m.type === "app"
    ? ` prev ${m.index}/${m.logTerm} [${m.entries.map((e) => `${e.index}/${e.term}`).join(" ")}]`
    : m.reject
    ? " reject"
    : "";
  return `${m.type} ${m.from}->${m.to} t${m.term}${extra}`;
}
