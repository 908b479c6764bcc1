/**
 * A direct path ("fast lane") for plain unary gRPC calls: it serves the unary
 * methods of the services it is given (KVService: Put, Get, Range, Txn, ...)
 * straight from `node:http2`'s request and response, without Connect's node
 * adapter, and hands every other call to the adapter unchanged.
 *
 * Why: a client's unary call cost the leader about 0.7 ms of CPU per put on top of
 * the Raft work (issue 11's longrun), most of it Connect's universal request and
 * response pipeline (web Headers, async generators chained per call, a promise per
 * step) and the garbage it leaves (GC was 30 % of the leader's CPU, and its RSS
 * over issue 9's 150 MB). Measured with scripts/bench_unary_lane.ts (one server
 * process answering a Get of 256 bytes, 64 calls in flight over 16 connections,
 * server CPU per call from /proc, on the shared 2-core machine): Connect's adapter
 * behind the guard 363-464 us, a bare handler on the compatibility API
 * (Http2ServerRequest/Response) 141-166 us, a bare handler on the core 'stream'
 * API 125-163 us; this lane behind the guard 171-177 us.
 *
 * Why the compatibility API and not the core 'stream' one: in Deno 2.9.3 (as in
 * Node) a 'request' listener makes the server build Http2ServerRequest and
 * Http2ServerResponse for every stream (`setupCompat` binds `onServerStream` to
 * 'stream'), and the response object hooks the stream's 'wantTrailers' (measured:
 * a 'stream' handler next to a 'request' listener had its trailers replaced, and
 * clients read "missing status"). So serving from 'stream' means taking the
 * compatibility layer off the server and building it by hand for every call that
 * falls back, and moving the HTTP/2 guard (src/http2/guard.ts: stream and byte
 * budgets, request timeout, coalesced writes) from req/res to the stream. The
 * compatibility API keeps 90 % of the gain and changes nothing of that: the fast
 * lane sits inside `guard.wrap`, so each of its calls is admitted, counted, timed
 * out and corked exactly as a call Connect serves.
 *
 * What a call must be to take the lane (anything else goes to Connect):
 * POST, a path naming one of the lane's unary methods (no query), content type
 * `application/grpc` or `application/grpc+proto`, no `grpc-encoding` but
 * `identity`, and an authority. What the lane then does is Connect's gRPC handler
 * (protocol-grpc/handler-factory.js) step by step, with Connect's own functions
 * where they are exported (parseTimeout, compressionNegotiate, the method's
 * serialization with its size limits, setTrailerStatus, envelopeCompress; the
 * handler context is made as createHandlerContext makes it, with less garbage:
 * {@link callContext}), and Connect's words for what it refuses, so that an
 * answer is the same, byte for byte in its message, headers and trailers
 * (tests/server/unary_fast_lane_test.ts compares them):
 *
 * - a bad or too long `grpc-timeout` and an unknown compression are the status
 *   of an answer whose request is never read nor handled;
 * - the body is read (each chunk counted by the guard) into 5-byte-prefixed
 *   messages, each refused past `readMaxBytes` as soon as its prefix is read
 *   (RESOURCE_EXHAUSTED), a compressed one refused (no `grpc-encoding`), each
 *   parsed with `fromBinary` ("parse binary: ..." as INTERNAL, as Connect says);
 *   no message, a second one, or a torn one is Connect's protocol error;
 * - the handler runs behind the server's interceptors (metrics, TLS access: the
 *   same {@link UnaryRequest} and {@link UnaryResponse}), in a chain built once
 *   per method, with a context whose deadline and signal are Connect's (the
 *   signal aborts when the client resets the stream, with the reset's code);
 * - the answer is HEADERS (200, content type, `grpc-encoding` when the client
 *   accepts one), one DATA frame (compressed past 1 KiB when negotiated, as
 *   Connect does; a PutResponse or GetResponse encoded into it directly, the same
 *   bytes: src/server/direct_envelopes.ts) and trailers (`grpc-status`, `grpc-message` percent-encoded);
 *   an error is HEADERS and trailers; a stream the client has not half-closed is
 *   then reset with NO_ERROR, as Connect's node adapter does.
 *
 * @module
 */

import * as http2 from "node:http2";
import { create, type DescMessage, type DescMethod } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextKey,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type ServiceImplSpec,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import {
  compressionNegotiate,
  encodeEnvelope,
  envelopeCompress,
} from "@connectrpc/connect/protocol";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { requestByteCounter } from "../http2/guard.ts";
import { HookedAbort } from "./abort_hooks.ts";
import { directEnvelope } from "./direct_envelopes.ts";
import {
  COMPRESS_MIN_BYTES,
  FastLane,
  type FastLaneOptions,
  FLAG_COMPRESSED,
  type LaneMethod,
  type Serialization,
} from "./fast_lane.ts";
import { type DeadlineTimer, deadlineTimers, MAX_TIMER_MS } from "./deadline_timers.ts";
import {
  copyHeaders,
  headerOf,
  nodeHeadersOf,
  ResponseHeaders,
  webHeadersOf,
} from "./lane_headers.ts";

type UnarySpec = MethodImplSpec & { kind: "unary" };
type Negotiated = ReturnType<typeof compressionNegotiate>;
type Timeout = ReturnType<typeof parseTimeout>;

const CONTENT_TYPE = "content-type";
const GRPC_PROTO = "application/grpc+proto";
const GRPC_STATUS = "grpc-status";
const GRPC_ENCODING = "grpc-encoding";

/** Options of {@link UnaryFastLane}: those the server gives Connect's node adapter. */
export interface UnaryFastLaneOptions extends FastLaneOptions {
  /** The services whose unary methods the lane serves (their other methods go to Connect). */
  readonly services: readonly ServiceImplSpec[];
}

/** What the lane keeps of one method. */
type Method = LaneMethod<UnarySpec, (req: UnaryRequest) => Promise<UnaryResponse>>;

/**
 * The handler context of the call an interceptor chain runs: the chain is built
 * once per method, so the implementation at its end finds its call's context in
 * the request's context values, which every interceptor passes on.
 */
const HANDLER_CONTEXT = createContextKey<HandlerContext | undefined>(undefined, {
  description: "raftkv unary fast lane: the call's handler context",
});

/** Connect's parseTimeout of no `grpc-timeout`: no deadline. */
const NO_TIMEOUT_HEADER: Timeout = Object.freeze({});

/**
 * Why a call's signal aborts once it is answered. Connect aborts it without a
 * reason, which makes a new DOMException (a stack trace) per call: 4 % of the
 * server's CPU in the lane's micro-bench profile. Only what still listens after the answer sees
 * it, as the same kind of error (an AbortError).
 */
export const CALL_OVER = new DOMException("the call is over", "AbortError");

/**
 * Serves the plain unary calls of its services; {@link UnaryFastLane.serve}
 * answers false for a call it leaves to Connect.
 */
export class UnaryFastLane extends FastLane<Method> {
  readonly #origins = new Map<string, string>();
  /** {@link UnaryFastLane.#negotiate}'s outcomes, by `grpc-accept-encoding`. */
  readonly #negotiated = new Map<string, Negotiated>();
  /** {@link UnaryFastLane.#timeout}'s outcomes, by `grpc-timeout`. */
  readonly #timeouts = new Map<string, Timeout>();

  constructor(options: UnaryFastLaneOptions) {
    super(options);
    for (const s of options.services) {
      for (const m of Object.values(s.methods)) {
        if (m.kind !== "unary") continue;
        const spec = m as UnarySpec;
        this.addMethod(
          `/${s.service.typeName}/${spec.method.name}`,
          spec,
          chainOf(spec, options.interceptors),
        );
      }
    }
  }

  protected take(
    method: Method,
    req: http2.Http2ServerRequest,
    res: http2.Http2ServerResponse,
    plain: { readonly authority: string; readonly encrypted: boolean },
  ): Promise<void> | undefined {
    let origin: string;
    try {
      origin = this.#origin(plain.encrypted, plain.authority);
    } catch {
      return undefined; // not a URL's authority: whatever Connect makes of it
    }
    return this.#handle(method, req, res, origin);
  }

  async #handle(
    method: Method,
    req: http2.Http2ServerRequest,
    res: http2.Http2ServerResponse,
    origin: string,
  ): Promise<void> {
    const spec = method.spec;
    const stream = req.stream;
    const timeout = this.#timeout(headerOf(req.headers["grpc-timeout"]));
    const compression = this.#negotiate(
      headerOf(req.headers["grpc-encoding"]),
      headerOf(req.headers["grpc-accept-encoding"]),
    );
    const context = callContext(
      spec.method,
      timeout.timeoutMs,
      req.headers,
      origin + req.url,
      this.contextValues(req),
      compression.response?.name,
    );
    // connect-node's universalRequestFromNodeRequest: the call's signal aborts when
    // the stream closes, with the reset code's error if there is one. (Once the call
    // is answered nothing listens to it any more.)
    // `on`, not `once`: a request closes once, and once's wrapper was garbage per call.
    let answered = false;
    req.on("close", () => {
      if (!answered) context.abort(errorOfResetCode(stream.rstCode));
    });
    let frame: Uint8Array | undefined;
    let bodyEnded = false;
    try {
      // Connect raises these first, as the answer's status, before reading the body.
      if (compression.error) throw compression.error;
      if (timeout.error) throw timeout.error;
      const input = await this.#readSingle(req, method.input);
      bodyEnded = true; // read to its end: the client has half-closed the stream
      context.values.set(HANDLER_CONTEXT, context);
      const answer = await method.call({
        stream: false,
        message: input as UnaryRequest["message"],
        method: spec.method,
        requestMethod: context.requestMethod,
        url: context.url,
        signal: context.signal,
        header: context.requestHeader,
        service: spec.method.parent,
        contextValues: context.values,
      });
      copyHeaders(answer.header, context.responseHeader);
      copyHeaders(answer.trailer, context.responseTrailer);
      // A put's or a get's answer is encoded straight into its envelope
      // (direct_envelopes.ts), when it would not be compressed; any other as Connect does.
      frame = directEnvelope(
        answer.message,
        compression.response === null ? this.writeMaxBytes : COMPRESS_MIN_BYTES - 1,
      );
      if (frame === undefined) {
        const data = method.output.serialize(answer.message);
        if (compression.response !== null && data.byteLength >= COMPRESS_MIN_BYTES) {
          const env = await envelopeCompress({ flags: 0, data }, compression.response, 0);
          frame = encodeEnvelope(env.flags, env.data);
        } else {
          frame = encodeEnvelope(0, data); // Connect's envelopeCompress would leave it as is
        }
      }
      context.abort(CALL_OVER);
    } catch (e) {
      context.abort(e);
      setTrailerStatus(
        context.responseTrailer,
        e instanceof ConnectError
          ? e
          : new ConnectError("internal error", Code.Internal, undefined, undefined, e),
      );
    }
    answered = true;
    answer(stream, res, context, frame, bodyEnded);
  }

  /**
   * Connect's parseTimeout of a call's `grpc-timeout`, kept per value when valid:
   * a client sends the same timeout on most calls, and the parse (a regular
   * expression's match per call) was 0.5 % of the leader's allocations (issue 11's
   * heap profile). A refused value is parsed again each time: its error is the call's.
   */
  #timeout(value: string | null): Timeout {
    if (value === null) return NO_TIMEOUT_HEADER;
    let t = this.#timeouts.get(value);
    if (t === undefined) {
      t = parseTimeout(value, this.maxTimeoutMs);
      if (t.error !== undefined) return t;
      // Bounded: clients name their own timeouts; a few values are the norm.
      if (this.#timeouts.size >= 64) this.#timeouts.clear();
      this.#timeouts.set(value, t);
    }
    return t;
  }

  /**
   * Connect's compressionNegotiate for a call of the lane, kept per
   * `grpc-accept-encoding`: the lane only takes calls whose `grpc-encoding` is none
   * or identity, for which the outcome (no request compression, no error) depends
   * on that header alone, and a client sends the same one on every call, where
   * Connect splits and searches it per call.
   */
  #negotiate(encoding: string | null, acceptEncoding: string | null): Negotiated {
    if (encoding !== null && encoding !== "identity") {
      throw new Error(`invariant: the fast lane takes no call with grpc-encoding ${encoding}`);
    }
    const key = acceptEncoding ?? "";
    let n = this.#negotiated.get(key);
    if (n === undefined) {
      n = compressionNegotiate(
        this.acceptCompression,
        null,
        acceptEncoding,
        "grpc-accept-encoding",
      );
      // Bounded: clients name their own header; a few values are the norm.
      if (this.#negotiated.size >= 64) this.#negotiated.clear();
      this.#negotiated.set(key, n);
    }
    return n;
  }

  /**
   * `scheme://authority` as `new URL` writes it (the host lowercased, a default
   * port dropped), kept per connection authority: Connect parses a URL per call.
   * (The lane's paths are its methods', which a URL keeps as they are.)
   */
  #origin(encrypted: boolean, authority: string): string {
    // (No authority holds a space: the prefixes keep the schemes apart.)
    const key = encrypted ? `s ${authority}` : `p ${authority}`;
    let origin = this.#origins.get(key);
    if (origin === undefined) {
      origin = new URL(`${encrypted ? "https" : "http"}://${authority}`).origin;
      // Bounded: authorities are few (the node's addresses), but a client names its own.
      if (this.#origins.size >= 256) this.#origins.clear();
      this.#origins.set(key, origin);
    }
    return origin;
  }

  /**
   * The one message of a unary request, read as Connect's pipeline reads it
   * (transformSplitEnvelope, transformDecompressEnvelope, transformParseEnvelope,
   * then ensureSingle), with its errors: a message is parsed as soon as it is
   * whole, and reading stops at the first error. The body is read from "data"
   * events, each chunk counted in the guard's call byte budget: Connect reads it
   * through `req.iterator()`, three async iterators deep with the guard's, 5 KB
   * of garbage and a few promises a call. Once the message is read or refused the
   * listeners stay (they do nothing more): the request ends or closes once, and
   * taking three listeners off per call was 0.5 KB of garbage a put (issue 11's
   * heap profile; they go with the request).
   */
  #readSingle(req: http2.Http2ServerRequest, input: Serialization): Promise<unknown> {
    const readMaxBytes = this.readMaxBytes;
    const count = requestByteCounter(req);
    return new Promise((resolve, reject) => {
      let buffered: Uint8Array | undefined; // bytes of a message not yet whole
      let parsed = 0;
      let first: unknown;
      let over = false;
      const fail = (e: unknown) => {
        if (over) return;
        over = true;
        req.pause(); // as Connect, which stops pulling: the rest is not read
        reject(e);
      };
      const onData = (chunk: Uint8Array) => {
        if (over) return;
        if (count !== undefined && !count(chunk.length)) {
          fail(new Error("the node holds too many call bytes"));
          return;
        }
        try {
          let bytes = chunk;
          if (buffered !== undefined) {
            bytes = concat(buffered, bytes);
            buffered = undefined;
          }
          let at = 0;
          while (bytes.length - at >= 5) {
            const length = ((bytes[at + 1]! << 24) | (bytes[at + 2]! << 16) |
              (bytes[at + 3]! << 8) | bytes[at + 4]!) >>> 0;
            if (length > readMaxBytes) {
              throw new ConnectError(
                `message size ${length} is larger than configured readMaxBytes ${readMaxBytes}`,
                Code.ResourceExhausted,
              );
            }
            if (bytes.length - at - 5 < length) break;
            if ((bytes[at]! & FLAG_COMPRESSED) === FLAG_COMPRESSED) {
              // Connect's envelopeDecompress without a compression (no grpc-encoding).
              throw new ConnectError(
                "received compressed envelope, but do not know how to decompress",
                Code.Internal,
              );
            }
            const message = input.parse(bytes.subarray(at + 5, at + 5 + length));
            if (++parsed > 1) {
              throw new ConnectError(
                "protocol error: received extra input message for unary method",
                Code.Unimplemented,
              );
            }
            first = message;
            at += 5 + length;
          }
          if (at < bytes.length) buffered = bytes.subarray(at);
        } catch (e) {
          fail(e);
        }
      };
      const onEnd = () => {
        if (over) return;
        if (buffered !== undefined) {
          fail(new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument));
        } else if (parsed === 0) {
          fail(
            new ConnectError(
              "protocol error: missing input message for unary method",
              Code.Unimplemented,
            ),
          );
        } else {
          over = true;
          resolve(first);
        }
      };
      // The stream closed before the body ended (reset): nobody is left to answer.
      // (Heard after the read too: its error is made only if the read is not over.)
      const onClose = () => {
        if (!over) fail(new ConnectError("the request was reset", Code.Canceled));
      };
      req.on("data", onData);
      req.on("end", onEnd);
      req.on("close", onClose);
      // Heard for good: an error after the body (a reset) must not go uncaught.
      req.on("error", fail);
    });
  }
}

/** A call's handler context, and how to end it. */
export interface CallContext extends HandlerContext {
  /** Aborts the call's signal with `reason` (if not yet aborted) and stops its deadline. */
  abort(reason?: unknown): void;
}

const NO_TIMEOUT = (): undefined => undefined;

/**
 * The handler context of a call, as Connect's `createHandlerContext` makes it for
 * a gRPC call (implementation.js, with protocol/signals.js), with less: Connect
 * links three AbortControllers (the deadline's, the request's, the context's)
 * through listeners and builds each Headers from an init it converts, 10 KB of
 * garbage a call, the biggest share of the lane's (a sampling heap profile). Here
 * one controller takes all three causes, with the same reasons: the deadline's
 * ConnectError "the operation timed out" (DEADLINE_EXCEEDED, after the same
 * delay as Connect's timer, on one of deadline_timers.ts's shared timers; a
 * deadline past a timer's range keeps setTimeout, so it fires at once as it did),
 * the reset's error or an AbortError when the client goes (the caller's
 * `abort`), and the answer's end. `timeoutMs()` counts down to the deadline in
 * whole milliseconds, as Connect's Date does.
 */
export function callContext(
  method: DescMethod,
  timeoutMs: number | undefined,
  requestHeader: http2.IncomingHttpHeaders,
  url: string,
  values: ContextValues,
  responseEncoding: string | undefined,
): CallContext {
  // Hooked (abort_hooks.ts): route.ts hears the call end without a listener.
  const controller = new HookedAbort();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let deadline: DeadlineTimer | undefined;
  let remaining: () => number | undefined = NO_TIMEOUT;
  if (timeoutMs !== undefined) {
    const at = Math.trunc(Date.now() + timeoutMs);
    remaining = () => at - Date.now();
    const expire = () =>
      controller.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
    if (timeoutMs <= 0) expire();
    // Calls' deadlines share a runtime timer (deadline_timers.ts); one past a timer's
    // range keeps setTimeout's handling (it fires at once, as it did with Connect).
    else if (timeoutMs <= MAX_TIMER_MS) deadline = deadlineTimers.start(timeoutMs, expire);
    else timer = setTimeout(expire, timeoutMs);
  }
  const header = webHeadersOf(requestHeader);
  // With `grpc-encoding` when the client accepts a compression (Connect sets it then).
  const responseHeader = new ResponseHeaders(
    CONTENT_TYPE,
    GRPC_PROTO,
    responseEncoding === undefined ? undefined : GRPC_ENCODING,
    responseEncoding,
  );
  const responseTrailer = new ResponseHeaders(GRPC_STATUS, "0");
  return {
    method,
    service: method.parent,
    signal: controller.signal,
    timeoutMs: remaining,
    requestMethod: "POST",
    requestHeader: header,
    responseHeader,
    responseTrailer,
    protocolName: "grpc",
    values,
    url,
    abort(reason?: unknown): void {
      clearTimeout(timer);
      deadline?.cancel();
      controller.abort(reason);
    },
  };
}

/**
 * The interceptors around a method's implementation, as Connect's
 * `invokeUnaryImplementation` applies them (the first interceptor outermost), once.
 */
function chainOf(
  spec: UnarySpec,
  interceptors: readonly Interceptor[],
): (req: UnaryRequest) => Promise<UnaryResponse> {
  const output = spec.method.output as DescMessage;
  let next = (async (req: UnaryRequest): Promise<UnaryResponse> => {
    const context = req.contextValues.get(HANDLER_CONTEXT);
    if (context === undefined) {
      throw new Error("invariant: a fast lane call runs with its handler context in its values");
    }
    // Connect's mergeRequest: the context, with what interceptors may have replaced
    // (a copy only then: the context's dozen fields copied per call otherwise).
    const merged: HandlerContext = req.service === context.service &&
        req.header === context.requestHeader && req.signal === context.signal &&
        req.contextValues === context.values
      ? context
      : {
        ...context,
        service: req.service,
        requestHeader: req.header,
        signal: req.signal,
        values: req.contextValues,
      };
    const message = create(output, await spec.impl(req.message as never, merged) as never);
    return {
      stream: false,
      message,
      method: spec.method,
      service: spec.method.parent,
      header: context.responseHeader,
      trailer: context.responseTrailer,
    } as UnaryResponse;
  }) as unknown as ReturnType<Interceptor>;
  for (const i of [...interceptors].reverse()) next = i(next);
  return next as unknown as (req: UnaryRequest) => Promise<UnaryResponse>;
}

/**
 * Writes the answer as connect-node's universalResponseToNodeResponse does: the
 * headers, the message if any, the trailers; then, once the trailers are out, a
 * reset with NO_ERROR if the client is still sending (it need not send the rest).
 * When the request was read to its end (`bodyEnded`: the client has half-closed,
 * which it cannot undo) there is nothing to check later: no listener and no
 * immediate are made for it (most calls; a listener, an immediate and a stream
 * state object each, issue 11's heap profile).
 */
export function answer(
  stream: http2.ServerHttp2Stream,
  res: http2.Http2ServerResponse,
  context: HandlerContext,
  frame: Uint8Array | undefined,
  bodyEnded: boolean,
): void {
  if (stream.destroyed || stream.closed) return; // the client is gone: nobody to answer
  if (!bodyEnded) {
    stream.once("wantTrailers", () => {
      // Node sends the trailers from its own wantTrailers listener on setImmediate;
      // one queued here runs after it.
      setImmediate(() => {
        if (stream.state.remoteClose === 0) stream.close(http2.constants.NGHTTP2_NO_ERROR);
      });
    });
  }
  res.writeHead(200, nodeHeadersOf(context.responseHeader));
  if (frame !== undefined) res.write(frame, swallow);
  res.addTrailers(nodeHeadersOf(context.responseTrailer));
  res.end();
}

/** A write's failure is the stream's (closed, reset): the call is over either way. */
function swallow(): void {}

/** connect-node's connectErrorFromH2ResetCode: the error a reset code means, if any. */
export function errorOfResetCode(rstCode: number): ConnectError | undefined {
  const c = http2.constants;
  let code: Code | undefined;
  switch (rstCode) {
    case c.NGHTTP2_PROTOCOL_ERROR:
    case c.NGHTTP2_INTERNAL_ERROR:
    case c.NGHTTP2_FLOW_CONTROL_ERROR:
    case c.NGHTTP2_SETTINGS_TIMEOUT:
    case c.NGHTTP2_FRAME_SIZE_ERROR:
    case c.NGHTTP2_COMPRESSION_ERROR:
    case c.NGHTTP2_CONNECT_ERROR:
      code = Code.Internal;
      break;
    case c.NGHTTP2_REFUSED_STREAM:
      code = Code.Unavailable;
      break;
    case c.NGHTTP2_CANCEL:
      code = Code.Canceled;
      break;
    case c.NGHTTP2_ENHANCE_YOUR_CALM:
      code = Code.ResourceExhausted;
      break;
    case c.NGHTTP2_INADEQUATE_SECURITY:
    case c.NGHTTP2_HTTP_1_1_REQUIRED:
      code = Code.PermissionDenied;
      break;
    default:
      return undefined;
  }
  return new ConnectError(
    `http/2 stream closed with error code ${H2_CODE_NAMES[rstCode]} (0x${rstCode.toString(16)})`,
    code,
  );
}

/** The names connect-node gives reset codes (its H2Code enum). */
const H2_CODE_NAMES: Readonly<Record<number, string>> = {
  0x1: "PROTOCOL_ERROR",
  0x2: "INTERNAL_ERROR",
  0x3: "FLOW_CONTROL_ERROR",
  0x4: "SETTINGS_TIMEOUT",
  0x6: "FRAME_SIZE_ERROR",
  0x7: "REFUSED_STREAM",
  0x8: "CANCEL",
  0x9: "COMPRESSION_ERROR",
  0xa: "CONNECT_ERROR",
  0xb: "ENHANCE_YOUR_CALM",
  0xc: "INADEQUATE_SECURITY",
  0xd: "HTTP_1_1_REQUIRED",
};

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
