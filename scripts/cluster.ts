/**
 * Runs a local raftkv cluster: N node processes on consecutive loopback ports,
 * their output interleaved line by line with a `[n<i>]` prefix.
 *
 * ```sh
 * deno task cluster [--nodes 3] [--base-port 7001] [--data-dir ./data/cluster] [--log-level info]
 * deno task cluster --only 2     # node 2 of that cluster alone, to start a node you stopped
 * ```
 *
 * Before starting anything it checks that every port it needs is free: a node left
 * running on one (the quick start's `deno task node` listens on 7001) would
 * otherwise be taken for a member of the new cluster. It prints each node's
 * address, pid and data dir. Ctrl-C (SIGINT) or SIGTERM stops every node with
 * SIGTERM, waits for them to exit (SIGKILL after 10 s, or at once on a second
 * Ctrl-C) and exits 0. A node that exits on its own is reported, with the command
 * that starts it again; the others keep running.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { LOG_LEVELS, type LogLevel } from "../src/raft/logger.ts";
import { readFlagArgument } from "../src/server/flag_argument.ts";

/** Options of the launcher. */
export interface ClusterOptions {
  /** Number of nodes, 1..9. */
  nodes: number;
  /** Port of node 1; node i listens on basePort + i - 1. */
  basePort: number;
  /** Parent directory of the nodes' data directories (`<dataDir>/node<i>`). */
  dataDir: string;
  /** Log level passed to every node. */
  logLevel: LogLevel;
  /** Start only this node of the cluster (1..nodes); every node when absent. */
  only?: number;
  /** True when --help was given; the other fields then hold defaults. */
  help: boolean;
}

/** A launcher command line that cannot be run; `message` says why. */
export class ClusterFlagError extends Error {
  /** Creates a ClusterFlagError with a complete, user-facing message. */
  constructor(message: string) {
    super(message);
    this.name = "ClusterFlagError";
  }
}

/** Help text of the launcher. */
export const CLUSTER_USAGE: string = `\
Usage: deno task cluster [FLAGS]

Starts a local raftkv cluster on 127.0.0.1 and prefixes each node's output with [n<id>].
Ctrl-C stops every node (SIGTERM, then SIGKILL after 10 s) and exits.

Flags:
  --nodes N            Number of nodes, 1 to 9 (default 3)
  --base-port PORT     Port of node 1; node i listens on PORT+i-1 (default 7001), and
                       serves HTTP (metrics, web view) on PORT+1000+i-1 (default 8001)
  --data-dir DIR       Node i keeps its data in DIR/node<i> (default ./data/cluster)
  --log-level LEVEL    debug, info, warn or error (default info)
  --only ID            Start only node ID of that cluster, e.g. to start again a node
                       that was killed (the other flags must be those of the cluster)
  --help               Print this help

Every port is checked first: if one is in use (by a node left running, say), nothing
is started and the launcher exits 1.
`;

const FLAGS = ["nodes", "base-port", "data-dir", "log-level", "only"] as const;
type Flag = typeof FLAGS[number];

/**
 * Parses the launcher's arguments; `--flag value` and `--flag=value` both work.
 *
 * @throws {ClusterFlagError} on an unknown flag, a missing or malformed value,
 *   --nodes outside 1..9, or ports beyond 65535
 */
export function parseClusterFlags(args: readonly string[]): ClusterOptions {
  const opts: ClusterOptions = {
    nodes: 3,
    basePort: 7001,
    dataDir: "./data/cluster",
    logLevel: "info",
    help: false,
  };
  if (args.some((a) => a === "--help" || a === "-h")) return { ...opts, help: true };
  const seen = new Set<Flag>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (!arg.startsWith("--") || arg === "--") {
      throw new ClusterFlagError(`Cannot parse arguments: unexpected argument "${arg}"`);
    }
    const read = readFlagArgument(args, i);
    const name = read.name.slice(2);
    const flag = FLAGS.find((f) => f === name);
    if (flag === undefined) {
      throw new ClusterFlagError(`Cannot parse arguments: unknown flag "--${name}"`);
    }
    const value = read.value;
    i = read.last;
    if (value === undefined || value === "") {
      throw new ClusterFlagError(`Cannot parse --${flag}: missing value`);
    }
    if (seen.has(flag)) throw new ClusterFlagError(`Cannot parse --${flag}: given more than once`);
    seen.add(flag);
    switch (flag) {
      case "nodes": {
        const n = parseInteger(flag, value);
        if (n < 1 || n > 9) {
          throw new ClusterFlagError(`Cannot parse --nodes: ${n} is not between 1 and 9`);
        }
        opts.nodes = n;
        break;
      }
      case "base-port": {
        const p = parseInteger(flag, value);
        if (p < 1 || p > 65535) {
          throw new ClusterFlagError(`Cannot parse --base-port: ${p} is not between 1 and 65535`);
        }
        opts.basePort = p;
        break;
      }
      case "data-dir":
        opts.dataDir = value;
        break;
      case "log-level": {
        const level = LOG_LEVELS.find((l) => l === value);
        if (level === undefined) {
          throw new ClusterFlagError(
            `Cannot parse --log-level: "${value}" is not one of ${LOG_LEVELS.join(", ")}`,
          );
        }
        opts.logLevel = level;
        break;
      }
      case "only":
        opts.only = parseInteger(flag, value);
        break;
    }
  }
  if (opts.only !== undefined && (opts.only < 1 || opts.only > opts.nodes)) {
    throw new ClusterFlagError(
      `Cannot parse --only: ${opts.only} is not a node of a ${opts.nodes}-node cluster ` +
        `(1 to ${opts.nodes})`,
    );
  }
  const last = opts.basePort + opts.nodes - 1;
  if (last > 65535) {
    throw new ClusterFlagError(
      `Cannot use --base-port ${opts.basePort} with --nodes ${opts.nodes}: node ${opts.nodes} would need port ${last}, above 65535`,
    );
  }
  const lastHttp = last + HTTP_PORT_OFFSET;
  if (lastHttp > 65535) {
    throw new ClusterFlagError(
      `Cannot use --base-port ${opts.basePort} with --nodes ${opts.nodes}: node ${opts.nodes}'s HTTP port would be ${lastHttp}, above 65535`,
    );
  }
  return opts;
}

function parseInteger(flag: Flag, value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new ClusterFlagError(`Cannot parse --${flag}: "${value}" is not an integer`);
  }
  return n;
}

/** The address of node `id` (1-based): `127.0.0.1:<basePort + id - 1>`. */
export function nodeAddress(opts: ClusterOptions, id: number): string {
  return `127.0.0.1:${opts.basePort + id - 1}`;
}

/** Node `id`'s HTTP port (--http-listen): metrics, probes, the web view; 1000 above its gRPC port. */
export function nodeHttpAddress(opts: ClusterOptions, id: number): string {
  return `127.0.0.1:${opts.basePort + HTTP_PORT_OFFSET + id - 1}`;
}

/** How far above a node's gRPC port its HTTP port is. */
export const HTTP_PORT_OFFSET = 1000;

/** The `--peers` value shared by every node: `1=127.0.0.1:7001,2=...`. */
export function peersFlag(opts: ClusterOptions): string {
  return Array.from({ length: opts.nodes }, (_, k) => `${k + 1}=${nodeAddress(opts, k + 1)}`)
    .join(",");
}

/** Node `id`'s data directory: `<dataDir>/node<id>`. */
export function nodeDataDir(opts: ClusterOptions, id: number): string {
  return `${opts.dataDir.replace(/\/+$/, "") || "/"}/node${id}`;
}

/**
 * The V8 flags `deno task node` runs a node with, and so every node these scripts
 * start (README, "Memory"): young-generation semi-spaces of at most 2 MB instead of
 * up to 16 MB, and an old generation that grows by half of what a full collection
 * leaves live instead of V8's dynamic factor (up to 4×). Measured by `deno task
 * bench:longrun`, they keep a node under 150 MB of RSS. And collections on the main
 * thread only (`--single-threaded-gc`): V8's parallel scavenges hand work to helper
 * threads, which on a small machine shared by the nodes cost more CPU than they save
 * (README, "Memory": 4-18 % less server CPU per operation in A/B runs of `deno task bench`).
 */
export const NODE_V8_FLAGS =
  "--v8-flags=--max-semi-space-size=2,--heap-growing-percent=50,--single-threaded-gc";

/**
 * The environment `deno task node` adds for a node (deno.json, deploy/), and so every
 * node these scripts start (README, "Memory"): glibc's malloc with its mmap threshold
 * fixed at its default, 128 KiB. Without it glibc raises the threshold to the size of
 * the largest mmapped block freed so far (up to 32 MiB): after the first snapshot
 * (one 2.5 MB buffer, every 10,000 entries) every buffer below that size (HTTP/2 and
 * socket buffers, the watch history's segments, snapshot chunks) comes from the
 * malloc arenas, whose freed holes are not given back to the system. Fixed, a buffer
 * of 128 KiB or more is its own mapping, returned when freed. Measured (see README):
 * 11 MB of free arena memory held by each node after 100,000 puts, and 10 to 13 MB
 * less RSS on a follower with the threshold fixed. And one malloc arena instead of
 * one per thread (up to 8 per core): V8's compiler threads build each optimized
 * function in memory of their own arena, which kept 8 to 11 MB of freed blocks on a
 * leader under load (3 on a follower); in the one arena the main thread reuses them
 * (measured: 6 to 9 MB less RSS on a leader, the same CPU per put). The `deno`
 * binary links glibc; another libc ignores the variables.
 */
export const NODE_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: "131072",
  MALLOC_ARENA_MAX: "1",
};

/** The arguments of `deno` that run node `id`. */
export function nodeCommandArgs(opts: ClusterOptions, id: number, mainPath: string): string[] {
  return [
    "run",
    NODE_V8_FLAGS,
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    mainPath,
    "--id",
    String(id),
    "--listen",
    nodeAddress(opts, id),
    "--peers",
    peersFlag(opts),
    "--data-dir",
    nodeDataDir(opts, id),
    "--log-level",
    opts.logLevel,
    "--http-listen",
    nodeHttpAddress(opts, id),
  ];
}

/** The ids of the nodes this run starts: `--only`'s, or all of them. */
export function nodeIds(opts: ClusterOptions): number[] {
  if (opts.only !== undefined) return [opts.only];
  return Array.from({ length: opts.nodes }, (_, k) => k + 1);
}

/**
 * The command that starts node `id` of this cluster again by itself: `deno task
 * cluster --only <id>` with every flag that differs from its default.
 */
export function restartCommand(opts: ClusterOptions, id: number): string {
  const d = parseClusterFlags([]);
  const flags: string[] = [];
  if (opts.nodes !== d.nodes) flags.push("--nodes", String(opts.nodes));
  if (opts.basePort !== d.basePort) flags.push("--base-port", String(opts.basePort));
  if (opts.dataDir !== d.dataDir) flags.push("--data-dir", shellQuote(opts.dataDir));
  if (opts.logLevel !== d.logLevel) flags.push("--log-level", opts.logLevel);
  return ["deno task cluster", ...flags, "--only", String(id)].join(" ");
}

/** `s` as one shell word: bare when it is plain, else in single quotes. */
function shellQuote(s: string): string {
  return /^[\w./:=@%+,-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * The ports among `ports` that cannot be listened on at 127.0.0.1 (something
 * listens there already), in order. Checked before anything starts; a port taken
 * between this check and a node's start still fails that node, which says so.
 */
export function portsInUse(ports: readonly number[]): number[] {
  const taken: number[] = [];
  for (const port of ports) {
    try {
      Deno.listen({ hostname: "127.0.0.1", port, transport: "tcp" }).close();
    } catch (err) {
      if (!(err instanceof Deno.errors.AddrInUse)) throw err;
      taken.push(port);
    }
  }
  return taken;
}

/** Writes text to a stream, one write chain per stream so lines never interleave. */
class Output {
  #chain: Promise<void> = Promise.resolve();
  #encoder = new TextEncoder();

  constructor(private readonly sink: { write(p: Uint8Array): Promise<number> }) {}

  write(text: string): Promise<void> {
    const bytes = this.#encoder.encode(text);
    this.#chain = this.#chain.then(async () => {
      let n = 0;
      while (n < bytes.length) n += await this.sink.write(bytes.subarray(n));
    }).catch(() => {});
    return this.#chain;
  }
}

/**
 * Calls `onLines` with the complete lines of each chunk of `stream` (none empty
 * of lines), and with the unterminated rest at its end, until it ends.
 */
export async function forEachLines(
  stream: ReadableStream<Uint8Array>,
  onLines: (lines: string[]) => Promise<void> | void,
): Promise<void> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    if (lines.length > 0) await onLines(lines);
  }
  if (pending !== "") await onLines([pending]);
}

/** Copies a child's stream to `out`, prefixing every line with `prefix`. */
function pipeLines(stream: ReadableStream<Uint8Array>, prefix: string, out: Output): Promise<void> {
  return forEachLines(stream, (lines) => out.write(lines.map((l) => `${prefix} ${l}\n`).join("")));
}

interface Running {
  id: number;
  child: Deno.ChildProcess;
  done: Promise<Deno.CommandStatus>;
  exited: boolean;
}

const GRACE_MS = 10_000;

async function run(opts: ClusterOptions): Promise<number> {
  const stdout = new Output(Deno.stdout);
  const stderr = new Output(Deno.stderr);
  const say = (text: string): Promise<void> => stdout.write(`[cluster] ${text}\n`);
  const deno = Deno.execPath();
  const mainPath = fileURLToPath(new URL("../src/server/main.ts", import.meta.url));

  const ids = nodeIds(opts);
  const taken = portsInUse(
    ids.flatMap((id) => [opts.basePort + id - 1, opts.basePort + HTTP_PORT_OFFSET + id - 1]),
  );
  if (taken.length > 0) {
    const which = taken.map((p) => {
      const http = p >= opts.basePort + HTTP_PORT_OFFSET;
      const id = p - opts.basePort - (http ? HTTP_PORT_OFFSET : 0) + 1;
      return `127.0.0.1:${p} (node ${id}${http ? "'s HTTP port" : ""})`;
    }).join(", ");
    await stderr.write(
      `error: Cannot start the cluster: ${which} ${taken.length === 1 ? "is" : "are"} already ` +
        `in use. A node left running there (the quick start's \`deno task node\` listens on ` +
        `7001) would answer for the cluster: stop it first (Ctrl-C in its terminal), or use ` +
        `other ports with --base-port.\n`,
    );
    return 1;
  }

  let stopping = false;
  const nodes: Running[] = [];
  for (const id of ids) {
    await Deno.mkdir(nodeDataDir(opts, id), { recursive: true });
    const child = new Deno.Command(deno, {
      args: nodeCommandArgs(opts, id, mainPath),
      env: NODE_ENV,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const prefix = `[n${id}]`;
    const piped = Promise.all([
      pipeLines(child.stdout, prefix, stdout),
      pipeLines(child.stderr, prefix, stderr),
    ]);
    const node: Running = { id, child, done: child.status, exited: false };
    node.done = child.status.then(async (status) => {
      await piped.catch(() => {});
      node.exited = true;
      if (!stopping) {
        const how = status.signal === null
          ? `with code ${status.code}`
          : `on signal ${status.signal}`;
        const others = nodes.some((n) => !n.exited) ? "; the others keep running" : "";
        await say(`node ${id} exited unexpectedly ${how}${others}`);
        await say(`to start it again, in another terminal: ${restartCommand(opts, id)}`);
      }
      return status;
    });
    nodes.push(node);
    await say(
      `node ${id}: ${nodeAddress(opts, id)}  pid ${child.pid}  data ${nodeDataDir(opts, id)}`,
    );
  }
  const endpoints = Array.from({ length: opts.nodes }, (_, k) => nodeAddress(opts, k + 1))
    .join(",");
  await say(`try: deno task client --endpoints ${endpoints} status`);
  await say(`web view: http://${nodeHttpAddress(opts, ids[0] ?? 1)}/ (metrics at /metrics)`);
  await say(ids.length === 1 && opts.nodes > 1 ? "Ctrl-C stops it" : "Ctrl-C stops every node");

  const signal = (name: Deno.Signal): void => {
    for (const n of nodes) {
      if (n.exited) continue;
      try {
        n.child.kill(name);
      } catch {
        // The child exited between the check and the kill.
      }
    }
  };

  const stopped = new Promise<void>((resolve) => {
    const onSignal = (): void => {
      if (stopping) {
        void say("second interrupt: killing every node");
        signal("SIGKILL");
        return;
      }
      stopping = true;
      void say(`stopping ${nodes.filter((n) => !n.exited).length} node(s)`);
      signal("SIGTERM");
      resolve();
    };
    Deno.addSignalListener("SIGINT", onSignal);
    Deno.addSignalListener("SIGTERM", onSignal);
  });

  const allExited = Promise.all(nodes.map((n) => n.done));
  await Promise.race([stopped, allExited]);
  if (!stopping) {
    await say("every node has exited");
    return 1;
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const grace = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), GRACE_MS);
  });
  if (await Promise.race([allExited, grace]) === "timeout") {
    const left = nodes.filter((n) => !n.exited).map((n) => n.id);
    await say(`node(s) ${left.join(", ")} still running after ${GRACE_MS / 1000} s: SIGKILL`);
    signal("SIGKILL");
    await allExited;
  }
  clearTimeout(timer);
  await say("every node stopped");
  return 0;
}

if (import.meta.main) {
  let opts: ClusterOptions;
  try {
    opts = parseClusterFlags(Deno.args);
  } catch (e) {
    if (!(e instanceof ClusterFlagError)) throw e;
    console.error(`error: ${e.message}\nRun "deno task cluster --help" for the flags.`);
    Deno.exit(2);
  }
  if (opts.help) {
    console.log(CLUSTER_USAGE);
    Deno.exit(0);
  }
  Deno.exit(await run(opts));
}
