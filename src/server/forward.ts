/**
 * Forwarding on one stream: the unary KVService and ClusterService calls a follower
 * forwards to the leader (route.ts) travel as messages of one long-lived
 * `RaftService/Forward` call per leader, not as an HTTP/2 stream each, as etcd
 * forwards proposals on its peer stream rather than with a call per proposal.
 *
 * Semantics stay those of a forwarded gRPC call, by construction: the follower's
 * client runs Connect's own gRPC protocol ({@link createTransport} from
 * protocol-grpc) over an HTTP client whose "requests" are {@link ForwardRequest}s,
 * and the leader hands each to the very handlers (and interceptors) its server
 * runs, through Connect's in-process router, with the headers a forwarded unary
 * call carries: the gRPC content type, the caller's remaining deadline
 * (`grpc-timeout`), and {@link FORWARDED_HEADER}, so a call is forwarded once. The
 * answer's status, headers, trailers and body go back as the handler wrote them, and
 * the follower's gRPC client reads them as it would off the wire: same statuses,
 * same messages.
 *
 * Authorization is what it was: the follower authorized the original client when
 * the call arrived (src/tls/access.ts); the leader takes a forwarded call from a
 * member only (RaftService needs a peer certificate under `--peer-ca`), and its
 * handlers see that member as the caller, as they saw it on a forwarded unary call.
 *
 * Failure: a stream that breaks fails every call open on it with UNAVAILABLE (they
 * may or may not have been served: a client retries a write only if it is
 * idempotent or deduplicated, as for any lost answer). A caller that gives up
 * (deadline, abort) sends a cancellation, and the leader aborts the handler. A
 * leader that answers the stream with UNIMPLEMENTED (an older node during a rolling
 * restart) served nothing of it: its calls, and the calls to it for the next
 * {@link UNARY_FALLBACK_MS}, go as ordinary unary calls.
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import {
  type Client,
  Code,
  ConnectError,
  type ConnectRouter,
  type ContextValues,
  createConnectRouter,
  createContextValues,
  type HandlerContext,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import {
  createAsyncIterable,
  readAllBytes,
  type UniversalClientRequest,
  type UniversalClientResponse,
  type UniversalHandler,
} from "@connectrpc/connect/protocol";
import { createTransport } from "@connectrpc/connect/protocol-grpc";
import { ClusterService } from "../gen/raftkv/v1/cluster_pb.ts";
import { KVService } from "../gen/raftkv/v1/kv_pb.ts";
import {
  type ForwardHeader,
  ForwardHeaderSchema,
  type ForwardRequest,
  ForwardRequestSchema,
  type ForwardResponse,
  ForwardResponseSchema,
  RaftService,
} from "../gen/raftkv/v1/raft_pb.ts";
import { CALLER } from "../tls/access.ts";

/** Header set on a forwarded call, naming the node that forwarded it: calls are forwarded once. */
export const FORWARDED_HEADER = "raftkv-forwarded-by";

/** How long a leader that does not serve Forward is sent unary calls before Forward is tried again. */
export const UNARY_FALLBACK_MS = 60_000;

/**
 * The most calls open at once on one Forward stream; a call beyond it is answered
 * RESOURCE_EXHAUSTED. It stands in for the HTTP/2 limit on streams per connection
 * (src/http2/limits.ts), which no longer counts forwarded calls one by one.
 */
export const MAX_OPEN_CALLS = 1_024;

/** How long a follower keeps an idle Forward stream open (no call open on it). */
export const IDLE_CLOSE_MS = 2_000;

/** The largest request body a forwarded call may carry (the server's MAX_REQUEST_BYTES). */
const MAX_BODY_BYTES = 4 * 1024 * 1024;

const CONTENT_TYPE = "application/grpc+proto";

/** The unary methods of KVService and ClusterService: the only ones served on Forward. */
function unaryPaths(): Set<string> {
  const paths = new Set<string>();
  for (const service of [KVService, ClusterService]) {
    for (const m of service.methods) {
      if (m.methodKind === "unary") paths.add(`/${service.typeName}/${m.name}`);
    }
  }
  return paths;
}

// ---------------------------------------------------------------------------
// The leader's side
// ---------------------------------------------------------------------------

/** Options of {@link ForwardServer}: those of the node's own gRPC server. */
export interface ForwardServerOptions {
  /** Registers KVService and ClusterService, with the same implementations as the server's. */
  readonly routes: (router: ConnectRouter) => void;
  readonly interceptors: Interceptor[];
  readonly readMaxBytes: number;
  readonly maxTimeoutMs: number;
}

/** Serves `RaftService/Forward`: each request one call, handed to the node's own handlers. */
export class ForwardServer {
  readonly #handlers = new Map<string, UniversalHandler>();

  constructor(options: ForwardServerOptions) {
    const router = createConnectRouter({
      grpc: true,
      grpcWeb: false,
      connect: false,
      interceptors: options.interceptors,
      readMaxBytes: options.readMaxBytes,
      maxTimeoutMs: options.maxTimeoutMs,
    });
    options.routes(router);
    const allowed = unaryPaths();
    for (const h of router.handlers) {
      if (allowed.has(h.requestPath)) this.#handlers.set(h.requestPath, h);
    }
  }

  /** The Forward handler: answers each call as its handler finishes, in any order. */
  async *serve(
    requests: AsyncIterable<ForwardRequest>,
    ctx: HandlerContext,
  ): AsyncGenerator<ForwardResponse> {
    const forwardedBy = ctx.requestHeader.get(FORWARDED_HEADER) ?? "a peer";
    const open = new Map<bigint, AbortController>();
    const answers: ForwardResponse[] = [];
    let wake: (() => void) | undefined;
    let readDone = false;
    let readError: unknown;
    const push = (r: ForwardResponse) => {
      answers.push(r);
      wake?.();
    };
    const reading = (async () => {
      try {
        for await (const req of requests) {
          if (req.callId === 0n) {
            throw new ConnectError("a Forward request without a call_id", Code.InvalidArgument);
          }
          if (req.cancel) {
            open.get(req.callId)?.abort(
              new ConnectError("the forwarding node canceled the call", Code.Canceled),
            );
            continue;
          }
          if (open.has(req.callId)) {
            throw new ConnectError(
              `a Forward request reuses call_id ${req.callId}, still open`,
              Code.InvalidArgument,
            );
          }
          if (open.size >= MAX_OPEN_CALLS) {
            push(errorAnswer(
              req.callId,
              Code.ResourceExhausted,
              `too many forwarded calls open on one stream (at most ${MAX_OPEN_CALLS})`,
            ));
            continue;
          }
          const abort = new AbortController();
          open.set(req.callId, abort);
          this.#call(req, forwardedBy, ctx.values, AbortSignal.any([ctx.signal, abort.signal]))
            .then(push, (err) => {
              const e = ConnectError.from(err);
              push(errorAnswer(req.callId, e.code, e.rawMessage));
            })
            .finally(() => open.delete(req.callId));
        }
      } catch (err) {
        readError = err;
      } finally {
        readDone = true;
        wake?.();
      }
    })();
    try {
      for (;;) {
        const next = answers.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (readError !== undefined) throw readError;
        if (readDone && open.size === 0) break;
        await new Promise<void>((resolve) => wake = resolve);
        wake = undefined;
      }
    } finally {
      for (const a of open.values()) {
        a.abort(new ConnectError("the Forward call ended", Code.Canceled));
      }
      await reading;
    }
  }

  async #call(
    req: ForwardRequest,
    forwardedBy: string,
    values: ContextValues,
    signal: AbortSignal,
  ): Promise<ForwardResponse> {
    const handler = this.#handlers.get(req.path);
    if (handler === undefined) {
      return errorAnswer(
        req.callId,
        Code.Unimplemented,
        `Forward serves the unary methods of KVService and ClusterService, not ${
          JSON.stringify(req.path.slice(0, 200))
        }`,
      );
    }
    const header = new Headers({
      "content-type": CONTENT_TYPE,
      te: "trailers",
      [FORWARDED_HEADER]: forwardedBy,
    });
    if (req.timeout !== "") header.set("grpc-timeout", req.timeout);
    const res = await handler({
      httpVersion: "2.0",
      method: "POST",
      url: `http://forwarded${req.path}`,
      header,
      body: createAsyncIterable([req.body]),
      signal,
      // Its own values (interceptors may set some), with the Forward call's caller.
      contextValues: createContextValues().set(CALLER, values.get(CALLER)),
    });
    const body = res.body === undefined
      ? new Uint8Array(0)
      : await readAllBytes(res.body, MAX_BODY_BYTES);
    return create(ForwardResponseSchema, {
      callId: req.callId,
      httpStatus: res.status,
      headers: headerList(res.header),
      trailers: headerList(res.trailer),
      body,
    });
  }
}

function headerList(h: HeadersInit | undefined): ForwardHeader[] {
  const list: ForwardHeader[] = [];
  if (h === undefined) return list;
  new Headers(h).forEach((value, name) => list.push(create(ForwardHeaderSchema, { name, value })));
  return list;
}

/** A call answered with a gRPC error in trailers-only form, as a server would. */
function errorAnswer(callId: bigint, code: Code, message: string): ForwardResponse {
  return create(ForwardResponseSchema, {
    callId,
    httpStatus: 200,
    headers: [
      create(ForwardHeaderSchema, { name: "content-type", value: CONTENT_TYPE }),
      create(ForwardHeaderSchema, { name: "grpc-status", value: String(code) }),
      create(ForwardHeaderSchema, { name: "grpc-message", value: encodeURIComponent(message) }),
    ],
  });
}

// ---------------------------------------------------------------------------
// The follower's side
// ---------------------------------------------------------------------------

interface Pending {
  resolve(r: ForwardResponse): void;
  reject(e: unknown): void;
}

/** Thrown to a call whose leader answered the stream UNIMPLEMENTED: it may go unary. */
class ForwardUnsupported extends Error {}

/** One open Forward call to the leader. */
class OpenStream {
  readonly pending = new Map<bigint, Pending>();
  readonly #queue: ForwardRequest[] = [];
  #wake: (() => void) | undefined;
  #closed = false;
  broken = false;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #onEnd: () => void;

  constructor(
    client: Client<typeof RaftService>,
    headers: Record<string, string>,
    leader: bigint,
    onEnd: () => void,
  ) {
    this.#onEnd = onEnd;
    const self = this;
    const requests = (async function* () {
      for (;;) {
        const next = self.#queue.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (self.#closed) return;
        await new Promise<void>((resolve) => self.#wake = resolve);
        self.#wake = undefined;
      }
    })();
    (async () => {
      try {
        for await (const r of client.forward(requests, { headers, timeoutMs: undefined })) {
          const p = this.pending.get(r.callId);
          if (p === undefined) continue; // canceled meanwhile
          this.pending.delete(r.callId);
          p.resolve(r);
          this.#maybeIdle();
        }
        this.#fail(
          new ConnectError(`the Forward stream to leader ${leader} ended`, Code.Unavailable),
        );
      } catch (err) {
        const e = ConnectError.from(err);
        this.#fail(
          e.code === Code.Unimplemented ? new ForwardUnsupported(e.rawMessage) : new ConnectError(
            `the Forward stream to leader ${leader} broke (${Code[e.code]}): ${e.rawMessage}`,
            Code.Unavailable,
          ),
        );
      }
    })();
  }

  #fail(err: unknown): void {
    this.broken = true;
    this.close();
    clearTimeout(this.#idleTimer);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.#onEnd();
  }

  #maybeIdle(): void {
    if (this.pending.size > 0) return;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      if (this.pending.size === 0) {
        this.close();
        this.#onEnd();
      }
    }, IDLE_CLOSE_MS);
  }

  get usable(): boolean {
    return !this.broken && !this.#closed;
  }

  send(req: ForwardRequest): void {
    clearTimeout(this.#idleTimer);
    this.#queue.push(req);
    this.#wake?.();
  }

  close(): void {
    this.#closed = true;
    this.#wake?.();
  }
}

/**
 * The follower's transport to one leader: unary calls over Forward, streaming calls
 * (and unary calls while the leader does not serve Forward) over `fallback`, the
 * ordinary transport to the same address.
 */
export function forwardTransport(
  raft: Client<typeof RaftService>,
  fallback: Transport,
  self: bigint,
  leader: bigint,
): Transport {
  let stream: OpenStream | undefined;
  let unsupportedUntil = 0;
  let nextId = 0n;
  const headers = { [FORWARDED_HEADER]: String(self) };

  const httpClient = async (req: UniversalClientRequest): Promise<UniversalClientResponse> => {
    const body = req.body === undefined
      ? new Uint8Array(0)
      : await readAllBytes(req.body, MAX_BODY_BYTES);
    if (stream === undefined || !stream.usable) {
      const s: OpenStream = new OpenStream(raft, headers, leader, () => {
        if (stream === s) stream = undefined;
      });
      stream = s;
    }
    const s = stream;
    const callId = ++nextId;
    const answer = await new Promise<ForwardResponse>((resolve, reject) => {
      const signal = req.signal;
      const onAbort = () => {
        if (!s.pending.delete(callId)) return;
        s.send(create(ForwardRequestSchema, { callId, cancel: true }));
        reject(signal?.reason ?? new ConnectError("canceled", Code.Canceled));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      s.pending.set(callId, {
        resolve: (r) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(r);
        },
        reject: (e) => {
          signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
      });
      s.send(create(ForwardRequestSchema, {
        callId,
        path: new URL(req.url).pathname,
        body,
        timeout: req.header.get("grpc-timeout") ?? "",
      }));
    });
    return {
      status: answer.httpStatus,
      header: new Headers(answer.headers.map((h) => [h.name, h.value])),
      trailer: new Headers(answer.trailers.map((h) => [h.name, h.value])),
      body: createAsyncIterable([answer.body]),
    };
  };

  const overStream = createTransport({
    httpClient,
    baseUrl: "http://forwarded",
    useBinaryFormat: true,
    interceptors: [],
    acceptCompression: [],
    sendCompression: null,
    compressMinBytes: Number.MAX_SAFE_INTEGER,
    readMaxBytes: MAX_BODY_BYTES,
    writeMaxBytes: MAX_BODY_BYTES,
  });

  return {
    async unary(method, signal, timeoutMs, header, input, contextValues) {
      if (Date.now() >= unsupportedUntil) {
        try {
          return await overStream.unary(method, signal, timeoutMs, header, input, contextValues);
        } catch (err) {
          // The leader served none of it: the stream was refused as a whole.
          if (
            !(err instanceof ForwardUnsupported) &&
            !(ConnectError.from(err).cause instanceof ForwardUnsupported)
          ) {
            throw err;
          }
          unsupportedUntil = Date.now() + UNARY_FALLBACK_MS;
        }
      }
      return await fallback.unary(method, signal, timeoutMs, header, input, contextValues);
    },
    stream(method, signal, timeoutMs, header, input, contextValues) {
      return fallback.stream(method, signal, timeoutMs, header, input, contextValues);
    },
  };
}
