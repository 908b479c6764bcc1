/**
 * etcd as the bench's point of comparison: finds the binary (Debian's
 * `etcd-server` package installs /usr/bin/etcd), starts N members on loopback
 * with their data in a temporary directory and etcd's defaults otherwise (so
 * fsync on, heartbeat 100 ms, election 1 s), and drives them through
 * `etcdserverpb.KV/Put` and `KV/Range` with grpc-js.
 *
 * The RPC definitions are the `.proto` files the npm `etcd3` package ships
 * (`proto/rpc.proto`, `kv.proto`, `auth.proto`; pinned in deno.json), loaded at run
 * time with `@grpc/proto-loader`, as `etcd3` itself does. A Range without
 * `serializable` is linearizable (etcd's default), the counterpart of raftkv's Get.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
// Imported so that Deno fetches the package (its protos are read from its directory),
// and to report which version of them was used.
import etcd3Package from "etcd3/package.json" with { type: "json" };
import { benchKey, type Op, type SystemUnderTest, type UnaryOp } from "./system.ts";
import {
  logTails,
  type ServerProcess,
  spawnServer,
  stopServers,
  unlessOneExits,
} from "./processes.ts";
import { until } from "../_flags_and_waits.ts";

/** How to install etcd, for the message of a bench that cannot find it. */
export const ETCD_INSTALL_HINT =
  "install Debian's package: sudo apt-get install etcd-server (it provides /usr/bin/etcd), " +
  "or give the binary's path with --etcd PATH";

/** etcd could not be found or run; the message says how to install it. */
export class EtcdMissingError extends Error {
  /** Creates an EtcdMissingError with a complete, user-facing message. */
  constructor(message: string) {
    super(message);
    this.name = "EtcdMissingError";
  }
}

/**
 * The etcd binary: `given` (--etcd PATH) if set, else `etcd` on PATH, else
 * /usr/bin/etcd; and its version line, from `etcd --version`.
 *
 * @throws {EtcdMissingError} if there is none, or it does not run
 */
export async function findEtcd(
  given: string | undefined,
): Promise<{ path: string; version: string }> {
  const candidates = given !== undefined ? [given] : [
    ...(Deno.env.get("PATH") ?? "").split(":").filter((d) => d !== "").map((d) => `${d}/etcd`),
    "/usr/bin/etcd",
  ];
  const path = candidates.find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });
  if (path === undefined) {
    const where = given !== undefined ? `no file at ${given}` : "no etcd on PATH nor /usr/bin/etcd";
    throw new EtcdMissingError(
      `Cannot run the bench against etcd: ${where}. To ${ETCD_INSTALL_HINT}.`,
    );
  }
  try {
    const out = await new Deno.Command(path, { args: ["--version"], stdin: "null" }).output();
    const first = new TextDecoder().decode(out.stdout).split("\n")[0] ?? "";
    const m = /^etcd Version: (\S+)/.exec(first);
    if (!out.success || m === null) throw new Error(`"${path} --version" printed "${first}"`);
    return { path, version: m[1]! };
  } catch (err) {
    throw new EtcdMissingError(
      `Cannot run the bench against etcd: ${path} does not run as etcd (${
        err instanceof Error ? err.message : err
      }). To ${ETCD_INSTALL_HINT}.`,
    );
  }
}

/** The ports of member `i` (1-based): clients on base+i-1, peers on base+10+i-1. */
export function etcdPorts(basePort: number, i: number): { client: number; peer: number } {
  return { client: basePort + i - 1, peer: basePort + 10 + i - 1 };
}

/** The arguments that start member `i` of an `n`-member etcd cluster. */
export function etcdArgs(n: number, i: number, basePort: number, dataDir: string): string[] {
  const url = (port: number) => `http://127.0.0.1:${port}`;
  const { client, peer } = etcdPorts(basePort, i);
  const initialCluster = Array.from(
    { length: n },
    (_, k) => `m${k + 1}=${url(etcdPorts(basePort, k + 1).peer)}`,
  ).join(",");
  return [
    `--name=m${i}`,
    `--data-dir=${dataDir}/etcd${i}`,
    `--listen-client-urls=${url(client)}`,
    `--advertise-client-urls=${url(client)}`,
    `--listen-peer-urls=${url(peer)}`,
    `--initial-advertise-peer-urls=${url(peer)}`,
    `--initial-cluster=${initialCluster}`,
    "--initial-cluster-state=new",
    "--initial-cluster-token=raftkv-bench",
    "--logger=zap",
    "--log-outputs=stderr",
    "--log-level=warn",
  ];
}

interface KvService {
  Put: grpc.MethodDefinition<object, object>;
  Range: grpc.MethodDefinition<object, { kvs?: { value?: Buffer }[] }>;
}

function loadKvService(): KvService {
  const protoPath = fileURLToPath(import.meta.resolve("etcd3/proto/rpc.proto"));
  const def = protoLoader.loadSync(protoPath, { keepCase: true, longs: String, defaults: true });
  const kv = def["etcdserverpb.KV"] as unknown as KvService | undefined;
  if (kv?.Put === undefined || kv.Range === undefined) {
    throw new Error(`${protoPath} has no etcdserverpb.KV with Put and Range`);
  }
  return kv;
}

/** Where etcd runs and what the bench writes. */
export interface EtcdOptions {
  /** The binary and its version, from {@link findEtcd}. */
  etcd: { path: string; version: string };
  /** Number of members. */
  nodes: number;
  /** See {@link etcdPorts}. */
  basePort: number;
  /** A directory of this run: members' data and logs go under it. */
  dir: string;
  /** Number of keys, and the size of every value. */
  keys: number;
  valueBytes: number;
}

/** Starts an etcd cluster and waits until it has a leader that accepts a put. */
export async function startEtcd(opts: EtcdOptions): Promise<SystemUnderTest> {
  const kv = loadKvService();
  const procs: ServerProcess[] = [];
  try {
    for (let i = 1; i <= opts.nodes; i++) {
      procs.push(
        await spawnServer(
          opts.etcd.path,
          etcdArgs(opts.nodes, i, opts.basePort, opts.dir),
          `${opts.dir}/etcd${i}.log`,
        ),
      );
    }
    const address = (i: number) => `127.0.0.1:${etcdPorts(opts.basePort, i).client}`;
    // etcd exports etcd_server_is_leader on its client port's /metrics.
    const isLeader = async (i: number) => {
      const res = await fetch(`http://${address(i)}/metrics`);
      return /^etcd_server_is_leader 1$/m.test(await res.text());
    };
    const leader = await unlessOneExits(
      "etcd did not elect a leader",
      procs,
      until("etcd did not elect a leader", 60_000, async () => {
        for (let i = 1; i <= opts.nodes; i++) if (await isLeader(i)) return i;
        return undefined;
      }).catch(async (err) => {
        throw new Error(`${err.message}${await logTails(procs)}`);
      }),
    );
    const follower = leader === 1 ? Math.min(2, opts.nodes) : 1;
    const value = Buffer.alloc(opts.valueBytes, "x");
    const puts = Array.from(
      { length: opts.keys },
      (_, i) => kv.Put.requestSerialize({ key: Buffer.from(benchKey(i)), value }),
    );
    const ranges = Array.from(
      { length: opts.keys },
      (_, i) => kv.Range.requestSerialize({ key: Buffer.from(benchKey(i)) }),
    );
    const sut: SystemUnderTest = {
      name: "etcd",
      description:
        `etcd ${opts.etcd.version} (${opts.etcd.path}), etcd3 ${etcd3Package.version} protos`,
      pids: procs.map((p) => p.pid),
      channel: (addr) =>
        new grpc.Client(addr, grpc.credentials.createInsecure(), {
          "grpc.use_local_subchannel_pool": 1,
        }),
      op(op: Op): UnaryOp {
        const to = address(op.endsWith("-follower") ? follower : leader);
        if (op.startsWith("put")) {
          return {
            path: kv.Put.path,
            address: to,
            request: (i) => puts[i]!,
            check: () => undefined,
          };
        }
        return {
          path: kv.Range.path,
          address: to,
          request: (i) => ranges[i]!,
          check: (res) => {
            const kvs = kv.Range.responseDeserialize(res).kvs ?? [];
            return kvs.length === 1 && kvs[0]!.value?.length === opts.valueBytes
              ? undefined
              : `Range answered ${kvs.length} keys, not one of ${opts.valueBytes} bytes`;
          },
        };
      },
      stop: () => stopServers(procs),
    };
    return sut;
  } catch (err) {
    await stopServers(procs);
    throw err;
  }
}
