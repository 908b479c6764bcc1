/**
 * The command line of scripts/bench_unary_lane.ts: which paths to measure, how many
 * calls and rounds, and the port. A flag that cannot be used is a usage error (the
 * message names it; the bench exits 2), as the other benches' are
 * (scripts/bench/longrun_flags.ts).
 *
 * @module
 */

import { parseArgs } from "node:util";

/** The paths the bench measures (scripts/bench_unary_lane.ts says what each is). */
export const PATHS = ["connect", "lane", "compat", "core"] as const;
/** One of {@link PATHS}. */
export type Path = typeof PATHS[number];

/** Help text of scripts/bench_unary_lane.ts. */
export const UNARY_LANE_USAGE: string = `\
Usage: deno run -A scripts/bench_unary_lane.ts [FLAGS]

What serving one unary gRPC call costs a server, by path: a server process answers a
Get of 256 bytes, a Connect client drives it with 64 calls in flight over 16
connections, and the server's CPU per call is read from /proc. Runs alternate path by
path. It prints figures and asserts nothing.

Flags:
  --paths LIST   Comma-separated paths to measure, in order (default ${PATHS.join(",")}):
                   connect  Connect's node adapter behind the HTTP/2 guard
                   lane     the unary fast lane behind the guard, Connect for the rest
                   compat   a bare handler on node:http2's compatibility API, no guard
                   core     a bare handler on node:http2's 'stream' API, no guard
  --calls N      Calls measured per path and round (default 20000)
  --rounds N     Rounds over the paths (default 2)
  --port P       The server's port on 127.0.0.1 (default 7701)
  --garbage      Also sample the server's allocations (V8's sampling heap profiler) and
                 print the bytes allocated per call (the profiler inflates the CPU figure)
  --help         This text
`;

/** The options of a run. */
export interface UnaryLaneOptions {
  /** Serve this path and nothing else: the server process the bench starts (internal). */
  readonly serve?: Path;
  readonly paths: readonly Path[];
  readonly calls: number;
  readonly rounds: number;
  readonly port: number;
  /** Sample the server's allocations and report the bytes allocated per call. */
  readonly garbage: boolean;
  readonly help: boolean;
}

/** A flag that cannot be used; its message names it. */
export class UnaryLaneFlagError extends Error {
  override name = "UnaryLaneFlagError";
}

function positive(name: string, text: string): number {
  const v = Number(text);
  if (!Number.isInteger(v) || v <= 0) {
    throw new UnaryLaneFlagError(`--${name} takes a positive integer, not "${text}"`);
  }
  return v;
}

function path(name: string, text: string): Path {
  const p = PATHS.find((known) => known === text);
  if (p === undefined) {
    throw new UnaryLaneFlagError(
      `--${name} takes paths among ${PATHS.join(", ")}, not "${text}"`,
    );
  }
  return p;
}

/** Parses the bench's command line; throws {@link UnaryLaneFlagError} on a usage error. */
export function parseUnaryLaneFlags(args: readonly string[]): UnaryLaneOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        serve: { type: "string" },
        paths: { type: "string", default: PATHS.join(",") },
        calls: { type: "string", default: "20000" },
        rounds: { type: "string", default: "2" },
        port: { type: "string", default: "7701" },
        garbage: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
      strict: true,
    }));
  } catch (err) {
    throw new UnaryLaneFlagError(err instanceof Error ? err.message : String(err));
  }
  const port = positive("port", values.port);
  if (port > 65535) throw new UnaryLaneFlagError(`--port takes 1 to 65535, not "${port}"`);
  return {
    ...(values.serve === undefined ? {} : { serve: path("serve", values.serve) }),
    paths: values.paths.split(",").map((p) => path("paths", p)),
    calls: positive("calls", values.calls),
    rounds: positive("rounds", values.rounds),
    port,
    garbage: values.garbage,
    help: values.help,
  };
}
