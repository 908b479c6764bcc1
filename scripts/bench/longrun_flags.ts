/**
 * The command line of `deno task bench:longrun` (scripts/bench_longrun.ts): its
 * flags, then `--` and flags for every node. A flag that cannot be used is a usage
 * error (the message names it; the bench exits 2).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DEFAULT_HTTP2_LIMITS } from "../../src/http2/limits.ts";
import { LOG_LEVELS, type LogLevel } from "../../src/raft/logger.ts";

/**
 * The most connections the put clients may open to the leader: a node refuses more
 * than `--max-connections-per-address` (64 by default) from one address, and on one
 * machine every connection comes from 127.0.0.1: the bench's own status polls (one a
 * node) and the other nodes' peer, Forward and snapshot connections too. A put client
 * refused a connection fails its puts, so this is checked before the run, with 16
 * left to the others (48 is also what main's runs of `--clients 48` opened, a
 * connection a client, so that figures compare with `--connections 48`).
 */
export const MAX_PUT_CONNECTIONS = DEFAULT_HTTP2_LIMITS.maxConnectionsPerAddress - 16;

/** The connections the put clients share when `--connections` is not given (at most). */
export const DEFAULT_PUT_CONNECTIONS = 16;

/** Help text of `deno task bench:longrun`. */
export const LONGRUN_USAGE: string = `\
Usage: deno task bench:longrun [FLAGS] [-- NODE FLAGS]

Starts a 3-node cluster of real processes, stops one follower, writes --puts values
through the leader, then prints each node's RSS, data dir and CPU, how long the
stopped follower takes to catch up, and how long a full restart takes to serve a write
(issue 9's figures). It asserts nothing. Flags after -- go to every node.

Flags:
  --puts N         Puts to write (default 100000)
  --keys N         Distinct keys they write (default 10000)
  --value-bytes N  Size of every value (default 256)
  --clients N      Puts in flight (default 32)
  --connections N  gRPC connections the clients share (default: --clients, at most ${DEFAULT_PUT_CONNECTIONS};
                   at most ${MAX_PUT_CONNECTIONS}: a node accepts ${DEFAULT_HTTP2_LIMITS.maxConnectionsPerAddress} from one address)
  --base-port P    Node i listens on P+i-1, its HTTP on P+1000+i-1 (default 7501)
  --log-level L    The nodes' log level: ${LOG_LEVELS.join(", ")} (default warn)
  --restarts N     Full restarts to time (default 1)
  --timeline       Print where each restart's time went, node by node and step by step
                   (read from the nodes' log lines, so they log at info at least),
                   and each step's median and range over the restarts
  --node-main FILE Run the nodes from FILE, another checkout's src/server/main.ts (to
                   compare; default: this checkout's)
  --compare FILE   Alternate the full restarts between the nodes of --node-main (or this
                   checkout's) and those of FILE (another checkout's src/server/main.ts),
                   --restarts of each, one in turn: both timed under the same load
  --bundle         Run the nodes from a deno bundle of the node, as deployed
  --help           This text
`;

/** The options of a run. */
export interface LongrunOptions {
  readonly puts: number;
  readonly keys: number;
  readonly valueBytes: number;
  readonly clients: number;
  readonly connections: number;
  readonly basePort: number;
  readonly logLevel: LogLevel;
  readonly restarts: number;
  readonly bundle: boolean;
  /** Print each restart's timeline and a summary (longrun_timeline.ts). */
  readonly timeline: boolean;
  /** The node's main module to run instead of this checkout's, if given. */
  readonly nodeMain?: string;
  /** Another node's main module whose restarts alternate with the first's, if given. */
  readonly compare?: string;
  readonly help: boolean;
  /** The flags after `--`, for every node. */
  readonly nodeFlags: string[];
}

/** A flag that cannot be used; its message names it. */
export class LongrunFlagError extends Error {
  override name = "LongrunFlagError";
}

function positive(name: string, text: string): number {
  const v = Number(text);
  if (!Number.isInteger(v) || v <= 0) {
    throw new LongrunFlagError(`--${name} takes a positive integer, not "${text}"`);
  }
  return v;
}

/** Parses the bench's command line; throws {@link LongrunFlagError} on a usage error. */
export function parseLongrunFlags(args: readonly string[]): LongrunOptions {
  const dash = args.indexOf("--");
  const ours = dash < 0 ? [...args] : args.slice(0, dash);
  let values;
  try {
    ({ values } = parseArgs({
      args: ours,
      options: {
        puts: { type: "string", default: "100000" },
        keys: { type: "string", default: "10000" },
        "value-bytes": { type: "string", default: "256" },
        clients: { type: "string", default: "32" },
        connections: { type: "string" },
        "base-port": { type: "string", default: "7501" },
        // The nodes' --log-level: `info` or `debug` shows where a restart's time goes
        // (each line has a timestamp; the phases below print theirs).
        "log-level": { type: "string", default: "warn" },
        bundle: { type: "boolean", default: false },
        timeline: { type: "boolean", default: false },
        "node-main": { type: "string" },
        compare: { type: "string" },
        // The full restart is short and varies with the machine's load: repeat it.
        restarts: { type: "string", default: "1" },
        help: { type: "boolean", default: false },
      },
      strict: true,
    }));
  } catch (err) {
    throw new LongrunFlagError(err instanceof Error ? err.message : String(err));
  }
  const clients = positive("clients", values.clients);
  const connections = values.connections === undefined
    ? Math.min(clients, DEFAULT_PUT_CONNECTIONS)
    : positive("connections", values.connections);
  if (connections > MAX_PUT_CONNECTIONS) {
    throw new LongrunFlagError(
      `--connections ${connections}: a node accepts at most ` +
        `${DEFAULT_HTTP2_LIMITS.maxConnectionsPerAddress} connections from one address ` +
        `(the bench's own and the other nodes' among them); give at most ${MAX_PUT_CONNECTIONS} ` +
        `(clients share connections: --clients may be larger)`,
    );
  }
  if (connections > clients) {
    throw new LongrunFlagError(
      `--connections ${connections} is more than --clients ${clients}: a connection ` +
        `without a client would carry nothing`,
    );
  }
  if (values.bundle && values.compare !== undefined) {
    throw new LongrunFlagError(
      "--bundle and --compare cannot both be given: compare two checkouts' src/",
    );
  }
  if (values.bundle && values["node-main"] !== undefined) {
    throw new LongrunFlagError(
      "--bundle and --node-main cannot both be given: each says what the nodes run",
    );
  }
  const logLevel = values["log-level"] as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new LongrunFlagError(
      `--log-level takes one of ${LOG_LEVELS.join(", ")}, not "${logLevel}"`,
    );
  }
  return {
    puts: positive("puts", values.puts),
    keys: positive("keys", values.keys),
    valueBytes: positive("value-bytes", values["value-bytes"]),
    clients,
    connections,
    basePort: positive("base-port", values["base-port"]),
    logLevel,
    restarts: positive("restarts", values.restarts),
    bundle: values.bundle,
    timeline: values.timeline,
    ...(values["node-main"] === undefined ? {} : { nodeMain: values["node-main"] }),
    ...(values.compare === undefined ? {} : { compare: values.compare }),
    help: values.help,
    nodeFlags: dash < 0 ? [] : args.slice(dash + 1),
  };
}
