/**
 * The bench's command line: `deno task bench [--against etcd] [FLAGS]`. A flag
 * that cannot be parsed is a usage error (the message names it; the bench exits 2).
 *
 * @module
 */

import { type Op, OPS } from "./system.ts";

/** Help text of `deno task bench`. */
export const BENCH_USAGE: string = `\
Usage: deno task bench [--against etcd | --against-raftkv DIR] [FLAGS]

Starts a local raftkv cluster (and with --against etcd, an etcd cluster of the same
size), drives it with puts and linearizable gets at several numbers of operations in
flight, and prints one table: ops/s, p50/p99/p99.9 latency and server CPU-seconds per
1,000 operations (and the raftkv/etcd ratio). Every run also goes to a JSON file.

Flags:
  --against etcd        Measure etcd too, alternating raftkv and etcd run by run (A/B/A/B)
  --against-raftkv DIR  Measure the raftkv of checkout DIR too (e.g. a git worktree of an
                        older commit), alternating with this one (or --raftkv-dir's)
  --ops LIST            Operations, comma-separated (default put,get): put, get (to the
                        leader), put-follower, get-follower (to a follower)
  --in-flight LIST      Operations in flight, comma-separated (default 1,16,64,256)
  --duration S          Measured seconds of each run (default 5; decimals allowed)
  --warmup S            Seconds of load before each run's measurement (default 1)
  --rounds N            Runs of each system per cell (default 2 with --against..., else 1)
  --connections N       gRPC connections the operations share (default: in flight, at most 16)
  --keys N              Distinct keys written and read (default 1000)
  --value-bytes N       Size of every value (default 256)
  --nodes N             Members of each cluster (default 3)
  --base-port P         raftkv node i listens on P+i-1, its HTTP on P+1000+i-1 (default 7401)
  --etcd-base-port P    etcd member i serves clients on P+i-1, peers on P+10+i-1 (default 7451)
  --against-base-port P --against-raftkv's node i listens on P+i-1, HTTP P+1000+i-1 (default 7421)
  --etcd PATH           The etcd binary (default: etcd on PATH, else /usr/bin/etcd)
  --raftkv-dir DIR      Run the raftkv nodes of another checkout (e.g. a git worktree of
                        an older commit), started with that checkout's scripts/cluster.ts
  --json PATH           Where to write every run (default bench-results/bench-<time>.json)
  --tls                 raftkv over mutual TLS with throwaway certificates (not with --against etcd)
  --help                Print this help
`;

/** What the bench measures and how. */
export interface BenchOptions {
  against: "etcd" | undefined;
  ops: Op[];
  inFlight: number[];
  durationSeconds: number;
  warmupSeconds: number;
  rounds: number;
  /** Undefined: min(in flight, 16) per cell. */
  connections: number | undefined;
  keys: number;
  valueBytes: number;
  nodes: number;
  basePort: number;
  etcdBasePort: number;
  etcd: string | undefined;
  raftkvDir: string | undefined;
  /** --against-raftkv: a second raftkv checkout to measure beside the first. */
  againstRaftkv: string | undefined;
  againstBasePort: number;
  json: string | undefined;
  tls: boolean;
  help: boolean;
}

/** A bench command line that cannot be run; `message` says why. */
export class BenchFlagError extends Error {
  /** Creates a BenchFlagError with a complete, user-facing message. */
  constructor(message: string) {
    super(message);
    this.name = "BenchFlagError";
  }
}

const VALUE_FLAGS = [
  "against",
  "ops",
  "in-flight",
  "duration",
  "warmup",
  "rounds",
  "connections",
  "keys",
  "value-bytes",
  "nodes",
  "base-port",
  "etcd-base-port",
  "etcd",
  "raftkv-dir",
  "json",
  "against-raftkv",
  "against-base-port",
] as const;
type ValueFlag = typeof VALUE_FLAGS[number];

function positiveInteger(flag: string, text: string): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new BenchFlagError(`Cannot parse --${flag}: "${text}" is not a positive integer`);
  }
  return n;
}

function seconds(flag: string, text: string, allowZero: boolean): number {
  const n = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!Number.isFinite(n) || n < 0 || (!allowZero && n === 0)) {
    throw new BenchFlagError(
      `Cannot parse --${flag}: "${text}" is not a number of seconds${allowZero ? "" : " above 0"}`,
    );
  }
  return n;
}

function port(flag: string, text: string, span: number): number {
  const p = positiveInteger(flag, text);
  if (p + span > 65535) {
    throw new BenchFlagError(`Cannot use --${flag} ${p}: the bench needs ports up to ${p + span}`);
  }
  return p;
}

/**
 * Parses the bench's arguments; `--flag value` and `--flag=value` both work.
 *
 * @throws {BenchFlagError} on an unknown flag, a missing or malformed value, or a
 *   combination that cannot run
 */
export function parseBenchFlags(args: readonly string[]): BenchOptions {
  const values = new Map<ValueFlag, string>();
  let tls = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--help" || arg === "-h") return { ...parseBenchFlags([]), help: true };
    if (arg === "--tls") {
      tls = true;
      continue;
    }
    if (!arg.startsWith("--")) {
      throw new BenchFlagError(`Cannot parse arguments: unexpected argument "${arg}"`);
    }
    const eq = arg.indexOf("=");
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const flag = VALUE_FLAGS.find((f) => f === name);
    if (flag === undefined) {
      throw new BenchFlagError(`Cannot parse arguments: unknown flag "--${name}" (see --help)`);
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : args[++i];
    if (value === undefined || value === "" || (eq < 0 && value.startsWith("--"))) {
      throw new BenchFlagError(`Cannot parse --${flag}: missing value`);
    }
    if (values.has(flag)) throw new BenchFlagError(`Cannot parse --${flag}: given more than once`);
    values.set(flag, value);
  }
  const get = (f: ValueFlag) => values.get(f);

  const againstText = get("against");
  if (againstText !== undefined && againstText !== "etcd") {
    throw new BenchFlagError(`Cannot parse --against: "${againstText}" is not "etcd"`);
  }
  const against = againstText === undefined ? undefined : "etcd" as const;
  if (tls && against !== undefined) {
    throw new BenchFlagError(
      "Cannot use --tls with --against etcd: etcd runs in plaintext, so the comparison would " +
        "not be like for like",
    );
  }

  const againstRaftkv = get("against-raftkv");
  if (againstRaftkv !== undefined && against !== undefined) {
    throw new BenchFlagError(
      "Cannot use --against etcd with --against-raftkv: one comparison per run",
    );
  }
  const opsText = get("ops") ?? "put,get";
  if (/^\d+$/.test(opsText)) {
    throw new BenchFlagError(
      `Cannot parse --ops: it takes operations (put,get,put-follower,get-follower), not a ` +
        `count; each run now lasts --duration seconds`,
    );
  }
  const ops = opsText.split(",").map((o) => {
    const op = OPS.find((x) => x === o);
    if (op === undefined) {
      throw new BenchFlagError(`Cannot parse --ops: "${o}" is not one of ${OPS.join(", ")}`);
    }
    return op;
  });
  const inFlight = (get("in-flight") ?? "1,16,64,256").split(",").map((n) =>
    positiveInteger("in-flight", n)
  );
  const nodes = get("nodes") === undefined ? 3 : positiveInteger("nodes", get("nodes")!);
  if (nodes > 9) throw new BenchFlagError(`Cannot parse --nodes: ${nodes} is above 9`);
  if (nodes < 2 && ops.some((o) => o.endsWith("-follower"))) {
    throw new BenchFlagError("Cannot measure a follower's operations with --nodes 1");
  }
  const int = (f: ValueFlag, fallback: number) =>
    get(f) === undefined ? fallback : positiveInteger(f, get(f)!);
  return {
    against,
    ops: [...new Set(ops)],
    inFlight: [...new Set(inFlight)],
    durationSeconds: get("duration") === undefined
      ? 5
      : seconds("duration", get("duration")!, false),
    warmupSeconds: get("warmup") === undefined ? 1 : seconds("warmup", get("warmup")!, true),
    rounds: int("rounds", against === undefined && againstRaftkv === undefined ? 1 : 2),
    connections: get("connections") === undefined
      ? undefined
      : positiveInteger("connections", get("connections")!),
    keys: int("keys", 1000),
    valueBytes: int("value-bytes", 256),
    nodes,
    basePort: get("base-port") === undefined ? 7401 : port("base-port", get("base-port")!, 1008),
    etcdBasePort: get("etcd-base-port") === undefined
      ? 7451
      : port("etcd-base-port", get("etcd-base-port")!, 19),
    etcd: get("etcd"),
    raftkvDir: get("raftkv-dir"),
    againstRaftkv,
    againstBasePort: get("against-base-port") === undefined
      ? 7421
      : port("against-base-port", get("against-base-port")!, 1008),
    json: get("json"),
    tls,
    help: false,
  };
}

/** The connections a cell with `inFlight` operations uses. */
export function connectionsFor(opts: BenchOptions, inFlight: number): number {
  return Math.min(inFlight, opts.connections ?? 16);
}
