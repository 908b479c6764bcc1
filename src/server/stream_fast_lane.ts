/**
 * A direct path ("stream fast lane") for plain client-streaming gRPC calls: the
 * peers' `raftkv.v1.RaftService/Stream`, on which every Raft batch is one
 * 5-byte-prefixed message. It reads the call's DATA chunks from `node:http2`'s
 * request as they arrive, splits them into messages, parses each with the
 * method's serialization (fromBinary) and pushes it to the handler through a
 * {@link RequestFeed}, which RaftService's `stream` drains synchronously: a batch
 * is stepped in the turn its frame is read. Every other call goes to the next
 * handler (the unary fast lane, then Connect's node adapter) unchanged.
 *
 * Why: one-way loopback latency between two Deno processes at load, p50: raw
 * node:http2 stream 0.48 ms, Connect client stream to Connect server 0.75 ms
 * (notes/latency_report.md), and a put crosses two peer hops. On the server half,
 * Connect reads a call through four async generators chained per call (the
 * guard's counting iterator, split, decompress, parse) and the handler's own
 * `for await`: a promise and a microtask hop per generator per batch.
 *
 * The wire is unchanged (the same path, messages, headers and trailers), so a
 * node with the lane and one without interoperate both ways. What a call must be
 * to take the lane is what the unary lane asks (unary_fast_lane.ts): POST, a path
 * naming one of the lane's methods, content type `application/grpc[+proto]`, no
 * `grpc-encoding` but `identity`, an authority. The lane then does what Connect's
 * gRPC handler does for a client-streaming call (protocol-grpc/handler-factory.js
 * with protocol/invoke-implementation.js), with Connect's functions where they are
 * exported and Connect's words for what it refuses (tests/server/
 * stream_fast_lane_test.ts compares the answers whole):
 *
 * - the interceptors (metrics, TLS access) run around the handler with a
 *   {@link StreamRequest} whose message is the feed; an interceptor that wraps the
 *   requests (the TLS access check of each batch's sender) is iterated as Connect
 *   would, so the lane then saves only the parsing pipeline;
 * - a bad or too long `grpc-timeout` and an unknown compression are raised where
 *   Connect raises them: at the handler's first read of its requests, after the
 *   interceptors ran; the body is then never read;
 * - each message is refused past `readMaxBytes` as soon as its prefix is read
 *   (RESOURCE_EXHAUSTED), a compressed one refused, each parsed as soon as it is
 *   whole ("parse binary: ..." as Connect says), a torn one at the end is
 *   Connect's "protocol error: incomplete envelope"; each error comes after the
 *   messages before it, which the handler has stepped;
 * - every chunk is counted in the HTTP/2 guard's call byte budget, as the guard's
 *   iterator counts Connect's; the lane sits inside `guard.wrap`, so a call is
 *   admitted, timed out and corked as one Connect serves;
 * - the answer is written as the unary lane writes it (HEADERS, the message, the
 *   trailers; a reset with NO_ERROR if the client still sends).
 *
 * @module
 */

import * as http2 from "node:http2";
import { create, type DescMessage } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type StreamRequest,
  type StreamResponse,
} from "@connectrpc/connect";
import {
  compressionNegotiate,
  encodeEnvelope,
  envelopeCompress,
} from "@connectrpc/connect/protocol";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { requestByteCounter } from "../http2/guard.ts";
import { RequestFeed } from "./request_feed.ts";
import { copyHeaders, headerOf } from "./lane_headers.ts";
import {
  COMPRESS_MIN_BYTES,
  FastLane,
  type FastLaneOptions,
  FLAG_COMPRESSED,
  type LaneMethod,
  type Serialization,
} from "./fast_lane.ts";
import { answer, CALL_OVER, callContext, errorOfResetCode } from "./unary_fast_lane.ts";

type ClientStreamingSpec = MethodImplSpec & { kind: "client_streaming" };

/** Options of {@link StreamFastLane}: those the server gives Connect's node adapter. */
export interface StreamFastLaneOptions extends FastLaneOptions {
  /** The client-streaming methods the lane serves. */
  readonly methods: readonly MethodImplSpec[];
}

/** What the lane keeps of one method. */
type Method = LaneMethod<ClientStreamingSpec, (req: StreamRequest) => Promise<StreamResponse>>;

/** The handler context of each call the lane runs, for the end of the interceptor chain. */
const CONTEXTS = new WeakMap<ContextValues, HandlerContext>();

/** Serves the plain calls of its client-streaming methods; see the module doc. */
export class StreamFastLane extends FastLane<Method> {
  constructor(options: StreamFastLaneOptions) {
    super(options);
    for (const m of options.methods) {
      if (m.kind !== "client_streaming") {
        throw new Error(
          `invariant: the stream fast lane serves client-streaming methods, not ${m.method.name} ` +
            `(${m.kind})`,
        );
      }
      const spec = m as ClientStreamingSpec;
      this.addMethod(
        `/${spec.method.parent.typeName}/${spec.method.name}`,
        spec,
        chainOf(spec, options.interceptors),
      );
    }
  }

  protected take(
    method: Method,
    req: http2.Http2ServerRequest,
    res: http2.Http2ServerResponse,
    plain: { readonly authority: string; readonly encrypted: boolean },
  ): Promise<void> | undefined {
    let url: string;
    try {
      // A call lasts seconds (a peer's rotates every 2 s): one URL per call is cheap.
      const scheme = plain.encrypted ? "https" : "http";
      url = new URL(req.url, `${scheme}://${plain.authority}`).toString();
    } catch {
      return undefined; // not a URL's authority: whatever Connect makes of it
    }
    return this.#handle(method, req, res, url);
  }

  async #handle(
    method: Method,
    req: http2.Http2ServerRequest,
    res: http2.Http2ServerResponse,
    url: string,
  ): Promise<void> {
    const spec = method.spec;
    const stream = req.stream;
    const timeout = parseTimeout(headerOf(req.headers["grpc-timeout"]), this.maxTimeoutMs);
    const compression = compressionNegotiate(
      this.acceptCompression,
      headerOf(req.headers["grpc-encoding"]),
      headerOf(req.headers["grpc-accept-encoding"]),
      "grpc-accept-encoding",
    );
    // The response headers carry grpc-encoding when the client accepts a compression.
    const context = callContext(
      spec.method,
      timeout.timeoutMs,
      req.headers,
      url,
      this.contextValues(req),
      compression.response?.name,
    );
    // connect-node's universalRequestFromNodeRequest: the call's signal aborts when
    // the stream closes, with the reset code's error if there is one.
    let answered = false;
    req.once("close", () => {
      if (!answered) context.abort(errorOfResetCode(stream.rstCode));
    });
    const feed = new RequestFeed<unknown>();
    // Connect raises these at the handler's first read of its requests (its
    // transformPrepend), the body unread.
    const refused = compression.error ?? timeout.error;
    if (refused !== undefined) feed.end(refused);
    else this.#read(req, feed, method.input);
    let frame: Uint8Array | undefined;
    try {
      CONTEXTS.set(context.values, context);
      const response = await method.call({
        stream: true,
        message: feed as AsyncIterable<never>,
        method: spec.method,
        requestMethod: context.requestMethod,
        url: context.url,
        signal: context.signal,
        header: context.requestHeader,
        service: spec.method.parent,
        contextValues: context.values,
      } as StreamRequest);
      // Connect's invokeStreamImplementation, then its output pipeline.
      copyHeaders(response.header, context.responseHeader);
      const frames: Uint8Array[] = [];
      for await (const m of response.message) {
        const data = method.output.serialize(m);
        if (compression.response !== null && data.byteLength >= COMPRESS_MIN_BYTES) {
          const env = await envelopeCompress({ flags: 0, data }, compression.response, 0);
          frames.push(encodeEnvelope(env.flags, env.data));
        } else {
          frames.push(encodeEnvelope(0, data));
        }
      }
      copyHeaders(response.trailer, context.responseTrailer);
      frame = frames.length === 1 ? frames[0] : frames.length === 0 ? undefined : join(frames);
      context.abort(CALL_OVER);
    } catch (e) {
      context.abort(e);
      setTrailerStatus(
        context.responseTrailer,
        e instanceof ConnectError
          ? e
          : new ConnectError("internal error", Code.Internal, undefined, undefined, e),
      );
    } finally {
      feed.stop();
    }
    answered = true;
    // As if the body might not have ended (a refusal answers before reading it):
    // the answer then resets a stream the client still sends on.
    answer(stream, res, context, frame, false);
  }

  /**
   * Reads the call's body from "data" events into `feed`, message by message, as
   * Connect's pipeline reads it (transformSplitEnvelope, transformDecompressEnvelope
   * without a compression, transformParseEnvelope), each chunk counted in the
   * guard's call byte budget. Reading stops at the first error, which ends the feed
   * after the messages before it, or when the handler stops the feed.
   */
  #read(req: http2.Http2ServerRequest, feed: RequestFeed<unknown>, input: Serialization): void {
    const readMaxBytes = this.readMaxBytes;
    const count = requestByteCounter(req);
    let buffered: Uint8Array | undefined; // bytes of a message not yet whole
    let over = false;
    const stop = () => {
      over = true;
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("close", onClose);
    };
    const fail = (e: unknown) => {
      if (over) return;
      stop();
      req.pause(); // as Connect, which stops pulling: the rest is not read
      feed.end(e);
    };
    const onData = (chunk: Uint8Array) => {
      if (over) return;
      if (feed.stopped) {
        stop();
        req.pause();
        return;
      }
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
        while (bytes.length - at >= 5 && !feed.stopped) {
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
          // A copy: fromBinary keeps `bytes` fields (entries' data, hence the values
          // the store keeps) as views into what it parses, and what node:http2 hands
          // out need not stay ours; Connect's pipeline parses from arrays of its own.
          // Not `bytes.slice`: node:http2's chunks are Buffers, whose slice is a view.
          const message = input.parse(copyOf(bytes, at + 5, at + 5 + length));
          at += 5 + length;
          feed.push(message);
        }
        // A copy, as above: the chunk's memory may be reused before the next one comes.
        if (at < bytes.length) buffered = copyOf(bytes, at, bytes.length);
      } catch (e) {
        fail(e);
      }
    };
    const onEnd = () => {
      if (buffered !== undefined) {
        fail(new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument));
      } else {
        stop();
        feed.end();
      }
    };
    // The stream closed before the body ended (a reset): nobody is left to answer.
    // The handler sees what it sees through Connect (Node's stream iterator over a
    // request closed early), so the metrics count such a call alike (as `unknown`).
    const onClose = () => fail(prematureClose());
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("close", onClose);
    // Heard for good: an error after the body (a reset) must not go uncaught.
    req.on("error", fail);
  }
}

/**
 * The interceptors around a client-streaming implementation, as Connect's
 * `invokeStreamImplementation` applies them (the first interceptor outermost), once.
 */
function chainOf(
  spec: ClientStreamingSpec,
  interceptors: readonly Interceptor[],
): (req: StreamRequest) => Promise<StreamResponse> {
  const output = spec.method.output as DescMessage;
  let next = (async (req: StreamRequest): Promise<StreamResponse> => {
    const context = CONTEXTS.get(req.contextValues);
    if (context === undefined) {
      throw new Error("invariant: a stream fast lane call runs with its handler context");
    }
    // Connect's mergeRequest: the context, with what interceptors may have replaced.
    const merged: HandlerContext = {
      ...context,
      service: req.service,
      requestHeader: req.header,
      signal: req.signal,
      values: req.contextValues,
    };
    const message = create(output, await spec.impl(req.message as never, merged) as never);
    return {
      stream: true,
      message: once(message),
      method: spec.method,
      service: spec.method.parent,
      header: context.responseHeader,
      trailer: context.responseTrailer,
    } as unknown as StreamResponse;
  }) as unknown as ReturnType<Interceptor>;
  for (const i of [...interceptors].reverse()) next = i(next);
  return next as unknown as (req: StreamRequest) => Promise<StreamResponse>;
}

/** Connect's createAsyncIterable of one value. */
async function* once<T>(value: T): AsyncGenerator<T> {
  yield value;
}

/** The error Node's `finished()` gives a request iterator whose stream closed before its end. */
function prematureClose(): Error {
  return Object.assign(new Error("Premature close"), { code: "ERR_STREAM_PREMATURE_CLOSE" });
}

function join(frames: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const f of frames) n += f.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const f of frames) {
    out.set(f, at);
    at += f.length;
  }
  return out;
}

/**
 * A copy of `bytes[from, to)` in memory of its own, as a plain Uint8Array.
 * node:http2's chunks are Buffers: a Buffer's `slice` is a view (Node's Buffer
 * API), and even a copy made by `Uint8Array.prototype.slice` is a Buffer again (its
 * species), as is every `bytes` field fromBinary then cuts from it. Connect's
 * pipeline hands the handler plain Uint8Arrays; so must this lane, or entries'
 * data, and the values and results the store keeps from them, would be Buffers on
 * the nodes that received them and Uint8Arrays on the one that proposed them: the
 * same bytes, but not the same objects (a Buffer's toJSON, for one, differs; the
 * chaos runs saw the sessions' digest differ that way).
 */
function copyOf(bytes: Uint8Array, from: number, to: number): Uint8Array {
  return new Uint8Array(bytes.subarray(from, to));
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
