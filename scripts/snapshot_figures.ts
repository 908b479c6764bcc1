/**
 * Issue 9's figures on a local 3-node cluster of real processes: after PUTS puts of
 * VALUE_BYTES bytes over KEYS keys (16 concurrent clients through the leader), each
 * node's resident memory (VmRSS) and data dir size; then every node is stopped with
 * SIGTERM, all are started again, and the time until the cluster acknowledges a
 * write is measured. Prints figures; asserts nothing.
 *
 * deno task bench:snapshots [--puts 100000] [--keys 10000] [--value-bytes 256]
 *   [--base-port 7501] [--main PATH/src/server/main.ts] [-- EXTRA NODE FLAGS...]
 *
 * `--main` runs another checkout's node (e.g. an export of main, for "before").
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterService, Role } from "../src/gen/raftkv/v1/cluster_pb.ts";
import { KVService, PutRequestSchema } from "../src/gen/raftkv/v1/kv_pb.ts";
import { type ClusterOptions, nodeAddress, nodeCommandArgs, nodeDataDir } from "./cluster.ts";

const dashdash = Deno.args.indexOf("--");
const own = dashdash < 0 ? Deno.args : Deno.args.slice(0, dashdash);
const extra = dashdash < 0 ? [] : Deno.args.slice(dashdash + 1);

function flag(name: string, fallback: string): string {
  const i = own.indexOf(`--${name}`);
  return i < 0 ? fallback : own[i + 1] ?? fallback;
}

const puts = Number(flag("puts", "100000"));
const keys = Number(flag("keys", "10000"));
const valueBytes = Number(flag("value-bytes", "256"));
const mainPath = flag("main", new URL("../src/server/main.ts", import.meta.url).pathname);
const dataDir = await Deno.makeTempDir({ prefix: "raftkv-figures-" });
const opts: ClusterOptions = {
  nodes: 3,
  basePort: Number(flag("base-port", "7501")),
  dataDir,
  logLevel: "warn",
  help: false,
};
const ids = [1, 2, 3];

function cluster(id: number): Client<typeof ClusterService> {
  return createClient(
    ClusterService,
    createGrpcTransport({ baseUrl: `http://${nodeAddress(opts, id)}` }),
  );
}

function kv(id: number): Client<typeof KVService> {
  return createClient(
    KVService,
    createGrpcTransport({ baseUrl: `http://${nodeAddress(opts, id)}` }),
  );
}

function spawn(id: number): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [...nodeCommandArgs(opts, id, mainPath), ...extra],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
}

async function leader(deadlineMs = 60_000): Promise<number> {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    for (const id of ids) {
      try {
        const s = await cluster(id).status({}, { timeoutMs: 500 });
        if (s.role === Role.LEADER) return id;
      } catch {
        // not up yet
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("no leader");
}

/** Resident memory of `pid` in MB, from ps (reading /proc needs --allow-all in Deno). */
async function rssMb(pid: number): Promise<number> {
  const out = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(pid)] }).output();
  return Number(new TextDecoder().decode(out.stdout).trim()) / 1024;
}

async function rssLine(children: Deno.ChildProcess[]): Promise<string> {
  const mb = await Promise.all(children.map((c) => rssMb(c.pid)));
  return `${mb.map((m) => m.toFixed(0)).join(" / ")} MB`;
}

async function duMb(path: string): Promise<number> {
  let bytes = 0;
  for await (const e of Deno.readDir(path)) {
    const p = `${path}/${e.name}`;
    if (e.isDirectory) bytes += (await duMb(p)) * 1024 * 1024;
    else bytes += (await Deno.stat(p)).size;
  }
  return bytes / 1024 / 1024;
}

let children = ids.map(spawn);
try {
  let lead = await leader();
  console.log(
    `snapshot figures: 3 nodes, ${puts} puts of ${valueBytes} B over ${keys} keys, node ${mainPath}` +
      (extra.length > 0 ? `, flags ${extra.join(" ")}` : ""),
  );
  console.log(`RSS after start: ${await rssLine(children)}`);
  const value = new Uint8Array(valueBytes).fill(0x78);
  const conns = Array.from({ length: 16 }, () => kv(lead));
  let next = 0;
  const t0 = performance.now();
  await Promise.all(conns.map(async (c) => {
    for (let i = next++; i < puts; i = next++) {
      for (;;) {
        try {
          await c.put(create(PutRequestSchema, { key: `key${i % keys}`, value }));
          break;
        } catch {
          lead = await leader();
          c = kv(lead);
        }
      }
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  console.log(`puts: ${seconds.toFixed(1)} s, ${(puts / seconds).toFixed(0)} puts/s`);
  // Let followers apply, snapshots finish.
  const last = (await kv(lead).put({ key: "marker", value })).index;
  for (const id of ids) {
    for (;;) {
      const s = await cluster(id).status({});
      if (s.appliedIndex >= last) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await new Promise((r) => setTimeout(r, 3000));
  const statuses = await Promise.all(ids.map((id) => cluster(id).status({})));
  console.log(`RSS after the puts: ${await rssLine(children)}`);
  const sizes = await Promise.all(ids.map((id) => duMb(nodeDataDir(opts, id))));
  console.log(`data dir: ${sizes.map((s) => s.toFixed(1)).join(" / ")} MB`);
  console.log(
    `state digests equal: ${new Set(statuses.map((s) => s.stateDigest)).size === 1}` +
      `; snapshot_index ${
        statuses.map((s) => (s as { snapshotIndex?: bigint }).snapshotIndex ?? "-").join(" / ")
      }` +
      `; first_index ${
        statuses.map((s) => (s as { firstIndex?: bigint }).firstIndex ?? "-").join(" / ")
      }`,
  );

  for (const c of children) c.kill("SIGTERM");
  await Promise.all(children.map((c) => c.status));
  const r0 = performance.now();
  children = ids.map(spawn);
  for (;;) {
    try {
      lead = await leader();
      await kv(lead).put({ key: "after-restart", value }, { timeoutMs: 1000 });
      break;
    } catch {
      // not serving yet
    }
  }
  const restartS = (performance.now() - r0) / 1000;
  console.log(`restart (all 3 started again) to a write acknowledged: ${restartS.toFixed(2)} s`);
  console.log(
    `RSS after the restart: ${await rssLine(children)}`,
  );
} finally {
  for (const c of children) {
    try {
      c.kill("SIGTERM");
    } catch {
      // gone
    }
  }
  await Promise.all(children.map((c) => c.status));
  await Deno.remove(dataDir, { recursive: true });
}
