/**
 * Jepsen-style chaos runs: a real cluster of node processes on 127.0.0.1 with every
 * peer link behind a fault-injecting proxy, concurrent clients recording a history
 * ({@link ChaosClient}), a nemesis injecting faults on a seeded schedule
 * ({@link Nemesis}), and at the end a verdict:
 *
 * 1. every acknowledged write is present: after everything is healed and every node
 *    killed and restarted at once (so state comes back from the write-ahead logs), a
 *    linearizable Get of every key from every node is added to the history, so a lost
 *    write makes the history non-linearizable;
 * 2. every node applied the same sequence and has the same state: once all nodes agree
 *    on a leader and have applied its commit index, their `applied_chain` and
 *    `state_digest` (ClusterService/Status) are equal at equal `applied_index`;
 * 3. the history is linearizable, key by key ({@link checkHistory});
 *
 * and besides: no node crashed on its own or failed to restart, and no two nodes
 * were ever seen naming different leaders for the same term (Election Safety, from
 * the Status polls of a monitor that also counts leader changes).
 *
 * {@link runChaos} does a run and returns a {@link ChaosResult} with a one-screen
 * summary; `main.ts` is the CLI (`deno task chaos`), `chaos_test.ts` the bounded CI
 * run. {@link judge} is the verdict on its own, usable on any recorded history.
 *
 * @module
 */

import process from "node:process";
import { Role, type StatusResponse } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { seededRandom } from "../../src/raft/rand.ts";
import { type Cluster, codeName, sleep, startCluster, text, waitFor } from "../e2e/_harness.ts";
import { ConnectError } from "@connectrpc/connect";
import { checkHistory, type CheckResult, type OpKind } from "./linearizability.ts";
import { tlsCluster } from "../tls/_tls_cluster.ts";
import { opLabel, renderTimeline } from "./timeline.ts";
import { ChaosClient, History, type HistoryOp, KnownValues } from "./clients.ts";
import { WatchChecker, type WatchReport } from "./watch_check.ts";
import { FAULT_KINDS, type FaultKind, Nemesis, type NemesisEvent, pace } from "./nemesis.ts";

/** Options of {@link runChaos}. */
export interface ChaosOptions {
  /** Cluster size: 5 (default) or 3. */
  readonly nodes: number;
  /** How long faults are injected, in milliseconds (the end phase comes on top). */
  readonly durationMs: number;
  /** Seeds the nemesis schedule and every client's choices. */
  readonly seed: number;
  /** Concurrent clients, those without sessions included (default 5). */
  readonly clients?: number;
  /** How many of the clients write without a session: at least once, never retried (default 1). */
  readonly plainClients?: number;
  /** How many keys (default 3): `k0`, `k1`, ... */
  readonly keys?: number;
  /**
   * How many keys in the group that Txn and Range calls use (default 3): `t0`, `t1`,
   * ..., checked together by the multi-register model; 0: no Txn or Range calls.
   */
  readonly txnKeys?: number;
  /** Where history, node logs and timelines go (default: a new temp dir). */
  readonly outDir?: string;
  /** Node `--heartbeat-ms` (default 100). */
  readonly heartbeatMs?: number;
  /** Node `--election-ms` (default 1000; timeouts are randomized up to twice this). */
  readonly electionMs?: number;
  /** Deadline of one client call (default 2500 ms). */
  readonly opTimeoutMs?: number;
  /** Attempts of one session write (default 5). */
  readonly maxAttempts?: number;
  /** Mean client think time between calls (default 10 ms). */
  readonly thinkMs?: number;
  /** Fault kinds to draw from (default all); empty: no faults at all. */
  readonly faults?: readonly FaultKind[];
  /** Kill and restart every node at once before the final checks (default true). */
  readonly finalRestart?: boolean;
  /**
   * Node `--snapshot-entries` (default 100, far below the node's own default): snapshots
   * are taken, logs compacted and snapshots sent to lagging followers while faults
   * strike, so restores and installs are checked for linearizability and convergence.
   */
  readonly snapshotEntries?: number;
  /** Node `--snapshot-catchup-entries` (default 10): a follower further behind gets a snapshot. */
  readonly snapshotCatchupEntries?: number;
  /** Deliberately broken client 1 (stale reads with this probability): proves the checker bites. */
  readonly injectStaleReads?: number;
  /** Progress lines during the run (default: none). */
  readonly progress?: (line: string) => void;
  /**
   * TLS everywhere (default false): throwaway certificates (tests/tls/_tls_cluster.ts),
   * peer mutual TLS through the fault proxies, clients with a client certificate.
   */
  readonly tls?: boolean;
  /**
   * Called every second of the fault phase with how far it is (main.ts shows it as
   * a live line on a terminal, src/cli/progress.ts); default: none.
   */
  readonly onTick?: (tick: ChaosTick) => void;
  /**
   * Ends the run early: the fault phase stops, everything is healed and torn down, and
   * {@link runChaos} throws {@link Interrupted} instead of judging a cut-short run.
   */
  readonly signal?: AbortSignal;
}

/** How far a run is, for {@link ChaosOptions.onTick}. */
export interface ChaosTick {
  readonly elapsedMs: number;
  /** The fault phase's length ({@link ChaosOptions.durationMs}). */
  readonly durationMs: number;
  readonly ops: number;
  readonly ok: number;
  /** Faults injected so far. */
  readonly faults: number;
}

/** Thrown by {@link runChaos} when its `signal` aborted it. */
export class Interrupted extends Error {
  override name = "Interrupted";
  constructor() {
    super("the chaos run was interrupted");
  }
}

/** What a {@link judge} concluded. */
export interface Verdict {
  /** PASS iff the history is linearizable and there are no other problems. */
  readonly pass: boolean;
  /** Why not, one line each (empty on PASS). */
  readonly reasons: string[];
  /** The checker's result. */
  readonly check: CheckResult;
  /** How long the check took, in milliseconds. */
  readonly checkMs: number;
  /** Per failing key: the smallest failing window, as text. */
  readonly windows: string[];
  /** Timelines written, one per failing key. */
  readonly timelines: string[];
}

/** Everything a run produced. */
export interface ChaosResult {
  readonly options: ChaosOptions;
  readonly verdict: Verdict;
  /** The one-screen summary. */
  readonly summary: string;
  /** Where the artifacts are. */
  readonly outDir: string;
  /** The history, final reads included. */
  readonly history: readonly HistoryOp[];
  /** The command that replays the run (not exactly: timing differs). */
  readonly replay: string;
  /** What the nodes logged of snapshots during the run. */
  readonly snapshots: SnapshotCounts;
}

/** Snapshot work the nodes logged during a run, counted from their log lines. */
export interface SnapshotCounts {
  /** "took a snapshot": a node wrote its state and compacted its log. */
  taken: number;
  /** "snapshot sent": a leader streamed a snapshot to a follower to the end. */
  sent: number;
  /** "snapshot send failed": a transfer cut short (the leader retries from the start). */
  sendFailed: number;
  /** "installed a snapshot from the leader": a follower replaced its state with one. */
  installed: number;
}

/** Counts the snapshot events of one node log line into `counts`. */
export function countSnapshotLine(counts: SnapshotCounts, line: string): void {
  if (line.includes("took a snapshot")) counts.taken++;
  else if (line.includes("snapshot sent")) counts.sent++;
  else if (line.includes("snapshot send failed")) counts.sendFailed++;
  else if (line.includes("installed a snapshot from the leader")) counts.installed++;
}

// ---------------------------------------------------------------------------------
// Files

/** Appends lines to files in a directory, buffered, flushed every second and at close. */
class FileSink {
  readonly dir: string;
  readonly #buffers = new Map<string, string[]>();
  readonly #timer: ReturnType<typeof setInterval>;

  constructor(dir: string) {
    this.dir = dir;
    this.#timer = setInterval(() => this.flush(), 1_000);
  }

  append(name: string, line: string): void {
    let b = this.#buffers.get(name);
    if (b === undefined) this.#buffers.set(name, b = []);
    b.push(line);
  }

  flush(): void {
    for (const [name, lines] of this.#buffers) {
      if (lines.length === 0) continue;
      Deno.writeTextFileSync(`${this.dir}/${name}`, lines.join("\n") + "\n", { append: true });
      lines.length = 0;
    }
  }

  close(): void {
    clearInterval(this.#timer);
    this.flush();
  }
}

/** One JSON line of an operation (bigints as strings). */
export function opJson(op: HistoryOp): string {
  return JSON.stringify(op, (_k, v) => typeof v === "bigint" ? v.toString() : v);
}

function fileSafe(key: string): string {
  return key.replace(
    /[^A-Za-z0-9_.-]/g,
    (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

// ---------------------------------------------------------------------------------
// CPU

/** Busy and total jiffies of the whole machine (/proc/stat), or undefined off Linux. */
function machineTicks(): { busy: number; total: number } | undefined {
  try {
    const line = Deno.readTextFileSync("/proc/stat").split("\n")[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, CLK_TCK = 100
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------
// The monitor

/**
 * Leaderships and Election Safety from the Status answers of any set of nodes: two
 * nodes naming different leaders for one term is a violation (§5.2).
 */
export class LeaderLog {
  /** Leaderships seen (a node reporting ROLE_LEADER), in order: `t<term>:n<id>`. */
  readonly leaderships: string[] = [];
  /** Election Safety violations: different leaders named for one term. */
  readonly violations: string[] = [];
  readonly #named = new Map<bigint, { leader: bigint; by: bigint }>();
  readonly #seen = new Set<string>();

  /** Notes what a Status says. */
  observe(s: StatusResponse): void {
    if (s.leaderId !== 0n) {
      const prior = this.#named.get(s.term);
      if (prior === undefined) this.#named.set(s.term, { leader: s.leaderId, by: s.id });
      else if (prior.leader !== s.leaderId) {
        const v = `term ${s.term}: node ${prior.by} named leader ${prior.leader}, ` +
          `node ${s.id} named leader ${s.leaderId}`;
        if (!this.violations.includes(v)) this.violations.push(v);
      }
    }
    if (s.role === Role.LEADER) {
      const l = `t${s.term}:n${s.id}`;
      if (!this.#seen.has(l)) {
        this.#seen.add(l);
        this.leaderships.push(l);
      }
    }
  }
}

/** Polls every running node's Status: leader changes, Election Safety, crashes, CPU. */
class Monitor {
  /** Leaderships and Election Safety violations seen. */
  readonly leaders: LeaderLog = new LeaderLog();
  /** Nodes that exited on their own. */
  readonly crashes: string[] = [];
  readonly #cpu = new Map<number, number>();
  readonly #c: Cluster;
  readonly #now: () => number;
  readonly #say: ((line: string) => void) | undefined;

  constructor(c: Cluster, now: () => number, say?: (line: string) => void) {
    this.#c = c;
    this.#now = now;
    this.#say = say;
  }

  /** CPU seconds used by node processes (sampled, so a killed process's last moments are lost). */
  get nodeCpuSeconds(): number {
    let sum = 0;
    for (const v of this.#cpu.values()) sum += v;
    return sum;
  }

  /** Notes what a Status says. */
  observe(s: StatusResponse): void {
    this.leaders.observe(s);
  }

  /** One round of polls. */
  async poll(): Promise<void> {
    const c = this.#c;
    for (const id of c.ids) {
      const status = c.isLive(id) ? c.exitedOnItsOwn(id) : undefined;
      if (status !== undefined) {
        const crash =
          `node ${id} exited on its own (code ${status.code}, signal ${status.signal}) ` +
          `at ${(this.#now() / 1000).toFixed(1)} s; its log ends:\n${c.log(id).tail(15)}`;
        this.crashes.push(crash);
        this.#say?.(`!!! ${crash}`);
        try {
          await c.kill(id, "SIGKILL"); // acknowledged: the nemesis restarts it at its next heal
        } catch {
          // Someone else cleared it.
        }
        continue;
      }
      const pid = c.pid(id);
      if (pid !== undefined) {
        const cpu = processCpuSeconds(pid);
        if (cpu !== undefined) this.#cpu.set(pid, cpu);
      }
    }
    const up = c.ids.filter((id) => c.isLive(id) && !c.isPaused(id));
    const all = await Promise.all(up.map((id) => c.status(id, 500).catch(() => undefined)));
    for (const s of all) if (s !== undefined) this.observe(s);
  }

  /** Polls every 250 ms until `stop` aborts. */
  async run(stop: AbortSignal): Promise<void> {
    while (!stop.aborted) {
      await this.poll();
      await sleep(250);
    }
  }
}

// ---------------------------------------------------------------------------------
// The end of a run

/** What the end-of-run comparison of every node's Status found. */
export interface Convergence {
  readonly ok: boolean;
  /**
   * Whether the nodes settled (one leader, everything applied) so that their states
   * could be compared at all; false when the wait timed out.
   */
  readonly settled: boolean;
  readonly detail: string;
  readonly statuses: StatusResponse[];
}

function statusLine(s: StatusResponse): string {
  return `n${s.id} ${
    Role[s.role] ?? s.role
  } t${s.term} leader ${s.leaderId} commit ${s.commitIndex} ` +
    `applied ${s.appliedIndex} chain ${s.appliedChain.slice(0, 12)} digest ${
      s.stateDigest.slice(0, 12)
    }`;
}

/** The nodes whose Status a {@link converge} compares (a {@link Cluster} is one). */
export interface StatusSource {
  readonly ids: readonly number[];
  status(id: number, timeoutMs?: number): Promise<StatusResponse>;
}

/** The nodes a {@link finalReads} reads from (a {@link Cluster} is one). */
export interface ReadSource {
  readonly ids: readonly number[];
  kv(id: number): {
    get(
      req: { key: string },
      opts: { timeoutMs: number },
    ): Promise<{ found: boolean; value: Uint8Array }>;
  };
}

/**
 * Waits until every node agrees on one leader and has applied the leader's commit
 * index, then compares applied chains and state digests.
 */
export async function converge(c: StatusSource, timeoutMs: number): Promise<Convergence> {
  let last: StatusResponse[] = [];
  try {
    const statuses = await waitFor(
      "every node to agree on a leader and apply its commit index",
      async () => {
        const all = await Promise.all(c.ids.map((id) => c.status(id, 1_000)));
        last = all;
        const lead = all[0]!.leaderId;
        const term = all[0]!.term;
        if (lead === 0n) throw new Error(`node ${all[0]!.id} knows no leader`);
        if (all.some((s) => s.leaderId !== lead || s.term !== term)) {
          throw new Error(
            `no agreement: ${all.map((s) => `${s.id}→${s.leaderId}@t${s.term}`).join(" ")}`,
          );
        }
        const leader = all.find((s) => s.id === lead);
        if (leader === undefined || leader.role !== Role.LEADER) {
          throw new Error(`${lead} does not lead`);
        }
        // The leader has committed all of its log (its own term's no-op included, so
        // every earlier entry it holds is committed too), and every node has applied
        // exactly that much.
        if (leader.commitIndex !== leader.lastLogIndex) {
          throw new Error(
            `leader ${lead} committed ${leader.commitIndex} of ${leader.lastLogIndex}`,
          );
        }
        const off = all.filter((s) => s.appliedIndex !== leader.commitIndex);
        if (off.length > 0) {
          throw new Error(
            `not at the leader's commit ${leader.commitIndex}: ` +
              off.map((s) => `n${s.id} at ${s.appliedIndex}`).join(", "),
          );
        }
        return all;
      },
      { timeoutMs, intervalMs: 200 },
    );
    const applied = new Set(statuses.map((s) => s.appliedIndex));
    const chains = new Set(statuses.map((s) => s.appliedChain));
    const digests = new Set(statuses.map((s) => s.stateDigest));
    const table = statuses.map(statusLine).join("\n");
    if (applied.size !== 1) {
      return {
        ok: false,
        settled: true,
        detail: `applied indexes differ after convergence:\n${table}`,
        statuses,
      };
    }
    if (chains.size !== 1) {
      return {
        ok: false,
        settled: true,
        detail:
          `nodes applied different sequences (applied_chain differs at equal applied_index):\n${table}`,
        statuses,
      };
    }
    if (digests.size !== 1) {
      return {
        ok: false,
        settled: true,
        detail: `same applied sequence, different states (state_digest differs):\n${table}`,
        statuses,
      };
    }
    const s = statuses[0]!;
    return {
      ok: true,
      settled: true,
      detail:
        `all ${statuses.length} nodes at applied index ${s.appliedIndex} (leader n${s.leaderId}, term ${s.term}), ` +
        `equal applied_chain ${s.appliedChain.slice(0, 12)}… and state_digest ${
          s.stateDigest.slice(0, 12)
        }…`,
      statuses,
    };
  } catch (err) {
    return {
      ok: false,
      settled: false,
      detail: `${err instanceof Error ? err.message : String(err)}\n${
        last.map(statusLine).join("\n")
      }`,
      statuses: last,
    };
  }
}

/**
 * A linearizable Get of every key from every node, recorded in the history (client
 * `final-n<id>`), up to 3 attempts each. Returns the problems: a node that could not
 * serve a key at all.
 */
export async function finalReads(
  c: ReadSource,
  history: History,
  keys: readonly string[],
): Promise<string[]> {
  const problems: string[] = [];
  await Promise.all(c.ids.map(async (node) => {
    for (const key of keys) {
      let served = false;
      for (let attempt = 1; attempt <= 3 && !served; attempt++) {
        const asked = {
          id: history.nextId(),
          client: `final-n${node}`,
          key,
          kind: "get",
          invoke: history.now(),
          node,
        } as const;
        try {
          const res = await c.kv(node).get({ key }, { timeoutMs: 5_000 });
          history.add({
            ...asked,
            outcome: "ok",
            complete: history.now(),
            output: { found: res.found, value: res.found ? text(res.value) : "" },
          });
          served = true;
        } catch (err) {
          const e = ConnectError.from(err);
          history.add({
            ...asked,
            outcome: "unknown",
            complete: history.now(),
            error: `${codeName(e.code)}: ${e.rawMessage}`,
          });
        }
      }
      if (!served) problems.push(`node ${node} could not serve a final read of ${key}`);
    }
  }));
  return problems;
}

// ---------------------------------------------------------------------------------
// The verdict

/**
 * Search steps the checker may spend narrowing down one failing key's window (some
 * seconds): past it, a proven but possibly larger window is reported.
 */
const WINDOW_MAX_STEPS = 3_000_000;

/** The most window operations the summary lists in full (see windows.txt for all). */
const MAX_WINDOW_LINES = 16;

function fmtT(t: number | undefined): string {
  return t === undefined || !Number.isFinite(t) ? "∞" : `${(t / 1000).toFixed(3)}s`;
}

/**
 * The verdict on a recorded history plus the problems found outside it (crashes,
 * divergent nodes...): checks the history, and for each non-linearizable key prints
 * its smallest failing window and writes `timeline-<key>.html` in `outDir`.
 * `events` (the nemesis's) are listed alongside a failing window.
 */
export async function judge(
  ops: readonly HistoryOp[],
  problems: readonly string[],
  outDir: string,
  title: string,
  events: readonly NemesisEvent[] = [],
): Promise<Verdict> {
  const started = performance.now();
  const check = checkHistory(ops, { windowMaxSteps: WINDOW_MAX_STEPS });
  const checkMs = performance.now() - started;
  const reasons = [...problems];
  const windows: string[] = [];
  const timelines: string[] = [];
  const byId = new Map(ops.map((op) => [op.id, op]));
  for (const key of check.perKey) {
    if (key.ok === "timeout") {
      reasons.push(`key ${key.key}: the checker ran out of budget (${key.steps} steps): undecided`);
      continue;
    }
    if (key.ok) continue;
    reasons.push(`key ${key.key}: NOT linearizable`);
    const f = key.failure;
    const lines = [`key ${key.key}: not linearizable`];
    if (f !== undefined) {
      const describe = (id: number, mark: string) => {
        const op = byId.get(id);
        if (op === undefined) return `  ${mark} #${id}`;
        const end = op.outcome === "unknown" ? "∞" : fmtT(op.complete);
        return `  ${mark} #${id} ${opLabel(op).padEnd(34)} client ${String(op.client).padEnd(9)} ` +
          `${fmtT(op.invoke)} – ${end}` +
          `${op.node === undefined ? "" : ` via n${op.node}`}${
            op.error === undefined ? "" : `  [${op.error}]`
          }`;
      };
      lines.push(
        `  smallest failing window: ${f.ops.length} ops (core of ${f.core.length} marked *), ` +
          `failing prefix ends at ${fmtT(f.prefixEnd)}${f.minimal ? "" : " (not minimal: budget)"}`,
      );
      const core = new Set(f.core);
      // All of a short window; of a long one, the core (its first ops, if it is long
      // too), then as many of their neighbours as fit (the whole window is in
      // windows.txt and the timeline).
      const shown = new Set<number>();
      if (f.ops.length <= MAX_WINDOW_LINES) f.ops.forEach((id) => shown.add(id));
      const corePos = f.ops.flatMap((id, i) => core.has(id) ? [i] : []);
      for (const i of corePos) if (shown.size < MAX_WINDOW_LINES) shown.add(f.ops[i]!);
      for (let r = 1; r <= 2; r++) {
        for (const i of corePos) {
          for (const j of [i - r, i + r]) {
            const id = f.ops[j];
            if (id !== undefined && shown.size < MAX_WINDOW_LINES) shown.add(id);
          }
        }
      }
      let skipped = 0;
      const full = [...lines];
      for (const id of f.ops) {
        full.push(describe(id, core.has(id) ? "*" : " "));
        if (shown.has(id)) {
          if (skipped > 0) lines.push(`    … ${skipped} more`);
          skipped = 0;
          lines.push(describe(id, core.has(id) ? "*" : " "));
        } else skipped++;
      }
      if (skipped > 0) lines.push(`    … ${skipped} more`);
      await Deno.writeTextFile(`${outDir}/windows.txt`, full.join("\n") + "\n", { append: true });
      // Faults around the window.
      const from = Math.min(...f.ops.map((id) => byId.get(id)?.invoke ?? Infinity));
      const near = events.filter((e) => e.t >= from - 10_000 && e.t <= f.prefixEnd + 1_000);
      if (near.length > 0) {
        lines.push("  nemesis around it:");
        for (const e of near) {
          lines.push(
            `    ${fmtT(e.t)} ${e.action}${e.kind === undefined ? "" : ` ${e.kind}`}` +
              `${e.mode === undefined ? "" : ` (${e.mode})`}: ${e.detail}`,
          );
        }
      }
      // The timeline: this key's operations around the window.
      const lo = from - 2_000;
      const hi = f.prefixEnd + 1_000;
      const inWindow = new Set(f.ops);
      const keyOps = ops.filter((op) =>
        op.key === key.key &&
        (inWindow.has(op.id) ||
          (op.invoke <= hi &&
            (op.outcome === "unknown" ? Infinity : op.complete ?? op.invoke) >= lo))
      );
      const sub: CheckResult = { ok: false, perKey: [key], stats: check.stats };
      const path = `${outDir}/timeline-${fileSafe(key.key)}.html`;
      await Deno.writeTextFile(
        path,
        renderTimeline(keyOps, sub, `${title}: key ${key.key}, ${fmtT(lo)} – ${fmtT(hi)}`),
      );
      timelines.push(path);
      lines.push(`  timeline: ${path}`);
    }
    windows.push(lines.join("\n"));
  }
  return { pass: reasons.length === 0, reasons, check, checkMs, windows, timelines };
}

// ---------------------------------------------------------------------------------
// The summary

/** What a run observed besides the history, for {@link formatSummary}. */
export interface RunFacts {
  readonly wallMs: number;
  readonly faultPhaseMs: number;
  readonly events: readonly NemesisEvent[];
  readonly nemesis: Nemesis | undefined;
  readonly leaderships: readonly string[];
  readonly clients: readonly ChaosClient[];
  readonly convergences: readonly { label: string; result: Convergence }[];
  readonly cpu: string;
  /** Snapshot work the nodes logged (undefined: their logs were not seen, a live run). */
  readonly snapshots: SnapshotCounts | undefined;
  /** The first line, instead of the one describing a run's own cluster (a live run). */
  readonly header?: string;
  /** What the artifacts are, instead of a run's own list (a live run). */
  readonly artifacts?: string;
  /** What the watch client saw (watch_check.ts), one line. */
  readonly watch?: string;
}

function pad(s: string | number, n: number): string {
  return String(s).padStart(n);
}

/** The one-screen summary of a run. */
export function formatSummary(
  o: ChaosOptions,
  ops: readonly HistoryOp[],
  verdict: Verdict,
  facts: RunFacts,
  outDir: string,
  replay: string,
): string {
  const out: string[] = [];
  const plain = o.plainClients ?? 1;
  const clients = o.clients ?? 5;
  out.push(
    facts.header ??
      `raftkv chaos: ${o.nodes} nodes, seed ${o.seed}, ${
          (facts.faultPhaseMs / 1000).toFixed(0)
        } s of faults ` +
        `(${
          (facts.wallMs / 1000).toFixed(0)
        } s in all), ${clients} clients (${plain} without sessions), ` +
        `${o.keys ?? 3} keys + ${o.txnKeys ?? 3} for Txn and Range, heartbeat ${
          o.heartbeatMs ?? 100
        } ms, election ${o.electionMs ?? 1000} ms`,
  );
  // Operations.
  const kinds: OpKind[] = ["get", "put", "cas", "delete", "txn", "range"];
  const row = (name: string, sel: (op: HistoryOp) => boolean) => {
    const mine = ops.filter(sel);
    const n = (x: string) => mine.filter((op) => op.outcome === x).length;
    return `  ${name.padEnd(10)}${pad(n("ok"), 7)}${pad(n("fail"), 7)}${pad(n("unknown"), 9)}${
      pad(mine.length, 8)
    }`;
  };
  const isFinal = (op: HistoryOp) => String(op.client).startsWith("final-");
  out.push(`operations: ${ops.length}              ok   fail  unknown   total`);
  for (const k of kinds) out.push(row(k, (op) => op.kind === k && !isFinal(op)));
  out.push(row("final get", isFinal));
  const casOk = ops.filter((op) => op.kind === "cas" && op.outcome === "ok");
  const swapped =
    casOk.filter((op) => op.kind === "cas" && op.outcome === "ok" && op.output.succeeded).length;
  const s = verdict.check.stats;
  const retriedOk = facts.clients.reduce((a, c) => a + c.stats.retriedOk, 0);
  const sessions = facts.clients.reduce((a, c) => a + c.stats.sessionsOpened, 0);
  out.push(
    `  cas swapped ${swapped} of ${casOk.length} answered; indeterminate: ${s.unknownWrites} writes ` +
      `(checked as maybe-applied), ${s.unknownReads} reads (dropped); ${retriedOk} session writes ` +
      `answered by a retry; ${sessions} sessions opened`,
  );
  const errs: Record<string, number> = {};
  for (const c of facts.clients) {
    for (const [k, v] of Object.entries(c.stats.errors)) errs[k] = (errs[k] ?? 0) + v;
  }
  const errText = Object.entries(errs).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`)
    .join(", ");
  out.push(`  errors seen on attempts: ${errText || "none"}`);
  // The expected codes of a faulty cluster are Unavailable and DeadlineExceeded; show
  // what any other one said.
  for (const code of Object.keys(errs)) {
    if (code === "Unavailable" || code === "DeadlineExceeded") continue;
    const sample = facts.clients.map((c) => c.stats.samples[code]).find((m) => m !== undefined);
    if (sample !== undefined) out.push(`    ${code}, e.g.: ${sample.slice(0, 140)}`);
  }
  // Faults.
  const n = facts.nemesis;
  if (n === undefined) {
    out.push("faults: none (nemesis off)");
  } else {
    const byKind = FAULT_KINDS.filter((k) => (n.counts[k] ?? 0) > 0).map((k) =>
      `${k} ${n.counts[k]}`
    );
    out.push(
      `faults: ${Object.values(n.counts).reduce((a, b) => a + (b ?? 0), 0)} injected: ${
        byKind.join(", ") || "none"
      }`,
    );
    out.push(
      `  links cut by reset ${n.modes.reset}, by blackhole ${n.modes.blackhole}; ${n.combined} rounds with two faults at once; ` +
        `${facts.events.filter((e) => e.action === "heal").length} heals`,
    );
    const m = n.membership;
    if (m.removed + m.transfers > 0) {
      out.push(
        `  membership: ${m.removed} removed, ${m.readded} added back as learners, ${m.promoted} ` +
          `promoted; ${m.transfers} leadership transfers asked; ${m.refused} calls refused or timed out`,
      );
    }
  }
  const ls = facts.leaderships;
  out.push(
    `leader changes observed: ${Math.max(0, ls.length - 1)} (${ls.length} leaderships: ` +
      `${ls.length <= 12 ? ls.join(" ") : [...ls.slice(0, 5), "…", ...ls.slice(-5)].join(" ")})`,
  );
  for (const { label, result } of facts.convergences) {
    out.push(
      `convergence (${label}): ${result.ok ? "" : "FAILED: "}${result.detail.split("\n")[0]}`,
    );
  }
  if (facts.watch !== undefined) out.push(facts.watch);
  const sn = facts.snapshots;
  if (sn !== undefined) {
    out.push(
      `snapshots: ${sn.taken} taken, ${sn.sent} sent to followers (${sn.sendFailed} cut short), ` +
        `${sn.installed} installed (every ${o.snapshotEntries ?? 100} entries, keeping ` +
        `${o.snapshotCatchupEntries ?? 10})`,
    );
  }
  out.push(`cpu: ${facts.cpu}`);
  out.push(
    `linearizability: ${s.operations} ops on ${s.keys} keys, ${s.checked} checked, ` +
      `${s.steps} steps${
        s.windowSteps > 0 ? ` (+ ${s.windowSteps} to find failing windows)` : ""
      }, ` +
      `${verdict.checkMs.toFixed(0)} ms`,
  );
  for (const k of verdict.check.perKey) {
    const v = k.ok === true
      ? "linearizable"
      : k.ok === false
      ? "NOT LINEARIZABLE"
      : "undecided (budget)";
    const unknown = ops.filter((op) =>
      op.key === k.key && op.outcome === "unknown" && op.kind !== "get"
    ).length;
    out.push(
      `  ${k.key.padEnd(6)} ${v.padEnd(18)} ${pad(k.operations, 6)} ops, ${
        pad(k.checked, 6)
      } checked, ` +
        `${pad(unknown, 4)} unknown writes` +
        (k.notApplied === undefined
          ? ""
          : ` (${k.notApplied.length} never applied in the witness)`) +
        `, ${k.steps} steps`,
    );
  }
  for (const w of verdict.windows) out.push(w);
  if (!verdict.pass) {
    out.push("problems:");
    for (const r of verdict.reasons) out.push(`  - ${r.split("\n").join("\n    ")}`);
  }
  out.push(
    `artifacts: ${outDir} (${
      facts.artifacts ?? "history.jsonl, nemesis.jsonl, node<i>.log, summary.txt"
    }${verdict.timelines.length > 0 ? ", windows.txt, timeline-<key>.html" : ""})`,
  );
  out.push(`verdict: ${verdict.pass ? "PASS" : "FAIL"}`);
  if (!verdict.pass) {
    out.push(
      `replay: ${replay}\n  (same seed, same fault schedule and client choices; a run of real processes is ` +
        `not deterministic: timing, leaders and interleavings differ, so a replay may not hit the bug again)`,
    );
  }
  return out.join("\n");
}

/** The command line that replays a run with these options. */
export function replayCommand(o: ChaosOptions): string {
  const parts = [
    `deno task chaos --seed ${o.seed} --seconds ${
      Math.round(o.durationMs / 1000)
    } --nodes ${o.nodes}`,
  ];
  if ((o.clients ?? 5) !== 5) parts.push(`--clients ${o.clients}`);
  if ((o.plainClients ?? 1) !== 1) parts.push(`--plain-clients ${o.plainClients}`);
  if ((o.keys ?? 3) !== 3) parts.push(`--keys ${o.keys}`);
  if ((o.txnKeys ?? 3) !== 3) parts.push(`--txn-keys ${o.txnKeys}`);
  if (o.faults !== undefined && o.faults.length !== FAULT_KINDS.length) {
    parts.push(`--faults ${o.faults.length === 0 ? "none" : o.faults.join(",")}`);
  }
  if (o.heartbeatMs !== undefined) parts.push(`--heartbeat-ms ${o.heartbeatMs}`);
  if (o.electionMs !== undefined) parts.push(`--election-ms ${o.electionMs}`);
  if (o.finalRestart === false) parts.push("--no-final-restart");
  if (o.snapshotEntries !== undefined) parts.push(`--snapshot-entries ${o.snapshotEntries}`);
  if (o.snapshotCatchupEntries !== undefined) {
    parts.push(`--snapshot-catchup-entries ${o.snapshotCatchupEntries}`);
  }
  if (o.injectStaleReads !== undefined) parts.push(`--inject-stale-reads ${o.injectStaleReads}`);
  if (o.tls === true) parts.push("--tls");
  return parts.join(" ");
}

/** A seeded stream per purpose, so that adding a client does not shift the nemesis. */
function stream(seed: number, purpose: number): () => number {
  return seededRandom((Math.imul(seed, 0x9e3779b1) ^ Math.imul(purpose + 1, 0x85ebca6b)) >>> 0);
}

// ---------------------------------------------------------------------------------
// The run

/** Runs a chaos test (see the module documentation) and returns its verdict and summary. */
export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const wallStart = performance.now();
  const say = o.progress ?? (() => {});
  const nKeys = o.keys ?? 3;
  const nClients = o.clients ?? 5;
  const nPlain = Math.min(o.plainClients ?? 1, nClients);
  const keys = Array.from({ length: nKeys }, (_, i) => `k${i}`);
  const nTxnKeys = o.txnKeys ?? 3;
  const group = nTxnKeys === 0 ? undefined : {
    name: "t*",
    prefix: "t",
    keys: Array.from({ length: nTxnKeys }, (_, i) => `t${i}`),
  };
  const electionMs = o.electionMs ?? 1_000;
  const outDir = o.outDir ?? await Deno.makeTempDir({ prefix: "raftkv_chaos_" });
  await Deno.mkdir(outDir, { recursive: true });
  for (
    const name of [
      "history.jsonl",
      "nemesis.jsonl",
      "windows.txt",
      ...Array.from({ length: o.nodes }, (_, i) => `node${i + 1}.log`),
    ]
  ) {
    await Deno.remove(`${outDir}/${name}`).catch(() => {});
  }
  const sink = new FileSink(outDir);
  const replay = replayCommand(o);
  say(
    `chaos: ${o.nodes} nodes, seed ${o.seed}, ${
      (o.durationMs / 1000).toFixed(0)
    } s; artifacts in ${outDir}`,
  );

  const snapshots: SnapshotCounts = { taken: 0, sent: 0, sendFailed: 0, installed: 0 };
  const cpu0 = machineTicks();
  const self0 = process.cpuUsage();
  let cluster: Cluster;
  const tls = o.tls === true ? await tlsCluster(o.nodes) : undefined;
  try {
    cluster = await startCluster({
      nodes: o.nodes,
      proxied: true,
      heartbeatMs: o.heartbeatMs ?? 100,
      electionMs,
      clusterId: "raftkv-chaos",
      extraArgs: [
        "--snapshot-entries",
        String(o.snapshotEntries ?? 100),
        "--snapshot-catchup-entries",
        String(o.snapshotCatchupEntries ?? 10),
        ...(tls?.options.extraArgs ?? []),
      ],
      ...(tls === undefined
        ? {}
        : { nodeArgs: tls.options.nodeArgs, clientTls: tls.options.clientTls }),
      onLogLine: (id, line) => {
        countSnapshotLine(snapshots, line);
        sink.append(`node${id}.log`, line);
      },
    });
  } catch (err) {
    sink.close();
    await tls?.pki.cleanup();
    throw err;
  }
  const clients: ChaosClient[] = [];
  let nemesis: Nemesis | undefined;
  const stopMonitor = new AbortController();
  let monitorDone: Promise<void> = Promise.resolve();
  // Interrupted: let frozen nodes run again at once, so that nothing outlives us stopped.
  const thaw = () => {
    for (const id of cluster.ids) {
      if (cluster.isLive(id) && cluster.isPaused(id)) cluster.resume(id);
    }
  };
  o.signal?.addEventListener("abort", thaw, { once: true });
  let watch: WatchChecker | undefined;
  try {
    const firstLeader = await cluster.leader(undefined, { timeoutMs: 60_000 });
    const h = new History((op) => sink.append("history.jsonl", opJson(op)));
    // A watch of every key from here on, checked against the acknowledged puts.
    watch = new WatchChecker(cluster.ids.map((id) => cluster.endpoint(id)), tls?.options.clientTls);
    watch.start((await cluster.status(firstLeader, 10_000)).appliedIndex + 1n);
    const m = new Monitor(cluster, () => h.now(), say);
    monitorDone = m.run(stopMonitor.signal);

    const known = new KnownValues();
    for (let i = 1; i <= nClients; i++) {
      clients.push(
        new ChaosClient(
          {
            id: i,
            sessions: i <= nClients - nPlain,
            keys,
            group,
            nodes: cluster.ids,
            endpoint: (id) => cluster.endpoint(id),
            tls: tls?.options.clientTls,
            timeoutMs: o.opTimeoutMs ?? 2_500,
            maxAttempts: o.maxAttempts ?? 5,
            thinkMs: o.thinkMs ?? 10,
            random: stream(o.seed, 100 + i),
            fakeStaleReads: i === 1 ? o.injectStaleReads : undefined,
          },
          h,
          known,
        ),
      );
    }
    const faults = o.faults ?? FAULT_KINDS;
    const stopNemesis = new AbortController();
    const stopClients = new AbortController();
    let nemesisDone: Promise<void> = Promise.resolve();
    if (faults.length > 0) {
      nemesis = new Nemesis(cluster, {
        random: stream(o.seed, 0),
        kinds: faults,
        minPauseMs: 2 * electionMs + 500,
        interrupted: o.signal,
        now: () => h.now(),
        say,
      });
      nemesisDone = nemesis.run(stopNemesis.signal);
    }
    const clientsDone = Promise.all(clients.map((c) => c.run(stopClients.signal)));
    // Every 10 s, a line for logs; not when a live line (onTick) shows the same on a terminal.
    const progress = o.onTick !== undefined ? undefined : setInterval(() => {
      const ok = h.ops.filter((op) => op.outcome === "ok").length;
      say(
        `[${(h.now() / 1000).toFixed(1).padStart(6)} s] ${h.ops.length} ops (${ok} ok), ` +
          `${m.leaders.leaderships.length} leaderships, nodes up: ${
            cluster.ids.filter((id) => cluster.isLive(id) && !cluster.isPaused(id)).join(",")
          }`,
      );
    }, 10_000);
    const ticker = o.onTick === undefined ? undefined : setInterval(() => {
      o.onTick?.({
        elapsedMs: h.now(),
        durationMs: o.durationMs,
        ops: h.ops.length,
        ok: h.ops.filter((op) => op.outcome === "ok").length,
        faults: Object.values(nemesis?.counts ?? {}).reduce((a, b) => a + (b ?? 0), 0),
      });
    }, 1000);
    try {
      // The fault phase lasts as long as asked: the schedule is time-based.
      await pace(o.durationMs, o.signal);
      stopNemesis.abort();
      await nemesisDone;
      if (o.signal?.aborted) {
        // No verdict on a cut-short run: straight to the teardown (the finally
        // blocks kill every node; clients' calls then fail fast).
        say("interrupted: stopping");
        throw new Interrupted();
      }
      if (nemesis !== undefined) await nemesis.heal();
      // A little healthy time for the clients, then stop them (calls under way finish).
      await pace(2_000, o.signal);
      stopClients.abort();
      await clientsDone;
    } finally {
      clearInterval(progress);
      clearInterval(ticker);
      stopNemesis.abort();
      stopClients.abort();
    }
    const faultPhaseMs = h.now();
    if (o.signal?.aborted) throw new Interrupted();

    // The watch catches up with the last acknowledged put, then is checked.
    let lastPut = 0n;
    for (const op of h.ops) {
      if (
        (op.kind === "put" || op.kind === "txn") && op.outcome === "ok" &&
        op.output.index !== undefined
      ) {
        const index = BigInt(op.output.index);
        if (index > lastPut) lastPut = index;
      }
    }
    const w = watch;
    const caughtUp = Date.now() + 30_000;
    while (w.throughIndex < lastPut && !w.ended && Date.now() < caughtUp) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await w.stop();
    const watchReport: WatchReport = w.check(h.ops);
    say(watchReport.line);

    const at = () => `[${(h.now() / 1000).toFixed(1).padStart(6)} s]`;
    // The state every node reached while running...
    say(`${at()} end: waiting for every node to agree and catch up`);
    const convergences: { label: string; result: Convergence }[] = [
      { label: "live", result: await converge(cluster, 60_000) },
    ];
    // ... and, with every node killed at once and restarted, the state rebuilt from
    // the write-ahead logs: what was acknowledged must have been on disk.
    if (o.finalRestart ?? true) {
      say(`${at()} end: killing every node at once and restarting them`);
      await Promise.all(cluster.liveIds().map((id) => cluster.kill(id, "SIGKILL")));
      const restartProblems: string[] = [];
      await Promise.all(cluster.ids.map((id) =>
        cluster.restart(id).catch((err) => {
          restartProblems.push(
            `node ${id} would not restart at the end: ${(err as Error).message.split("\n")[0]}`,
          );
        })
      ));
      nemesis?.problems.push(...restartProblems);
      say(`${at()} end: waiting for every node to agree and catch up after the restart`);
      convergences.push({ label: "after restart", result: await converge(cluster, 60_000) });
    }
    say(`${at()} end: final reads`);
    const readProblems = await finalReads(cluster, h, [...keys, ...(group?.keys ?? [])]);
    stopMonitor.abort();
    await monitorDone;
    await m.poll(); // a last look, for crashes and leaders

    const wallMs = performance.now() - wallStart;
    const cpu1 = machineTicks();
    const self1 = process.cpuUsage(self0);
    const secs = wallMs / 1000;
    const selfS = (self1.user + self1.system) / 1e6;
    let cpu = `harness (clients, proxies, checker) ${selfS.toFixed(0)} cpu-s, node processes ≈${
      m.nodeCpuSeconds.toFixed(0)
    } cpu-s over ${secs.toFixed(0)} s`;
    if (cpu0 !== undefined && cpu1 !== undefined) {
      const busy = (cpu1.busy - cpu0.busy) / Math.max(1, cpu1.total - cpu0.total);
      cpu +=
        `; machine ${(busy * 100).toFixed(0)}% busy on ${navigator.hardwareConcurrency} cores ` +
        `(others' processes included)`;
    }

    const problems: string[] = [];
    problems.push(...m.crashes);
    problems.push(...m.leaders.violations.map((v) => `Election Safety: ${v}`));
    if (nemesis !== undefined) problems.push(...nemesis.problems);
    for (const { label, result } of convergences) {
      if (!result.ok) problems.push(`convergence (${label}): ${result.detail}`);
    }
    problems.push(...readProblems);
    problems.push(...watchReport.problems);

    const events = nemesis?.events ?? [];
    for (const e of events) sink.append("nemesis.jsonl", JSON.stringify(e));
    sink.flush();
    const title = `raftkv chaos, seed ${o.seed}, ${o.nodes} nodes`;
    const verdict = await judge(h.ops, problems, outDir, title, events);
    const summary = formatSummary(
      o,
      h.ops,
      verdict,
      {
        wallMs,
        faultPhaseMs,
        events,
        nemesis,
        leaderships: m.leaders.leaderships,
        clients,
        convergences,
        cpu,
        snapshots,
        watch: watchReport.line,
      },
      outDir,
      replay,
    );
    await Deno.writeTextFile(`${outDir}/summary.txt`, summary + "\n");
    return { options: o, verdict, summary, outDir, history: h.ops, replay, snapshots };
  } finally {
    o.signal?.removeEventListener("abort", thaw);
    stopMonitor.abort();
    await monitorDone;
    await watch?.stop(); // (an interrupted run's watch; a stopped one returns at once)
    await Promise.all(clients.map((c) => c.close()));
    await cluster.close();
    await tls?.pki.cleanup();
    sink.close();
  }
}
