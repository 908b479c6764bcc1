/**
 * `deno task bench`: starts a local cluster of real node processes, drives it
 * with Put and Get loops from 1 and from 16 concurrent clients (each on its own
 * HTTP/2 connection), prints throughput and latency, and stops the cluster.
 * It prints figures; it asserts nothing.
 *
 * Flags: --nodes N (3), --base-port P (7401), --ops N (puts per measurement, 2000),
 * --value-bytes N (64), --tls (TLS everywhere: a throwaway CA and certificates made
 * with openssl, peer mutual TLS and client certificates, as README "Securing a
 * cluster" sets up; no policy).
 *
 * @module
 */

import { formatSeconds, terminalProgress } from "../src/cli/progress.ts";
import { create } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterService, Role } from "../src/gen/raftkv/v1/cluster_pb.ts";
import { KVService, PutRequestSchema } from "../src/gen/raftkv/v1/kv_pb.ts";
import { type ClusterOptions, nodeAddress, nodeCommandArgs } from "./cluster.ts";
import { makePki } from "./pki.ts";
import { argFlag } from "./_flags_and_waits.ts";

const nodes = argFlag("nodes", 3);
const ops = argFlag("ops", 2000);
const valueBytes = argFlag("value-bytes", 64);
const dataDir = await Deno.makeTempDir({ prefix: "raftkv-bench-" });
const opts: ClusterOptions = {
  nodes,
  basePort: argFlag("base-port", 7401),
  dataDir,
  logLevel: "warn",
  help: false,
};
const mainPath = new URL("../src/server/main.ts", import.meta.url).pathname;

/** With --tls: a PKI, each node's TLS flags, and what clients dial with. */
const tls = Deno.args.includes("--tls") ? await makeTls() : undefined;

async function makeTls() {
  const pki = await makePki();
  const nodeFlags = new Map<number, string[]>();
  for (let id = 1; id <= nodes; id++) {
    const c = await pki.ca.node(id);
    nodeFlags.set(id, ["--tls-cert", c.cert, "--tls-key", c.key, "--ca", pki.ca.cert]);
  }
  const client = await pki.ca.client("bench");
  const nodeOptions = {
    ca: await Deno.readTextFile(pki.ca.cert),
    cert: await Deno.readTextFile(client.cert),
    key: await Deno.readTextFile(client.key),
  };
  return { pki, nodeFlags, nodeOptions };
}

function transportTo(id: number) {
  return tls === undefined
    ? createGrpcTransport({ baseUrl: `http://${nodeAddress(opts, id)}` })
    : createGrpcTransport({
      baseUrl: `https://${nodeAddress(opts, id)}`,
      nodeOptions: tls.nodeOptions,
    });
}

function kvClient(id: number): Client<typeof KVService> {
  return createClient(KVService, transportTo(id));
}

async function waitForLeader(): Promise<number> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    for (let id = 1; id <= nodes; id++) {
      try {
        const c = createClient(ClusterService, transportTo(id));
        const s = await c.status({}, { timeoutMs: 500 });
        if (s.role === Role.LEADER) return id;
      } catch {
        // not up yet
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("no leader within 30 s");
}

const progress = terminalProgress();

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

async function measure(
  what: string,
  clients: number,
  total: number,
  call: (client: Client<typeof KVService>, i: number) => Promise<unknown>,
  target: number,
): Promise<void> {
  const conns = Array.from({ length: clients }, () => kvClient(target));
  // Warm up each connection so connection setup is not measured.
  await Promise.all(conns.map((c) => c.get({ key: "warmup" })));
  const latencies: number[] = [];
  let next = 0;
  const start = performance.now();
  // On a terminal: operations so far and time left, once a second (quiet in CI).
  const ticker = progress.live
    ? setInterval(() => {
      const done = latencies.length;
      const elapsed = performance.now() - start;
      const left = done === 0
        ? ""
        : `, about ${formatSeconds((elapsed / done) * (total - done))} left`;
      progress.update(`${what}, ${clients} client(s): ${done}/${total} ops${left}`);
    }, 1000)
    : undefined;
  await Promise.all(conns.map(async (c) => {
    for (let i = next++; i < total; i = next++) {
      const t0 = performance.now();
      await call(c, i);
      latencies.push(performance.now() - t0);
    }
  })).finally(() => {
    clearInterval(ticker);
    progress.clear();
  });
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  console.log(
    `${what.padEnd(28)} clients=${String(clients).padStart(2)} ops=${total}` +
      `  ${(total / seconds).toFixed(0).padStart(6)} ops/s` +
      `  p50=${percentile(latencies, 0.5).toFixed(2)}ms p99=${
        percentile(latencies, 0.99).toFixed(2)
      }ms`,
  );
}

const children: Deno.ChildProcess[] = [];
try {
  for (let id = 1; id <= nodes; id++) {
    children.push(
      new Deno.Command(Deno.execPath(), {
        args: [...nodeCommandArgs(opts, id, mainPath), ...(tls?.nodeFlags.get(id) ?? [])],
        stdout: "null",
        stderr: "inherit",
      }).spawn(),
    );
  }
  const leader = await waitForLeader();
  const follower = leader === 1 ? 2 : 1;
  console.log(
    `raftkv bench: ${nodes} nodes on 127.0.0.1, leader ${leader}, values ${valueBytes} B, ` +
      `Deno ${Deno.version.deno}, TLS ${
        tls === undefined ? "off" : "on (mutual)"
      }, data in ${dataDir}`,
  );
  const value = new Uint8Array(valueBytes).fill(120);
  const put = (c: Client<typeof KVService>, i: number) =>
    c.put(create(PutRequestSchema, { key: `key${i % 1000}`, value }));
  await measure("put via leader", 1, ops, put, leader);
  await measure("put via leader", 16, ops * 4, put, leader);
  if (nodes > 1) await measure("put via follower (forwarded)", 16, ops * 2, put, follower);
  const get = (c: Client<typeof KVService>, i: number) => c.get({ key: `key${i % 1000}` });
  await measure("get (linearizable)", 1, ops, get, leader);
  await measure("get (linearizable)", 16, ops * 4, get, leader);
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
  await tls?.pki.cleanup();
}
