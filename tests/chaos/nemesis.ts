/**
 * The nemesis: faults injected into a real cluster on a seeded, time-based schedule,
 * each healed after a while. One round: pick a fault (sometimes a process fault and a
 * network fault at once), hold it for 2–8 s, heal everything, let the cluster run
 * healthy for 2–5 s, repeat until told to stop; then heal for good.
 *
 * Faults:
 *
 * - `kill` / `kill-leader`: SIGKILL a random node / the leader; restarted at the heal
 *   (same data dir: it recovers from its write-ahead log).
 * - `pause` / `pause-leader`: SIGSTOP a random node / the leader, SIGCONT at the heal,
 *   always more than an election timeout later (a frozen leader wakes up deposed).
 * - `partition-halves`: a random minority | majority split.
 * - `partition-leader`: the leader alone | everyone else.
 * - `partition-bridge`: two halves that cannot talk, and one node that talks to both
 *   ({1,2} | {4,5} with 3 connected to all; {1} | {3} with 2 for three nodes).
 * - `partition-split`: three groups, none a majority: no leader possible for a while.
 * - `partition-oneway`: one node, often the leader, deaf (nothing reaches it) or mute
 *   (nothing leaves it): only the links in one direction are cut.
 * - `partition-flaky`: a random third of the directed links cut.
 * - `member-readd`: a membership change: a random node is removed from the
 *   configuration (RemoveMember) and stopped; half the time its disk is wiped and it
 *   starts again with `--join`, else it starts again on its old disk; at the heal it
 *   is added back as a learner (AddMember), waited for until it caught up, and
 *   promoted (PromoteMember): a node removed and replaced under load, possibly with
 *   other faults striking.
 * - `transfer-leader`: TransferLeadership to a random voter, or to the most
 *   up-to-date one (§3.10): the leader stops taking writes, brings the target up to
 *   date and hands over.
 *
 * Every network fault cuts its links one of two ways, drawn per fault: `reset`
 * (connections closed and refused) or `blackhole` (silently dropped).
 *
 * Never are more than a minority of processes down (killed, paused or crashed) at
 * once; partitions, though, may leave no majority anywhere for a while.
 *
 * The schedule (which faults, how long) follows the seed; the targets that depend on
 * the cluster (who leads, who is down) and every timing do not, so a run with the same
 * seed is similar, not identical.
 *
 * @module
 */

import { Role } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { type Random, randomInt } from "../../src/raft/rand.ts";
import { type Cluster, waitFor } from "../e2e/_harness.ts";
import { memberCall } from "../e2e/_membership.ts";
import type { BlockMode } from "../e2e/_proxy.ts";

/** Every kind of fault the nemesis injects. */
export const FAULT_KINDS = [
  "kill",
  "kill-leader",
  "pause",
  "pause-leader",
  "partition-halves",
  "partition-leader",
  "partition-bridge",
  "partition-split",
  "partition-oneway",
  "partition-flaky",
  "member-readd",
  "transfer-leader",
] as const;

/** A kind of fault. */
export type FaultKind = typeof FAULT_KINDS[number];

const PROCESS_FAULTS: readonly FaultKind[] = [
  "kill",
  "kill-leader",
  "pause",
  "pause-leader",
  "member-readd",
  "transfer-leader",
];

/** Whether a fault kind acts on processes (as opposed to the network). */
export function isProcessFault(kind: FaultKind): boolean {
  return PROCESS_FAULTS.includes(kind);
}

/** One thing the nemesis did, on the history's clock. */
export interface NemesisEvent {
  /** Milliseconds since the start of the run. */
  readonly t: number;
  /** `start` of a fault, `heal` of everything, or a `problem` it ran into. */
  readonly action: "start" | "heal" | "problem";
  /** The fault's kind (for `start`). */
  readonly kind?: FaultKind;
  /** How links were cut (network faults). */
  readonly mode?: BlockMode;
  /** What exactly: targets, groups, links. */
  readonly detail: string;
}

/** Options of a {@link Nemesis}. */
export interface NemesisOptions {
  /** The seeded randomness of the schedule. */
  readonly random: Random;
  /** The kinds to draw from (all by default). */
  readonly kinds?: readonly FaultKind[];
  /** How long a fault is held: drawn in [min, max) milliseconds. */
  readonly faultMs?: readonly [number, number];
  /** How long the cluster runs healthy between faults: [min, max) milliseconds. */
  readonly healMs?: readonly [number, number];
  /** The shortest pause (SIGSTOP): longer than the longest election timeout. */
  readonly minPauseMs: number;
  /** Probability that a round injects a process fault and a network fault at once. */
  readonly combineProbability?: number;
  /** Once aborted (the run was interrupted), heals restart no node. */
  readonly interrupted?: AbortSignal;
  /** The run's clock: milliseconds since its start. */
  readonly now: () => number;
  /** Progress lines for people (optional). */
  readonly say?: (line: string) => void;
}

/** Resolves after `ms`, or at once when `signal` aborts (the schedule's own timer). */
export function pace(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal === undefined) return new Promise((resolve) => setTimeout(resolve, ms));
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

function shuffled<T>(items: readonly T[], random: Random): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = randomInt(random, 0, i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** Injects and heals faults in a cluster; see the module documentation. */
export class Nemesis {
  /** Everything done, in order. */
  readonly events: NemesisEvent[] = [];
  /** Faults injected, by kind. */
  readonly counts: Partial<Record<FaultKind, number>> = {};
  /** Network faults by how links were cut. */
  readonly modes: Record<BlockMode, number> = { reset: 0, blackhole: 0 };
  /** Rounds that injected two faults at once. */
  combined = 0;
  /** Problems that must fail the run (a node that would not restart). */
  readonly problems: string[] = [];
  readonly #c: Cluster;
  readonly #o: NemesisOptions;
  readonly #kinds: readonly FaultKind[];
  readonly #killed = new Set<number>();
  /** Nodes removed by `member-readd`, to add back and promote at the heal. */
  readonly #removed = new Set<number>();
  /** Membership changes made: removals, re-adds, promotions, transfers. */
  readonly membership = { removed: 0, readded: 0, promoted: 0, transfers: 0, refused: 0 };

  constructor(cluster: Cluster, options: NemesisOptions) {
    this.#c = cluster;
    this.#o = options;
    this.#kinds = options.kinds ?? FAULT_KINDS;
    if (this.#kinds.length === 0) throw new Error("the nemesis needs at least one fault kind");
  }

  /** How many processes may be down at once: a minority. */
  get maxDown(): number {
    return Math.floor((this.#c.ids.length - 1) / 2);
  }

  #event(e: Omit<NemesisEvent, "t">): void {
    const event = { t: this.#o.now(), ...e };
    this.events.push(event);
    this.#o.say?.(
      `[${(event.t / 1000).toFixed(1).padStart(6)} s] nemesis ${e.action}` +
        `${e.kind === undefined ? "" : ` ${e.kind}`}${
          e.mode === undefined ? "" : ` (${e.mode})`
        }: ` +
        e.detail,
    );
  }

  /**
   * Nodes that count as down: killed by the nemesis, crashed, frozen, or removed from
   * the configuration and not back yet (one voter fewer, like a node down).
   */
  #down(): number[] {
    return this.#c.ids.filter((id) =>
      !this.#c.isLive(id) || this.#c.isPaused(id) || this.#removed.has(id)
    );
  }

  /** The node that reports itself leader in the highest term, among running nodes; or undefined. */
  async leader(): Promise<number | undefined> {
    const up = this.#c.ids.filter((id) => this.#c.isLive(id) && !this.#c.isPaused(id));
    const all = await Promise.all(up.map((id) => this.#c.status(id, 500).catch(() => undefined)));
    let best: { id: number; term: bigint } | undefined;
    for (const s of all) {
      if (s === undefined || s.role !== Role.LEADER) continue;
      if (best === undefined || s.term > best.term) best = { id: Number(s.id), term: s.term };
    }
    return best?.id;
  }

  /** Runs rounds of fault and heal until `stop` aborts, then heals everything. */
  async run(stop: AbortSignal): Promise<void> {
    const r = this.#o.random;
    const [fMin, fMax] = this.#o.faultMs ?? [2_000, 8_000];
    const [hMin, hMax] = this.#o.healMs ?? [2_000, 5_000];
    // A healthy start: let the first leader settle and clients get going.
    await pace(randomInt(r, hMin, hMax), stop);
    while (!stop.aborted) {
      const kinds = this.#pickKinds();
      let holdMs = randomInt(r, fMin, fMax);
      for (const kind of kinds) {
        if (kind === "pause" || kind === "pause-leader") {
          holdMs = Math.max(holdMs, this.#o.minPauseMs + randomInt(r, 0, 1_000));
        }
        await this.#inject(kind);
      }
      await pace(holdMs, stop);
      await this.heal();
      await pace(randomInt(r, hMin, hMax), stop);
    }
  }

  #pickKinds(): FaultKind[] {
    const r = this.#o.random;
    const first = this.#kinds[randomInt(r, 0, this.#kinds.length)]!;
    if (r() >= (this.#o.combineProbability ?? 0.25)) return [first];
    const other = this.#kinds.filter((k) => isProcessFault(k) !== isProcessFault(first));
    if (other.length === 0) return [first];
    this.combined++;
    return [first, other[randomInt(r, 0, other.length)]!];
  }

  async #inject(kind: FaultKind): Promise<void> {
    const r = this.#o.random;
    const c = this.#c;
    const ids = c.ids;
    this.counts[kind] = (this.counts[kind] ?? 0) + 1;
    if (kind === "transfer-leader") return await this.#transfer();
    if (kind === "member-readd") return await this.#remove();
    if (isProcessFault(kind)) {
      const down = this.#down();
      if (down.length >= this.maxDown) {
        this.#event({ action: "start", kind, detail: `skipped: ${down.join(",")} already down` });
        return;
      }
      const up = ids.filter((id) => !down.includes(id));
      let target: number | undefined;
      if (kind === "kill-leader" || kind === "pause-leader") target = await this.leader();
      const note = target === undefined && (kind === "kill-leader" || kind === "pause-leader")
        ? " (no leader known: a random node)"
        : "";
      if (target === undefined || !up.includes(target)) target = up[randomInt(r, 0, up.length)]!;
      if (kind === "kill" || kind === "kill-leader") {
        this.#killed.add(target);
        this.#event({ action: "start", kind, detail: `SIGKILL node ${target}${note}` });
        await c.kill(target, "SIGKILL");
      } else {
        this.#event({ action: "start", kind, detail: `SIGSTOP node ${target}${note}` });
        c.pause(target);
      }
      return;
    }
    const mode: BlockMode = r() < 0.5 ? "reset" : "blackhole";
    this.modes[mode]++;
    const order = shuffled(ids, r);
    const groups = (...gs: number[][]) => gs.map((g) => `{${g.join(",")}}`).join(" | ");
    switch (kind) {
      case "partition-halves": {
        const minority = order.slice(0, randomInt(r, 1, this.maxDown + 1));
        const majority = order.filter((id) => !minority.includes(id));
        c.partitionBy(mode, minority, majority);
        this.#event({ action: "start", kind, mode, detail: groups(minority, majority) });
        return;
      }
      case "partition-leader": {
        const lead = await this.leader() ?? order[0]!;
        const rest = ids.filter((id) => id !== lead);
        c.partitionBy(mode, [lead], rest);
        this.#event({ action: "start", kind, mode, detail: `leader ${groups([lead], rest)}` });
        return;
      }
      case "partition-bridge": {
        const half = Math.floor(ids.length / 2);
        const a = order.slice(0, half);
        const bridge = order[half]!;
        const b = order.slice(half + 1);
        c.partitionBy(mode, a, b);
        this.#event({
          action: "start",
          kind,
          mode,
          detail: `${groups(a, b)}, node ${bridge} connected to all`,
        });
        return;
      }
      case "partition-split": {
        const gs: number[][] = ids.length >= 5
          ? [order.slice(0, 2), order.slice(2, 4), order.slice(4)]
          : order.map((id) => [id]);
        c.partitionBy(mode, ...gs);
        this.#event({ action: "start", kind, mode, detail: `${groups(...gs)} (no majority)` });
        return;
      }
      case "partition-oneway": {
        const x = r() < 0.6 ? (await this.leader() ?? order[0]!) : order[0]!;
        const deaf = r() < 0.5;
        for (const other of ids) {
          if (other === x) continue;
          if (deaf) c.blockLink(other, x, mode);
          else c.blockLink(x, other, mode);
        }
        this.#event({
          action: "start",
          kind,
          mode,
          detail: deaf
            ? `node ${x} deaf: every link into it cut`
            : `node ${x} mute: every link out of it cut`,
        });
        return;
      }
      case "partition-flaky": {
        const cut: string[] = [];
        for (const from of ids) {
          for (const to of ids) {
            if (from !== to && r() < 1 / 3) {
              c.blockLink(from, to, mode);
              cut.push(`${from}>${to}`);
            }
          }
        }
        this.#event({
          action: "start",
          kind,
          mode,
          detail: `links cut: ${cut.join(" ") || "none"}`,
        });
        return;
      }
      default:
        throw new Error(`unknown fault ${kind}`);
    }
  }

  /**
   * `transfer-leader`: asks for a transfer to a random voter or (one time in three)
   * to the most up-to-date one. A refusal or a transfer that times out is part of the
   * game (the target may be down or cut off), not a problem: the run's verdict is
   * about the history.
   */
  async #transfer(): Promise<void> {
    const c = this.#c;
    const up = c.ids.filter((id) => c.isLive(id) && !c.isPaused(id));
    const r = this.#o.random;
    const target = r() < 1 / 3 ? 0 : up[randomInt(r, 0, up.length)] ?? 0;
    this.membership.transfers++;
    try {
      const res = await memberCall(
        c,
        "TransferLeadership",
        (cl) => cl.transferLeadership({ targetId: BigInt(target) }, { timeoutMs: 5_000 }),
        { timeoutMs: 10_000 },
      );
      this.#event({
        action: "start",
        kind: "transfer-leader",
        detail: `to ${target === 0 ? "the most up-to-date voter" : `node ${target}`}: node ` +
          `${res.leaderId} leads in term ${res.term}`,
      });
    } catch (err) {
      this.membership.refused++;
      this.#event({
        action: "start",
        kind: "transfer-leader",
        detail: `to ${target === 0 ? "the most up-to-date voter" : `node ${target}`}: ${
          (err as Error).message.split("\n")[0]
        }`,
      });
    }
  }

  /**
   * `member-readd`, first half: removes a random running node from the configuration
   * (skipped, like a kill, when a minority is already down, or when no change can be
   * made now), stops it, and half the time wipes its data dir and starts it again with
   * `--join`; otherwise it starts again on its old disk at the heal.
   */
  async #remove(): Promise<void> {
    const c = this.#c;
    const r = this.#o.random;
    const down = this.#down();
    if (down.length >= this.maxDown || this.#removed.size > 0) {
      this.#event({
        action: "start",
        kind: "member-readd",
        detail: `skipped: ${down.join(",") || "a removed node"} not back yet`,
      });
      return;
    }
    const up = c.ids.filter((id) => !down.includes(id));
    const target = up[randomInt(r, 0, up.length)]!;
    const wipe = r() < 0.5;
    try {
      await memberCall(
        c,
        `RemoveMember ${target}`,
        (cl) => cl.removeMember({ id: BigInt(target) }, { timeoutMs: 5_000 }),
        { timeoutMs: 10_000 },
      );
    } catch (err) {
      this.membership.refused++;
      this.#event({
        action: "start",
        kind: "member-readd",
        detail: `RemoveMember ${target} failed, nothing changed: ${
          (err as Error).message.split("\n")[0]
        }`,
      });
      return;
    }
    this.membership.removed++;
    this.#removed.add(target);
    await c.kill(target, "SIGKILL");
    if (wipe) {
      await Deno.remove(c.dataDir(target), { recursive: true });
      // It joins from scratch: started now, it waits for the members to answer.
      c.spawn(target, ["--join"]);
    }
    this.#event({
      action: "start",
      kind: "member-readd",
      detail: `node ${target} removed and stopped${
        wipe ? ", its disk wiped, started again with --join" : " (its disk kept)"
      }`,
    });
  }

  /**
   * `member-readd`, second half (at the heal, with every link back): every removed
   * node running, added back as a learner, caught up with the leader, promoted. A node
   * that cannot be made a voter again within a minute is a problem: the run then ends
   * with a member short, and says so.
   */
  async #readd(): Promise<void> {
    const c = this.#c;
    for (const id of [...this.#removed]) {
      try {
        if (!c.isLive(id)) await c.restart(id);
        else await c.waitServing(id);
        // Whether it is still (or again) a member, as the leader's configuration in
        // force says: any other node may not have applied the removal yet, and the
        // removed node itself may still list itself (seen in CI: a stale "member"
        // answer skipped the AddMember and the run waited a minute for nothing).
        const inForce = await waitFor("a leader's configuration", async () => {
          const leader = await this.leader();
          if (leader === undefined) return undefined;
          const s = await c.status(leader, 2_000);
          return [...s.voters, ...s.learners, ...s.votersOutgoing];
        }, { timeoutMs: 60_000, intervalMs: 200 });
        if (!inForce.includes(BigInt(id))) {
          await memberCall(
            c,
            `AddMember ${id}`,
            (cl) =>
              cl.addMember({ id: BigInt(id), peerAddress: c.endpoint(id), learner: true }, {
                timeoutMs: 5_000,
              }),
            { timeoutMs: 60_000 },
          );
          this.membership.readded++;
        }
        await waitFor(`node ${id} to catch up as a learner`, async () => {
          const leader = await this.leader();
          if (leader === undefined) return false;
          const target = (await c.status(leader, 1_000)).commitIndex;
          return (await c.status(id, 1_000)).appliedIndex >= target;
        }, { timeoutMs: 60_000, intervalMs: 200 });
        await memberCall(
          c,
          `PromoteMember ${id}`,
          (cl) => cl.promoteMember({ id: BigInt(id) }, { timeoutMs: 5_000 }),
          { timeoutMs: 60_000 },
        ).catch((err) => {
          // Promoted already (an earlier attempt whose answer was lost)?
          if (!/already a voter/.test((err as Error).message)) throw err;
        });
        this.membership.promoted++;
        this.#removed.delete(id);
        this.#event({ action: "heal", detail: `node ${id} added back as a learner and promoted` });
      } catch (err) {
        const problem = `node ${id} could not be made a member again: ${
          (err as Error).message.split("\n")[0]
        }`;
        this.#event({ action: "problem", detail: problem });
        if (this.#o.interrupted?.aborted !== true) this.problems.push(problem);
        this.#removed.delete(id);
      }
    }
  }

  /**
   * Heals everything: every link restored, every frozen node continued, every node
   * that is not running (killed, or crashed on its own) restarted, waiting until it
   * serves. A node that will not restart is a problem that fails the run.
   */
  async heal(): Promise<void> {
    const c = this.#c;
    c.heal();
    const resumed = c.ids.filter((id) => c.isLive(id) && c.isPaused(id));
    for (const id of resumed) c.resume(id);
    // A node that exited on its own is a crash (the monitor reports it); clear it so
    // that it can be restarted like a killed one.
    for (const id of c.ids) {
      if (c.isLive(id) && c.exitedOnItsOwn(id) !== undefined) {
        await c.kill(id, "SIGKILL").catch(() => {}); // the monitor may have cleared it first
      }
    }
    const restart = this.#o.interrupted?.aborted
      ? []
      : c.ids.filter((id) => !c.isLive(id) && !this.#removed.has(id));
    const parts = [];
    if (resumed.length > 0) parts.push(`SIGCONT ${resumed.join(",")}`);
    if (restart.length > 0) parts.push(`restart ${restart.join(",")}`);
    this.#event({ action: "heal", detail: parts.length > 0 ? parts.join("; ") : "links restored" });
    await Promise.all(restart.map(async (id) => {
      try {
        this.#killed.delete(id);
        await c.restart(id);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        if (c.exitedOnItsOwn(id) !== undefined) {
          const problem = `node ${id} would not restart: ${message.split("\n")[0]}`;
          this.problems.push(problem);
          this.#event({ action: "problem", detail: problem });
        } else {
          // Another node's crash aborted the wait; this one is running and gets
          // another chance at the next heal if it is not serving.
          this.#event({
            action: "problem",
            detail: `restart of node ${id}: ${message.split("\n")[0]}`,
          });
        }
      }
    }));
    if (this.#removed.size > 0 && this.#o.interrupted?.aborted !== true) await this.#readd();
  }
}
