/**
 * `deno task bench:learner-catchup`: how long a new learner takes to catch up with
 * a cluster holding `--keys` keys (issue 10: 100,000). Starts 3 nodes on
 * 127.0.0.1 holding the keys, writes `--puts` more through the leader, starts node 4
 * with `--join`, adds it as a learner (ClusterService/AddMember) and prints the time
 * from the add's answer until node 4 has applied everything the leader had committed
 * then, and what it was sent (a snapshot, entries).
 *
 * The keys get there fast: by default the nodes start from a backup file holding
 * them (`--restore`, the state a cluster has after that many writes), built here;
 * `--write` puts them through the API instead (minutes on a busy machine).
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
import { AppliedChain } from "../src/kv/applied_chain.ts";
import { encodeCommand } from "../src/kv/command.ts";
import { encodeKvState } from "../src/kv/state_codec.ts";
import { KvStore } from "../src/kv/store.ts";
import { confStateOf } from "../src/raft/types.ts";
import { encodeSnapshotFile } from "../src/snapshot/file.ts";
import { SILENT_LOGGER } from "../src/raft/logger.ts";
import { guardStrayNetworkErrors } from "../src/server/stray_errors.ts";
import { positiveInt, until } from "./_flags_and_waits.ts";

const dash = Deno.args.indexOf("--");
const ours = dash < 0 ? Deno.args : Deno.args.slice(0, dash);
const extra = dash < 0 ? [] : Deno.args.slice(dash + 1);
const { values } = parseArgs({
  args: ours,
  options: {
    keys: { type: "string", default: "100000" },
    "value-bytes": { type: "string", default: "100" },
    clients: { type: "string", default: "32" },
    "base-port": { type: "string", default: "7161" },
    puts: { type: "string", default: "200" },
    write: { type: "boolean", default: false },
  },
  strict: true,
});
const num = (name: keyof typeof values): number => positiveInt(name, String(values[name]));
const keys = num("keys");
const valueBytes = num("value-bytes");
const clients = num("clients");
const puts = num("puts");
const dataDir = await Deno.makeTempDir({ prefix: "raftkv_learner_" });
// Four ports: nodes 1-3 bootstrap the cluster, node 4 joins it.
const four: ClusterOptions = {
  nodes: 4,
  basePort: num("base-port"),
  dataDir,
  logLevel: "info",
  help: false,
};
const three: ClusterOptions = { ...four, nodes: 3 };
const mainPath = new URL("../src/server/main.ts", import.meta.url).pathname;

function transport(id: number) {
  return createGrpcTransport({ baseUrl: `http://${nodeAddress(four, id)}` });
}
const clusterClients = new Map<number, Client<typeof ClusterService>>();
const cluster = (id: number): Client<typeof ClusterService> => {
  let c = clusterClients.get(id);
  if (c === undefined) clusterClients.set(id, c = createClient(ClusterService, transport(id)));
  return c;
};
const kv = (id: number): Client<typeof KVService> => createClient(KVService, transport(id));
// A node that starts or stops under a connection can leave a socket error with no
// listener (EPIPE, ECONNRESET): the calls already see it; it must not end the run.
guardStrayNetworkErrors(SILENT_LOGGER);

const running = new Map<number, { child: Deno.ChildProcess; log: string[] }>();

function start(id: number, args: string[]): void {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...args, ...extra],
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

try {
  console.log(
    `raftkv learner catch-up: 3 nodes holding ${keys} keys of ${valueBytes} B, then node 4 ` +
      `joins as a learner; node flags [${extra.join(" ")}]`,
  );
  const value = new Uint8Array(valueBytes).fill(97);
  const restore: string[] = [];
  if (!values.write) {
    // The state of a cluster that applied one put per key: a backup to start from.
    const t = performance.now();
    const store = new KvStore();
    const chain = new AppliedChain();
    for (let i = 0; i < keys; i++) {
      const data = encodeCommand({ op: { case: "put", value: { key: `key${i}`, value } } });
      store.apply(i + 1, data);
      chain.add({ index: i + 1, term: 1, data });
    }
    const data = encodeKvState({
      store: store.exportState(),
      appliedTerm: 1,
      ...chain.image(),
    });
    const file = `${dataDir}/seed.snap`;
    await Deno.writeFile(
      file,
      encodeSnapshotFile({ meta: { index: keys, term: 1, conf: confStateOf([1, 2, 3]) }, data }),
    );
    restore.push("--restore", file);
    console.log(
      `a backup holding ${keys} keys (${
        (data.length / 1024 / 1024).toFixed(1)
      } MB of state) built ` +
        `in ${((performance.now() - t) / 1000).toFixed(1)} s; the nodes start from it`,
    );
  }
  for (const id of [1, 2, 3]) start(id, [...nodeCommandArgs(three, id, mainPath), ...restore]);
  const lead = await until("a leader", 60_000, async () => {
    for (const id of [1, 2, 3]) {
      const s = await cluster(id).status({}, { timeoutMs: 500 }).catch(() => undefined);
      if (s?.role === Role.LEADER) return id;
    }
    return undefined;
  });
  const conns = Array.from({ length: clients }, () => kv(lead));
  let next = 0;
  const t0 = performance.now();
  const total = values.write ? keys + puts : puts;
  await Promise.all(conns.map(async (c) => {
    for (let i = next++; i < total; i = next++) {
      const key = values.write && i < keys ? `key${i}` : `more${i}`;
      await c.put({ key, value }, { timeoutMs: 30_000 });
    }
  }));
  console.log(
    `${total} puts through the leader in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  // Node 4: --join, and --peers naming the members and itself.
  const args4 = nodeCommandArgs(four, 4, mainPath);
  args4.push("--join");
  start(4, args4);
  await until("node 4 to serve", 60_000, () => cluster(4).status({}, { timeoutMs: 500 }));
  const added = await cluster(lead).addMember({
    id: 4n,
    peerAddress: nodeAddress(four, 4),
    learner: true,
  }, { timeoutMs: 30_000 });
  const t1 = performance.now();
  const target = (await cluster(lead).status({})).commitIndex;
  await until("node 4 to catch up", 600_000, async () => {
    const s = await cluster(4).status({}, { timeoutMs: 1_000 });
    return s.appliedIndex >= target ? s : undefined;
  });
  const ms = performance.now() - t1;
  const log4 = running.get(4)!.log;
  const snapshots = log4.filter((l) => l.includes("installed a snapshot from the leader")).length;
  console.log(
    `learner node 4 caught up with ${keys} keys (the leader's commit index ${target} at the add, ` +
      `config index ${added.configIndex}) in ${
        (ms / 1000).toFixed(2)
      } s after AddMember answered; ` +
      `it installed ${snapshots} snapshot(s) and took the rest as entries`,
  );
} finally {
  for (const [, r] of running) {
    try {
      r.child.kill("SIGTERM");
    } catch {
      // gone
    }
    await r.child.status;
  }
  await Deno.remove(dataDir, { recursive: true });
}
