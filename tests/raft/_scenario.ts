/**
 * Helpers shared by the scenario tests: waiting on a simulated cluster with a
 * readable failure, seeding a node's disk with a hand-made log (the paper's
 * figures), and counting the messages nodes send.
 */
import assert from "node:assert/strict";
import { seededRandom } from "../../src/raft/rand.ts";
import { RawNode, type Ready } from "../../src/raft/raw_node.ts";
import { MemoryStorage } from "../../src/raft/storage.ts";
import { type Entry, message, type MessageType, type NodeId } from "../../src/raft/types.ts";
import { SimCluster, type SimClusterOptions } from "./sim/cluster.ts";

export const enc = new TextEncoder();
export const dec = new TextDecoder();

/** A cluster with a clean network, checked after every step. */
export function cluster(size: number, options: Partial<SimClusterOptions> = {}): SimCluster {
  return new SimCluster({ size, seed: 1, ...options });
}

/** Ticks until `pred` holds, failing with the cluster's state if it does not within `max`. */
export function tickUntil(c: SimCluster, what: string, pred: () => boolean, max = 300): void {
  assert.ok(c.runUntil(pred, max), `${what}: not within ${max} ticks\n${c.describe()}`);
}

/** Waits for a leader every running node follows, and returns it. */
export function electLeader(c: SimCluster, max = 300): NodeId {
  tickUntil(c, "a stable leader", () => c.stableLeader() !== undefined, max);
  return c.stableLeader()!;
}

/** The term of node `id`'s running core. */
export function termOf(c: SimCluster, id: NodeId): number {
  const s = c.status(id);
  assert.ok(s !== undefined, `node ${id} is down`);
  return s.term;
}

/** The commands node `id` applied, as strings, without the leaders' no-ops and conf changes. */
export function appliedCommands(c: SimCluster, id: NodeId): string[] {
  return c.applied(id).filter((e) => e.data.length > 0 && e.type !== "conf_change")
    .map((e) => dec.decode(e.data));
}

/** Entries with the given terms at indexes 1, 2, ..., each carrying `t<term>i<index>`. */
export function entriesWithTerms(terms: readonly number[]): Entry[] {
  return terms.map((term, i) => ({
    term,
    index: i + 1,
    type: "normal" as const,
    data: enc.encode(`t${term}i${i + 1}`),
  }));
}

/**
 * Replaces node `id`'s disk with a log of the given terms and a hard state, as if
 * it had lived through some history, and restarts it from there.
 */
export function seedLog(
  c: SimCluster,
  id: NodeId,
  terms: readonly number[],
  hardState: { term: number; vote?: NodeId; commit?: number },
): void {
  c.crash(id);
  const disk = c.disk(id);
  disk.append(entriesWithTerms(terms));
  disk.setHardState({
    term: hardState.term,
    vote: hardState.vote ?? 0,
    commit: hardState.commit ?? 0,
  });
  c.restart(id);
}

/** Counts the messages nodes send, by type, from the moment it is made until `stop()`. */
export class MessageCounter {
  readonly #byType = new Map<MessageType, number>();
  readonly #rejections = new Map<NodeId, number>();
  readonly stop: () => void;

  constructor(c: SimCluster) {
    this.stop = () => {
      untap();
    };
    const untap = c.network.tap((m) => {
      this.#byType.set(m.type, (this.#byType.get(m.type) ?? 0) + 1);
      if (m.type === "app_resp" && m.reject) {
        this.#rejections.set(m.from, (this.#rejections.get(m.from) ?? 0) + 1);
      }
    });
  }

  /** Messages of `type` sent (all types when omitted). */
  count(type?: MessageType): number {
    if (type !== undefined) return this.#byType.get(type) ?? 0;
    let n = 0;
    for (const v of this.#byType.values()) n += v;
    return n;
  }

  /** Append rejections sent by `from`. */
  rejectionsFrom(from: NodeId): number {
    return this.#rejections.get(from) ?? 0;
  }

  /** The types seen, sorted, for readable assertions. */
  types(): MessageType[] {
    return [...this.#byType.keys()].sort();
  }

  /** `type:count` pairs, for failure messages. */
  toString(): string {
    return [...this.#byType].map(([t, n]) => `${t}:${n}`).sort().join(" ");
  }
}

/** A lone RawNode with its disk, and a driver that persists each Ready as the runtime would. */
export interface RawHarness {
  readonly node: RawNode;
  readonly storage: MemoryStorage;
  /** Takes a Ready, persists it (snapshot, entries, hard state), advances, and returns it. */
  handle(): Ready;
}

/** A RawNode for node 1 of `voters`, PreVote off so one campaign() starts a real election. */
export function rawNode(voters: readonly NodeId[]): RawHarness {
  const storage = new MemoryStorage(voters);
  const node = new RawNode({ id: 1, random: seededRandom(1), preVote: false }, storage);
  return {
    node,
    storage,
    handle(): Ready {
      const rd = node.ready();
      if (rd.snapshot !== undefined) storage.applySnapshot(rd.snapshot);
      storage.append(rd.entries);
      if (rd.hardState !== undefined) storage.setHardState(rd.hardState);
      node.advance(rd);
      return rd;
    },
  };
}

/**
 * Makes node 1 of a RawHarness the leader of term 1 with every follower
 * acknowledging its no-op, by stepping the votes and answers it needs.
 */
export function makeLeader(h: RawHarness, voters: readonly NodeId[]): void {
  h.node.campaign();
  h.handle();
  for (const from of voters) {
    if (from !== 1) h.node.step(message({ type: "vote_resp", from, to: 1, term: 1 }));
  }
  h.handle();
  for (const from of voters) {
    if (from !== 1) h.node.step(message({ type: "app_resp", from, to: 1, term: 1, index: 1 }));
  }
  while (h.node.hasReady()) h.handle();
  assert.equal(h.node.status().role, "leader");
}
