/**
 * The raftkv client CLI:
 *
 * ```sh
 * deno task client [--endpoints HOST:PORT,...] [--timeout-ms N] COMMAND [ARGS...]
 * ```
 *
 * See {@link CLIENT_USAGE}. Run as a program, it parses the arguments, runs the
 * command over gRPC (HTTP/2, over TLS with --cacert) and exits with the command's code.
 *
 * @module
 */

import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterService } from "../gen/raftkv/v1/cluster_pb.ts";
import { KVService } from "../gen/raftkv/v1/kv_pb.ts";
import { FlagError, formatHostPort, parseHostPort } from "../server/flags.ts";
import { guardStrayNetworkErrors } from "../client/stray_errors.ts";
import { API_COMMANDS, API_USAGE, type ApiConnection, runApiCli } from "./api_commands.ts";
import { type Command, type EndpointClients, EXIT, runCommand } from "./commands.ts";
import {
  type ConnectionOptions,
  DEFAULT_TIMEOUT_MS,
  parseConnectionOptions,
  UsageError,
} from "./connection_options.ts";
import { type MemberCommand, parseMemberId, runMemberCommand } from "./members.ts";
import { CLIENT_TLS_ENV, type ClientTlsPem, readClientTls, TlsOptionError } from "./tls_options.ts";

export { UsageError } from "./connection_options.ts";

/** Help text of the client CLI. */
export const CLIENT_USAGE: string = `\
Usage: deno task client [OPTIONS] COMMAND [ARGS...]

Commands:
  put KEY VALUE            Store VALUE under KEY; prints "OK (index N)"
  get KEY                  Print KEY's value as UTF-8; a missing key prints
                           "(not found)" on stderr and exits 1
  delete KEY               Remove KEY; prints "OK (deleted)" or "OK (not found, ...)"
  cas KEY EXPECTED NEW     Store NEW under KEY only if KEY holds EXPECTED
  cas --absent KEY NEW     Store NEW under KEY only if KEY does not exist
                           A failed comparison prints the current value on stderr, exits 1
  status                   Ask every endpoint for its Raft state; prints a table
  snapshot save FILE       Save a backup of a node's state (the first endpoint that
                           serves one) into FILE, verified; prints its index, term
                           and size. Restore with deno task node --restore FILE
  member list              List the members: id, peer address, voter or learner
  member add ID PEER_ADDRESS [--learner]
                           Add node ID, which the others dial at PEER_ADDRESS
                           (host:port), as a voter, or as a learner (recommended:
                           it catches up without affecting quorums; then promote)
  member promote ID        Make learner ID a voter (refused while it is far behind)
  member remove ID         Remove node ID (a voter or a learner; not the last voter)
  transfer-leader [ID]     Hand leadership to voter ID, or to the most up-to-date
                           voter; prints the new leader
                           Membership changes print the new membership once the
                           change is committed and applied

Options (before the command):
  --endpoints HOST:PORT,...  Nodes to talk to, in order [RAFTKV_ENDPOINTS]
                             (default 127.0.0.1:7001); IPv6 as [::1]:7001
  --timeout-ms N             Time budget of the command, retries included (default 5000)
  --cacert FILE              Speak TLS, trusting the nodes' certificates this CA (PEM)
                             signed [RAFTKV_CACERT]
  --cert FILE, --key FILE    Present this client certificate and key (PEM), for nodes
                             started with --client-ca [RAFTKV_CERT, RAFTKV_KEY]
  --help                     Print this help

put, get, delete and cas run through the client library (src/client/): it asks the
endpoints which node leads and sends the command there; when that fails (a node
down, an election under way) it tries the others, pausing between rounds, until the
time budget runs out, then names each endpoint's last failure (and, if none even
accepted a connection, asks whether the nodes are running). Each write first opens
a session (one log entry of its own), so that a retry is applied exactly once.
member and transfer-leader try the endpoints in order, and a call whose outcome is
unknown is not sent again. Put "--" after the command to pass arguments that start
with "--" (put -- --k --v).

status compares the nodes: nodes at the same applied index with different state
digests or applied chains, or two leaders in one term, mean the cluster has forked;
it says so on stderr and exits 4.

Exit codes: 0 done; 1 key not found, comparison failed, or (status) some node down;
2 bad usage; 3 request failed (no leader in time, no endpoint reachable, error from
the server, or (status) every node down); 4 (status) the nodes have diverged.
`;

/** The parsed command line of a key-value or membership command (or --help). */
export interface ClientArgs extends ConnectionOptions {
  /** The command, or `help` when --help was given. */
  command: Command | MemberCommand | { name: "help" };
}

const ARITY: Readonly<Record<string, readonly string[]>> = {
  put: ["KEY", "VALUE"],
  get: ["KEY"],
  delete: ["KEY"],
  cas: ["KEY", "EXPECTED", "NEW"],
  status: [],
  snapshot: ["save", "FILE"],
};

/**
 * Parses the CLI's arguments: options (see {@link parseConnectionOptions}), then a
 * key-value or membership command and its arguments.
 *
 * @param args the arguments (`Deno.args`)
 * @param env environment; `RAFTKV_ENDPOINTS` is read when --endpoints is absent
 * @throws {UsageError} on an unknown option or command, a missing or malformed
 *   value, or a wrong number of command arguments
 */
export function parseClientArgs(
  args: readonly string[],
  env: Record<string, string | undefined>,
): ClientArgs {
  const parsed = parseConnectionOptions(args, env);
  if (parsed.help) {
    return { endpoints: [], timeoutMs: DEFAULT_TIMEOUT_MS, command: { name: "help" } };
  }
  return { ...parsed.options, command: parseCommand(parsed.rest) };
}

/**
 * Parses a key-value or membership command and its arguments (`line`, the command
 * line after the options).
 *
 * @throws {UsageError} on an unknown command or a wrong number of arguments
 */
function parseCommand(line: readonly string[]): Command | MemberCommand {
  const name = line[0];
  if (name === undefined) throw new UsageError("Cannot parse arguments: missing command");
  if (name === "member" || name === "transfer-leader") {
    return parseMemberCommand(name, line.slice(1));
  }
  if (!Object.hasOwn(ARITY, name)) {
    throw new UsageError(
      `Cannot parse arguments: unknown command "${name}" ` +
        "(expected put, get, delete, cas, status, snapshot, member or transfer-leader)",
    );
  }
  const params = ARITY[name] as readonly string[];
  let rest = line.slice(1);
  let absent = false;
  if (name === "cas" && rest[0] === "--absent") {
    absent = true;
    rest = rest.slice(1);
  }
  if (rest[0] === "--") rest = rest.slice(1);
  const want = absent ? params.filter((p) => p !== "EXPECTED") : params;
  if (rest.length !== want.length) {
    const usage = [name, ...(absent ? ["--absent"] : []), ...want].join(" ");
    const stray = rest.find((a) => a.startsWith("--"));
    const hint = stray === undefined
      ? ""
      : `; options such as ${stray} go before the command, and "--" passes arguments starting with --`;
    throw new UsageError(
      `Cannot parse ${name}: expected ${want.length} argument${
        want.length === 1 ? "" : "s"
      } (${usage}), got ${rest.length}${hint}`,
    );
  }
  const arg = (k: number): string => rest[k] as string;
  let command: Command;
  switch (name) {
    case "put":
      command = { name, key: arg(0), value: arg(1) };
      break;
    case "get":
    case "delete":
      command = { name, key: arg(0) };
      break;
    case "cas":
      command = absent
        ? { name, key: arg(0), expected: undefined, value: arg(1) }
        : { name, key: arg(0), expected: arg(1), value: arg(2) };
      break;
    case "snapshot":
      if (arg(0) !== "save") {
        throw new UsageError(
          `Cannot parse snapshot: unknown subcommand "${arg(0)}" (expected snapshot save FILE)`,
        );
      }
      if (arg(1) === "") throw new UsageError("Cannot parse snapshot save: FILE must not be empty");
      command = { name: "snapshot_save", file: arg(1) };
      break;
    default:
      command = { name: "status" };
  }
  if ("key" in command && command.key === "") {
    throw new UsageError(`Cannot parse ${name}: KEY must not be empty`);
  }
  return command;
}

/** Parses `member SUBCOMMAND ...` and `transfer-leader [ID]`. */
function parseMemberCommand(name: string, rest: readonly string[]): MemberCommand {
  const id = (text: string, what: string): bigint => {
    const v = parseMemberId(text, what);
    if (typeof v === "string") throw new UsageError(v);
    return v;
  };
  if (name === "transfer-leader") {
    if (rest.length > 1) {
      throw new UsageError(
        `Cannot parse transfer-leader: expected [ID], got ${rest.length} arguments`,
      );
    }
    return {
      name: "transfer_leader",
      id: rest[0] === undefined ? 0n : id(rest[0], "transfer-leader ID"),
    };
  }
  const [sub, ...more] = rest;
  const arity = (want: string): void => {
    const n = want === "" ? 0 : want.split(" ").length;
    if (more.length !== n) {
      throw new UsageError(
        `Cannot parse member ${sub}: expected ${n} argument${n === 1 ? "" : "s"} ` +
          `(member ${sub}${want === "" ? "" : " " + want}), got ${more.length}`,
      );
    }
  };
  switch (sub) {
    case "list":
      arity("");
      return { name: "member_list" };
    case "add": {
      const learner = more.includes("--learner");
      const args = more.filter((a) => a !== "--learner");
      if (args.length !== 2) {
        throw new UsageError(
          `Cannot parse member add: expected ID PEER_ADDRESS [--learner], got ${more.length} arguments`,
        );
      }
      let peerAddress: string;
      try {
        const addr = parseHostPort(args[1]!, "member add PEER_ADDRESS");
        if (addr.port === 0) {
          throw new UsageError(`Cannot parse member add PEER_ADDRESS: "${args[1]}" has port 0`);
        }
        peerAddress = formatHostPort(addr);
      } catch (e) {
        if (e instanceof FlagError) throw new UsageError(e.message);
        throw e;
      }
      return { name: "member_add", id: id(args[0]!, "member add ID"), peerAddress, learner };
    }
    case "promote":
      arity("ID");
      return { name: "member_promote", id: id(more[0]!, "member promote ID") };
    case "remove":
      arity("ID");
      return { name: "member_remove", id: id(more[0]!, "member remove ID") };
    default:
      throw new UsageError(
        `Cannot parse member: ${
          sub === undefined ? "missing subcommand" : `unknown subcommand "${sub}"`
        } (expected list, add, promote or remove)`,
      );
  }
}

/**
 * Clients for an endpoint over gRPC: HTTP/2 with prior knowledge, or over TLS with
 * `tls` (the PEM texts of --cacert, --cert, --key).
 */
export function grpcClients(endpoint: string, tls?: ClientTlsPem): EndpointClients {
  const transport = createGrpcTransport(
    tls === undefined
      ? { baseUrl: `http://${endpoint}` }
      : { baseUrl: `https://${endpoint}`, nodeOptions: tls },
  );
  return {
    kv: createClient(KVService, transport),
    cluster: createClient(ClusterService, transport),
  };
}

/**
 * A hint for a failure that looks like a TLS mismatch: plaintext to a TLS port
 * (the node cuts the connection: EPIPE, a reset, a cancelled stream), or TLS to a
 * plaintext port (the TLS layer reads HTTP/2 instead of a TLS record).
 */
export function tlsHint(stderr: string, tls: boolean): string {
  if (!tls && /EPIPE|ECONNRESET|connection reset|code CANCEL/.test(stderr)) {
    return "hint: if the nodes serve TLS, pass --cacert (and --cert, --key if they ask for " +
      "client certificates)\n";
  }
  if (tls && /wrong version number|InvalidContentType|corrupt message/.test(stderr)) {
    return "hint: the node does not seem to speak TLS; drop --cacert, --cert, --key\n";
  }
  return "";
}

/** What a usage error prints: the one line that says what is wrong, and where help is. */
export function usageError(message: string): string {
  return `error: ${message}\nRun "deno task client --help" for the commands and options.\n`;
}

/** Runs the CLI with `args` and returns the exit code, writing to stdout and stderr. */
export async function main(
  args: readonly string[],
  env: Record<string, string | undefined>,
): Promise<number> {
  let options: ConnectionOptions;
  let line: readonly string[];
  let command: Command | MemberCommand | undefined;
  try {
    const parsed = parseConnectionOptions(args, env);
    if (parsed.help) {
      await writeAll(Deno.stdout, `${CLIENT_USAGE}\n${API_USAGE}`);
      return EXIT.OK;
    }
    options = parsed.options;
    line = parsed.rest;
    // The API commands parse their own arguments (api_commands.ts).
    if (!API_COMMANDS.has(line[0] ?? "")) command = parseCommand(line);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    await writeAll(Deno.stderr, usageError(e.message));
    return EXIT.USAGE;
  }
  let tlsPem: ClientTlsPem | undefined;
  if (options.tls !== undefined) {
    try {
      tlsPem = await readClientTls(options.tls);
    } catch (e) {
      if (!(e instanceof TlsOptionError)) throw e;
      await writeAll(Deno.stderr, usageError(e.message));
      return EXIT.USAGE;
    }
  }
  const connection = {
    endpoints: options.endpoints,
    timeoutMs: options.timeoutMs,
    ...(tlsPem === undefined ? {} : { tls: tlsPem }),
  };
  if (command === undefined) return await runApi(connection, line);
  const cache = new Map<string, EndpointClients>();
  const runOptions = {
    ...connection,
    clients: (endpoint: string) => {
      let c = cache.get(endpoint);
      if (c === undefined) {
        c = grpcClients(endpoint, tlsPem);
        cache.set(endpoint, c);
      }
      return c;
    },
  };
  const out = command.name.startsWith("member_") || command.name === "transfer_leader"
    ? await runMemberCommand(command as MemberCommand, runOptions)
    : await runCommand(command as Command, runOptions);
  await writeAll(Deno.stdout, out.stdout);
  await writeAll(Deno.stderr, out.stderr + tlsHint(out.stderr, options.tls !== undefined));
  return out.exitCode;
}

/** Runs an API command, printing as it goes; SIGINT/SIGTERM end watches and locks. */
async function runApi(connection: ApiConnection, line: readonly string[]): Promise<number> {
  const abort = new AbortController();
  const stop = () => abort.abort();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  const encoder = new TextEncoder();
  try {
    return await runApiCli(
      connection,
      line,
      { write: (s) => Deno.stdout.writeSync(encoder.encode(s)) },
      { write: (s) => Deno.stderr.writeSync(encoder.encode(s)) },
      abort.signal,
    );
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
  }
}

async function writeAll(w: { write(p: Uint8Array): Promise<number> }, text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  let n = 0;
  while (n < bytes.length) n += await w.write(bytes.subarray(n));
}

if (import.meta.main) {
  // The CLI is an application of the client library: a node that dies under a watch
  // or a lock must not end it with a stray EPIPE (src/client/stray_errors.ts).
  guardStrayNetworkErrors();
  Deno.exit(
    await main(Deno.args, {
      RAFTKV_ENDPOINTS: Deno.env.get("RAFTKV_ENDPOINTS"),
      // Read only where granted: a command line from before TLS (--allow-env=RAFTKV_ENDPOINTS)
      // keeps working, without TLS variables.
      ...Object.fromEntries(
        CLIENT_TLS_ENV.filter((variable) =>
          Deno.permissions.querySync({ name: "env", variable }).state === "granted"
        ).map((name) => [name, Deno.env.get(name)]),
      ),
    }),
  );
}
