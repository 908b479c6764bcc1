/**
 * `deno task bench:transport`: what the peer path costs. Starts a local 3-node
 * cluster of real node processes, puts 256-byte values at 1 and at 64 in flight,
 * through the leader and through a follower (forwarded), and prints per run
 * ops/s, p50/p99 latency and the server CPU-seconds per 1,000 puts (user + system
 * time of the node processes, from /proc/PID/stat, summed over the nodes), with
 * the load average when the run ended: the machine may be shared, and CPU per put
 * is the figure least moved by other load. It prints figures; it asserts nothing.
 *
 * Flags: --base-port P (7801), --ops N (puts per run at 1 in flight, 500; 4x at
 * 64), --repeat N (1), --main PATH (the node's main.ts to run: another checkout's,
 * for an A/B), --cpu-prof DIR (run the nodes with Deno's --cpu-prof into DIR). First
 * it prints each node's CPU over 10 s of idling (heartbeats only).
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterService, Role } from "../src/gen/raftkv/v1/cluster_pb.ts";
import { KVService, PutRequestSchema } from "../src/gen/raftkv/v1/kv_pb.ts";
import { type ClusterOptions, NODE_ENV, nodeAddress, nodeCommandArgs } from "./cluster.ts";
import { argFlag, until } from "./_flags_and_waits.ts";

const NODES = 3;
const ops = argFlag("ops", 500);
const repeat = argFlag("repeat", 1);
const stringFlag = (name: string): string | undefined => {
  const i = Deno.args.indexOf(`--${name}`);
  return i < 0 ? undefined : Deno.args[i + 1];
};
const mainPath = stringFlag("main") ??
  new URL("../src/server/main.ts", import.meta.url).pathname;
const cpuProf = stringFlag("cpu-prof");
const dataDir = await Deno.makeTempDir({ prefix: "raftkv-bench-transport-" });
const opts: ClusterOptions = {
  nodes: NODES,
  basePort: argFlag("base-port", 7801),
  dataDir,
  logLevel: "warn",
  help: false,
};

/** user + system CPU seconds of process `pid` so far (fields 14 and 15 of /proc/PID/stat). */
function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function kvClient(id: number): Client<typeof KVService> {
  return createClient(
    KVService,
    createGrpcTransport({ baseUrl: `http://${nodeAddress(opts, id)}` }),
  );
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

const children: Deno.ChildProcess[] = [];

async function run(what: string, target: number, inFlight: number, total: number) {
  // One connection per 8 calls in flight, as a client pool would.
  const conns = Array.from({ length: Math.ceil(inFlight / 8) }, () => kvClient(target));
  await Promise.all(conns.map((c) => c.get({ key: "warmup" })));
  const value = new Uint8Array(256).fill(120);
  const latencies: number[] = [];
  let next = 0;
  const cpu0 = children.reduce((s, c) => s + cpuSeconds(c.pid), 0);
  const start = performance.now();
  await Promise.all(Array.from({ length: inFlight }, async (_, k) => {
    const c = conns[k % conns.length]!;
    for (let i = next++; i < total; i = next++) {
      const t0 = performance.now();
      await c.put(create(PutRequestSchema, { key: `key${i % 1000}`, value }));
      latencies.push(performance.now() - t0);
    }
  }));
  const seconds = (performance.now() - start) / 1000;
  const cpu = children.reduce((s, c) => s + cpuSeconds(c.pid), 0) - cpu0;
  latencies.sort((a, b) => a - b);
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  console.log(
    `${what.padEnd(18)} in flight ${String(inFlight).padStart(2)}  ${
      (total / seconds).toFixed(0).padStart(5)
    } ops/s  p50 ${percentile(latencies, 0.5).toFixed(1).padStart(6)} ms  p99 ${
      percentile(latencies, 0.99).toFixed(1).padStart(6)
    } ms  cpu ${(cpu / total * 1000).toFixed(2).padStart(6)} s/1000 puts  load ${load}`,
  );
}

try {
  for (let id = 1; id <= NODES; id++) {
    const args = nodeCommandArgs(opts, id, mainPath);
    if (cpuProf !== undefined) {
      // Written when the node exits (SIGTERM: main.ts stops and returns).
      args.splice(1, 0, `--cpu-prof-dir=${cpuProf}/node${id}`, "--cpu-prof-md");
    }
    children.push(
      new Deno.Command(Deno.execPath(), { args, env: NODE_ENV, stdout: "null", stderr: "inherit" })
        .spawn(),
    );
  }
  const leader = await until("a leader", 30_000, async () => {
    for (let id = 1; id <= NODES; id++) {
      try {
        const c = createClient(
          ClusterService,
          createGrpcTransport({ baseUrl: `http://${nodeAddress(opts, id)}` }),
        );
        if ((await c.status({}, { timeoutMs: 500 })).role === Role.LEADER) return id;
      } catch {
        // not up yet
      }
    }
    return undefined;
  });
  const follower = leader === 1 ? 2 : 1;
  console.log(`bench:transport: ${mainPath}, leader ${leader}, Deno ${Deno.version.deno}`);
  // Idle: heartbeats only, for 10 s; each node's share of a core.
  const idle0 = children.map((c) => cpuSeconds(c.pid));
  const idleStart = performance.now();
  await new Promise((r) => setTimeout(r, 10_000));
  const idleSeconds = (performance.now() - idleStart) / 1000;
  console.log(
    `idle, heartbeats only: ${
      children.map((c, k) =>
        `node ${k + 1}${k + 1 === leader ? " (leader)" : ""} ${
          ((cpuSeconds(c.pid) - idle0[k]!) / idleSeconds * 100).toFixed(1)
        }%`
      ).join(", ")
    } of a core`,
  );
  for (let r = 0; r < repeat; r++) {
    await run("put via leader", leader, 1, ops);
    await run("put via leader", leader, 64, ops * 4);
    await run("put via follower", follower, 1, ops);
    await run("put via follower", follower, 64, ops * 4);
  }
} finally {
  for (const child of children) {
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
  }
  await Promise.all(children.map((c) => c.status));
  await Deno.remove(dataDir, { recursive: true });
}
