/**
 * End-to-end harness: real raftkv node processes on 127.0.0.1, spawned with
 * `Deno.execPath()` and the permissions of `deno task node`, optionally behind one
 * fault-injecting TCP proxy per directed peer link (see `_proxy.ts`).
 *
 * Waits are polls with generous deadlines ({@link waitFor}); nothing here asserts a
 * speed. {@link withCluster} starts a cluster, runs a test body, prints the tail of
 * every node's log if the body throws, and always stops every process, closes every
 * client and proxy and removes the temp dirs.
 *
 * @module
 */

import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import { fileURLToPath } from "node:url";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { ClusterService, Role, type StatusResponse } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { KVService } from "../../src/gen/raftkv/v1/kv_pb.ts";
import { type BlockMode, TcpProxy } from "./_proxy.ts";

/** The repository root, where `src/server/main.ts` lives. */
export const REPO_ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/**
 * The environment variables `deno task node` lets a node read (its
 * `--allow-env=...` in deno.json). Test nodes get exactly these, so a dependency
 * that reads another variable fails here as it would in production (the yaml
 * library's LOG_TOKENS once broke --auth-policy under the task's permissions while
 * every test passed with all variables allowed).
 */
export const NODE_TASK_ENV: string = (() => {
  const config = JSON.parse(Deno.readTextFileSync(`${REPO_ROOT}deno.json`)) as {
    tasks: Record<string, { command: string }>;
  };
  const flag = config.tasks.node!.command.split(/\s+/).find((a) => a.startsWith("--allow-env="));
  if (flag === undefined) throw new Error("deno.json's node task has no --allow-env=... list");
  return flag;
})();

/** Permissions and entry point of `deno task node` (files anywhere: tests keep them in temp dirs). */
export const NODE_COMMAND: readonly string[] = [
  "run",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  NODE_TASK_ENV,
  "src/server/main.ts",
];

/** The default deadline of a {@link waitFor}: generous, since CI machines can be slow. */
export const DEFAULT_WAIT_MS = 30_000;

/** Resolves after `ms` milliseconds. Only for pacing polls and retries, never as a wait for a condition. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Options of {@link waitFor}. */
export interface WaitOptions {
  /** Give up after this many milliseconds; {@link DEFAULT_WAIT_MS} by default. */
  timeoutMs?: number;
  /** Pause between polls; 50 ms by default. */
  intervalMs?: number;
}

/** Thrown by a {@link waitFor} probe to give up at once (a node crashed, say). */
export class WaitAborted extends Error {
  override name = "WaitAborted";
}

/**
 * Polls `probe` until it returns a value other than `undefined`/`false`, and returns
 * that value. A probe that throws counts as "not yet", unless it throws
 * {@link WaitAborted}, which ends the wait at once. Throws, naming `what` and the
 * last error or value seen, when the deadline passes.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  options: WaitOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_MS;
  const intervalMs = options.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let last = "no attempt";
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
      last = `probe returned ${String(v)}`;
    } catch (err) {
      if (err instanceof WaitAborted) throw err;
      last = `probe threw: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${last})`);
    }
    await sleep(intervalMs);
  }
}

/** Ports handed out by {@link freePort} in this process: never handed out twice. */
const handedOut = new Set<number>();

/**
 * Picks a free TCP port on 127.0.0.1 for a node to listen on later. It is drawn
 * from 20000-32767, below Linux's ephemeral range (32768-60999), so that the
 * kernel cannot give it to an outgoing connection or a port-0 listener (a
 * proxy) between this check and the node's bind; and it is checked bindable.
 */
export function freePort(): number {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12768);
    if (handedOut.has(port)) continue;
    try {
      Deno.listen({ hostname: "127.0.0.1", port, transport: "tcp" }).close();
    } catch {
      continue; // in use
    }
    handedOut.add(port);
    return port;
  }
  throw new Error("Cannot find a free port in 20000-32767 after 1000 tries");
}

/** Bytes of a UTF-8 string. */
export function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

/** The UTF-8 text of bytes. */
export function text(b: Uint8Array): string {
  return new TextDecoder().decode(b);
}

/** The gRPC code of an error thrown by a Connect client (Unknown if it is not a ConnectError). */
export function codeOf(err: unknown): Code {
  return err instanceof ConnectError ? err.code : Code.Unknown;
}

/** The name of a gRPC code, for messages: `Unavailable`. */
export function codeName(code: Code): string {
  return Code[code] ?? String(code);
}

// -----------------------------------------------------------------------------
// Clients.

/**
 * Connect clients (KVService, ClusterService) for one endpoint, over one HTTP/2
 * connection that {@link EndpointClients.close} tears down completely (every socket
 * it opened is closed and its `close` event seen), so the test sanitizers pass.
 */
export class EndpointClients {
  /** The endpoint, `host:port`. */
  readonly endpoint: string;
  /** KVService client. */
  readonly kv: Client<typeof KVService>;
  /** ClusterService client. */
  readonly cluster: Client<typeof ClusterService>;
  readonly #manager: Http2SessionManager;
  readonly #sockets = new Set<net.Socket>();
  readonly #socketClosed = new Set<Promise<void>>();

  /**
   * Creates clients for `endpoint` (`host:port`); nothing connects before the first
   * call. With `tlsOptions` (PEM texts: `ca`, and `cert`/`key` for a client
   * certificate), over TLS with ALPN h2.
   */
  constructor(endpoint: string, tlsOptions?: ClientTlsOptions) {
    this.endpoint = endpoint;
    const [host, port] = splitHostPort(endpoint);
    const scheme = tlsOptions === undefined ? "http" : "https";
    this.#manager = new Http2SessionManager(
      `${scheme}://${endpoint}`,
      { pingIntervalMs: 5_000, pingTimeoutMs: 5_000, idleConnectionTimeoutMs: 600_000 },
      {
        createConnection: () => {
          const socket = tlsOptions === undefined
            ? net.connect({ host, port })
            : tls.connect({ host, port, ALPNProtocols: ["h2"], ...tlsOptions });
          // Errors reach the HTTP/2 session, and through it the calls; the socket's own
          // "error" event must not go unheard.
          socket.on("error", () => {});
          this.#sockets.add(socket);
          const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
          this.#socketClosed.add(closed);
          void closed.then(() => {
            this.#sockets.delete(socket);
            this.#socketClosed.delete(closed);
          });
          return socket;
        },
      } satisfies http2.ClientSessionOptions,
    );
    const transport = createGrpcTransport({
      baseUrl: `${scheme}://${endpoint}`,
      sessionManager: this.#manager,
    });
    this.kv = createClient(KVService, transport);
    this.cluster = createClient(ClusterService, transport);
  }

  /** Drops the connection (calls in flight fail) and waits until its sockets are closed. */
  async close(): Promise<void> {
    this.#manager.abort();
    for (const s of this.#sockets) s.destroy();
    while (this.#socketClosed.size > 0) await Promise.all([...this.#socketClosed]);
  }
}

/** PEM texts a TLS client dials with: the CA, and a client certificate if any. */
export interface ClientTlsOptions {
  readonly ca: string;
  readonly cert?: string;
  readonly key?: string;
}

function splitHostPort(endpoint: string): [string, number] {
  const colon = endpoint.lastIndexOf(":");
  return [endpoint.slice(0, colon), Number(endpoint.slice(colon + 1))];
}

// -----------------------------------------------------------------------------
// Node processes.

/** Lines of one node's stderr, across its restarts. */
export class NodeLog {
  /** The lines, oldest first, with harness markers at each start and exit. */
  readonly lines: string[] = [];
  /** The most lines kept; older ones are dropped. */
  static readonly MAX_LINES = 20_000;
  readonly #onLine: ((line: string) => void) | undefined;

  /** A log that also hands every line, as it is pushed, to `onLine` (if given). */
  constructor(onLine?: (line: string) => void) {
    this.#onLine = onLine;
  }

  /** Appends one line. */
  push(line: string): void {
    this.#onLine?.(line);
    this.lines.push(line);
    if (this.lines.length > NodeLog.MAX_LINES) {
      this.lines.splice(0, this.lines.length - NodeLog.MAX_LINES);
    }
  }

  /** The last `n` lines, joined. */
  tail(n = 40): string {
    return this.lines.slice(-n).join("\n");
  }

  /** Everything kept, joined. */
  all(): string {
    return this.lines.join("\n");
  }
}

/** A spawned process whose stderr is being collected. */
export interface SpawnedProcess {
  readonly child: Deno.ChildProcess;
  /** Resolves when the process has exited and its stderr is fully read. */
  readonly done: Promise<Deno.CommandStatus>;
}

/** Spawns `deno <NODE_COMMAND> <args>` in the repo root, sending each stderr line to `onLine`. */
export function spawnNode(args: readonly string[], onLine: (line: string) => void): SpawnedProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...NODE_COMMAND, ...args],
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const drain = async (stream: ReadableStream<Uint8Array>): Promise<void> => {
    let partial = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      partial += chunk;
      const parts = partial.split("\n");
      partial = parts.pop() ?? "";
      for (const line of parts) onLine(line);
    }
    if (partial !== "") onLine(partial);
  };
  const done = (async () => {
    const [status] = await Promise.all([
      child.status,
      drain(child.stdout),
      drain(child.stderr),
    ]);
    return status;
  })();
  return { child, done };
}

/** What a node process printed and how it exited. */
export interface ExitResult {
  readonly code: number;
  readonly signal: Deno.Signal | null;
  /** stdout and stderr, interleaved by line. */
  readonly output: string;
}

/**
 * Runs a node with `args` until it exits on its own; kills it and throws if it is
 * still running after `timeoutMs` (it was expected to refuse to start).
 */
export async function runNodeToExit(
  args: readonly string[],
  timeoutMs = DEFAULT_WAIT_MS,
): Promise<ExitResult> {
  const lines: string[] = [];
  const p = spawnNode(args, (l) => lines.push(l));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    const first = await Promise.race([p.done, timedOut]);
    if (first === "timeout") {
      p.child.kill("SIGKILL");
      await p.done;
      throw new Error(
        `node ${args.join(" ")} was still running after ${timeoutMs} ms; output:\n${
          lines.join("\n")
        }`,
      );
    }
    return { code: first.code, signal: first.signal, output: lines.join("\n") };
  } finally {
    clearTimeout(timer);
  }
}

/** Options of {@link startCluster}. */
export interface ClusterOptions {
  /** Number of nodes (ids 1..nodes). */
  nodes: number;
  /** Route every peer link through a {@link TcpProxy} (needed for partitions). */
  proxied?: boolean;
  /** `--heartbeat-ms`; 50 by default. */
  heartbeatMs?: number;
  /** `--election-ms`; 500 by default. */
  electionMs?: number;
  /** `--log-level`; info by default. */
  logLevel?: "debug" | "info" | "warn" | "error";
  /** `--cluster-id`; raftkv-e2e by default. */
  clusterId?: string;
  /** More flags for every node (e.g. `--snapshot-entries 50`). */
  extraArgs?: readonly string[];
  /** More flags for node `id` alone (its own certificate, say), after extraArgs. */
  nodeArgs?: (id: number) => readonly string[];
  /** Harness clients dial over TLS with these (a TLS cluster); plaintext without. */
  clientTls?: ClientTlsOptions;
  /** Give every node an HTTP port (`--http-listen`, a free port): see {@link Cluster.httpUrl}. */
  http?: boolean;
  /**
   * Called with every line of every node's log as it arrives (harness markers
   * included), e.g. to keep the logs in files; the in-memory {@link NodeLog} is kept too.
   */
  onLogLine?: (id: number, line: string) => void;
}

/** The flags of node `id` of a harness cluster. */
function nodeArgs(
  id: number,
  port: number,
  peers: string,
  dataDir: string,
  opts: ClusterOptions,
): string[] {
  return [
    "--id",
    String(id),
    "--listen",
    `127.0.0.1:${port}`,
    "--peers",
    peers,
    "--data-dir",
    dataDir,
    "--log-level",
    opts.logLevel ?? "info",
    "--log-format",
    "text",
    "--heartbeat-ms",
    String(opts.heartbeatMs ?? 50),
    "--election-ms",
    String(opts.electionMs ?? 500),
    "--cluster-id",
    opts.clusterId ?? "raftkv-e2e",
    ...(opts.extraArgs ?? []),
    ...(opts.nodeArgs?.(id) ?? []),
  ];
}

/** One member of a {@link Cluster}. */
interface Member {
  readonly id: number;
  readonly port: number;
  /** The `--http-listen` port, if the cluster has HTTP ports. */
  readonly httpPort: number | undefined;
  readonly dataDir: string;
  readonly args: readonly string[];
  readonly log: NodeLog;
  proc: SpawnedProcess | undefined;
  /** True while the current process is stopped with SIGSTOP ({@link Cluster.pause}). */
  paused: boolean;
  /** Set when the current process has exited (on its own or not). */
  exited: Deno.CommandStatus | undefined;
  /** Exit statuses of the processes of this member that are gone, oldest first. */
  readonly exits: Deno.CommandStatus[];
}

/** A running test cluster. Create with {@link startCluster}; always {@link Cluster.close}. */
export class Cluster {
  /** The temp dir holding every node's data dir. */
  readonly rootDir: string;
  readonly #members = new Map<number, Member>();
  readonly #proxies = new Map<string, TcpProxy>();
  readonly #clients = new Map<number, EndpointClients>();
  #opts: ClusterOptions | undefined;

  readonly #clientTls: ClientTlsOptions | undefined;

  private constructor(rootDir: string, clientTls?: ClientTlsOptions) {
    this.rootDir = rootDir;
    this.#clientTls = clientTls;
  }

  /** Node ids, ascending: 1..n, and any added with {@link addNode}. */
  get ids(): readonly number[] {
    return [...this.#members.keys()].sort((a, b) => a - b);
  }

  /**
   * Adds node `id` to the harness (not to the Raft configuration: an operator's
   * `member add` does that), with a data dir and port of its own, and `--join`:
   * started, it waits to be added and learns the configuration from the leader. Its
   * --peers names every node the harness knows at their real addresses (not behind
   * proxies: a proxied cluster keeps its links for the nodes it started with).
   * Returns its peer address, for AddMember. Starts nothing.
   */
  addNode(id: number): string {
    if (this.#members.has(id)) throw new Error(`node ${id} is already in the harness`);
    const opts = this.#opts!;
    const port = freePort();
    const peers = [...this.#members.values()].map((m) => `${m.id}=127.0.0.1:${m.port}`);
    peers.push(`${id}=127.0.0.1:${port}`);
    const dataDir = `${this.rootDir}/node${id}`;
    this.#members.set(id, {
      id,
      port,
      httpPort: undefined,
      dataDir,
      args: [
        ...nodeArgs(id, port, peers.join(","), dataDir, opts),
        "--join",
      ],
      log: new NodeLog(
        opts.onLogLine === undefined ? undefined : (line) => opts.onLogLine!(id, line),
      ),
      proc: undefined,
      paused: false,
      exited: undefined,
      exits: [],
    });
    return `127.0.0.1:${port}`;
  }

  /** Forgets node `id`, which must be stopped (a member removed for good). */
  forget(id: number): void {
    if (this.isLive(id)) throw new Error(`node ${id} is still running`);
    this.#members.delete(id);
    const c = this.#clients.get(id);
    this.#clients.delete(id);
    void c?.close();
  }

  /** @internal Builds the members and proxies; starts nothing. */
  static create(rootDir: string, opts: ClusterOptions): Cluster {
    const ids = Array.from({ length: opts.nodes }, (_, i) => i + 1);
    const c = new Cluster(rootDir, opts.clientTls);
    c.#opts = opts;
    const ports = new Map(ids.map((id) => [id, freePort()]));
    if (opts.proxied === true) {
      for (const from of ids) {
        for (const to of ids) {
          if (from !== to) c.#proxies.set(`${from}>${to}`, TcpProxy.start(ports.get(to)!));
        }
      }
    }
    for (const id of ids) {
      const peers = ids.map((j) => {
        const port = j === id
          ? ports.get(j)!
          : opts.proxied === true
          ? c.#proxies.get(`${id}>${j}`)!.port
          : ports.get(j)!;
        return `${j}=127.0.0.1:${port}`;
      });
      const dataDir = `${rootDir}/node${id}`;
      const httpPort = opts.http === true ? freePort() : undefined;
      const args = [
        ...nodeArgs(id, ports.get(id)!, peers.join(","), dataDir, opts),
        ...(httpPort === undefined ? [] : ["--http-listen", `127.0.0.1:${httpPort}`]),
      ];
      c.#members.set(id, {
        id,
        port: ports.get(id)!,
        httpPort,
        dataDir,
        args,
        log: new NodeLog(
          opts.onLogLine === undefined ? undefined : (line) => opts.onLogLine!(id, line),
        ),
        proc: undefined,
        paused: false,
        exited: undefined,
        exits: [],
      });
    }
    return c;
  }

  #member(id: number): Member {
    const m = this.#members.get(id);
    if (m === undefined) throw new Error(`no node ${id} in this cluster`);
    return m;
  }

  /** The node's client address, `127.0.0.1:port` (its real listen address, never a proxy). */
  endpoint(id: number): string {
    return `127.0.0.1:${this.#member(id).port}`;
  }

  /** The node's `--data-dir`. */
  dataDir(id: number): string {
    return this.#member(id).dataDir;
  }

  /** The node's WAL directory, `<data-dir>/wal`. */
  walDir(id: number): string {
    return `${this.#member(id).dataDir}/wal`;
  }

  /** The arguments the node is started with (after the `deno run ... main.ts` part). */
  args(id: number): readonly string[] {
    return this.#member(id).args;
  }

  /** The node's log, across restarts. */
  log(id: number): NodeLog {
    return this.#member(id).log;
  }

  /** Whether the node's process is running (as far as the harness started and did not stop it). */
  isLive(id: number): boolean {
    return this.#member(id).proc !== undefined;
  }

  /**
   * The exit status of node `id`'s current process if it has exited without the
   * harness stopping it (a crash), else undefined.
   */
  exitedOnItsOwn(id: number): Deno.CommandStatus | undefined {
    return this.#member(id).exited;
  }

  /**
   * Throws {@link WaitAborted}, with the node's log tail, if a node the harness did
   * not stop has exited (a crash): every wait on the cluster calls this, so a crash
   * fails the test at once instead of at a timeout.
   */
  checkNoCrash(): void {
    for (const m of this.#members.values()) {
      if (m.exited !== undefined) {
        throw new WaitAborted(
          `node ${m.id} crashed (exit code ${m.exited.code}, signal ${m.exited.signal}); ` +
            `its log ends:\n${m.log.tail(15)}`,
        );
      }
    }
  }

  /**
   * Waits up to `timeoutMs` for node `id`'s current process to exit on its own and
   * returns its exit status, or undefined if it is still running then.
   */
  async waitForExit(id: number, timeoutMs: number): Promise<Deno.CommandStatus | undefined> {
    const proc = this.#member(id).proc;
    if (proc === undefined) throw new Error(`node ${id} is not running`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), timeoutMs);
    });
    try {
      return await Promise.race([proc.done, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The ids of the nodes whose process is running. */
  liveIds(): number[] {
    return this.ids.filter((id) => this.isLive(id));
  }

  /** Connect clients for the node, created on first use and kept across restarts. */
  clients(id: number): EndpointClients {
    let c = this.#clients.get(id);
    if (c === undefined) {
      c = new EndpointClients(this.endpoint(id), this.#clientTls);
      this.#clients.set(id, c);
    }
    return c;
  }

  /** The KVService client of node `id`. */
  kv(id: number): Client<typeof KVService> {
    return this.clients(id).kv;
  }

  /** `http://127.0.0.1:PORT` of node `id`'s HTTP port (a cluster started with `http: true`). */
  httpUrl(id: number): string {
    const port = this.#member(id).httpPort;
    if (port === undefined) throw new Error("the cluster was started without http: true");
    return `http://127.0.0.1:${port}`;
  }

  /** ClusterService.Status of node `id`, with a short deadline. */
  status(id: number, timeoutMs = 2_000): Promise<StatusResponse> {
    return this.clients(id).cluster.status({}, { timeoutMs });
  }

  /**
   * Spawns node `id` (which must not be running), with `extraArgs` after its usual
   * flags this once (e.g. `--restore FILE`); does not wait for it to serve.
   */
  spawn(id: number, extraArgs: readonly string[] = []): void {
    const m = this.#member(id);
    if (m.proc !== undefined) throw new Error(`node ${id} is already running`);
    m.log.push(`--- e2e harness: starting node ${id} ---`);
    const proc = spawnNode([...m.args, ...extraArgs], (l) => m.log.push(l));
    m.proc = proc;
    m.paused = false;
    m.exited = undefined;
    void proc.done.then((s) => {
      if (m.proc === proc) m.exited = s;
    });
  }

  /**
   * Waits until node `id` answers Status, and its HTTP port (if it has one) answers
   * too: a node opens it only once it knows a leader, and an election timeout
   * later (src/server/main.ts). Fails early, with its log, if its process exits.
   */
  async waitServing(id: number, options: WaitOptions = {}): Promise<void> {
    const m = this.#member(id);
    const proc = m.proc;
    if (proc === undefined) throw new Error(`node ${id} is not running`);
    const outcome = await waitFor(`node ${id} to answer Status`, async () => {
      if (m.exited !== undefined) return "exited";
      this.checkNoCrash();
      await this.status(id, 1_000);
      if (m.httpPort !== undefined) {
        await (await fetch(`http://127.0.0.1:${m.httpPort}/healthz`)).body?.cancel();
      }
      return "serving";
    }, options);
    if (outcome === "exited") {
      throw new Error(
        `node ${id} exited (code ${m.exited?.code}) before serving; its log:\n${m.log.tail(30)}`,
      );
    }
  }

  /** Starts node `id` again with the same data dir and ports, and waits until it serves. */
  async restart(id: number): Promise<void> {
    this.spawn(id);
    await this.waitServing(id);
  }

  /**
   * Sends `signal` to node `id` and waits for it to exit; returns its exit status.
   * The node counts as down as soon as this is called.
   */
  async kill(id: number, signal: Deno.Signal = "SIGKILL"): Promise<Deno.CommandStatus> {
    const m = this.#member(id);
    const proc = m.proc;
    if (proc === undefined) throw new Error(`node ${id} is not running`);
    m.proc = undefined;
    const wasPaused = m.paused;
    m.paused = false;
    try {
      proc.child.kill(signal);
      // A stopped process acts on no signal but SIGKILL until it is continued.
      if (wasPaused && signal !== "SIGKILL") proc.child.kill("SIGCONT");
    } catch {
      // Already exited.
    }
    const status = await proc.done;
    m.exits.push(status);
    m.log.push(
      `--- e2e harness: node ${id} exited, code ${status.code}, signal ${status.signal} ---`,
    );
    return status;
  }

  /** The OS process id of node `id`'s running process, or undefined if it is not running. */
  pid(id: number): number | undefined {
    return this.#member(id).proc?.child.pid;
  }

  /**
   * Freezes node `id` with SIGSTOP: the process stays alive (it still counts as live,
   * and its sockets stay open) but does nothing until {@link resume}.
   */
  pause(id: number): void {
    const m = this.#member(id);
    if (m.proc === undefined) throw new Error(`node ${id} is not running`);
    m.proc.child.kill("SIGSTOP");
    m.paused = true;
  }

  /** Lets node `id`, frozen by {@link pause}, run again (SIGCONT). */
  resume(id: number): void {
    const m = this.#member(id);
    if (m.proc === undefined) throw new Error(`node ${id} is not running`);
    m.proc.child.kill("SIGCONT");
    m.paused = false;
  }

  /** Whether node `id` is frozen by {@link pause}. */
  isPaused(id: number): boolean {
    return this.#member(id).paused;
  }

  /** Stops node `id` with SIGTERM (a clean shutdown) and returns its exit status. */
  stop(id: number): Promise<Deno.CommandStatus> {
    return this.kill(id, "SIGTERM");
  }

  /**
   * Polls Status on every node of `among` (the live nodes by default) until all of
   * them name the same leader, in the same term, and that leader is among them and
   * reports itself ROLE_LEADER. Returns its id.
   */
  leader(among?: readonly number[], options: WaitOptions = {}): Promise<number> {
    const group = among ?? this.liveIds();
    return waitFor(`nodes ${group.join(",")} to agree on a leader`, async () => {
      this.checkNoCrash();
      const all = await Promise.all(group.map((id) => this.status(id, 1_000)));
      const lead = all[0]?.leaderId ?? 0n;
      const term = all[0]?.term ?? 0n;
      if (lead === 0n) throw new Error(`node ${group[0]} knows no leader`);
      for (const s of all) {
        if (s.leaderId !== lead || s.term !== term) {
          throw new Error(
            `no agreement: ${all.map((x) => `${x.id}→${x.leaderId}@t${x.term}`).join(" ")}`,
          );
        }
      }
      const leaderStatus = all.find((s) => s.id === lead);
      if (leaderStatus === undefined) throw new Error(`leader ${lead} is outside ${group}`);
      if (leaderStatus.role !== Role.LEADER) throw new Error(`node ${lead} is not ROLE_LEADER`);
      return Number(lead);
    }, options);
  }

  /**
   * Cuts every peer link between nodes of different groups (both directions), with
   * `reset` proxies (see `_proxy.ts`); links inside a group, and of nodes in no group,
   * stay as they are. Needs `proxied`.
   */
  partition(...groups: number[][]): void {
    this.partitionBy("reset", ...groups);
  }

  /** Like {@link partition}, cutting the links the way `mode` says (`blackhole`: silent drops). */
  partitionBy(mode: BlockMode, ...groups: number[][]): void {
    if (this.#proxies.size === 0) throw new Error("partition() needs a proxied cluster");
    const groupOf = new Map<number, number>();
    groups.forEach((g, i) => g.forEach((id) => groupOf.set(id, i)));
    for (const [key, proxy] of this.#proxies) {
      const [from, to] = key.split(">").map(Number) as [number, number];
      const gf = groupOf.get(from);
      const gt = groupOf.get(to);
      if (gf !== undefined && gt !== undefined && gf !== gt) proxy.block(mode);
    }
  }

  /**
   * Cuts the one directed peer link `from`→`to` (the connections node `from` dials to
   * node `to`; Raft messages from `from` to `to`, and their gRPC responses, which
   * travel back on the same connections). Needs `proxied`.
   */
  blockLink(from: number, to: number, mode: BlockMode = "reset"): void {
    this.#link(from, to).block(mode);
  }

  /** Restores the directed peer link `from`→`to`. */
  unblockLink(from: number, to: number): void {
    this.#link(from, to).unblock();
  }

  /**
   * Resets, once, the first connection of the directed peer link `from`→`to` that
   * carries more than `bytes` bytes from now on, or from the bytes `after` on (see
   * `TcpProxy.cutOnceAfter`); the promise resolves when the cut is made. Needs
   * `proxied`.
   */
  cutLinkOnceAfter(
    from: number,
    to: number,
    bytes: number,
    after?: Uint8Array,
  ): Promise<number> {
    return this.#link(from, to).cutOnceAfter(bytes, after);
  }

  /** How the directed peer link `from`→`to` is cut, or undefined if it is not. */
  linkBlocked(from: number, to: number): BlockMode | undefined {
    return this.#link(from, to).blocked;
  }

  #link(from: number, to: number): TcpProxy {
    const proxy = this.#proxies.get(`${from}>${to}`);
    if (proxy === undefined) {
      throw new Error(
        this.#proxies.size === 0
          ? "link blocking needs a proxied cluster"
          : `no peer link ${from}>${to} in this cluster`,
      );
    }
    return proxy;
  }

  /** Restores every peer link. */
  heal(): void {
    for (const proxy of this.#proxies.values()) proxy.unblock();
  }

  /** The last `n` lines of every node's log, with a header per node. */
  logTails(n = 40): string {
    return this.ids.map((id) => `===== node ${id} (last ${n} lines) =====\n${this.log(id).tail(n)}`)
      .join("\n");
  }

  /** Kills every node still running, closes clients and proxies, removes the temp dir. */
  async close(): Promise<void> {
    await Promise.all(this.liveIds().map((id) => this.kill(id, "SIGKILL")));
    await Promise.all([...this.#clients.values()].map((c) => c.close()));
    this.#clients.clear();
    await Promise.all([...this.#proxies.values()].map((p) => p.close()));
    await Deno.remove(this.rootDir, { recursive: true }).catch(() => {});
  }
}

/**
 * Starts a cluster of `opts.nodes` nodes in a fresh temp dir and waits until every
 * node answers Status (not until a leader is elected: see {@link Cluster.leader}).
 * On failure everything started is torn down before the error is thrown.
 */
export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const rootDir = await Deno.makeTempDir({ prefix: "raftkv_e2e_" });
  const c = Cluster.create(rootDir, opts);
  try {
    for (const id of c.ids) c.spawn(id);
    await Promise.all(c.ids.map((id) => c.waitServing(id)));
    return c;
  } catch (err) {
    console.error(c.logTails());
    await c.close();
    throw err;
  }
}

/**
 * Runs `fn` against a fresh cluster; prints every node's log tail if `fn` throws,
 * and always tears the cluster down.
 */
export async function withCluster(
  opts: ClusterOptions,
  fn: (c: Cluster) => Promise<void>,
): Promise<void> {
  const c = await startCluster(opts);
  try {
    await fn(c);
    c.checkNoCrash();
  } catch (err) {
    console.error(`e2e failure; node logs follow\n${c.logTails()}`);
    throw err;
  } finally {
    await c.close();
  }
}

// -----------------------------------------------------------------------------
// KV helpers.

/**
 * Puts `key` = `value`, trying the live nodes in turn until one acknowledges, for up
 * to `timeoutMs` in all. Returns the index of the write. A Put repeated after an
 * unknown outcome stores the same value, so retrying is safe.
 */
export async function putWithRetry(
  c: Cluster,
  key: string,
  value: string,
  timeoutMs = DEFAULT_WAIT_MS,
): Promise<bigint> {
  let attempt = 0;
  return await waitFor(`Put ${key} to be acknowledged`, async () => {
    const live = c.liveIds();
    c.checkNoCrash();
    const id = live[attempt++ % live.length]!;
    const res = await c.kv(id).put({ key, value: utf8(value) }, { timeoutMs: 3_000 });
    return res.index;
  }, { timeoutMs, intervalMs: 100 });
}

/**
 * Reads every key of `expected` through node `id` (in parallel batches) and returns
 * the mismatches as `key: wanted X, got Y` lines (empty when all match).
 */
export async function checkReads(
  c: Cluster,
  id: number,
  expected: ReadonlyMap<string, string | undefined>,
): Promise<string[]> {
  const problems: string[] = [];
  const keys = [...expected.keys()];
  const BATCH = 50;
  for (let i = 0; i < keys.length; i += BATCH) {
    await Promise.all(
      keys.slice(i, i + BATCH).map(async (key) => {
        const want = expected.get(key);
        try {
          const res = await c.kv(id).get({ key }, { timeoutMs: 10_000 });
          const got = res.found ? text(res.value) : undefined;
          if (got !== want) {
            problems.push(
              `node ${id}, key ${key}: wanted ${want ?? "<absent>"}, got ${got ?? "<absent>"}`,
            );
          }
        } catch (err) {
          problems.push(`node ${id}, key ${key}: Get failed: ${(err as Error).message}`);
        }
      }),
    );
  }
  return problems;
}

/** Waits until node `id` reports `applied_index >= index`. */
export async function waitApplied(
  c: Cluster,
  id: number,
  index: bigint,
  options: WaitOptions = {},
): Promise<StatusResponse> {
  return await waitFor(`node ${id} to apply index ${index}`, async () => {
    c.checkNoCrash();
    const s = await c.status(id, 1_000);
    if (s.appliedIndex >= index) return s;
    throw new Error(`node ${id} applied ${s.appliedIndex}, commit ${s.commitIndex}`);
  }, options);
}

// -----------------------------------------------------------------------------
// WAL files (format: src/wal/record.ts), read independently of src/wal/.

/** One frame of a WAL segment file, as laid out on disk. */
export interface WalFrame {
  /** Byte offset of the frame in its file. */
  readonly offset: number;
  /** Record type: 1 segment header, 2 entry, 3 hard state. */
  readonly type: number;
  /** Payload bytes, padding excluded. */
  readonly payloadBytes: number;
  /** Bytes the frame occupies: the 16-byte header, the payload, the padding to 8 bytes. */
  readonly size: number;
}

/** The WAL record type of an entry. */
export const WAL_ENTRY = 2;

/**
 * Walks the frames of a WAL segment by their length fields (no CRC checks): every
 * frame is a 16-byte header (u32 LE payload length, type byte, ...) then the payload
 * padded to a multiple of 8.
 */
export function walFrames(bytes: Uint8Array): WalFrame[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const frames: WalFrame[] = [];
  for (let offset = 0; offset + 16 <= bytes.length;) {
    const payloadBytes = view.getUint32(offset, true);
    const size = 16 + ((payloadBytes + 7) & ~7);
    if (offset + size > bytes.length) break;
    frames.push({ offset, type: bytes[offset + 4]!, payloadBytes, size });
    offset += size;
  }
  return frames;
}

/** The path of the last segment (highest sequence number) in a WAL directory. */
export async function lastWalSegment(walDir: string): Promise<string> {
  const names: string[] = [];
  for await (const e of Deno.readDir(walDir)) {
    if (/^[0-9a-f]{16}-[0-9a-f]{16}\.wal$/.test(e.name)) names.push(e.name);
  }
  names.sort();
  const last = names[names.length - 1];
  if (last === undefined) throw new Error(`no WAL segment in ${walDir}`);
  return `${walDir}/${last}`;
}

/** An HTTP/2 server listening on 127.0.0.1 ({@link listenH2}). */
export interface ListeningH2 {
  readonly port: number;
  /** Cuts every connection at once, as a crash or a reset would. */
  cut(): void;
  /** Stops listening and cuts every connection; resolves once the server has closed. */
  close(): Promise<void>;
}

/**
 * Listens `server` on 127.0.0.1 (port 0: a free one) and keeps its sessions, so
 * that a test can cut them or close the server without waiting for clients.
 */
export async function listenH2(
  server: http2.Http2Server | http2.Http2SecureServer,
  port = 0,
): Promise<ListeningH2> {
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const cut = () => {
    for (const s of sessions) s.destroy();
  };
  return {
    port: (server.address() as net.AddressInfo).port,
    cut,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        cut();
      }),
  };
}
