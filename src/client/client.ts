/**
 * The raftkv client library: one client for a cluster, given its endpoints.
 *
 * - **Leader following.** The client learns which endpoint is the leader (ClusterService
 *   Status) and sends calls there, saving the hop a follower's forwarding costs; when
 *   that endpoint fails it tries the others in turn and learns again.
 * - **Safe retries.** Reads are retried on another endpoint whenever a call fails for
 *   reasons of reaching the cluster (UNAVAILABLE, a broken connection, a deadline).
 *   Writes (Put, Delete, Txn, LeaseGrant) are sent in an exactly-once session (dissertation §6.3),
 *   so retrying them is safe too: a retry of a write that did take effect is answered
 *   with its first outcome. A client keeps a small pool of sessions, one per write in
 *   flight (a session serves one write at a time).
 * - **A time budget.** `timeoutMs` bounds each operation, retries and a write's session
 *   included; when it runs out unanswered, {@link UnreachableError} names each
 *   endpoint's last failure.
 * - **Watches that resume.** {@link RaftKvClient.watch} follows a watch across node
 *   failures: when the stream breaks, it watches again on another node from the last
 *   index it delivered + 1, so its caller sees every change once, in order.
 * - **Leases kept alive.** {@link RaftKvClient.keepAlive} renews a lease every third of
 *   its TTL over a LeaseKeepAliveStream until stopped, moving to another node when the
 *   stream breaks.
 *
 * It uses only Connect-ES and node:http2, so it runs on Deno and on Node alike.
 *
 * @module
 */

import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { ClusterService, Role } from "../gen/raftkv/v1/cluster_pb.ts";
import {
  type CompareAndSwapResponse,
  type GetResponse,
  KVService,
  type LeaseGrantResponse,
  type LeaseTimeToLiveResponse,
  type PutResponse,
  type RangeRequestSchema,
  type RangeResponse,
  SessionSchema,
  TxnRequestSchema,
  type TxnResponse,
  type WatchEvent,
  WatchRequestSchema,
} from "../gen/raftkv/v1/kv_pb.ts";
import { cannotConnect, shortReason } from "./reasons.ts";

/** Options of a {@link RaftKvClient}. */
export interface ClientOptions {
  /** The cluster's nodes as `host:port` (IPv6 as `[::1]:7001`); at least one. */
  readonly endpoints: readonly string[];
  /** The time budget of one operation, retries included, in ms (10,000 by default). */
  readonly timeoutMs?: number;
  /**
   * TLS to dial with, as PEM texts: the CA that signed the nodes' certificates, and a
   * client certificate and key if the nodes ask for one. Without it: plaintext.
   */
  readonly tls?: { readonly ca?: string; readonly cert?: string; readonly key?: string };
  /**
   * Makes the transport to an endpoint, instead of the default (gRPC over HTTP/2, with
   * `tls` if given). Connections of such transports are the caller's to close.
   */
  readonly transport?: (endpoint: string) => Transport;
}

/** A change delivered by {@link RaftKvClient.watch}, and the progress of the watch. */
export interface WatchBatch {
  /** The changes, in log order (none in a progress message). */
  readonly events: readonly WatchEvent[];
  /** Every watched change up to this index has been delivered. */
  readonly throughIndex: bigint;
  /** The endpoint that sent it. */
  readonly endpoint: string;
}

/** Codes for which a call may be tried again elsewhere: the cluster was not reached. */
const RETRYABLE = new Set([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.Aborted,
  Code.Canceled, // a stream reset by a node going away
  Code.Unknown,
]);

/** Whether `err` means "try again, maybe elsewhere" rather than a definite answer. */
export function isRetryable(err: unknown): boolean {
  if (!(err instanceof ConnectError)) return true; // a socket error, a reset: not an answer
  return RETRYABLE.has(err.code) ||
    (err.code === Code.Internal && /stream|connect|socket|GOAWAY|reset|EPIPE/i.test(err.message));
}

/**
 * The error of an operation whose time budget ran out before any endpoint gave an
 * answer: UNAVAILABLE, with each endpoint's last failure, so the caller can tell a
 * mistyped address (connection refused, unknown host) from a cluster without a leader.
 */
export class UnreachableError extends ConnectError {
  // The name stays "ConnectError": Connect-ES recognises its errors by name (so
  // `ConnectError.from` keeps this one as it is); and `instanceof UnreachableError`
  // checks the prototype chain, not ConnectError's by-name test that it would inherit.
  static override [Symbol.hasInstance](v: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(this, v);
  }

  /** Each endpoint's last failure, in the client's endpoint order (absent: not tried). */
  readonly failures: ReadonlyMap<string, unknown>;

  constructor(endpoints: readonly string[], timeoutMs: number, failures: Map<string, unknown>) {
    const reasons = endpoints
      .map((ep) => `${ep}: ${failures.has(ep) ? shortReason(failures.get(ep)) : "not tried"}`)
      .join("; ");
    super(`no endpoint answered within ${timeoutMs} ms (${reasons})`, Code.Unavailable);
    this.failures = failures;
  }

  /**
   * True when every endpoint refused the connection or does not exist: nothing is
   * running at those addresses, or they are mistyped.
   */
  get nothingListening(): boolean {
    return this.failures.size > 0 && [...this.failures.values()].every(cannotConnect);
  }
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });

interface Session {
  readonly id: bigint;
  sequence: bigint;
}

/** A client of one raftkv cluster. */
export class RaftKvClient {
  readonly endpoints: readonly string[];
  readonly timeoutMs: number;
  readonly #kv = new Map<string, Client<typeof KVService>>();
  readonly #cluster = new Map<string, Client<typeof ClusterService>>();
  readonly #transport: (endpoint: string) => Transport;
  /** One transport per endpoint, for both services (one connection). */
  readonly #transports = new Map<string, Transport>();
  /** The HTTP/2 connections of the default transports, closed by {@link close}. */
  readonly #sessions: Http2SessionManager[] = [];
  /** Where calls go first: the leader, as last learned. */
  #preferred = 0;
  readonly #idle: Session[] = [];
  #closed = false;
  /** Set once the leader has been looked for: the first call asks the endpoints. */
  #looked: Promise<unknown> | undefined;

  constructor(options: ClientOptions) {
    if (options.endpoints.length === 0) {
      throw new Error("Cannot create a client: no endpoints given");
    }
    this.endpoints = [...options.endpoints];
    this.timeoutMs = options.timeoutMs ?? 10_000;
    const tls = options.tls;
    this.#transport = options.transport ?? ((endpoint) => {
      const baseUrl = `${tls === undefined ? "http" : "https"}://${endpoint}`;
      const sessionManager = new Http2SessionManager(baseUrl, {}, tls);
      this.#sessions.push(sessionManager);
      return createGrpcTransport({ baseUrl, sessionManager });
    });
  }

  #transportFor(endpoint: string): Transport {
    let t = this.#transports.get(endpoint);
    if (t === undefined) {
      t = this.#transport(endpoint);
      this.#transports.set(endpoint, t);
    }
    return t;
  }

  /**
   * The KVService client of `endpoint` (the lower-level API: one call, no retry,
   * no leader following; for callers that need each attempt's outcome).
   */
  kvAt(endpoint: string): Client<typeof KVService> {
    let c = this.#kv.get(endpoint);
    if (c === undefined) {
      c = createClient(KVService, this.#transportFor(endpoint));
      this.#kv.set(endpoint, c);
    }
    return c;
  }

  #clusterAt(endpoint: string): Client<typeof ClusterService> {
    let c = this.#cluster.get(endpoint);
    if (c === undefined) {
      c = createClient(ClusterService, this.#transportFor(endpoint));
      this.#cluster.set(endpoint, c);
    }
    return c;
  }

  /**
   * Asks the endpoints which node leads and prefers the leader's endpoint from now on.
   * Returns it, or undefined when none answered with a leader.
   */
  async findLeader(signal?: AbortSignal, timeoutMs = 1_000): Promise<string | undefined> {
    const ids = new Map<bigint, string>();
    let leader = 0n;
    await Promise.all(this.endpoints.map(async (endpoint) => {
      try {
        const s = await this.#clusterAt(endpoint).status({}, { timeoutMs, signal });
        ids.set(s.id, endpoint);
        if (s.role === Role.LEADER) leader = s.id;
        else if (leader === 0n && s.leaderId !== 0n) leader = s.leaderId;
      } catch {
        // Down or unreachable: another answers.
      }
    }));
    const endpoint = ids.get(leader);
    if (endpoint !== undefined) this.#preferred = this.endpoints.indexOf(endpoint);
    return endpoint;
  }

  /**
   * Runs `call` on the preferred endpoint, then on the others in turn, while it fails
   * with a retryable error and the time budget lasts (until `deadline`, a `Date.now()`
   * time; by default the client's timeoutMs from now); learns the leader again after
   * each round, with pauses growing from 200 ms to 1 s between rounds, since an
   * election may be under way. Nothing it waits for outlasts the deadline. Only for
   * calls that are safe to repeat.
   *
   * @throws the first definite (non-retryable) error; {@link UnreachableError} when the
   *   budget ran out
   */
  async #retry<T>(
    call: (kv: Client<typeof KVService>, options: { timeoutMs: number }) => Promise<T>,
    deadline = Date.now() + this.timeoutMs,
  ): Promise<T> {
    if (this.#closed) throw new Error("Cannot call: the client is closed");
    const left = () => deadline - Date.now();
    // The first call finds the leader, so calls go there without a forwarding hop.
    await (this.#looked ??= this.findLeader(undefined, Math.max(1, Math.min(1_000, left()))));
    const failures = new Map<string, unknown>();
    let attempt = 0;
    let round = 0;
    while (left() > 0) {
      const endpoint = this.endpoints[(this.#preferred + attempt) % this.endpoints.length]!;
      try {
        return await call(this.kvAt(endpoint), { timeoutMs: left() });
      } catch (err) {
        if (!isRetryable(err)) throw err;
        failures.set(endpoint, err);
      }
      attempt++;
      if (attempt % this.endpoints.length === 0 && left() > 0) {
        round++;
        await sleep(Math.min(200 * round, 1_000, left()));
        if (left() > 0) await this.findLeader(undefined, Math.min(1_000, left()));
        attempt = 0;
      }
    }
    throw new UnreachableError(this.endpoints, this.timeoutMs, failures);
  }

  /** Runs a write in a session from the pool (opening one if none is idle). */
  async #inSession<T>(
    write: (session: { id: bigint; sequence: bigint }, deadline: number) => Promise<T>,
  ): Promise<T> {
    // One budget for the whole write, opening its session included.
    const deadline = Date.now() + this.timeoutMs;
    let session = this.#idle.pop();
    if (session === undefined) {
      const opened = await this.#retry((kv, o) => kv.openSession({}, o), deadline);
      session = { id: opened.sessionId, sequence: 0n };
    }
    session.sequence++;
    try {
      const result = await write({ id: session.id, sequence: session.sequence }, deadline);
      this.#idle.push(session);
      return result;
    } catch (err) {
      // A definite answer leaves the session usable; an unknown outcome does not (the
      // next write would race the retried one), so the session is dropped.
      if (err instanceof ConnectError && !isRetryable(err)) this.#idle.push(session);
      throw err;
    }
  }

  /** Stores `value` under `key` (attached to `lease`, if given), exactly once. */
  put(
    key: string,
    value: Uint8Array | string,
    options: { lease?: bigint } = {},
  ): Promise<PutResponse> {
    const bytes = typeof value === "string" ? new TextEncoder().encode(value) : value;
    return this.#inSession((session, deadline) =>
      this.#retry(
        (kv, o) => kv.put({ key, value: bytes, session, lease: options.lease ?? 0n }, o),
        deadline,
      )
    );
  }

  /** Reads `key`, linearizably. */
  get(key: string): Promise<GetResponse> {
    return this.#retry((kv, o) => kv.get({ key }, o));
  }

  /** Deletes `key`, exactly once; true if it existed. */
  async delete(key: string): Promise<boolean> {
    const r = await this.#inSession((session, deadline) =>
      this.#retry((kv, o) => kv.delete({ key, session }, o), deadline)
    );
    return r.deleted;
  }

  /**
   * Stores `value` under `key` only if the key holds `expected` (undefined: only if it
   * is absent), atomically, exactly once. The answer says whether it swapped and what
   * the key holds now.
   */
  compareAndSwap(
    key: string,
    expected: Uint8Array | string | undefined,
    value: Uint8Array | string,
  ): Promise<CompareAndSwapResponse> {
    const bytes = (v: Uint8Array | string) =>
      typeof v === "string" ? new TextEncoder().encode(v) : v;
    return this.#inSession((session, deadline) =>
      this.#retry((kv, o) =>
        kv.compareAndSwap({
          key,
          expected: expected === undefined ? undefined : bytes(expected),
          value: bytes(value),
          session,
        }, o), deadline)
    );
  }

  /** Reads a page of a range (linearizable unless `serializable`). */
  range(request: MessageInitShape<typeof RangeRequestSchema>): Promise<RangeResponse> {
    return this.#retry((kv, o) => kv.range(request, o));
  }

  /** Every key of a range, page by page (each page linearizable on its own). */
  async *rangeAll(
    request: MessageInitShape<typeof RangeRequestSchema>,
  ): AsyncGenerator<RangeResponse> {
    let continuation = "";
    for (;;) {
      const page = await this.range({ ...request, continuation });
      yield page;
      if (!page.more) return;
      continuation = page.continuation;
    }
  }

  /** Runs a transaction, exactly once. */
  txn(request: MessageInitShape<typeof TxnRequestSchema>): Promise<TxnResponse> {
    return this.#inSession((session, deadline) => {
      const message = create(TxnRequestSchema, request);
      message.session = create(SessionSchema, session);
      return this.#retry((kv, o) => kv.txn(message, o), deadline);
    });
  }

  /** Grants a lease of `ttl` seconds, exactly once (in a session, as writes are). */
  leaseGrant(ttl: number): Promise<LeaseGrantResponse> {
    return this.#inSession((session, deadline) =>
      this.#retry((kv, o) => kv.leaseGrant({ ttl: BigInt(ttl), session }, o), deadline)
    );
  }

  /** Revokes a lease, deleting its keys. A retry after it took effect answers NOT_FOUND, which this treats as done. */
  async leaseRevoke(id: bigint): Promise<void> {
    try {
      await this.#retry((kv, o) => kv.leaseRevoke({ id }, o));
    } catch (err) {
      if (!(err instanceof ConnectError && err.code === Code.NotFound)) throw err;
    }
  }

  /** A lease's granted TTL, time left and keys. */
  leaseTimeToLive(id: bigint, keys = false): Promise<LeaseTimeToLiveResponse> {
    return this.#retry((kv, o) => kv.leaseTimeToLive({ id, keys }, o));
  }

  /**
   * Keeps lease `id` alive until `signal` aborts, over a LeaseKeepAliveStream (etcd's
   * form): one renewal every third of `ttl` seconds (at least every 4 s, since a node
   * resets a stream silent for its request timeout, 10 s by default), each answered
   * with the TTL renewed. When the stream breaks, or stops answering for two periods,
   * it goes on over another endpoint. Resolves when stopped (the stream is closed, so
   * renewals stop and the lease expires after its TTL unless revoked); rejects
   * (NOT_FOUND) if the lease is lost (it expired or was revoked), so the holder knows it
   * no longer holds what it leased, or with any other definite error.
   */
  async keepAlive(id: bigint, ttl: number, signal: AbortSignal): Promise<void> {
    const every = Math.min(4_000, Math.max(100, (ttl * 1000) / 3));
    let attempt = 0;
    while (!signal.aborted) {
      const endpoint = this.endpoints[(this.#preferred + attempt) % this.endpoints.length]!;
      const broken = new AbortController();
      const streamSignal = AbortSignal.any([signal, broken.signal]);
      let lastAnswer = Date.now();
      const requests = async function* () {
        while (!streamSignal.aborted) {
          yield { id };
          await sleep(every, streamSignal);
          // No answer for two periods: the node is stuck or cut off; go elsewhere.
          if (Date.now() - lastAnswer > 2 * every + 1_000) broken.abort();
        }
      };
      try {
        const answers = this.kvAt(endpoint).leaseKeepAliveStream(requests(), {
          signal: streamSignal,
        });
        for await (const answer of answers) {
          lastAnswer = Date.now();
          attempt = 0;
          if (answer.ttl === 0n) {
            throw new ConnectError(
              `lease ${id} not found (expired, revoked, or never granted)`,
              Code.NotFound,
            );
          }
        }
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof ConnectError && !isRetryable(err) && !broken.signal.aborted) throw err;
      } finally {
        broken.abort();
      }
      // The stream ended or broke: go on elsewhere, soon (the TTL is still running).
      attempt++;
      if (attempt % this.endpoints.length === 0) await this.findLeader(signal);
      await sleep(Math.min(100 * attempt, every), signal);
    }
  }

  /**
   * Watches a key, prefix or range from `options.startIndex` (0: from now; the
   * request's own start_index is ignored), following the
   * watch across node failures: when the stream breaks it watches again on another
   * endpoint from the last index delivered + 1, so every change comes once, in log
   * order. Ends when `signal` aborts; throws OUT_OF_RANGE (history gone: re-read and
   * watch again) or RESOURCE_EXHAUSTED (fell behind) as the node says.
   */
  async *watch(
    request: MessageInitShape<typeof WatchRequestSchema>,
    options: { startIndex?: bigint; signal?: AbortSignal } = {},
  ): AsyncGenerator<WatchBatch> {
    const signal = options.signal;
    // 0n: from now; the first response fixes where "now" was.
    let next = options.startIndex ?? 0n;
    let attempt = 0;
    while (!signal?.aborted) {
      const endpoint = this.endpoints[(this.#preferred + attempt) % this.endpoints.length]!;
      try {
        const message = create(WatchRequestSchema, request);
        message.startIndex = next;
        const stream = this.kvAt(endpoint).watch(message, { signal });
        for await (const res of stream) {
          attempt = 0;
          next = res.throughIndex + 1n;
          yield { events: res.events, throughIndex: res.throughIndex, endpoint };
        }
      } catch (err) {
        if (signal?.aborted) return;
        if (err instanceof ConnectError && !isRetryable(err)) throw err;
      }
      // The stream ended or broke: go on elsewhere from `next`.
      attempt++;
      await sleep(Math.min(100 * attempt, 1_000), signal);
    }
  }

  /**
   * Stops using the client: no more calls, and its connections are closed (calls and
   * watches still under way fail). Connections of a caller's own `transport` are left
   * to the caller.
   */
  close(): void {
    this.#closed = true;
    for (const session of this.#sessions) session.abort();
    this.#sessions.length = 0;
    this.#transports.clear();
    this.#kv.clear();
    this.#cluster.clear();
  }
}
