/**
 * What the client CLI's commands do, apart from processes and sockets: each
 * takes client factories and returns the text to print and the exit code, so
 * tests can run them against in-memory services.
 *
 * @module
 */

import { type CallOptions, type Client, Code, ConnectError } from "@connectrpc/connect";
import { ClusterService, Role, type StatusResponse } from "../gen/raftkv/v1/cluster_pb.ts";
import { KVService } from "../gen/raftkv/v1/kv_pb.ts";
import { renderTable } from "./table.ts";

/** A client of `raftkv.v1.KVService`. */
export type KVClient = Client<typeof KVService>;
/** A client of `raftkv.v1.ClusterService`. */
export type ClusterClient = Client<typeof ClusterService>;

/** The clients for one endpoint. */
export interface EndpointClients {
  kv: KVClient;
  cluster: ClusterClient;
}

/** A command, as parsed from the command line. */
export type Command =
  | { name: "put"; key: string; value: string }
  | { name: "get"; key: string }
  | { name: "delete"; key: string }
  /** `expected` undefined: the key must be absent. */
  | { name: "cas"; key: string; expected: string | undefined; value: string }
  | { name: "status" };

/** How to reach the cluster. */
export interface RunOptions {
  /** Endpoints as `host:port`, in the order to try them. */
  endpoints: readonly string[];
  /** Time budget of the whole command, retries included, in milliseconds. */
  timeoutMs: number;
  /** Returns the clients of an endpoint (called once per endpoint and call). */
  clients: (endpoint: string) => EndpointClients;
  /** Waits between rounds of retries; defaults to a timer. */
  sleep?: (ms: number) => Promise<void>;
  /** Milliseconds clock for the time budget; defaults to `Date.now`. */
  now?: () => number;
}

/** What a command prints and how the process exits. */
export interface CommandOutput {
  /** Text for stdout; empty or ending with a newline. */
  stdout: string;
  /** Text for stderr; empty or ending with a newline. */
  stderr: string;
  /** See {@link EXIT}. */
  exitCode: number;
}

/** The CLI's exit codes. */
export const EXIT = {
  /** The command did what was asked. */
  OK: 0,
  /** A negative answer: `get` of a missing key, a `cas` whose comparison failed, a node down in `status`. */
  NEGATIVE: 1,
  /** Bad usage. */
  USAGE: 2,
  /** The request failed: no leader reachable in time, or an error from the server. */
  FAILED: 3,
} as const;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Runs one command and returns its output; never throws for RPC errors. */
export async function runCommand(cmd: Command, opts: RunOptions): Promise<CommandOutput> {
  if (cmd.name === "status") return await runStatus(opts);
  try {
    return await runKV(cmd, opts);
  } catch (e) {
    return failed(ConnectError.from(e));
  }
}

async function runKV(
  cmd: Exclude<Command, { name: "status" }>,
  opts: RunOptions,
): Promise<CommandOutput> {
  switch (cmd.name) {
    case "put": {
      const session = await openSession(opts);
      const res = await callLeader(
        opts,
        (kv, call) => kv.put({ key: cmd.key, value: encoder.encode(cmd.value), session }, call),
      );
      return ok(`OK (index ${res.index})\n`);
    }
    case "get": {
      const res = await callLeader(opts, (kv, call) => kv.get({ key: cmd.key }, call));
      if (!res.found) return { stdout: "", stderr: "(not found)\n", exitCode: EXIT.NEGATIVE };
      return ok(decoder.decode(res.value) + "\n");
    }
    case "delete": {
      const session = await openSession(opts);
      const res = await callLeader(opts, (kv, call) => kv.delete({ key: cmd.key, session }, call));
      return ok(res.deleted ? "OK (deleted)\n" : "OK (not found, nothing deleted)\n");
    }
    case "cas": {
      const session = await openSession(opts);
      const res = await callLeader(opts, (kv, call) =>
        kv.compareAndSwap({
          key: cmd.key,
          expected: cmd.expected === undefined ? undefined : encoder.encode(cmd.expected),
          value: encoder.encode(cmd.value),
          session,
        }, call));
      if (res.succeeded) return ok("OK (swapped)\n");
      const current = res.found
        ? `the key holds ${JSON.stringify(decoder.decode(res.value))}`
        : "the key is absent";
      return {
        stdout: "",
        stderr: `compare failed: ${current}\n`,
        exitCode: EXIT.NEGATIVE,
      };
    }
  }
}

/**
 * Opens a client session for the one write this command makes, so that the
 * retries {@link callLeader} may send after an UNAVAILABLE apply it at most once.
 */
async function openSession(opts: RunOptions): Promise<{ id: bigint; sequence: bigint }> {
  const res = await callLeader(opts, (kv, call) => kv.openSession({}, call));
  return { id: res.sessionId, sequence: 1n };
}

function ok(stdout: string): CommandOutput {
  return { stdout, stderr: "", exitCode: EXIT.OK };
}

function failed(e: ConnectError): CommandOutput {
  return {
    stdout: "",
    stderr: `error: ${codeName(e.code)}: ${e.rawMessage}\n`,
    exitCode: EXIT.FAILED,
  };
}

/**
 * Codes on which the next endpoint is tried: the node could not serve the call
 * (unreachable, or no leader known). A write retried this way is applied at most
 * once, thanks to its session.
 */
const RETRYABLE: ReadonlySet<Code> = new Set([Code.Unavailable]);

/**
 * Sends one KV call to the leader: tries the endpoints in order, moving on when
 * one cannot serve it (UNAVAILABLE: unreachable, or no leader known), and
 * starts over after a pause (50 ms, doubling up to 1 s) while the time budget
 * lasts, since an election may be under way. Any other error is final.
 *
 * @throws {ConnectError} the final error, or UNAVAILABLE naming every endpoint's
 *   last failure when the budget ran out
 */
export async function callLeader<T>(
  opts: RunOptions,
  call: (kv: KVClient, options: CallOptions) => Promise<T>,
): Promise<T> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  const deadline = now() + opts.timeoutMs;
  const last = new Map<string, string>();
  let pause = 50;
  for (;;) {
    for (const endpoint of opts.endpoints) {
      const remaining = deadline - now();
      if (remaining <= 0) break;
      try {
        return await call(opts.clients(endpoint).kv, { timeoutMs: remaining });
      } catch (e) {
        const err = ConnectError.from(e);
        if (!RETRYABLE.has(err.code)) {
          throw opts.endpoints.length > 1
            ? new ConnectError(`${endpoint}: ${err.rawMessage}`, err.code)
            : err;
        }
        last.set(endpoint, shortReason(err));
      }
    }
    if (now() + pause >= deadline) break;
    await sleep(pause);
    pause = Math.min(pause * 2, 1000);
  }
  const reasons = opts.endpoints
    .map((ep) => `${ep}: ${last.get(ep) ?? "not tried"}`)
    .join("; ");
  throw new ConnectError(
    `no leader answered within ${opts.timeoutMs} ms (${reasons})`,
    Code.Unavailable,
  );
}

/** One row of `status`: a node's answer, or why it gave none. */
export type StatusResult =
  | { endpoint: string; status: StatusResponse }
  | { endpoint: string; error: string };

/**
 * Asks every endpoint for its status, concurrently, each within the time budget.
 * Never rejects: a failed endpoint yields its shortened error.
 */
export function fetchStatuses(opts: RunOptions): Promise<StatusResult[]> {
  return Promise.all(opts.endpoints.map(async (endpoint): Promise<StatusResult> => {
    try {
      const status = await opts.clients(endpoint).cluster.status({}, {
        timeoutMs: opts.timeoutMs,
      });
      return { endpoint, status };
    } catch (e) {
      return { endpoint, error: shortReason(e) };
    }
  }));
}

/** Header of the `status` table. */
export const STATUS_HEADER: readonly string[] = [
  "ENDPOINT",
  "ID",
  "ROLE",
  "TERM",
  "LEADER",
  "COMMIT",
  "APPLIED",
  "LAST",
];

/**
 * Renders the `status` table: one row per endpoint; a node that did not answer
 * shows `down`, dashes, and the reason in parentheses after the last column.
 * LEADER is `-` when the node knows of none.
 */
export function renderStatus(results: readonly StatusResult[]): string {
  const rows = results.map((r): string[] => {
    if ("error" in r) return [r.endpoint, "-", "down", "-", "-", "-", "-", "-", `(${r.error})`];
    const s = r.status;
    return [
      r.endpoint,
      String(s.id),
      roleName(s.role),
      String(s.term),
      s.leaderId === 0n ? "-" : String(s.leaderId),
      String(s.commitIndex),
      String(s.appliedIndex),
      String(s.lastLogIndex),
    ];
  });
  return renderTable(STATUS_HEADER, rows);
}

async function runStatus(opts: RunOptions): Promise<CommandOutput> {
  const results = await fetchStatuses(opts);
  const down = results.filter((r) => "error" in r).length;
  return {
    stdout: renderStatus(results) + "\n",
    stderr: "",
    exitCode: down === 0 ? EXIT.OK : down === results.length ? EXIT.FAILED : EXIT.NEGATIVE,
  };
}

/** A role as the status table shows it: `leader`, `follower`, `pre-candidate`, ... */
export function roleName(role: Role): string {
  switch (role) {
    case Role.FOLLOWER:
      return "follower";
    case Role.PRE_CANDIDATE:
      return "pre-candidate";
    case Role.CANDIDATE:
      return "candidate";
    case Role.LEADER:
      return "leader";
    default:
      return "unknown";
  }
}

/** A Connect code as gRPC spells it in lower case: `unavailable`, `failed_precondition`. */
export function codeName(code: Code): string {
  const name = Code[code] as string | undefined;
  return name === undefined
    ? `code_${code}`
    : name.replace(/[a-z][A-Z]/g, (m) => `${m[0]}_${m[1]}`).toLowerCase();
}

const NET_REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ETIMEDOUT: "connect timed out",
  ENOTFOUND: "unknown host",
  EAI_AGAIN: "unknown host",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
};

/**
 * Shortens an error for one table cell or list item: a network failure as
 * `connection refused`, `unknown host`, ...; a deadline as `timed out`; anything
 * else as `<code>: <first line of the message>`, at most 80 characters.
 */
export function shortReason(e: unknown): string {
  for (let c: unknown = e, depth = 0; c instanceof Error && depth < 8; c = c.cause, depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === "string" && code in NET_REASONS) return NET_REASONS[code] as string;
  }
  const err = ConnectError.from(e);
  if (err.code === Code.DeadlineExceeded) return "timed out";
  const first = err.rawMessage.split("\n", 1)[0] ?? "";
  const text = `${codeName(err.code)}: ${first}`;
  return text.length > 80 ? text.slice(0, 79) + "…" : text;
}
