/**
 * raftkv under the bench: N node processes started as `deno task cluster` starts
 * them (scripts/cluster.ts's `nodeCommandArgs`: the node task's V8 flags, consecutive
 * loopback ports, an HTTP port 1000 above each), driven through `KVService/Put` and
 * `KVService/Get` with grpc-js, requests and answers encoded by the generated
 * schemas (src/gen/), as the grpc-js example (examples/grpc_js/client.ts) does.
 *
 * With `--raftkv-dir DIR` the nodes are another checkout's: DIR/src/server/main.ts,
 * started with DIR/scripts/cluster.ts's own `nodeCommandArgs` and with DIR as the
 * working directory (so its deno.json and deno.lock apply), so two versions of
 * raftkv can be measured by the same bench.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  ClusterService,
  Role,
  StatusRequestSchema,
  StatusResponseSchema,
} from "../../src/gen/raftkv/v1/cluster_pb.ts";
import {
  GetRequestSchema,
  GetResponseSchema,
  KVService,
  PutRequestSchema,
} from "../../src/gen/raftkv/v1/kv_pb.ts";
import { methodPath } from "../../examples/grpc_js/client.ts";
import { type ClusterOptions, NODE_ENV } from "../cluster.ts";
import { makePki, type TestPki } from "../pki.ts";
import { until } from "../_flags_and_waits.ts";
import { benchKey, type Op, type SystemUnderTest, type UnaryOp } from "./system.ts";
import {
  logTails,
  type ServerProcess,
  spawnServer,
  stopServers,
  unlessOneExits,
} from "./processes.ts";

/** Where raftkv runs and what the bench writes. */
export interface RaftKvOptions {
  /** The system's name in the table: "raftkv" unless two are measured. */
  name?: string;
  /** The checkout whose nodes run (its root); this one when undefined. */
  checkout?: string;
  /** Number of nodes. */
  nodes: number;
  /** Port of node 1; node i listens on basePort+i-1 (HTTP: +1000). */
  basePort: number;
  /** A directory of this run: nodes' data and logs go under it. */
  dir: string;
  /** Number of keys, and the size of every value. */
  keys: number;
  valueBytes: number;
  /** Mutual TLS everywhere (a throwaway CA, as `deno task bench --tls` always did). */
  tls: boolean;
}

/** The repository root this file belongs to. */
const THIS_CHECKOUT = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/$/, "");

/** The checkout's `nodeCommandArgs` (scripts/cluster.ts), loaded from that checkout. */
type NodeCommandArgs = (opts: ClusterOptions, id: number, mainPath: string) => string[];

async function nodeCommandArgsOf(checkout: string): Promise<NodeCommandArgs> {
  const url = pathToFileURL(`${checkout}/scripts/cluster.ts`).href;
  const mod = await import(url) as { nodeCommandArgs?: NodeCommandArgs };
  if (typeof mod.nodeCommandArgs !== "function") {
    throw new Error(`${checkout}/scripts/cluster.ts exports no nodeCommandArgs`);
  }
  return mod.nodeCommandArgs;
}

/** The commit checked out at `dir` (`git rev-parse --short HEAD`), or undefined. */
export async function gitCommit(dir: string): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("git", {
      args: ["-C", dir, "describe", "--always", "--dirty", "--abbrev=10"],
      stdin: "null",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
  } catch {
    return undefined;
  }
}

interface Tls {
  pki: TestPki;
  nodeFlags: (id: number) => Promise<string[]>;
  credentials: grpc.ChannelCredentials;
}

async function makeTls(): Promise<Tls> {
  const pki = await makePki();
  const client = await pki.ca.client("bench");
  return {
    pki,
    nodeFlags: async (id) => {
      const c = await pki.ca.node(id);
      return ["--tls-cert", c.cert, "--tls-key", c.key, "--ca", pki.ca.cert];
    },
    credentials: grpc.credentials.createSsl(
      await Deno.readFile(pki.ca.cert).then(Buffer.from),
      await Deno.readFile(client.key).then(Buffer.from),
      await Deno.readFile(client.cert).then(Buffer.from),
    ),
  };
}

/** Starts a raftkv cluster and waits until it has a leader. */
export async function startRaftKv(opts: RaftKvOptions): Promise<SystemUnderTest> {
  const checkout = opts.checkout ?? THIS_CHECKOUT;
  const nodeCommandArgs = await nodeCommandArgsOf(checkout);
  const tls = opts.tls ? await makeTls() : undefined;
  /** The name as a file name: two raftkv clusters of one run keep their data apart. */
  const slug = (opts.name ?? "raftkv").replace(/[^\w.-]/g, "_");
  const cluster: ClusterOptions = {
    nodes: opts.nodes,
    basePort: opts.basePort,
    dataDir: `${opts.dir}/${slug}`,
    logLevel: "warn",
    help: false,
  };
  const procs: ServerProcess[] = [];
  const channel = (addr: string) =>
    new grpc.Client(addr, tls?.credentials ?? grpc.credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
      // Deno's node:tls refuses an IP address as the TLS server name (SNI), which grpc-js
      // takes from the target; the node certificates name localhost too (scripts/pki.ts).
      ...(tls === undefined ? {} : { "grpc.ssl_target_name_override": "localhost" }),
    });
  try {
    for (let id = 1; id <= opts.nodes; id++) {
      await Deno.mkdir(`${cluster.dataDir}/node${id}`, { recursive: true });
      const args = [
        ...nodeCommandArgs(cluster, id, `${checkout}/src/server/main.ts`),
        ...(await tls?.nodeFlags(id) ?? []),
      ];
      procs.push(
        // This checkout's node environment for both checkouts compared: the same allocator.
        await spawnServer(
          Deno.execPath(),
          args,
          `${opts.dir}/${slug}${id}.log`,
          checkout,
          NODE_ENV,
        ),
      );
    }
    const address = (id: number) => `127.0.0.1:${opts.basePort + id - 1}`;
    const statusPath = methodPath(ClusterService.method.status);
    const status = (id: number) => {
      const ch = channel(address(id));
      return new Promise<Buffer>((resolve, reject) => {
        ch.makeUnaryRequest<Buffer, Buffer>(
          statusPath,
          (b) => b,
          (b) => b,
          Buffer.from(toBinary(StatusRequestSchema, create(StatusRequestSchema, {}))),
          new grpc.Metadata(),
          { deadline: Date.now() + 1_000 },
          (err, res) => err !== null || res === undefined ? reject(err) : resolve(res),
        );
      }).finally(() => ch.close());
    };
    let lastError = "no answer yet";
    const leader = await unlessOneExits(
      "raftkv did not elect a leader",
      procs,
      until("raftkv did not elect a leader", 120_000, async () => {
        for (let id = 1; id <= opts.nodes; id++) {
          try {
            const s = fromBinary(StatusResponseSchema, await status(id));
            if (s.role === Role.LEADER) return id;
            lastError = `node ${id} is ${Role[s.role]}, term ${s.term}`;
          } catch (err) {
            lastError = `node ${id}: ${err instanceof Error ? err.message : err}`; // not up yet
          }
        }
        return undefined;
      }).catch(async (err) => {
        throw new Error(`${err.message} (last: ${lastError})${await logTails(procs)}`);
      }),
    );
    const follower = leader === 1 ? Math.min(2, opts.nodes) : 1;
    const value = new Uint8Array(opts.valueBytes).fill(120);
    const puts = Array.from(
      { length: opts.keys },
      (_, i) =>
        Buffer.from(
          toBinary(PutRequestSchema, create(PutRequestSchema, { key: benchKey(i), value })),
        ),
    );
    const gets = Array.from(
      { length: opts.keys },
      (_, i) =>
        Buffer.from(toBinary(GetRequestSchema, create(GetRequestSchema, { key: benchKey(i) }))),
    );
    const commit = await gitCommit(checkout);
    return {
      name: opts.name ?? "raftkv",
      description: `raftkv ${commit ?? "(no git)"} at ${checkout}, Deno ${Deno.version.deno}` +
        (opts.tls ? ", mutual TLS" : ""),
      pids: procs.map((p) => p.pid),
      channel,
      op(op: Op): UnaryOp {
        const to = address(op.endsWith("-follower") ? follower : leader);
        if (op.startsWith("put")) {
          return {
            path: methodPath(KVService.method.put),
            address: to,
            request: (i) => puts[i]!,
            check: () => undefined,
          };
        }
        return {
          path: methodPath(KVService.method.get),
          address: to,
          request: (i) => gets[i]!,
          check: (res) => {
            const r = fromBinary(GetResponseSchema, new Uint8Array(res));
            return r.found && r.value.length === opts.valueBytes
              ? undefined
              : `Get answered found=${r.found} with ${r.value.length} bytes, not ${opts.valueBytes}`;
          },
        };
      },
      stop: async () => {
        await stopServers(procs);
        await tls?.pki.cleanup();
      },
    };
  } catch (err) {
    await stopServers(procs);
    await tls?.pki.cleanup();
    throw err;
  }
}
