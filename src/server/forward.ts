/**
 * Forwarding on one stream: the unary KVService and ClusterService calls a follower
 * forwards to the leader (route.ts) travel as messages of one long-lived
 * `RaftService/Forward` call per leader, not as an HTTP/2 stream each, as etcd
 * forwards proposals on its peer stream rather than with a call per proposal.
 *
 * Semantics stay those of a forwarded gRPC call: the leader runs each call as
 * Connect's gRPC handler would (the same implementation, behind the same
 * interceptors, with a handler context holding the caller's remaining deadline and
 * {@link FORWARDED_HEADER}, so a call is forwarded once), and answers its status
 * code and message, which the follower raises as the ConnectError a gRPC client
 * would have read. What is skipped is what made forwarding cost a second call: an
 * HTTP/2 stream, gRPC framing and headers, and Connect's per-call pipeline on both
 * ends. Handlers here set no response headers or trailers and no error details, so
 * nothing else needs carrying.
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

import {
  create,
  type DescMessage,
  type DescMethodUnary,
  fromBinary,
  isMessage,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  type Client,
  Code,
  ConnectError,
  createContextValues,
  createHandlerContext,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type ServiceImplSpec,
  type Transport,
  type UnaryResponse,
} from "@connectrpc/connect";
import { invokeUnaryImplementation } from "@connectrpc/connect/protocol";
import {
  type ForwardRequest,
  ForwardRequestSchema,
  type ForwardResponse,
  ForwardResponseSchema,
  RaftService,
} from "../gen/raftkv/v1/raft_pb.ts";
import { type Caller } from "../tls/caller.ts";
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

// ---------------------------------------------------------------------------
// The leader's side
// ---------------------------------------------------------------------------

/** Options of {@link ForwardServer}: those of the node's own gRPC server. */
export interface ForwardServerOptions {
  /** KVService and ClusterService, with the same implementations as the server's. */
  readonly services: readonly ServiceImplSpec[];
  /** The server's interceptors, run around every forwarded call as around any call. */
  readonly interceptors: Interceptor[];
  /** The server's longest deadline (a longer one is INVALID_ARGUMENT, as in gRPC's header). */
  readonly maxTimeoutMs: number;
}

type UnarySpec = MethodImplSpec & { kind: "unary" };

/** Serves `RaftService/Forward`: each request one call, handed to the node's own handlers. */
export class ForwardServer {
  readonly #methods = new Map<string, UnarySpec>();
  readonly #interceptors: Interceptor[];
  readonly #maxTimeoutMs: number;
  /** Wakes each Forward call being served (to see {@link ForwardServer.close}). */
  readonly #wakers = new Set<() => void>();
  #closing = false;

  constructor(options: ForwardServerOptions) {
    this.#interceptors = options.interceptors;
    this.#maxTimeoutMs = options.maxTimeoutMs;
    for (const s of options.services) {
      for (const m of Object.values(s.methods)) {
        if (m.kind === "unary") this.#methods.set(`/${s.service.typeName}/${m.method.name}`, m);
      }
    }
  }

  /**
   * Ends every Forward call once the calls open on it are answered, and answers
   * calls that arrive meanwhile UNAVAILABLE (not run): the server is stopping, and
   * a Forward call, unlike a unary one, would otherwise never finish while its
   * follower keeps forwarding.
   */
  close(): void {
    this.#closing = true;
    for (const wake of this.#wakers) wake();
  }

  /** The Forward handler: answers each call as its handler finishes, in any order. */
  async *serve(
    requests: AsyncIterable<ForwardRequest>,
    ctx: HandlerContext,
  ): AsyncGenerator<ForwardResponse> {
    const forwardedBy = ctx.requestHeader.get(FORWARDED_HEADER) ?? "a peer";
    const caller = ctx.values.get(CALLER);
    const open = new Map<bigint, AbortController>();
    const answers: ForwardResponse[] = [];
    let wake: (() => void) | undefined;
    let readDone = false;
    let readError: unknown;
    const push = (r: ForwardResponse) => {
      answers.push(r);
      wake?.();
    };
    const waker = () => wake?.();
    this.#wakers.add(waker);
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
          if (this.#closing) {
            push(errorAnswer(req.callId, Code.Unavailable, "the leader is stopping"));
            continue;
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
          const answer = (r: ForwardResponse) => {
            // Closed before the answer is queued, so the loop below sees both at once.
            open.delete(req.callId);
            push(r);
          };
          this.#call(req, forwardedBy, caller, AbortSignal.any([ctx.signal, abort.signal]))
            .then(answer, (e) => {
              const err = ConnectError.from(e);
              answer(errorAnswer(req.callId, err.code, err.rawMessage));
            });
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
        if ((readDone || this.#closing) && open.size === 0) break;
        await new Promise<void>((resolve) => wake = resolve);
        wake = undefined;
      }
    } finally {
      this.#wakers.delete(waker);
      for (const a of open.values()) {
        a.abort(new ConnectError("the Forward call ended", Code.Canceled));
      }
      // Not awaited when closing: the follower may still hold its side open; the
      // reading ends when the stream does.
      if (!this.#closing) await reading;
    }
  }

  /**
   * One call, as Connect's gRPC handler runs it (protocol-grpc/handler-factory.js):
   * the same handler context (deadline, signal, headers), the same interceptors
   * around the implementation, and an error that is not a ConnectError answered
   * INTERNAL "internal error". What is skipped is the HTTP/2 stream and gRPC framing.
   */
  async #call(
    req: ForwardRequest,
    forwardedBy: string,
    caller: Caller,
    signal: AbortSignal,
  ): Promise<ForwardResponse> {
    const spec = this.#methods.get(req.path);
    if (spec === undefined) {
      return errorAnswer(
        req.callId,
        Code.Unimplemented,
        `Forward serves the unary methods of KVService and ClusterService, not ${
          JSON.stringify(req.path.slice(0, 200))
        }`,
      );
    }
    if (req.timeoutMs > BigInt(this.#maxTimeoutMs)) {
      return errorAnswer(
        req.callId,
        Code.InvalidArgument,
        `timeout ${req.timeoutMs}ms must be at most ${this.#maxTimeoutMs}`,
      );
    }
    const context = createHandlerContext({
      ...spec,
      service: spec.method.parent,
      requestMethod: "POST",
      protocolName: "grpc",
      timeoutMs: req.timeoutMs === 0n ? undefined : Number(req.timeoutMs),
      requestSignal: signal,
      requestHeader: { "content-type": "application/grpc+proto", [FORWARDED_HEADER]: forwardedBy },
      url: `http://forwarded${req.path}`,
      responseHeader: {},
      responseTrailer: {},
      // The Forward call's caller (a member), as on a forwarded call of its own.
      contextValues: createContextValues().set(CALLER, caller),
    });
    try {
      let input;
      try {
        input = fromBinary(spec.method.input, req.message);
      } catch (e) {
        // Connect's words for a request it cannot parse (protocol/serialization.js).
        throw new ConnectError(
          `parse binary: ${e instanceof Error ? e.message : String(e)}`,
          Code.Internal,
        );
      }
      const output = await invokeUnaryImplementation(
        spec,
        context,
        input,
        this.#interceptors,
      );
      return create(ForwardResponseSchema, {
        callId: req.callId,
        message: toBinary(spec.method.output, output),
      });
    } catch (e) {
      const err = e instanceof ConnectError
        ? e
        : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
      return errorAnswer(req.callId, err.code, err.rawMessage);
    } finally {
      context.abort();
    }
  }
}

/** A call answered with a gRPC error. */
function errorAnswer(callId: bigint, code: Code, message: string): ForwardResponse {
  return create(ForwardResponseSchema, { callId, code, errorMessage: message });
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
  #broken = false;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #onEnd: () => void;

  constructor(
    client: Client<typeof RaftService>,
    headers: Record<string, string>,
    leader: bigint,
    onEnd: () => void,
  ) {
    this.#onEnd = onEnd;
    const requests = this.#requests();
    (async () => {
      try {
        for await (const r of client.forward(requests, { headers })) {
          const p = this.pending.get(r.callId);
          if (p === undefined) continue; // given up meanwhile
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

  async *#requests(): AsyncGenerator<ForwardRequest> {
    for (;;) {
      const next = this.#queue.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.#closed) return;
      await new Promise<void>((resolve) => this.#wake = resolve);
      this.#wake = undefined;
    }
  }

  #fail(err: unknown): void {
    this.#broken = true;
    this.close();
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.#onEnd();
  }

  /** Ends the call once nothing has been open on it for {@link IDLE_CLOSE_MS}. */
  #maybeIdle(): void {
    if (this.pending.size > 0) return;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      if (this.pending.size === 0) {
        this.close();
        this.#onEnd();
      }
    }, IDLE_CLOSE_MS);
    // An idle stream does not keep a stopping node's process alive.
    Deno.unrefTimer(this.#idleTimer);
  }

  get usable(): boolean {
    return !this.#broken && !this.#closed;
  }

  send(req: ForwardRequest): void {
    clearTimeout(this.#idleTimer);
    this.#queue.push(req);
    this.#wake?.();
  }

  close(): void {
    clearTimeout(this.#idleTimer);
    this.#closed = true;
    this.#wake?.();
  }
}

/**
 * The follower's transport to one leader: unary calls over Forward, streaming calls
 * (and unary calls while the leader does not serve Forward) over `fallback`, the
 * ordinary transport to the same address. `self` names this node in the
 * {@link FORWARDED_HEADER} of every call it carries.
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

  const overStream = async <I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    input: MessageInitShape<I>,
  ): Promise<UnaryResponse<I, O>> => {
    const message = toBinary(
      method.input,
      isMessage(input, method.input) ? input : create(method.input, input),
    );
    if (stream === undefined || !stream.usable) {
      const s: OpenStream = new OpenStream(raft, headers, leader, () => {
        if (stream === s) stream = undefined;
      });
      stream = s;
    }
    const s = stream;
    const callId = ++nextId;
    const answer = await new Promise<ForwardResponse>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      // The caller gives up: the leader is told, as a reset stream would tell it.
      const giveUp = (err: ConnectError) => {
        if (!s.pending.delete(callId)) return;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        s.send(create(ForwardRequestSchema, { callId, cancel: true }));
        reject(err);
      };
      const onAbort = () => giveUp(ConnectError.from(signal?.reason));
      s.pending.set(callId, {
        resolve: (r) => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
      });
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeoutMs !== undefined) {
        // Connect's words for a call past its deadline (protocol/signals.js).
        timer = setTimeout(
          () => giveUp(new ConnectError("the operation timed out", Code.DeadlineExceeded)),
          timeoutMs,
        );
      }
      s.send(create(ForwardRequestSchema, {
        callId,
        path: `/${method.parent.typeName}/${method.name}`,
        message,
        timeoutMs: timeoutMs === undefined ? 0n : BigInt(Math.max(1, Math.ceil(timeoutMs))),
      }));
    });
    if (answer.code !== 0) throw new ConnectError(answer.errorMessage, answer.code as Code);
    return {
      stream: false,
      service: method.parent,
      method,
      header: new Headers(),
      trailer: new Headers(),
      message: fromBinary(method.output, answer.message),
    };
  };

  return {
    async unary(method, signal, timeoutMs, header, input, contextValues) {
      if (Date.now() >= unsupportedUntil) {
        try {
          return await overStream(method, signal, timeoutMs, input);
        } catch (err) {
          // Refused as a whole before any call ran: this one goes as a call of its own.
          if (!(err instanceof ForwardUnsupported)) throw err;
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
