/**
 * A siege: one live node, a normal client calling it in a loop, an attack from
 * `_attacker.ts` run for a bounded time, and the node's RSS sampled throughout.
 * Reports the baseline, peak and settled RSS and the normal client's worst
 * latency and failures, for the tests (which assert the node stayed up, kept
 * answering and came back near its baseline) and for `measure.ts` (which prints
 * the numbers, before and after the limits).
 *
 * The node runs as `deno task node` would (see `_harness.ts`), from any checkout
 * (`repoRoot`), so that the same siege can be laid to main's code.
 *
 * @module
 */

import {
  EndpointClients,
  freePort,
  NODE_COMMAND,
  REPO_ROOT,
  type SpawnedProcess,
  utf8,
  waitFor,
} from "../e2e/_harness.ts";
import type { AttackReport } from "./_attacker.ts";

/** The node's resident set size in KiB, from /proc/<pid>/status (VmRSS). */
export async function rssKiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (m === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

/** A single node under test. */
export class SiegedNode {
  readonly port: number;
  readonly log: string[];
  readonly #proc: SpawnedProcess;
  readonly #dir: string;
  exit: Deno.CommandStatus | undefined;

  private constructor(port: number, proc: SpawnedProcess, dir: string, log: string[]) {
    this.port = port;
    this.log = log;
    this.#proc = proc;
    this.#dir = dir;
    void proc.done.then((s) => this.exit = s);
  }

  /** The node's process id. */
  get pid(): number {
    return this.#proc.child.pid;
  }

  /** `127.0.0.1:port`. */
  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }

  /**
   * Starts a one-node cluster from `repoRoot` (this checkout by default) with
   * `args` added, and waits until it leads and answers.
   */
  static async start(args: readonly string[] = [], repoRoot = REPO_ROOT): Promise<SiegedNode> {
    const dir = await Deno.makeTempDir({ prefix: "raftkv_http2_" });
    const port = freePort();
    const log: string[] = [];
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        ...NODE_COMMAND,
        "--id",
        "1",
        "--listen",
        `127.0.0.1:${port}`,
        "--data-dir",
        `${dir}/node1`,
        "--heartbeat-ms",
        "50",
        "--election-ms",
        "500",
        ...args,
      ],
      cwd: repoRoot,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const drain = async (stream: ReadableStream<Uint8Array>): Promise<void> => {
      let partial = "";
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        partial += chunk;
        const parts = partial.split("\n");
        partial = parts.pop() ?? "";
        log.push(...parts);
      }
      if (partial !== "") log.push(partial);
    };
    const done = Promise.all([child.status, drain(child.stdout), drain(child.stderr)]).then((
      [s],
    ) => s);
    const node = new SiegedNode(port, { child, done }, dir, log);
    const probe = new EndpointClients(node.endpoint);
    try {
      await waitFor("the node to lead", async () => {
        if (node.exit !== undefined) throw new Error(`node exited: ${log.slice(-10).join("\n")}`);
        const s = await probe.cluster.status({}, { timeoutMs: 1_000 });
        return s.leaderId === 1n;
      });
    } catch (err) {
      await node.stop();
      throw err;
    } finally {
      await probe.close();
    }
    return node;
  }

  /** Kills the node (if still running) and removes its data. */
  async stop(): Promise<void> {
    try {
      this.#proc.child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await this.#proc.done;
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}

/** What the normal client saw during a siege. */
export interface ClientRecord {
  calls: number;
  failures: string[];
  /** Calls refused unprocessed (REFUSED_STREAM) and then served when sent again. */
  refusedThenServed: number;
  worstLatencyMs: number;
}

/**
 * Runs `call`, and once more if its stream was refused unprocessed: RFC 9113 §8.7
 * makes REFUSED_STREAM safe to retry, and gRPC clients do (grpc-js's transparent
 * retry). Under an attack from the same address the node may refuse a stream in
 * the instant the HTTP/2 layer is busy with the attacker's; a second refusal in a
 * row is a failure.
 */
async function refusedOnceRetried<T>(record: ClientRecord, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (!String((err as Error).message).includes("REFUSED_STREAM")) throw err;
    const res = await call();
    record.refusedThenServed++;
    return res;
  }
}

/**
 * Calls the node in a loop (a Put, then a Get of it) on its own connection,
 * opened before the attack, until `stop` is set; each call has `timeoutMs`.
 */
export function normalClient(
  endpoint: string,
  timeoutMs = 10_000,
): { record: ClientRecord; stop: () => Promise<void>; ready: Promise<void> } {
  const record: ClientRecord = { calls: 0, failures: [], refusedThenServed: 0, worstLatencyMs: 0 };
  const clients = new EndpointClients(endpoint);
  let stopping = false;
  let readyResolve!: () => void;
  const ready = new Promise<void>((r) => readyResolve = r);
  const loop = (async () => {
    for (let i = 0; !stopping; i++) {
      const key = `normal-${i % 100}`;
      const started = performance.now();
      try {
        await refusedOnceRetried(
          record,
          () => clients.kv.put({ key, value: utf8(`v${i}`) }, { timeoutMs }),
        );
        await refusedOnceRetried(record, () => clients.kv.get({ key }, { timeoutMs }));
        await refusedOnceRetried(record, () => clients.cluster.status({}, { timeoutMs }));
      } catch (err) {
        record.failures.push(`${(err as Error).message}`);
      }
      record.worstLatencyMs = Math.max(record.worstLatencyMs, performance.now() - started);
      record.calls += 3;
      if (i === 0) readyResolve();
    }
  })();
  return {
    record,
    ready,
    stop: async () => {
      stopping = true;
      await loop;
      await clients.close();
    },
  };
}

/** The numbers of one siege. */
export interface SiegeResult {
  attack: AttackReport | undefined;
  attackError: string | undefined;
  baselineKiB: number;
  peakKiB: number;
  /** RSS once the attack's connections are closed and it stopped falling (or the deadline passed). */
  afterKiB: number;
  client: ClientRecord;
  /** Set when the node died. */
  exit: Deno.CommandStatus | undefined;
}

/** MiB, one decimal, for output. */
export function mib(kib: number): string {
  return (kib / 1024).toFixed(1);
}

/** One line for test output. */
export function describeSiege(name: string, r: SiegeResult): string {
  return `${name}: RSS baseline ${mib(r.baselineKiB)} MiB, peak ${mib(r.peakKiB)} MiB, after ${
    mib(r.afterKiB)
  } MiB; normal client: ${r.client.calls} calls, ${r.client.failures.length} failed, ${r.client.refusedThenServed} refused then served, worst ${
    r.client.worstLatencyMs.toFixed(0)
  } ms` + (r.exit !== undefined ? `; NODE EXITED (code ${r.exit.code})` : "");
}

/**
 * Runs `attack` against `node` while a normal client calls it and RSS is sampled
 * every 50 ms; then, with the attack's connections closed, waits up to
 * `settleMs` for RSS to fall to `settleBelowKiB` (if given) and records it.
 */
export async function siege(
  node: SiegedNode,
  attack: () => Promise<AttackReport>,
  opts: {
    settleBelowKiB?: (baselineKiB: number) => number;
    settleMs?: number;
    warmupCalls?: number;
  } = {},
): Promise<SiegeResult> {
  const client = normalClient(node.endpoint);
  await client.ready;
  // The baseline: with the normal client's connection open and warmed up, its
  // calls having grown the heap to its working size (V8 grows it lazily and does
  // not hand memory back at once: a cold baseline would charge that to the attack).
  const warmup = opts.warmupCalls ?? 3000;
  await waitFor("the normal client to warm up", () => client.record.calls >= warmup, {
    timeoutMs: 60_000,
  });
  const baselineKiB = await rssKiB(node.pid);
  let peakKiB = baselineKiB;
  let sampling = true;
  const sampler = (async () => {
    while (sampling && node.exit === undefined) {
      try {
        peakKiB = Math.max(peakKiB, await rssKiB(node.pid));
      } catch {
        break; // the process is gone
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  let report: AttackReport | undefined;
  let attackError: string | undefined;
  try {
    report = await attack();
  } catch (err) {
    attackError = (err as Error).message;
  }
  let afterKiB = peakKiB;
  const bound = opts.settleBelowKiB?.(baselineKiB);
  try {
    afterKiB = await waitFor("RSS to settle", async () => {
      if (node.exit !== undefined) return peakKiB;
      const now = await rssKiB(node.pid);
      if (bound === undefined || now <= bound) return now;
      afterKiB = now;
      return false;
    }, { timeoutMs: opts.settleMs ?? 15_000, intervalMs: 100 });
  } catch {
    // Reported as is: the test decides.
  }
  sampling = false;
  await sampler;
  await client.stop();
  return {
    attack: report,
    attackError,
    baselineKiB,
    peakKiB,
    afterKiB,
    client: client.record,
    exit: node.exit,
  };
}
