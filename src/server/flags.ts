/**
 * Command-line and environment configuration of a raftkv node.
 *
 * Every flag has an environment variable `RAFTKV_<NAME>` (`--data-dir` is
 * `RAFTKV_DATA_DIR`); a flag on the command line wins over its variable, and a
 * variable set to the empty string counts as unset. {@link parseNodeFlags} never
 * prints or exits: it returns the options or throws a {@link FlagError} that says
 * exactly what is wrong. {@link parseNodeFlagsOrExit} is the one-call version for
 * `main`.
 *
 * @module
 */

import { DEFAULT_HTTP2_LIMITS, type Http2Limits } from "../http2/limits.ts";
import { DEFAULT_WATCH_LIMITS } from "../kv/watch_hub.ts";
import { LOG_LEVELS, type LogLevel } from "../raft/logger.ts";
import type { TlsConfig } from "../tls/config.ts";
import { readFlagArgument } from "./flag_argument.ts";

/** A network address: `host` without IPv6 brackets, `port` in 0..65535. */
export interface HostPort {
  host: string;
  port: number;
}

/** The configuration of one node, as {@link parseNodeFlags} returns it. */
export interface NodeOptions {
  /** This node's id: a positive integer, unique in the cluster. */
  id: number;
  /** Where this node's gRPC server listens. Port 0 picks an ephemeral port. */
  listen: HostPort;
  /** The full membership, this node included, by id. */
  peers: Map<number, HostPort>;
  /** Directory for this node's write-ahead log and snapshots. */
  dataDir: string;
  /** Lines below this level are dropped. */
  logLevel: LogLevel;
  /** `text`: one human-readable line per event; `json`: one JSON object per line. */
  logFormat: "text" | "json";
  /** Milliseconds between a leader's heartbeats. */
  heartbeatMs: number;
  /** Base election timeout in milliseconds; at least 3 × heartbeatMs. */
  electionMs: number;
  /** Name of the cluster; nodes reject Raft traffic that carries another. */
  clusterId: string;
  /** A snapshot of the state machine is taken every this many applied entries. */
  snapshotEntries: number;
  /** Entries kept in the log behind a snapshot, for followers a little behind. */
  snapshotCatchupEntries: number;
  /**
   * Changes the node keeps for watches to start or resume from (watch_hub.ts). Each
   * node keeps them whether or not anyone watches: memory against how far back a
   * watch may resume (etcd keeps its history until compaction instead).
   */
  watchHistoryEvents: number;
  /**
   * A backup file (`deno task client snapshot save`) to seed the empty data dir
   * from before starting (restore_backup.ts), or undefined. A command-line flag only, with
   * no environment variable: it is a one-time action, not configuration; a variable
   * left set would make every later start refuse (the data dir is no longer empty).
   */
  restore: string | undefined;
  /**
   * True when this node joins a running cluster (`--join`, or etcd's
   * `--initial-cluster-state existing`): on an empty data dir it starts with no
   * configuration, never campaigns, and learns the configuration from the leader
   * once an operator has added it (`member add`); it never bootstraps a cluster of
   * its own from --peers, which then only says where to reach the members. Ignored
   * on a data dir that already has a history: the data dir knows how it began.
   */
  join: boolean;
  /** Resource limits of the gRPC server's HTTP/2 layer (src/http2/limits.ts). */
  http2: Http2Limits;
  /** TLS, peer and client authentication (src/tls/), or undefined: plaintext. */
  tls: TlsConfig | undefined;
  /** Where the HTTP/1.1 port (metrics, probes, web view, Connect JSON) listens; off if undefined. */
  httpListen: HostPort | undefined;
  /**
   * True when `--help` was given. The other fields then hold defaults and must
   * not be used: print {@link NODE_USAGE} and exit 0.
   */
  help: boolean;
}

/** A configuration error; `message` says which flag or variable and why. */
export class FlagError extends Error {
  /** Creates a FlagError with a complete, user-facing message. */
  constructor(message: string) {
    super(message);
    this.name = "FlagError";
  }
}

/** Help text for `deno task node --help`. */
export const NODE_USAGE: string = `\
Usage: deno task node [FLAGS]

Runs one raftkv node. Every flag can also be set with an environment variable
(shown in brackets); the flag wins when both are given.

Flags:
  --id N                 This node's id, a positive integer [RAFTKV_ID] (default 1)
  --listen HOST:PORT     Address of the gRPC server [RAFTKV_LISTEN] (default 127.0.0.1:7001);
                         port 0 picks a free port; IPv6 as [::1]:7001; with the same host
                         as this node's --peers entry, it must have that entry's port
  --peers ID=HOST:PORT,...
                         The full membership, this node included [RAFTKV_PEERS]
                         (default: this node alone, ID=LISTEN)
  --data-dir DIR         Directory for the write-ahead log [RAFTKV_DATA_DIR] (default ./data)
  --log-level LEVEL      debug, info, warn or error [RAFTKV_LOG_LEVEL] (default info)
  --log-format FORMAT    text or json [RAFTKV_LOG_FORMAT] (default text)
  --heartbeat-ms N       Leader heartbeat interval, at most 60000 [RAFTKV_HEARTBEAT_MS]
                         (default 100)
  --election-ms N        Election timeout, at least 3 x --heartbeat-ms, at most 600000
                         [RAFTKV_ELECTION_MS] (default 1000)
  --cluster-id NAME      Cluster name; nodes ignore peers with another [RAFTKV_CLUSTER_ID]
                         (default raftkv)
  --snapshot-entries N   Take a snapshot every N applied entries, then compact the log
                         [RAFTKV_SNAPSHOT_ENTRIES] (default 10000)
  --snapshot-catchup-entries N
                         Entries kept behind a snapshot for followers a little behind
                         [RAFTKV_SNAPSHOT_CATCHUP_ENTRIES] (default 5000)
  --watch-history-events N
                         Changes kept for watches to start or resume from (also at most
                         16 MiB of keys and values); an older start index is OUT_OF_RANGE
                         [RAFTKV_WATCH_HISTORY_EVENTS] (default 20000)
  --join                 Join a running cluster instead of bootstrapping one: start with
                         no configuration and learn it from the leader once a member has
                         run "deno task client member add" for this node; --peers then
                         names where to reach the current members (this node included)
  --initial-cluster-state new|existing
                         etcd's spelling: existing is --join [RAFTKV_INITIAL_CLUSTER_STATE]
                         (default new)
  --restore FILE         Before starting, seed the empty data dir from FILE, a backup that
                         "deno task client snapshot save" wrote, as a member of the cluster
                         the other flags describe (README, "Backup and restore"); no
                         environment variable: a one-time action

HTTP/2 limits (what one client or connection can make the node hold; README, "Limits"):
  --max-streams-per-connection N
                         Concurrent calls per connection, advertised to clients, which
                         queue past it [RAFTKV_MAX_STREAMS_PER_CONNECTION] (default 100)
  --max-streams N        Open calls in the node beyond the first 8 of each connection
                         [RAFTKV_MAX_STREAMS] (default 1000)
  --max-call-buffer-mib N
                         Bytes held for calls (requests, answers not yet read) beyond the
                         first 64 KiB of each connection [RAFTKV_MAX_CALL_BUFFER_MIB] (default 64)
  --max-connections N    Open connections in the node [RAFTKV_MAX_CONNECTIONS] (default 512)
  --max-connections-per-address N
                         Open connections from one remote address
                         [RAFTKV_MAX_CONNECTIONS_PER_ADDRESS] (default 64)
  --request-timeout-ms N A request must arrive whole within this of its headers, or it
                         is reset [RAFTKV_REQUEST_TIMEOUT_MS] (default 10000)
  --idle-timeout-ms N    A connection with no call open this long is closed
                         [RAFTKV_IDLE_TIMEOUT_MS] (default 300000)
  --abuse-cooldown-ms N  An address whose connections were cut for abuse 3 times in a
                         minute is refused new connections this long, doubling up to
                         10 min if it goes on; 0 never refuses [RAFTKV_ABUSE_COOLDOWN_MS]
                         (default 60000)

TLS (README, "Securing a cluster"; every file is reloaded when it changes or on SIGHUP):
  --tls-cert FILE        Serve gRPC over TLS with this certificate (PEM); it is also the
                         node's client certificate toward peers [RAFTKV_TLS_CERT]
  --tls-key FILE         The certificate's private key (PEM) [RAFTKV_TLS_KEY]
  --ca FILE              One CA (PEM) for both --peer-ca and --client-ca [RAFTKV_CA]
  --peer-ca FILE         Peer traffic is mutual TLS: peers present certificates this CA
                         signed, naming their member as SAN URI raftkv://node/<id>
                         [RAFTKV_PEER_CA]; needed by a cluster of more than one node
  --client-ca FILE       KVService and ClusterService calls need a client certificate
                         this CA signed; its CN is the client's identity [RAFTKV_CLIENT_CA]
  --auth-policy FILE     Who may read, write or administer what, by identity and key
                         prefix (YAML; needs --client-ca); without it any authenticated
                         client may do anything [RAFTKV_AUTH_POLICY]
HTTP port (README, "Metrics, probes and the web view"):
  --http-listen HOST:PORT
                         Serve /metrics, /healthz, /readyz, the web view at / and Connect
                         JSON over HTTP/1.1 here [RAFTKV_HTTP_LISTEN] (default: off)

  --help                 Print this help and exit

Both --flag VALUE and --flag=VALUE work.

Example, node 2 of 3:
  deno task node --id 2 --listen 127.0.0.1:7002 \\
    --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 --data-dir ./data/node2
`;

/**
 * The largest --heartbeat-ms: a minute. Far beyond any useful setting, and well
 * inside what a timer can wait (2^31 - 1 ms; a longer interval fires every 1 ms).
 */
export const MAX_HEARTBEAT_MS = 60_000;

/** The largest --election-ms: ten minutes (peer calls time out after it, too). */
export const MAX_ELECTION_MS = 600_000;

/** The largest --snapshot-entries and --snapshot-catchup-entries: a billion entries. */
export const MAX_SNAPSHOT_ENTRIES = 1_000_000_000;

/** The largest --watch-history-events: ten million changes (the 16 MiB bound holds anyway). */
export const MAX_WATCH_HISTORY_EVENTS = 10_000_000;

const LOG_FORMATS: readonly NodeOptions["logFormat"][] = ["text", "json"];

/** The flags that take a value, in usage order. */
const VALUE_FLAGS = [
  "id",
  "listen",
  "peers",
  "data-dir",
  "log-level",
  "log-format",
  "heartbeat-ms",
  "election-ms",
  "cluster-id",
  "snapshot-entries",
  "snapshot-catchup-entries",
  "watch-history-events",
  "max-streams-per-connection",
  "max-streams",
  "max-call-buffer-mib",
  "max-connections",
  "max-connections-per-address",
  "request-timeout-ms",
  "idle-timeout-ms",
  "abuse-cooldown-ms",
  "initial-cluster-state",
  "tls-cert",
  "tls-key",
  "ca",
  "peer-ca",
  "client-ca",
  "auth-policy",
  "http-listen",
] as const;

type ValueFlag = typeof VALUE_FLAGS[number];

/** A raw setting and where it came from (`--id` or `RAFTKV_ID`), for messages. */
interface Raw {
  value: string;
  source: string;
}

function envName(flag: ValueFlag): string {
  return `RAFTKV_${flag.toUpperCase().replaceAll("-", "_")}`;
}

/**
 * Every environment variable the node reads, so `main` reads exactly these and
 * `deno task node` can grant `--allow-env` for them alone.
 */
export const NODE_ENV_VARS: readonly string[] = VALUE_FLAGS.map(envName);

/**
 * Variables a dependency reads though the node never sets them: the yaml library
 * (the --auth-policy parser) reads LOG_TOKENS and LOG_STREAM on every parse, and
 * Deno refuses the read unless granted. The node's `--allow-env` lists these too.
 */
export const LIBRARY_ENV_VARS: readonly string[] = ["LOG_TOKENS", "LOG_STREAM"];

/** Everything a node's `--allow-env` grants: its own variables and {@link LIBRARY_ENV_VARS}. */
export const NODE_PERMITTED_ENV: readonly string[] = [...NODE_ENV_VARS, ...LIBRARY_ENV_VARS];

/** The node's variables from the process environment. */
export function readNodeEnv(): Record<string, string | undefined> {
  return Object.fromEntries(NODE_ENV_VARS.map((name) => [name, Deno.env.get(name)]));
}

function isValueFlag(name: string): name is ValueFlag {
  return (VALUE_FLAGS as readonly string[]).includes(name);
}

/**
 * Parses a node's flags and environment into {@link NodeOptions}.
 *
 * @param args command-line arguments, without the program (`Deno.args`)
 * @param env environment variables (`Deno.env.toObject()`); only `RAFTKV_*` are read
 * @throws {FlagError} on an unknown flag, a missing or malformed value, or an
 *   inconsistent configuration (this node missing from --peers, an election
 *   timeout under 3 heartbeats, ...)
 */
export function parseNodeFlags(
  args: string[],
  env: Record<string, string | undefined>,
): NodeOptions {
  if (args.some((a) => a === "--help" || a === "-h")) return { ...defaultOptions(), help: true };
  const fromArgs = new Map<ValueFlag, Raw>();
  let restore: string | undefined;
  let joinFlag = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === "--join") {
      joinFlag = true;
      continue;
    }
    if (!arg.startsWith("--") || arg === "--") {
      throw new FlagError(
        `Cannot parse arguments: unexpected argument "${arg}" (flags start with --)`,
      );
    }
    const flag = readFlagArgument(args, i);
    const name = flag.name.slice(2);
    if (!isValueFlag(name) && name !== "restore") {
      throw new FlagError(`Cannot parse arguments: unknown flag "--${name}" (see --help)`);
    }
    const value = flag.value;
    if (value === undefined) throw new FlagError(`Cannot parse --${name}: missing value`);
    i = flag.last;
    if (name === "restore") {
      if (restore !== undefined) {
        throw new FlagError("Cannot parse --restore: given more than once");
      }
      if (value === "") throw new FlagError("Cannot parse --restore: missing value");
      restore = value;
      continue;
    }
    if (fromArgs.has(name)) {
      throw new FlagError(`Cannot parse --${name}: given more than once`);
    }
    fromArgs.set(name, { value, source: `--${name}` });
  }

  const raw = (flag: ValueFlag): Raw | undefined => {
    const arg = fromArgs.get(flag);
    if (arg !== undefined) {
      if (arg.value === "") throw new FlagError(`Cannot parse ${arg.source}: missing value`);
      return arg;
    }
    const name = envName(flag);
    const value = env[name];
    return value === undefined || value === "" ? undefined : { value, source: name };
  };

  const defaults = defaultOptions();

  const id = optional(raw("id"), (r) => parseInteger(r, 1)) ?? defaults.id;
  const listen = optional(raw("listen"), (r) => parseHostPort(r.value, r.source)) ??
    defaults.listen;
  const peersRaw = raw("peers");
  const peers = peersRaw === undefined ? new Map([[id, { ...listen }]]) : parsePeers(peersRaw, id);
  const dataDir = raw("data-dir")?.value ?? defaults.dataDir;
  const logLevel = optional(raw("log-level"), (r) => parseChoice(r, LOG_LEVELS)) ??
    defaults.logLevel;
  const logFormat = optional(raw("log-format"), (r) => parseChoice(r, LOG_FORMATS)) ??
    defaults.logFormat;
  const heartbeatRaw = raw("heartbeat-ms");
  const heartbeatMs = optional(heartbeatRaw, (r) => parseInteger(r, 1, MAX_HEARTBEAT_MS)) ??
    defaults.heartbeatMs;
  const electionRaw = raw("election-ms");
  const electionMs = optional(electionRaw, (r) => parseInteger(r, 1, MAX_ELECTION_MS)) ??
    defaults.electionMs;
  if (electionMs < 3 * heartbeatMs) {
    const e = electionRaw?.source ?? "--election-ms";
    const h = heartbeatRaw?.source ?? "--heartbeat-ms";
    throw new FlagError(
      `Cannot use ${e} ${electionMs}: it must be at least 3 × ${h} (3 × ${heartbeatMs} = ${
        3 * heartbeatMs
      })`,
    );
  }
  const clusterIdRaw = raw("cluster-id");
  const clusterId = clusterIdRaw?.value ?? defaults.clusterId;
  if (/\s/.test(clusterId)) {
    throw new FlagError(`Cannot parse ${clusterIdRaw?.source}: "${clusterId}" contains whitespace`);
  }
  const snapshotEntries = optional(
    raw("snapshot-entries"),
    (r) => parseInteger(r, 1, MAX_SNAPSHOT_ENTRIES),
  ) ?? defaults.snapshotEntries;
  const snapshotCatchupEntries = optional(
    raw("snapshot-catchup-entries"),
    (r) => parseInteger(r, 0, MAX_SNAPSHOT_ENTRIES),
  ) ?? defaults.snapshotCatchupEntries;
  const watchHistoryEvents = optional(
    raw("watch-history-events"),
    (r) => parseInteger(r, 1, MAX_WATCH_HISTORY_EVENTS),
  ) ?? defaults.watchHistoryEvents;

  const stateRaw = raw("initial-cluster-state");
  const initialState = optional(stateRaw, (r) => parseChoice(r, ["new", "existing"] as const)) ??
    "new";
  if (joinFlag && stateRaw !== undefined && initialState === "new") {
    throw new FlagError(
      `Cannot use --join with ${stateRaw.source} new: --join means existing`,
    );
  }
  const join = joinFlag || initialState === "existing";
  if (join && restore !== undefined) {
    throw new FlagError(
      "Cannot use --restore with --join: a restored backup starts a new cluster; a joining " +
        "node gets its state from the leader",
    );
  }

  const limit = (flag: ValueFlag, fallback: number, max: number): number =>
    optional(raw(flag), (r) => parseInteger(r, 1, max)) ?? fallback;
  const d = defaults.http2;
  const http2: Http2Limits = {
    // 2^31 - 1: the largest stream id, and the longest a timer can wait.
    maxStreamsPerConnection: limit(
      "max-streams-per-connection",
      d.maxStreamsPerConnection,
      2 ** 31 - 1,
    ),
    maxStreams: limit("max-streams", d.maxStreams, 2 ** 31 - 1),
    // 2^20 MiB (1 TiB): far beyond any machine, and exact in bytes as a number.
    maxCallBufferMiB: limit("max-call-buffer-mib", d.maxCallBufferMiB, 2 ** 20),
    maxConnections: limit("max-connections", d.maxConnections, 2 ** 31 - 1),
    maxConnectionsPerAddress: limit(
      "max-connections-per-address",
      d.maxConnectionsPerAddress,
      2 ** 31 - 1,
    ),
    requestTimeoutMs: limit("request-timeout-ms", d.requestTimeoutMs, 2 ** 31 - 1),
    idleTimeoutMs: limit("idle-timeout-ms", d.idleTimeoutMs, 2 ** 31 - 1),
    // 0 turns the cooldown off (the tests that attack a node from the address
    // their own clients use).
    abuseCooldownMs: optional(raw("abuse-cooldown-ms"), (r) => parseInteger(r, 0, 2 ** 31 - 1)) ??
      d.abuseCooldownMs,
  };

  return {
    id,
    listen,
    peers,
    dataDir,
    logLevel,
    logFormat,
    heartbeatMs,
    electionMs,
    clusterId,
    snapshotEntries,
    snapshotCatchupEntries,
    watchHistoryEvents,
    restore,
    join,
    http2,
    tls: parseTls(raw, peers.size),
    httpListen: optional(raw("http-listen"), (r) => parseHostPort(r.value, r.source)),
    help: false,
  };
}

/**
 * The TLS flags as one {@link TlsConfig}, or undefined when none is given; `--ca`
 * stands for whichever of `--peer-ca` and `--client-ca` is not given. Refuses
 * settings that would half-work: a key without a certificate, a CA without TLS, a
 * policy without client certificates to name identities, and a cluster of several
 * nodes on TLS without a peer CA (the peers could not check each other).
 */
function parseTls(
  raw: (flag: ValueFlag) => Raw | undefined,
  members: number,
): TlsConfig | undefined {
  const cert = raw("tls-cert");
  const key = raw("tls-key");
  const ca = raw("ca");
  const peerCa = raw("peer-ca") ?? ca;
  const clientCa = raw("client-ca") ?? ca;
  const policy = raw("auth-policy");
  if (cert === undefined && key === undefined) {
    const stray = [ca, raw("peer-ca"), raw("client-ca"), policy].find((r) => r !== undefined);
    if (stray !== undefined) {
      throw new FlagError(
        `Cannot use ${stray.source} without --tls-cert and --tls-key: it applies to TLS only`,
      );
    }
    return undefined;
  }
  if (cert === undefined) throw new FlagError(`Cannot use ${key!.source} without --tls-cert`);
  if (key === undefined) throw new FlagError(`Cannot use ${cert.source} without --tls-key`);
  if (policy !== undefined && clientCa === undefined) {
    throw new FlagError(
      `Cannot use ${policy.source} without --client-ca (or --ca): the policy names clients ` +
        `by their certificates`,
    );
  }
  if (members > 1 && peerCa === undefined) {
    throw new FlagError(
      `Cannot use ${cert.source} in a cluster of ${members} nodes without --peer-ca (or ` +
        `--ca): peers dial each other over TLS and must check each other's certificates`,
    );
  }
  return {
    certFile: cert.value,
    keyFile: key.value,
    peerCaFile: peerCa?.value,
    clientCaFile: clientCa?.value,
    authPolicyFile: policy?.value,
  };
}

/**
 * Checks what {@link parseNodeFlags} cannot see setting by setting: that this
 * node listens where the others dial it. They dial the address of its own --peers
 * entry, so with the same host on both sides, --listen must have that entry's
 * port. An entry with another host (a NAT or proxy address, a DNS name of this
 * machine, a wildcard listen address) cannot be compared and is accepted, and so
 * is an entry with port 0 (a node alone, which nobody dials).
 *
 * @throws {FlagError} naming both settings when they disagree
 */
export function checkNodeOptions(opts: NodeOptions): void {
  const self = opts.peers.get(opts.id);
  if (self === undefined || self.port === 0) return;
  if (self.host.toLowerCase() !== opts.listen.host.toLowerCase()) return;
  if (self.port === opts.listen.port) return;
  const listen = formatHostPort(opts.listen);
  const entry = `${opts.id}=${formatHostPort(self)}`;
  throw new FlagError(
    `Cannot use --listen ${listen}: this node's own --peers entry is ${entry}, where the other ` +
      `nodes dial it; listen on port ${self.port}, or fix the entry (an entry with another ` +
      `host, for a NAT or a proxy, is not compared)`,
  );
}

/**
 * Parses the node's flags like {@link parseNodeFlags} and checks them with
 * {@link checkNodeOptions}, for `main`: on `--help` prints {@link NODE_USAGE} to
 * stdout and exits 0; on a {@link FlagError} prints `error: <message>` and a hint
 * to stderr and exits 2.
 */
export function parseNodeFlagsOrExit(
  args: string[],
  env: Record<string, string | undefined>,
): NodeOptions {
  let opts: NodeOptions;
  try {
    opts = parseNodeFlags(args, env);
    if (!opts.help) checkNodeOptions(opts);
  } catch (e) {
    if (!(e instanceof FlagError)) throw e;
    console.error(`error: ${e.message}\nRun with --help for usage.`);
    Deno.exit(2);
  }
  if (opts.help) {
    console.log(NODE_USAGE);
    Deno.exit(0);
  }
  return opts;
}

function defaultOptions(): NodeOptions {
  const listen = { host: "127.0.0.1", port: 7001 };
  return {
    id: 1,
    listen,
    peers: new Map([[1, { ...listen }]]),
    dataDir: "./data",
    logLevel: "info",
    logFormat: "text",
    heartbeatMs: 100,
    electionMs: 1000,
    clusterId: "raftkv",
    snapshotEntries: 10_000,
    snapshotCatchupEntries: 5_000,
    watchHistoryEvents: DEFAULT_WATCH_LIMITS.historyEvents,
    restore: undefined,
    join: false,
    http2: DEFAULT_HTTP2_LIMITS,
    tls: undefined,
    httpListen: undefined,
    help: false,
  };
}

function optional<T>(raw: Raw | undefined, parse: (raw: Raw) => T): T | undefined {
  return raw === undefined ? undefined : parse(raw);
}

function parseInteger(raw: Raw, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = /^\d+$/.test(raw.value) ? Number(raw.value) : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new FlagError(`Cannot parse ${raw.source}: "${raw.value}" is not an integer`);
  }
  if (n < min) {
    throw new FlagError(`Cannot parse ${raw.source}: ${n} is less than ${min}`);
  }
  if (n > max) {
    throw new FlagError(`Cannot parse ${raw.source}: ${n} is more than ${max}`);
  }
  return n;
}

function parseChoice<T extends string>(raw: Raw, choices: readonly T[]): T {
  const found = choices.find((c) => c === raw.value);
  if (found === undefined) {
    throw new FlagError(
      `Cannot parse ${raw.source}: "${raw.value}" is not one of ${choices.join(", ")}`,
    );
  }
  return found;
}

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9_])?$/;
const IPV6 = /^[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?$/;

/**
 * Parses `host:port`, `[ipv6]:port` too, into a {@link HostPort} (the host
 * without brackets). Port 0 is accepted.
 *
 * @param text the address
 * @param what names the setting in the error (`--listen`, `--endpoints`, ...)
 * @throws {FlagError} `Cannot parse <what>: ...` on an empty or malformed host,
 *   a missing port, or a port outside 0..65535
 */
export function parseHostPort(text: string, what: string): HostPort {
  const bad = (why: string): FlagError =>
    new FlagError(`Cannot parse ${what}: "${text}" is not host:port (${why})`);
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) throw bad("missing ] after the IPv6 address");
    host = text.slice(1, close);
    if (text[close + 1] !== ":") throw bad("missing :port");
    portText = text.slice(close + 2);
    if (host === "") throw bad("empty host");
    if (!IPV6.test(host) || !host.includes(":")) throw bad(`bad IPv6 address "${host}"`);
  } else {
    if (text.includes("://")) throw bad("no scheme: write host:port");
    const colon = text.lastIndexOf(":");
    if (colon < 0) throw bad("missing :port");
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host === "") throw bad("empty host");
    if (host.includes(":")) throw bad("write an IPv6 address in brackets, as [::1]:7001");
    if (!HOSTNAME.test(host)) throw bad(`bad host "${host}"`);
  }
  if (!/^\d{1,5}$/.test(portText)) {
    throw bad(portText === "" ? "missing port" : `port "${portText}" is not a number`);
  }
  const port = Number(portText);
  if (port > 65535) throw bad(`port ${port} is out of range 0..65535`);
  return { host, port };
}

/** Formats a {@link HostPort} as `host:port`, bracketing IPv6 hosts (`[::1]:7001`). */
export function formatHostPort(addr: HostPort): string {
  return addr.host.includes(":") ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}

function parsePeers(raw: Raw, selfId: number): Map<number, HostPort> {
  const peers = new Map<number, HostPort>();
  const byAddress = new Map<string, number>();
  const what = raw.source;
  for (const entry of raw.value.split(",")) {
    const trimmed = entry.trim();
    if (trimmed === "") {
      throw new FlagError(`Cannot parse ${what}: empty entry in "${raw.value}"`);
    }
    const eq = trimmed.indexOf("=");
    if (eq < 0) {
      throw new FlagError(`Cannot parse ${what}: entry "${trimmed}" is not id=host:port`);
    }
    const idText = trimmed.slice(0, eq);
    const id = /^\d+$/.test(idText) ? Number(idText) : NaN;
    if (!Number.isSafeInteger(id) || id < 1) {
      throw new FlagError(
        `Cannot parse ${what}: entry "${trimmed}" has id "${idText}", not a positive integer`,
      );
    }
    if (peers.has(id)) {
      throw new FlagError(`Cannot parse ${what}: id ${id} appears more than once`);
    }
    const addr = parseHostPort(trimmed.slice(eq + 1), `${what} entry "${trimmed}"`);
    if (addr.port === 0 && id !== selfId) {
      throw new FlagError(
        `Cannot parse ${what}: entry "${trimmed}" has port 0; other nodes need a fixed port`,
      );
    }
    const key = formatHostPort(addr);
    const other = byAddress.get(key);
    if (other !== undefined && addr.port !== 0) {
      throw new FlagError(`Cannot parse ${what}: ids ${other} and ${id} share address ${key}`);
    }
    byAddress.set(key, id);
    peers.set(id, addr);
  }
  if (!peers.has(selfId)) {
    throw new FlagError(
      `Cannot parse ${what}: this node's id ${selfId} is not in it (list every node, this one too)`,
    );
  }
  return peers;
}
