/**
 * A live chaos run: the checked workload of {@link runChaos} against a cluster that is
 * already running, at endpoints an operator names, with no faults of its own. The
 * operator does whatever they want to check meanwhile (a rolling restart, a
 * membership change, an upgrade) and gets the same verdict: is the history
 * linearizable, and is every acknowledged write still there.
 *
 * It touches only keys under a prefix of its own (random per run, `chaos-live-<hex>/`),
 * refuses to start if any of them already exists, and deletes them at the end. It
 * does not restart anything: "acknowledged writes are present" is checked by a
 * linearizable Get of every key from every endpoint at the end, added to the history
 * (a lost write then makes the history non-linearizable). If the nodes settle (one
 * leader, every node at its commit index) their `applied_chain` and `state_digest`
 * are compared too; a cluster that other clients keep writing to may not settle
 * within the wait, which is reported, not failed.
 *
 * @module
 */

import process from "node:process";
import type { StatusResponse } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { seededRandom } from "../../src/raft/rand.ts";
import { codeName, EndpointClients, sleep } from "../e2e/_harness.ts";
import { ConnectError } from "@connectrpc/connect";
import { ChaosClient, History, KnownValues } from "./clients.ts";
import { pace } from "./nemesis.ts";
import {
  type ChaosResult,
  converge,
  type Convergence,
  finalReads,
  formatSummary,
  Interrupted,
  judge,
  LeaderLog,
  opJson,
} from "./chaos.ts";

/** Options of {@link runLive}. */
export interface LiveOptions {
  /** The cluster's client endpoints, `host:port` each (every member, ideally). */
  readonly endpoints: readonly string[];
  /** How long the workload runs, in milliseconds. */
  readonly durationMs: number;
  /** Seeds every client's choices (and the prefix, unless given). */
  readonly seed: number;
  /** The key prefix (default `chaos-live-<8 hex digits>/`, random per run). */
  readonly prefix?: string;
  /** Concurrent clients (default 5). */
  readonly clients?: number;
  /** How many of them write without a session (default 1). */
  readonly plainClients?: number;
  /** How many keys under the prefix (default 3). */
  readonly keys?: number;
  /** How many keys under the prefix for Txn and Range calls (default 3; 0: none). */
  readonly txnKeys?: number;
  /** Where history and summary go (default: a new temp dir). */
  readonly outDir?: string;
  /** Deadline of one client call (default 2500 ms). */
  readonly opTimeoutMs?: number;
  /** Mean client think time between calls (default 10 ms). */
  readonly thinkMs?: number;
  /** How long to wait for the nodes to settle at the end (default 30 s). */
  readonly settleMs?: number;
  /** Progress lines during the run (default: none). */
  readonly progress?: (line: string) => void;
  /** Ends the workload early; the run still removes its keys, then throws {@link Interrupted}. */
  readonly signal?: AbortSignal;
}

/** What a live run produced (a {@link ChaosResult} plus its prefix and cleanup). */
export interface LiveResult extends ChaosResult {
  /** The prefix every key of the run had. */
  readonly prefix: string;
  /** The keys the run used (all deleted at the end unless `cleanup` says otherwise). */
  readonly keys: readonly string[];
  /** What the end-of-run comparison of the nodes found. */
  readonly convergence: Convergence;
}

/** The cluster at the operator's endpoints, numbered 1..n in the order given. */
class Endpoints {
  readonly ids: readonly number[];
  readonly #clients: EndpointClients[];

  constructor(endpoints: readonly string[]) {
    this.#clients = endpoints.map((e) => new EndpointClients(e));
    this.ids = endpoints.map((_, i) => i + 1);
  }

  #client(id: number): EndpointClients {
    const c = this.#clients[id - 1];
    if (c === undefined) throw new Error(`no endpoint number ${id}`);
    return c;
  }

  endpoint(id: number): string {
    return this.#client(id).endpoint;
  }

  kv(id: number): EndpointClients["kv"] {
    return this.#client(id).kv;
  }

  status(id: number, timeoutMs = 2_000): Promise<StatusResponse> {
    return this.#client(id).cluster.status({}, { timeoutMs });
  }

  async close(): Promise<void> {
    await Promise.all(this.#clients.map((c) => c.close()));
  }
}

/** `chaos-live-` and 8 hex digits of fresh randomness, then `/`. */
export function randomPrefix(): string {
  const b = crypto.getRandomValues(new Uint8Array(4));
  return `chaos-live-${[...b].map((x) => x.toString(16).padStart(2, "0")).join("")}/`;
}

/** Calls `op` until it succeeds or `attempts` are spent, against each endpoint in turn. */
async function retried<T>(
  e: Endpoints,
  attempts: number,
  op: (id: number) => Promise<T>,
): Promise<T> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    const id = e.ids[i % e.ids.length]!;
    try {
      return await op(id);
    } catch (err) {
      last = err;
      await sleep(Math.min(1_000, 100 * 2 ** i)); // backing off before the next attempt
    }
  }
  const err = ConnectError.from(last);
  throw new Error(`${codeName(err.code)}: ${err.rawMessage}`);
}

/** Deletes every key (each retried), then checks each is gone; returns the problems. */
async function removeKeys(e: Endpoints, keys: readonly string[]): Promise<string[]> {
  const problems: string[] = [];
  for (const key of keys) {
    try {
      await retried(e, 8, (id) => e.kv(id).delete({ key }, { timeoutMs: 5_000 }));
      const res = await retried(e, 8, (id) => e.kv(id).get({ key }, { timeoutMs: 5_000 }));
      if (res.found) problems.push(`key ${key} is still there after its delete`);
    } catch (err) {
      problems.push(`could not delete key ${key}: ${(err as Error).message}`);
    }
  }
  return problems;
}

/** Runs the checked workload against a running cluster (module documentation). */
export async function runLive(o: LiveOptions): Promise<LiveResult> {
  if (o.endpoints.length === 0) throw new Error("Cannot run a live check: no endpoints given");
  const wallStart = performance.now();
  const say = o.progress ?? (() => {});
  const prefix = o.prefix ?? randomPrefix();
  const nKeys = o.keys ?? 3;
  const nClients = o.clients ?? 5;
  const nPlain = Math.min(o.plainClients ?? 1, nClients);
  const singleKeys = Array.from({ length: nKeys }, (_, i) => `${prefix}k${i}`);
  const nTxnKeys = o.txnKeys ?? 3;
  const group = nTxnKeys === 0 ? undefined : {
    name: `${prefix}t*`,
    prefix: `${prefix}t`,
    keys: Array.from({ length: nTxnKeys }, (_, i) => `${prefix}t${i}`),
  };
  // Every key the run writes: checked absent first, read at the end, then deleted.
  const keys = [...singleKeys, ...(group?.keys ?? [])];
  const outDir = o.outDir ?? await Deno.makeTempDir({ prefix: "raftkv_chaos_live_" });
  await Deno.mkdir(outDir, { recursive: true });
  await Deno.remove(`${outDir}/history.jsonl`).catch(() => {});
  await Deno.remove(`${outDir}/windows.txt`).catch(() => {});
  const e = new Endpoints(o.endpoints);
  const self0 = process.cpuUsage();
  const clients: ChaosClient[] = [];
  const lines: string[] = [];
  const flush = () => {
    if (lines.length === 0) return;
    Deno.writeTextFileSync(`${outDir}/history.jsonl`, lines.join("\n") + "\n", { append: true });
    lines.length = 0;
  };
  const flusher = setInterval(flush, 1_000);
  try {
    say(
      `chaos live: ${o.endpoints.length} endpoints (${o.endpoints.join(", ")}), seed ${o.seed}, ` +
        `${(o.durationMs / 1000).toFixed(0)} s, keys under "${prefix}"; artifacts in ${outDir}`,
    );
    // The run owns its prefix: it must be empty, or the history would not start from
    // "absent" and the cleanup would delete someone else's keys.
    for (const key of keys) {
      const res = await retried(e, 10, (id) => e.kv(id).get({ key }, { timeoutMs: 5_000 }));
      if (res.found) {
        throw new Error(
          `Cannot run a live check under prefix "${prefix}": key ${key} already exists ` +
            `(choose another --prefix)`,
        );
      }
    }
    const h = new History((op) => lines.push(opJson(op)));
    const leaders = new LeaderLog();
    const stopMonitor = new AbortController();
    const monitorDone = (async () => {
      while (!stopMonitor.signal.aborted) {
        const all = await Promise.all(e.ids.map((id) => e.status(id, 500).catch(() => undefined)));
        for (const s of all) if (s !== undefined) leaders.observe(s);
        await sleep(250); // polling pace
      }
    })();
    const known = new KnownValues();
    for (let i = 1; i <= nClients; i++) {
      clients.push(
        new ChaosClient(
          {
            id: i,
            sessions: i <= nClients - nPlain,
            keys: singleKeys,
            group,
            nodes: e.ids,
            endpoint: (id) => e.endpoint(id),
            timeoutMs: o.opTimeoutMs ?? 2_500,
            maxAttempts: 5,
            thinkMs: o.thinkMs ?? 10,
            random: seededRandom(
              (Math.imul(o.seed, 0x9e3779b1) ^ Math.imul(101 + i, 0x85ebca6b)) >>> 0,
            ),
          },
          h,
          known,
        ),
      );
    }
    const stopClients = new AbortController();
    const clientsDone = Promise.all(clients.map((c) => c.run(stopClients.signal)));
    const progress = setInterval(() => {
      const ok = h.ops.filter((op) => op.outcome === "ok").length;
      say(
        `[${(h.now() / 1000).toFixed(1).padStart(6)} s] ${h.ops.length} ops (${ok} ok), ` +
          `${leaders.leaderships.length} leaderships seen`,
      );
    }, 10_000);
    try {
      await pace(o.durationMs, o.signal);
    } finally {
      clearInterval(progress);
      stopClients.abort();
      await clientsDone;
    }
    const workloadMs = h.now();
    const interrupted = o.signal?.aborted ?? false;
    let convergence: Convergence = {
      ok: false,
      settled: false,
      detail: "not checked (interrupted)",
      statuses: [],
    };
    let readProblems: string[] = [];
    if (!interrupted) {
      say("end: waiting for the nodes to settle, to compare their states");
      convergence = await converge(e, o.settleMs ?? 30_000);
      say("end: final reads of every key from every endpoint");
      readProblems = await finalReads(e, h, keys);
    }
    stopMonitor.abort();
    await monitorDone;
    say(`end: deleting the run's ${keys.length} keys under "${prefix}"`);
    const cleanup = await removeKeys(e, keys);
    flush();
    if (interrupted) throw new Interrupted();

    const problems: string[] = [];
    problems.push(...leaders.violations.map((v) => `Election Safety: ${v}`));
    if (convergence.settled && !convergence.ok) {
      problems.push(`convergence: ${convergence.detail}`);
    }
    problems.push(...readProblems);
    problems.push(...cleanup.map((p) => `cleanup: ${p}`));
    const title = `raftkv chaos live, seed ${o.seed}, prefix ${prefix}`;
    const verdict = await judge(h.ops, problems, outDir, title);
    const wallMs = performance.now() - wallStart;
    const cpu = process.cpuUsage(self0);
    const options = {
      nodes: o.endpoints.length,
      durationMs: o.durationMs,
      seed: o.seed,
      clients: nClients,
      plainClients: nPlain,
      keys: nKeys,
      txnKeys: nTxnKeys,
      outDir,
      faults: [],
    };
    const replay = `deno task chaos --endpoints ${o.endpoints.join(",")} --seed ${o.seed} ` +
      `--seconds ${Math.round(o.durationMs / 1000)}`;
    const settledNote = convergence.settled ? [] : [{
      label: "not compared",
      result: {
        ...convergence,
        ok: true,
        detail: `the nodes did not settle (other writers?): ${convergence.detail.split("\n")[0]}`,
      },
    }];
    const summary = formatSummary(
      options,
      h.ops,
      verdict,
      {
        wallMs,
        faultPhaseMs: workloadMs,
        events: [],
        nemesis: undefined,
        leaderships: leaders.leaderships,
        clients,
        convergences: convergence.settled ? [{ label: "live", result: convergence }] : settledNote,
        cpu: `harness (clients, checker) ${((cpu.user + cpu.system) / 1e6).toFixed(0)} cpu-s over ${
          (wallMs / 1000).toFixed(0)
        } s`,
        snapshots: undefined,
        header: `raftkv chaos (live): ${o.endpoints.length} endpoints ${
          e.ids.map((id) => `n${id}=${e.endpoint(id)}`).join(" ")
        }, seed ${o.seed}, ${(workloadMs / 1000).toFixed(0)} s of workload (${
          (wallMs / 1000).toFixed(0)
        } s in all), ${nClients} clients (${nPlain} without sessions), ${nKeys} keys under ` +
          `"${prefix}" (${cleanup.length === 0 ? "deleted at the end" : "NOT all deleted"})`,
        artifacts: "history.jsonl, summary.txt",
      },
      outDir,
      replay,
    );
    await Deno.writeTextFile(`${outDir}/summary.txt`, summary + "\n");
    return {
      options,
      verdict,
      summary,
      outDir,
      history: h.ops,
      replay,
      snapshots: { taken: 0, sent: 0, sendFailed: 0, installed: 0 },
      prefix,
      keys,
      convergence,
    };
  } finally {
    clearInterval(flusher);
    flush();
    await Promise.all(clients.map((c) => c.close()));
    await e.close();
  }
}
