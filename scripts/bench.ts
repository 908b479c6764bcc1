/**
 * `deno task bench [--against etcd]`: starts a local raftkv cluster of real node
 * processes (and with `--against etcd` an etcd cluster of the same size, issue 11),
 * drives it with one grpc-js load generator at 1, 16, 64 and 256 operations in
 * flight, puts and linearizable gets of 256-byte values, and prints one table:
 * ops/s, p50, p99 and p99.9 latency, and server CPU-seconds per 1,000 operations
 * (all members, from /proc), with the raftkv/etcd ratio. The two systems take turns
 * run by run within each cell (raftkv, etcd, raftkv, etcd: `--rounds`), so a change
 * in the machine's load falls on both. Every run, with its latency histogram, goes
 * to a JSON file. It prints figures; it asserts nothing. `--against-raftkv DIR` compares
 * two raftkv checkouts the same way.
 *
 * See `deno task bench --help` (scripts/bench/flags.ts) and README "Benchmark". The
 * task runs with `-A`: it spawns processes (`--allow-run`, as good as every permission
 * anyway) and reads `/proc` for CPU figures, which Deno grants only with all permissions.
 *
 * @module
 */

import { portsInUse } from "./cluster.ts";
import {
  BENCH_USAGE,
  BenchFlagError,
  type BenchOptions,
  connectionsFor,
  parseBenchFlags,
} from "./bench/flags.ts";
import { EtcdMissingError, etcdPorts, findEtcd, startEtcd } from "./bench/etcd.ts";
import { gitCommit, startRaftKv } from "./bench/raftkv.ts";
import { populate, runLoad } from "./bench/load.ts";
import { stopEveryServer } from "./bench/processes.ts";
import { clockTicksPerSecond, loadAverage } from "./bench/proc_cpu.ts";
import { fmt, type Run, runJson, summarize, table } from "./bench/report.ts";
import type { SystemUnderTest } from "./bench/system.ts";

/** The ports a bench run listens on: raftkv's gRPC and HTTP ports, etcd's client and peer ports. */
function portsNeeded(opts: BenchOptions): number[] {
  const ports: number[] = [];
  for (let i = 1; i <= opts.nodes; i++) {
    ports.push(opts.basePort + i - 1, opts.basePort + 1000 + i - 1);
    if (opts.againstRaftkv !== undefined) {
      ports.push(opts.againstBasePort + i - 1, opts.againstBasePort + 1000 + i - 1);
    }
    if (opts.against === "etcd") {
      const e = etcdPorts(opts.etcdBasePort, i);
      ports.push(e.client, e.peer);
    }
  }
  return ports;
}

function runLine(r: Run, rounds: number): string {
  const ms = (p: number) => (r.ops === 0 ? "-" : fmt(r.histogram.getValueAtPercentile(p) / 1000));
  const cpu = r.serverCpuSeconds.reduce((a, b) => a + b, 0);
  return `${r.op} x${r.inFlight} ${r.system} (round ${r.round}/${rounds}): ` +
    `${fmt(r.ops / r.seconds)} ops/s, p50 ${ms(50)} ms, p99 ${ms(99)} ms, p99.9 ${ms(99.9)} ms, ` +
    `CPU ${r.ops === 0 ? "-" : fmt((cpu / r.ops) * 1000)} s/1k ops` +
    (r.errors > 0 ? `, ${r.errors} errors (${r.errorSamples[0]})` : "") +
    `; load generator ${fmt(r.clientCpuSeconds / r.seconds * 100)}% of a core, load ${
      r.loadAverage[0]
    }`;
}

/**
 * The real path of the raftkv checkout `given` for `--flag`; undefined when not
 * given; null (after saying why) when it is not a checkout.
 */
async function checkoutDir(
  flag: string,
  given: string | undefined,
): Promise<string | undefined | null> {
  if (given === undefined) return undefined;
  const dir = await Deno.realPath(given).catch(() => undefined);
  const main = dir === undefined
    ? undefined
    : await Deno.stat(`${dir}/src/server/main.ts`).catch(() => undefined);
  if (dir === undefined || main === undefined) {
    console.error(
      `error: Cannot use --${flag} ${given}: no src/server/main.ts there ` +
        `(give the root of a raftkv checkout, e.g. one made by git worktree add)`,
    );
    return null;
  }
  return dir;
}

async function main(args: string[]): Promise<number> {
  let opts: BenchOptions;
  try {
    opts = parseBenchFlags(args);
  } catch (err) {
    if (!(err instanceof BenchFlagError)) throw err;
    console.error(`error: ${err.message}`);
    return 2;
  }
  if (opts.help) {
    console.log(BENCH_USAGE);
    return 0;
  }
  let etcd: { path: string; version: string } | undefined;
  if (opts.against === "etcd") {
    try {
      etcd = await findEtcd(opts.etcd);
    } catch (err) {
      if (!(err instanceof EtcdMissingError)) throw err;
      console.error(`error: ${err.message}`);
      return 1;
    }
  }
  const raftkvDir = await checkoutDir("raftkv-dir", opts.raftkvDir);
  const againstDir = await checkoutDir("against-raftkv", opts.againstRaftkv);
  if (raftkvDir === null || againstDir === null) return 2;
  const taken = portsInUse(portsNeeded(opts));
  if (taken.length > 0) {
    console.error(
      `error: Cannot start the clusters: port(s) ${taken.join(", ")} of 127.0.0.1 already in ` +
        `use; choose others with --base-port, --etcd-base-port or --against-base-port`,
    );
    return 1;
  }

  const ticksPerSecond = await clockTicksPerSecond();
  const startedAt = new Date();
  const jsonPath = opts.json ??
    `bench-results/bench-${startedAt.toISOString().replace(/[:.]/g, "-")}.json`;
  const parent = jsonPath.includes("/") ? jsonPath.slice(0, jsonPath.lastIndexOf("/")) : ".";
  await Deno.mkdir(parent || "/", { recursive: true });
  const dir = await Deno.makeTempDir({ prefix: "raftkv-bench-" });
  const loadAtStart = loadAverage();
  const systems: SystemUnderTest[] = [];
  const runs: Run[] = [];
  /** Writes every run so far (after each run: a bench that fails later keeps them). */
  const save = (loadAtEnd?: [number, number, number]) =>
    Deno.writeTextFile(
      jsonPath,
      JSON.stringify(
        {
          startedAt: startedAt.toISOString(),
          finishedAt: loadAtEnd === undefined ? null : new Date().toISOString(),
          argv: args,
          options: opts,
          machine: {
            cpus: navigator.hardwareConcurrency,
            loadAverageAtStart: loadAtStart,
            loadAverageAtEnd: loadAtEnd ?? null,
            deno: Deno.version.deno,
          },
          systems: systems.map((s) => ({ name: s.name, description: s.description })),
          summaries: summarize(runs),
          runs: runs.map(runJson),
        },
        null,
        2,
      ) + "\n",
    );
  let stopping: Promise<void> | undefined;
  const stopAll = () =>
    stopping ??= Promise.all(systems.map((s) => s.stop()))
      .then(stopEveryServer)
      .then(() => Deno.remove(dir, { recursive: true }));
  const onSignal = () => {
    console.error("interrupted: stopping the clusters");
    void stopAll().catch((err) => console.error(`while stopping: ${err}`)).finally(() =>
      Deno.exit(130)
    );
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    const common = { nodes: opts.nodes, dir, keys: opts.keys, valueBytes: opts.valueBytes };
    // Both clusters start at once. Each start runs to its end (a leader, or a failure
    // that stopped its own servers) before a failure of either is reported, so no
    // server is spawned after the clean-up (stopAll) has run.
    const starts = await Promise.allSettled([
      startRaftKv({ ...common, checkout: raftkvDir, basePort: opts.basePort, tls: opts.tls }),
      ...(etcd === undefined ? [] : [startEtcd({ ...common, etcd, basePort: opts.etcdBasePort })]),
      ...(againstDir === undefined ? [] : [
        startRaftKv({
          ...common,
          name: `raftkv@${(await gitCommit(againstDir)) ?? againstDir}`,
          checkout: againstDir,
          basePort: opts.againstBasePort,
          tls: opts.tls,
        }),
      ]),
    ]);
    for (const s of starts) if (s.status === "fulfilled") systems.push(s.value);
    for (const s of starts) if (s.status === "rejected") throw s.reason;
    for (const s of systems) console.log(`${s.name}: ${s.description}`);
    // Gets read keys that exist: every key is written once before any run.
    for (const s of systems) await populate(s, s.op("put"), opts.keys);

    for (const op of opts.ops) {
      for (const inFlight of opts.inFlight) {
        const connections = connectionsFor(opts, inFlight);
        for (let round = 1; round <= opts.rounds; round++) {
          for (const s of systems) {
            const result = await runLoad(s, s.op(op), {
              inFlight,
              connections,
              keys: opts.keys,
              warmupSeconds: opts.warmupSeconds,
              durationSeconds: opts.durationSeconds,
              ticksPerSecond,
            });
            const run: Run = { ...result, system: s.name, op, inFlight, connections, round };
            runs.push(run);
            console.log(runLine(run, opts.rounds));
            await save();
          }
        }
      }
    }
  } catch (err) {
    if (runs.length > 0) console.error(`the runs before this failure: ${jsonPath}`);
    throw err;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    await stopAll();
  }

  const loadAtEnd = loadAverage();
  await save(loadAtEnd);
  const names = systems.map((s) => s.name);
  const summaries = summarize(runs);
  const versus = names.length === 2 ? ` against ${names[1]}` : "";
  console.log(
    `\n${names[0]}${versus}: ${opts.nodes} members each on 127.0.0.1, ${opts.valueBytes}-byte ` +
      `values over ${opts.keys} keys; ${opts.rounds} run(s) of ${opts.durationSeconds} s per ` +
      `system and cell after ${opts.warmupSeconds} s of warm-up` +
      (names.length === 2 ? `, alternating ${names.join(", ")}` : "") +
      `; at most ${opts.connections ?? 16} connections; ${navigator.hardwareConcurrency} CPUs; ` +
      `load average ${loadAtStart.join(" ")} at the start, ${loadAtEnd.join(" ")} at the end\n`,
  );
  console.log(table(summaries, names));

  console.log(`\nevery run: ${jsonPath}`);
  return 0;
}

if (import.meta.main) {
  // A cluster that does not start, a member that dies: one line saying so, exit 1.
  Deno.exit(
    await main(Deno.args).catch((err) => {
      console.error(`error: ${err instanceof Error ? err.message : err}`);
      return 1;
    }),
  );
}
