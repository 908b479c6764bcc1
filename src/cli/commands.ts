/**
 * What the client CLI's commands do, apart from processes and sockets: each
 * takes client factories and returns the text to print and the exit code, so
 * tests can run them against in-memory services.
 *
 * @module
 */

import {
  type CallOptions,
  type Client,
  Code,
  ConnectError,
  type Transport,
} from "@connectrpc/connect";
import { ClusterService, Role, type StatusResponse } from "../gen/raftkv/v1/cluster_pb.ts";
import { KVService } from "../gen/raftkv/v1/kv_pb.ts";
import { RaftKvClient, UnreachableError } from "../client/client.ts";
import { cannotConnect, codeName, shortReason } from "../client/reasons.ts";
import type { ClientTlsPem } from "./tls_options.ts";
import { runSnapshotSave } from "./snapshot_save.ts";
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
  | { name: "status" }
  /** Save a backup of a node's state into `file`. */
  | { name: "snapshot_save"; file: string };

/** How to reach the cluster. */
export interface RunOptions {
  /** Endpoints as `host:port`, in the order to try them. */
  endpoints: readonly string[];
  /** Time budget of the whole command, retries included, in milliseconds. */
  timeoutMs: number;
  /** Returns the clients of an endpoint (called once per endpoint and call). */
  clients: (endpoint: string) => EndpointClients;
  /** TLS for the client library's connections (put, get, delete, cas); plaintext without. */
  tls?: ClientTlsPem;
  /** Makes the client library's transport to an endpoint instead (tests: in memory). */
  transport?: (endpoint: string) => Transport;
  /** Waits between rounds of {@link callEndpoints}' retries; defaults to a timer. */
  sleep?: (ms: number) => Promise<void>;
  /** Milliseconds clock for {@link callEndpoints}' time budget; defaults to `Date.now`. */
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
  /**
   * (`status`) The nodes disagree as no correct cluster can: different states at one
   * applied index, or two leaders in one term. The cluster has forked.
   */
  DIVERGED: 4,
} as const;

const decoder = new TextDecoder();

/** Runs one command and returns its output; never throws for RPC errors. */
export async function runCommand(cmd: Command, opts: RunOptions): Promise<CommandOutput> {
  if (cmd.name === "status") return await runStatus(opts);
  if (cmd.name === "snapshot_save") return await runSnapshotSave(cmd.file, opts);
  try {
    return await runKV(cmd, opts);
  } catch (e) {
    return failed(ConnectError.from(e));
  }
}

/**
 * Runs put, get, delete or cas through the client library: it finds and follows the
 * leader, retries reads, and sends each write in an exactly-once session, so a write
 * retried after a leader change is applied once (src/client/client.ts).
 */
async function runKV(
  cmd: Exclude<Command, { name: "status" | "snapshot_save" }>,
  opts: RunOptions,
): Promise<CommandOutput> {
  const client = new RaftKvClient({
    endpoints: opts.endpoints,
    timeoutMs: opts.timeoutMs,
    ...(opts.tls === undefined ? {} : { tls: opts.tls }),
    ...(opts.transport === undefined ? {} : { transport: opts.transport }),
  });
  try {
    switch (cmd.name) {
      case "put": {
        const res = await client.put(cmd.key, cmd.value);
        return ok(`OK (index ${res.index})\n`);
      }
      case "get": {
        const res = await client.get(cmd.key);
        if (!res.found) return { stdout: "", stderr: "(not found)\n", exitCode: EXIT.NEGATIVE };
        return ok(decoder.decode(res.value) + "\n");
      }
      case "delete": {
        const deleted = await client.delete(cmd.key);
        return ok(deleted ? "OK (deleted)\n" : "OK (not found, nothing deleted)\n");
      }
      case "cas": {
        const res = await client.compareAndSwap(cmd.key, cmd.expected, cmd.value);
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
  } finally {
    client.close();
  }
}

function ok(stdout: string): CommandOutput {
  return { stdout, stderr: "", exitCode: EXIT.OK };
}

function failed(e: ConnectError): CommandOutput {
  return { stdout: "", stderr: failureLine(e), exitCode: EXIT.FAILED };
}

/**
 * The line the CLI prints for a request that failed: `error: <code>: <message>`; when
 * the client library found nothing listening at any endpoint, it asks whether a node
 * runs there (most likely none does, or the address is mistyped).
 */
export function failureLine(e: ConnectError): string {
  const hint = e instanceof UnreachableError && e.nothingListening
    ? (e.failures.size === 1
      ? "; is a node running there? (check --endpoints)"
      : "; are the nodes running? (check --endpoints)")
    : "";
  return `error: ${codeName(e.code)}: ${e.rawMessage}${hint}\n`;
}

/**
 * Codes on which {@link callEndpoints} tries the next endpoint: the node could not
 * serve the call (unreachable, or no leader known), so the change was not made there.
 */
const RETRYABLE: ReadonlySet<Code> = new Set([Code.Unavailable]);

/**
 * Sends one call of an endpoint's clients (the membership calls of ClusterService,
 * which a follower forwards to its leader): tries the endpoints in order, moving on
 * when one cannot serve it (UNAVAILABLE: unreachable, or no leader known), and
 * starts over after a pause (50 ms, doubling up to 1 s) while the time budget
 * lasts, since an election may be under way. Any other error is final: unlike the
 * client library's retries (which the KV commands use), a call that timed out or
 * whose stream broke is not sent again, since a membership change is not in an
 * exactly-once session.
 *
 * A round in which no endpoint could even be connected to (connection refused,
 * unknown host) ends the command at once.
 *
 * @throws {ConnectError} the final error; UNAVAILABLE naming every endpoint's
 *   failure when none could be connected to, or when the budget ran out
 */
export async function callEndpoints<T>(
  opts: RunOptions,
  call: (clients: EndpointClients, options: CallOptions) => Promise<T>,
): Promise<T> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  const deadline = now() + opts.timeoutMs;
  const last = new Map<string, string>();
  let pause = 50;
  for (;;) {
    let unconnectable = 0;
    for (const endpoint of opts.endpoints) {
      const remaining = deadline - now();
      if (remaining <= 0) break;
      try {
        return await call(opts.clients(endpoint), { timeoutMs: remaining });
      } catch (e) {
        const err = ConnectError.from(e);
        if (!RETRYABLE.has(err.code)) {
          throw opts.endpoints.length > 1
            ? new ConnectError(`${endpoint}: ${err.rawMessage}`, err.code)
            : err;
        }
        last.set(endpoint, shortReason(err));
        if (cannotConnect(err)) unconnectable++;
      }
    }
    if (unconnectable === opts.endpoints.length) {
      const reasons = opts.endpoints.map((ep) => `${ep}: ${last.get(ep)}`).join("; ");
      throw new ConnectError(
        opts.endpoints.length === 1
          ? `cannot connect to ${reasons}; is a node running there? (check --endpoints)`
          : `cannot connect to any endpoint (${reasons}); are the nodes running? ` +
            `(check --endpoints)`,
        Code.Unavailable,
      );
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
  "SNAPSHOT",
  "FIRST",
];

/**
 * Renders the `status` table: one row per endpoint; a node that did not answer
 * shows `down`, dashes, and the reason in parentheses after the last column.
 * LEADER is `-` when the node knows of none; ROLE is `learner` for a follower that
 * its configuration lists as a learner. SNAPSHOT is the index of the node's
 * newest snapshot (0 for none) and FIRST the first index its log still holds.
 */
export function renderStatus(results: readonly StatusResult[]): string {
  const rows = results.map((r): string[] => {
    if ("error" in r) {
      return [r.endpoint, "-", "down", "-", "-", "-", "-", "-", "-", "-", `(${r.error})`];
    }
    const s = r.status;
    return [
      r.endpoint,
      String(s.id),
      // A learner follows without voting: the table says which followers are learners.
      s.role === Role.FOLLOWER && s.learners.includes(s.id) ? "learner" : roleName(s.role),
      String(s.term),
      s.leaderId === 0n ? "-" : String(s.leaderId),
      String(s.commitIndex),
      String(s.appliedIndex),
      String(s.lastLogIndex),
      String(s.snapshotIndex),
      String(s.firstIndex),
    ];
  });
  return renderTable(STATUS_HEADER, rows);
}

/** How many hex digits of a digest or chain a divergence report shows. */
const FINGERPRINT_DIGITS = 16;

/**
 * What the answers show that no correct cluster can do, one report per problem
 * (empty when nothing is wrong):
 *
 * - nodes at the same applied index with different `state_digest` or
 *   `applied_chain`: they applied different entries at one index (State Machine
 *   Safety, §5.4.3, is broken: the cluster has forked);
 * - two nodes that lead in the same term (Election Safety, §5.2, is broken).
 *
 * Within one membership neither can happen; both follow when nodes believe in
 * different memberships (one restarted with the wrong --peers, issue 16). Nodes at
 * different applied indexes cannot be compared; a node answering on two endpoints
 * counts once. A node that reports no fingerprints (an older version) is left out.
 */
export function checkAgreement(results: readonly StatusResult[]): string[] {
  const byId = new Map<bigint, StatusResponse>();
  for (const r of results) {
    if ("status" in r && !byId.has(r.status.id)) byId.set(r.status.id, r.status);
  }
  const nodes = [...byId.values()];
  const reports: string[] = [];

  const byApplied = new Map<bigint, StatusResponse[]>();
  for (const s of nodes) {
    if (s.stateDigest === "" || s.appliedChain === "") continue;
    byApplied.set(s.appliedIndex, [...(byApplied.get(s.appliedIndex) ?? []), s]);
  }
  for (const [applied, group] of [...byApplied].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const variants = new Map<string, StatusResponse[]>();
    for (const s of group) {
      const key = `${s.stateDigest}/${s.appliedChain}`;
      variants.set(key, [...(variants.get(key) ?? []), s]);
    }
    if (variants.size < 2) continue;
    const lines = [...variants.values()].map((v) => {
      const s = v[0] as StatusResponse;
      return `  ${nodeList(v)}: state_digest ${s.stateDigest.slice(0, FINGERPRINT_DIGITS)}…, ` +
        `applied_chain ${s.appliedChain.slice(0, FINGERPRINT_DIGITS)}…`;
    });
    reports.push(
      `DIVERGED: the nodes at applied index ${applied} hold different states: they applied ` +
        `different entries, the cluster has forked (a node started with the wrong --peers?)\n` +
        lines.join("\n"),
    );
  }

  const leadersByTerm = new Map<bigint, StatusResponse[]>();
  for (const s of nodes) {
    if (s.role !== Role.LEADER) continue;
    leadersByTerm.set(s.term, [...(leadersByTerm.get(s.term) ?? []), s]);
  }
  for (const [term, leaders] of [...leadersByTerm].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    if (leaders.length < 2) continue;
    reports.push(
      `TWO LEADERS: ${nodeList(leaders)} ${leaders.length === 2 ? "both" : "all"} lead in ` +
        `term ${term}; one cluster has one leader ` +
        `per term, so these nodes believe in different memberships (check each one's --peers)`,
    );
  }
  return reports;
}

/** `node 1`, `nodes 2, 3`, in id order. */
function nodeList(nodes: readonly StatusResponse[]): string {
  const ids = nodes.map((s) => s.id).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return `${ids.length === 1 ? "node" : "nodes"} ${ids.join(", ")}`;
}

async function runStatus(opts: RunOptions): Promise<CommandOutput> {
  const results = await fetchStatuses(opts);
  const down = results.filter((r) => "error" in r).length;
  const problems = checkAgreement(results);
  return {
    stdout: renderStatus(results) + "\n",
    stderr: problems.map((p) => p + "\n").join(""),
    exitCode: problems.length > 0
      ? EXIT.DIVERGED
      : down === 0
      ? EXIT.OK
      : down === results.length
      ? EXIT.FAILED
      : EXIT.NEGATIVE,
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
