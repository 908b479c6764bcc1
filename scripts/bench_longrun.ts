/**
 * `deno task bench:longrun`: what a node costs after a long life (issue 9's
 * figures). Starts a 3-node cluster of real processes, stops one follower,
 * writes `--puts` values of `--value-bytes` over `--keys` keys through the
 * leader, then prints:
 *
 * - each running node's resident memory (VmRSS) and the size of its data dir,
 *   beside the size of the key-value state itself;
 * - how long the stopped follower, started again `--puts` entries behind, takes
 *   to apply everything the leader had committed;
 * - how long the whole cluster, stopped and started again, takes to serve a write.
 *
 * It prints figures; it asserts nothing. Flags after `--` go to every node
 * (for example `-- --snapshot-entries 10000`). With `--timeline` it also prints
 * where each restart's time went, from the nodes' own log lines
 * (scripts/bench/longrun_timeline.ts), and each step's median and range. With `--bundle` the nodes run
 * from a single-file bundle of the node (`deno bundle`, as `deno task bundle`
 * builds for deploy/Dockerfile) instead of from src/: what a deployed node starts
 * from (README, "Start-up time").
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterService, Role } from "../src/gen/raftkv/v1/cluster_pb.ts";
import { KVService, PutRequestSchema } from "../src/gen/raftkv/v1/kv_pb.ts";
import {
  type ClusterOptions,
  forEachLines,
  NODE_ENV,
  nodeAddress,
  nodeCommandArgs,
  nodeDataDir,
} from "./cluster.ts";
import { createLogger } from "../src/server/log.ts";
import { guardStrayNetworkErrors } from "../src/server/stray_errors.ts";
import { until } from "./_flags_and_waits.ts";
import {
  LONGRUN_USAGE,
  LongrunFlagError,
  type LongrunOptions,
  parseLongrunFlags,
} from "./bench/longrun_flags.ts";
import {
  formatSummary,
  formatTimeline,
  type NodeLogLine,
  parseNodeLogLine,
  type RestartTimeline,
  restartTimeline,
  spread,
} from "./bench/longrun_timeline.ts";
import { LOG_LEVELS, type LogLevel } from "../src/raft/logger.ts";

// Polling a node that is still starting can make node:http2 emit `write EPIPE` with
// no listener attached (see stray_errors.ts); the call fails and is retried, but the
// uncaught error would end this run (it ended a 30,000-put run in its catch-up).
guardStrayNetworkErrors(createLogger({ level: "error", format: "text", context: () => ({}) }));

let flags: LongrunOptions;
try {
  flags = parseLongrunFlags(Deno.args);
} catch (err) {
  if (!(err instanceof LongrunFlagError)) throw err;
  console.error(`error: ${err.message} (see --help)`);
  Deno.exit(2);
}
if (flags.help) {
  console.log(LONGRUN_USAGE);
  Deno.exit(0);
}
const { puts, keys, valueBytes, clients, connections, restarts, logLevel, nodeFlags } = flags;
const dataDir = await Deno.makeTempDir({ prefix: "raftkv-longrun-" });
// A timeline is read from the nodes' info lines: they log at info at least then,
// and the bench shows on its stderr only what --log-level asks for.
const shown = (level: string) =>
  LOG_LEVELS.indexOf(level.toLowerCase() as LogLevel) >= LOG_LEVELS.indexOf(logLevel);
const opts: ClusterOptions = {
  nodes: 3,
  basePort: flags.basePort,
  dataDir,
  logLevel: flags.timeline && !shown("info") ? "info" : logLevel,
  help: false,
};
const sourceMain = flags.nodeMain ?? new URL("../src/server/main.ts", import.meta.url).pathname;
const mainPath = flags.bundle ? await bundleNode() : sourceMain;

/** Bundles the node into the run's temporary dir, as `deno task bundle` does for deploy/. */
async function bundleNode(): Promise<string> {
  const out = `${dataDir}/raftkv-node.js`;
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--frozen", "-o", out, sourceMain],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (code !== 0) {
    console.error(`error: deno bundle of ${sourceMain} failed (exit code ${code})`);
    Deno.exit(1);
  }
  return out;
}

// One transport per node, kept for the whole run (it reconnects after a restart):
// a new one per probe opened a connection every 20 ms and closed none, and a node
// refuses more than 64 connections from one address (RAFTKV_MAX_CONNECTIONS_PER_ADDRESS),
// which once held a catch-up's polling off for 300 s.
const transports = new Map<number, ReturnType<typeof createGrpcTransport>>();

function transport(id: number): ReturnType<typeof createGrpcTransport> {
  let t = transports.get(id);
  if (t === undefined) {
    t = createGrpcTransport({ baseUrl: `http://${nodeAddress(opts, id)}` });
    transports.set(id, t);
  }
  return t;
}

function cluster(id: number): Client<typeof ClusterService> {
  return createClient(ClusterService, transport(id));
}

function kv(id: number): Client<typeof KVService> {
  return createClient(KVService, transport(id));
}

/** A transport of its own (its own connection), for each of the put clients. */
function kvOwnConnection(id: number): Client<typeof KVService> {
  return createClient(
    KVService,
    createGrpcTransport({ baseUrl: `http://${nodeAddress(opts, id)}` }),
  );
}

const running = new Map<number, Deno.ChildProcess>();
/** With --timeline: each node's log lines since it was last started. */
const logLines = new Map<number, NodeLogLine[]>();

function start(id: number, main = mainPath): void {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...nodeCommandArgs(opts, id, main), ...nodeFlags],
    env: NODE_ENV,
    stdin: "null",
    stdout: "null",
    stderr: flags.timeline ? "piped" : "inherit",
  }).spawn();
  running.set(id, child);
  if (flags.timeline) {
    const lines: NodeLogLine[] = [];
    logLines.set(id, lines);
    void forEachLines(child.stderr, (chunk) => {
      for (const line of chunk) {
        const parsed = parseNodeLogLine(line);
        if (parsed !== undefined) lines.push(parsed);
        if (parsed === undefined || shown(parsed.level)) console.error(line);
      }
    });
  }
}

/**
 * The first write after a full restart: a put to each node at once, again every
 * 20 ms while none is answered. A node that listens but knows no leader yet holds
 * the put until it learns one and forwards it (route.ts), so the write is answered
 * as soon as the cluster can serve it: the bench's own polling adds no more than a
 * round trip (it asked each node for its status in turn before, then put to the
 * leader, 20 ms apart).
 */
async function firstWrite(value: Uint8Array): Promise<void> {
  await until("a write after a full restart", 600_000, () =>
    Promise.any(
      [1, 2, 3].map((id) =>
        kv(id).put(create(PutRequestSchema, { key: "after-restart", value }), {
          timeoutMs: 2000,
        })
      ),
    ).then(() => true));
}

async function stop(id: number, signal: Deno.Signal): Promise<void> {
  const child = running.get(id);
  if (child === undefined) return;
  running.delete(id);
  try {
    child.kill(signal);
  } catch {
    // already gone
  }
  await child.status;
}

async function leader(ids: readonly number[]): Promise<number> {
  return await until("a leader", 60_000, async () => {
    for (const id of ids) {
      const s = await cluster(id).status({}, { timeoutMs: 500 }).catch(() => undefined);
      if (s?.role === Role.LEADER) return id;
    }
    return undefined;
  });
}

/** Resident memory of a process, in MB, as `ps` reports it (reading /proc needs --allow-all). */
async function rssMb(pid: number): Promise<number> {
  const out = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(pid)] }).output();
  return Number(new TextDecoder().decode(out.stdout).trim()) / 1024;
}

/**
 * CPU time (user + system) a process has used, in seconds, as `ps` reports it: on
 * a machine shared with other work, CPU per put compares settings better than puts
 * per second.
 */
async function cpuSeconds(pid: number): Promise<number> {
  const out = await new Deno.Command("ps", { args: ["-o", "times=", "-p", String(pid)] }).output();
  return Number(new TextDecoder().decode(out.stdout).trim());
}

async function duMb(path: string): Promise<number> {
  let bytes = 0;
  for await (const e of Deno.readDir(path)) {
    const p = `${path}/${e.name}`;
    if (e.isDirectory) bytes += (await duMb(p)) * 1024 * 1024;
    else if (e.isFile) bytes += (await Deno.stat(p)).size;
  }
  return bytes / 1024 / 1024;
}

async function report(what: string): Promise<void> {
  for (const [id, child] of [...running].sort((a, b) => a[0] - b[0])) {
    console.log(
      `  ${what}: node ${id}: RSS ${(await rssMb(child.pid)).toFixed(0)} MB, data dir ${
        (await duMb(nodeDataDir(opts, id))).toFixed(1)
      } MB, CPU ${await cpuSeconds(child.pid)} s`,
    );
  }
}

/**
 * Puts `key`, again while the cluster answers UNAVAILABLE or times out (a leader
 * change on a loaded machine: such a put may or may not have taken effect, and
 * writing it again changes nothing the run measures); how many times it was retried.
 * Anything else, or a put still failing after {@link PUT_ATTEMPTS}, ends the run.
 */
async function putWithRetries(
  c: Client<typeof KVService>,
  key: string,
  value: Uint8Array,
): Promise<number> {
  for (let attempt = 1;; attempt++) {
    try {
      await c.put(create(PutRequestSchema, { key, value }), { timeoutMs: 30_000 });
      return attempt - 1;
    } catch (err) {
      const e = ConnectError.from(err);
      const transient = e.code === Code.Unavailable || e.code === Code.DeadlineExceeded;
      if (!transient || attempt >= PUT_ATTEMPTS) {
        throw new Error(`a put of ${key} failed (attempt ${attempt}): ${e.message}`, {
          cause: err,
        });
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** How many times one put is tried before the run gives up. */
const PUT_ATTEMPTS = 20;

let failed = false;
try {
  console.log(
    `raftkv longrun: 3 nodes, ${puts} puts of ${valueBytes} B over ${keys} keys, ` +
      `${clients} clients on ${connections} connections, node flags [${
        nodeFlags.join(" ")
      }], Deno ${Deno.version.deno}, ` +
      `nodes run from ${flags.bundle ? "a bundle" : "src/"}`,
  );
  for (const id of [1, 2, 3]) start(id);
  const lead = await leader([1, 2, 3]);
  const behind = lead === 3 ? 2 : 3;
  const baseline = await rssMb(running.get(lead)!.pid);
  console.log(`leader ${lead}; RSS at start ${baseline.toFixed(0)} MB; stopping node ${behind}`);
  await stop(behind, "SIGKILL");

  const value = new Uint8Array(valueBytes).fill(120);
  // The clients share the connections round-robin (HTTP/2 carries many calls on one):
  // a connection each would pass the node's per-address limit (longrun_flags.ts).
  const conns = Array.from({ length: connections }, () => kvOwnConnection(lead));
  let next = 0;
  let lastShown = 0;
  let retried = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, async (_, k) => {
    const c = conns[k % connections]!;
    for (let i = next++; i < puts; i = next++) {
      retried += await putWithRetries(c, `key${i % keys}`, value);
      if (i - lastShown >= puts / 10) {
        lastShown = i;
        // RSS and data dirs along the way too: a long run cut short still tells.
        const secs = (performance.now() - t0) / 1000;
        console.log(`  ${i} puts, ${secs.toFixed(0)} s (${(i / secs).toFixed(0)}/s)`);
        void report(`at ${i} puts`);
      }
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  const stateMb = Math.min(keys, puts) * (valueBytes + `key${keys}`.length) / 1024 / 1024;
  console.log(
    `${puts} puts in ${seconds.toFixed(1)} s (${(puts / seconds).toFixed(0)}/s; ` +
      `${retried} retried); the state is about ${stateMb.toFixed(1)} MB`,
  );
  await report("after the puts");

  const target = (await cluster(lead).status({})).commitIndex;
  const t1 = performance.now();
  start(behind);
  await until(`node ${behind} catching up`, 600_000, async () => {
    const s = await cluster(behind).status({}, { timeoutMs: 1000 });
    return s.appliedIndex >= target ? true : undefined;
  });
  console.log(
    `node ${behind}, ${puts} entries behind, applied them ${
      ((performance.now() - t1) / 1000).toFixed(2)
    } s after it was started`,
  );
  await report("after the catch-up");

  // With --compare, the restarts alternate between two nodes' code, each timed
  // under the load the other saw a moment before.
  const variants = flags.compare === undefined
    ? [{ label: "", main: mainPath }]
    : [{ label: `[${mainPath}] `, main: mainPath }, {
      label: `[${flags.compare}] `,
      main: flags.compare,
    }];
  const restartSeconds = variants.map(() => [] as number[]);
  const timelines = variants.map(() => [] as RestartTimeline[]);
  for (let r = 0; r < restarts * variants.length; r++) {
    const v = r % variants.length;
    const { label, main } = variants[v]!;
    // A clean stop snapshots each node's applied state (node.ts) so that the start
    // replays next to nothing: how long the stops took is part of the story.
    const tStop = performance.now();
    await Promise.all([1, 2, 3].map((id) => stop(id, "SIGTERM")));
    console.log(
      `stopped the three nodes (SIGTERM) in ${((performance.now() - tStop) / 1000).toFixed(2)} s`,
    );
    const t2 = performance.now();
    const spawnMs = Date.now();
    console.log(`${new Date().toISOString()} ${label}starting the three nodes again`);
    for (const id of [1, 2, 3]) start(id, main);
    await firstWrite(value);
    const secs = (performance.now() - t2) / 1000;
    const servedMs = Date.now();
    restartSeconds[v]!.push(secs);
    console.log(
      `${label}full restart: the cluster served a write ${secs.toFixed(2)} s after the three ` +
        `nodes were started (${new Date().toISOString()}; load average ${
          Deno.loadavg()[0]?.toFixed(1)
        })`,
    );
    if (flags.timeline) {
      // The lines that came before the write may still be in the pipes.
      await until("the nodes' log lines", 5_000, () =>
        Promise.resolve(
          [...logLines.values()].some((ls) => ls.some((l) => l.text.includes("became leader")))
            ? true
            : undefined,
        )).catch(() => {});
      const t = restartTimeline(spawnMs, logLines, servedMs);
      timelines[v]!.push(t);
      for (const line of formatTimeline(t)) console.log(line);
    }
    await report("after the restart");
  }
  for (const [v, { label }] of variants.entries()) {
    if (flags.timeline) {
      for (const line of formatSummary(timelines[v]!)) console.log(`${label}${line}`);
    }
    const s = spread(restartSeconds[v]!);
    if (restarts > 1 && s !== undefined) {
      console.log(
        `${label}full restart, ${restarts} times: median ${s.median.toFixed(2)} s, ` +
          `from ${s.min.toFixed(2)} to ${s.max.toFixed(2)} s`,
      );
    }
  }
} catch (err) {
  // Said here, not left to the runtime: the stray-error guard above swallows a
  // rejection whose cause is a reset connection, and the run then ended with exit
  // code 0 and no word (a put client refused its connection did that).
  console.error(`error: the run failed: ${err instanceof Error ? err.message : String(err)}`);
  failed = true;
} finally {
  for (const id of [...running.keys()]) await stop(id, "SIGTERM");
  await Deno.remove(dataDir, { recursive: true });
}
if (failed) Deno.exit(1);
