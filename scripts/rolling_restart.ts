/**
 * `deno task bench:rolling-restart`: how long writes stall during a rolling restart
 * of a 3-node cluster (issue 10). Starts 3 nodes on 127.0.0.1, keeps one writer
 * putting unique keys back to back (each call to the node it last reached, moving
 * on at once when that node cannot serve), and restarts every node in turn with
 * SIGTERM, the leader last: a leader hands its leadership to an up-to-date follower
 * before it stops. It prints the longest time between two acknowledged writes
 * around each restart, and, for comparison, around a leader killed with SIGKILL
 * (no transfer: the followers wait out an election timeout).
 *
 * It prints figures; it asserts nothing. Flags after `--` go to every node.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterService, Role } from "../src/gen/raftkv/v1/cluster_pb.ts";
import { KVService } from "../src/gen/raftkv/v1/kv_pb.ts";
import { type ClusterOptions, NODE_ENV, nodeAddress, nodeCommandArgs } from "./cluster.ts";
import { SILENT_LOGGER } from "../src/raft/logger.ts";
import { guardStrayNetworkErrors } from "../src/server/stray_errors.ts";
import { positiveInt, until } from "./_flags_and_waits.ts";

const dash = Deno.args.indexOf("--");
const ours = dash < 0 ? Deno.args : Deno.args.slice(0, dash);
const extra = dash < 0 ? [] : Deno.args.slice(dash + 1);
const { values } = parseArgs({
  args: ours,
  options: {
    "base-port": { type: "string", default: "7151" },
    "heartbeat-ms": { type: "string", default: "100" },
    "election-ms": { type: "string", default: "1000" },
    rounds: { type: "string", default: "1" },
  },
  strict: true,
});
const num = (name: keyof typeof values): number => positiveInt(name, String(values[name]));
const heartbeatMs = num("heartbeat-ms");
const electionMs = num("election-ms");
const rounds = num("rounds");
const dataDir = await Deno.makeTempDir({ prefix: "raftkv_rolling_" });
const opts: ClusterOptions = {
  nodes: 3,
  basePort: num("base-port"),
  dataDir,
  logLevel: "info",
  help: false,
};
const nodeFlags = [
  "--heartbeat-ms",
  String(heartbeatMs),
  "--election-ms",
  String(electionMs),
  ...extra,
];
const mainPath = new URL("../src/server/main.ts", import.meta.url).pathname;
const ids = [1, 2, 3];

// A node that stops under a connection can leave a socket error with no listener
// (EPIPE, ECONNRESET): the calls already see it; it must not end the run.
guardStrayNetworkErrors(SILENT_LOGGER);

const clusterClients = new Map<number, Client<typeof ClusterService>>();
const kvClients = new Map<number, Client<typeof KVService>>();
function transport(id: number) {
  return createGrpcTransport({ baseUrl: `http://${nodeAddress(opts, id)}` });
}
function cluster(id: number): Client<typeof ClusterService> {
  let c = clusterClients.get(id);
  if (c === undefined) clusterClients.set(id, c = createClient(ClusterService, transport(id)));
  return c;
}
function kv(id: number): Client<typeof KVService> {
  let c = kvClients.get(id);
  if (c === undefined) kvClients.set(id, c = createClient(KVService, transport(id)));
  return c;
}

const running = new Map<number, { child: Deno.ChildProcess; log: string[] }>();

function start(id: number): void {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...nodeCommandArgs(opts, id, mainPath), ...nodeFlags],
    env: NODE_ENV,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log: string[] = [];
  running.set(id, { child, log });
  void (async () => {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of child.stderr) {
      buf += dec.decode(chunk, { stream: true });
      const lines = buf.split("\n");
      buf = lines.pop()!;
      log.push(...lines);
    }
  })();
}

async function stop(id: number, signal: Deno.Signal): Promise<string[]> {
  const r = running.get(id);
  if (r === undefined) return [];
  running.delete(id);
  try {
    r.child.kill(signal);
  } catch {
    // gone already
  }
  await r.child.status;
  return r.log;
}

async function leader(): Promise<number> {
  return await until("a leader", 60_000, async () => {
    const all = await Promise.all(
      [...running.keys()].map((id) => cluster(id).status({}, { timeoutMs: 500 }).catch(() => null)),
    );
    const l = all.find((s) => s?.role === Role.LEADER);
    if (l === undefined || l === null) return undefined;
    // Every running node agrees.
    return all.every((s) => s !== null && s.leaderId === l.id) ? Number(l.id) : undefined;
  });
}

// The writer: acknowledgement times, back to back. It writes to the node it last
// found leading, and on a failure asks the running nodes who leads now (as a client
// that follows leader hints would), so the gaps measure the cluster's unavailability,
// not a client's time to give up on a stopped node.
const acks: number[] = [];
let writing = true;
let target = 1;
async function findLeader(): Promise<void> {
  const all = await Promise.all(
    [...running.keys()].map((id) => cluster(id).status({}, { timeoutMs: 300 }).catch(() => null)),
  );
  const named = all.find((s) => s !== null && s.leaderId !== 0n && running.has(Number(s.leaderId)));
  if (named) target = Number(named.leaderId);
  else target = target % 3 + 1;
}
const writer = (async () => {
  let n = 0;
  while (writing) {
    const key = `rr${++n}`;
    for (;;) {
      if (!writing) return;
      try {
        await kv(target).put({ key, value: new TextEncoder().encode(String(n)) }, {
          timeoutMs: 1_000,
        });
        acks.push(performance.now());
        break;
      } catch {
        await findLeader();
      }
    }
  }
})();

/** The longest gap between two acknowledgements in [from, to]. */
function longestGap(from: number, to: number): number {
  let prev = from;
  let longest = 0;
  for (const t of acks) {
    if (t < from) continue;
    if (t > to) {
      longest = Math.max(longest, t - prev);
      break;
    }
    longest = Math.max(longest, t - prev);
    prev = t;
  }
  return longest;
}

/** Waits until the writer has `n` more acknowledgements. */
async function moreAcks(n: number): Promise<void> {
  const want = acks.length + n;
  await until(`${n} more writes`, 60_000, () => Promise.resolve(acks.length >= want || undefined));
}

const results: string[] = [];
try {
  console.log(
    `raftkv rolling restart: 3 nodes, heartbeat ${heartbeatMs} ms, election ${electionMs} ms, ` +
      `node flags [${nodeFlags.join(" ")}], ${rounds} round(s)`,
  );
  for (const id of ids) start(id);
  let lead = await leader();
  target = lead;
  await moreAcks(50);
  // The machine's own noise: the longest gap while nothing is restarted.
  const calm0 = performance.now();
  await moreAcks(100);
  const calm = longestGap(calm0, performance.now());
  console.log(`  no restart: longest write gap ${calm.toFixed(0)} ms over 100 writes`);
  let worst = 0;
  for (let round = 1; round <= rounds; round++) {
    const order = [...ids.filter((id) => id !== lead), lead];
    for (const id of order) {
      const wasLeader = id === lead;
      const t0 = performance.now();
      const log = await stop(id, "SIGTERM");
      const transfer = log.find((l) => l.includes("transferred leadership before stopping"));
      const transferred = transfer === undefined
        ? undefined
        : `transferred in ${/ms=(\d+)/.exec(transfer)?.[1] ?? "?"} ms`;
      start(id);
      lead = await leader();
      await moreAcks(50);
      const gap = longestGap(t0, performance.now());
      worst = Math.max(worst, gap);
      results.push(
        `  round ${round}: node ${id}${wasLeader ? " (leader)" : ""} SIGTERM + restart: longest ` +
          `write gap ${gap.toFixed(0)} ms${
            wasLeader ? `, leadership ${transferred ?? "NOT transferred"}` : ""
          }`,
      );
      console.log(results[results.length - 1]);
    }
  }
  // For comparison: the leader killed outright, no transfer.
  lead = await leader();
  const t0 = performance.now();
  await stop(lead, "SIGKILL");
  start(lead);
  await leader();
  await moreAcks(50);
  const killGap = longestGap(t0, performance.now());
  console.log(
    `rolling restart: longest write unavailability ${worst.toFixed(0)} ms ` +
      `(${(worst / heartbeatMs).toFixed(1)} heartbeat intervals); ` +
      `a leader killed with SIGKILL instead: ${killGap.toFixed(0)} ms ` +
      `(${(killGap / electionMs).toFixed(1)} election timeouts); with no restart at all: ` +
      `${calm.toFixed(0)} ms; ${acks.length} writes in all`,
  );
} finally {
  writing = false;
  await writer.catch(() => {});
  for (const id of [...running.keys()]) await stop(id, "SIGTERM");
  await Deno.remove(dataDir, { recursive: true });
}
