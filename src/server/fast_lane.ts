/**
 * What the two fast lanes in front of Connect's node adapter share
 * (unary_fast_lane.ts for clients' unary calls, stream_fast_lane.ts for peers'
 * `RaftService/Stream`): the adapter's options they take, a method's serialization
 * and interceptor chain made once, which calls they take (a POST of one of their
 * methods, plain binary gRPC: {@link plainGrpcRequest}), how every other call goes
 * on to Connect ({@link FastLane.inFrontOf}), and how a failed answer is reported.
 * Each lane says how it answers a call it took ({@link FastLane.take}).
 *
 * @module
 */

import type * as http2 from "node:http2";
import {
  Code,
  ConnectError,
  type ContextValues,
  type Interceptor,
  type MethodImplSpec,
} from "@connectrpc/connect";
import { type Compression, createMethodSerializationLookup } from "@connectrpc/connect/protocol";

/** Connect's default for compressing an answer (protocol/limit-io.js): 1 KiB. */
export const COMPRESS_MIN_BYTES = 1024;

/** A gRPC envelope's flag: its message is compressed. */
export const FLAG_COMPRESSED = 0b00000001;

/** The options both lanes take: those the server gives Connect's node adapter. */
export interface FastLaneOptions {
  /** The server's interceptors, around every call as Connect runs them. */
  readonly interceptors: readonly Interceptor[];
  /** The context values of a call, as the adapter's `contextValues` option makes them. */
  readonly contextValues: (req: http2.Http2ServerRequest) => ContextValues;
  /** The largest request message (the adapter's `readMaxBytes`). */
  readonly readMaxBytes: number;
  /** The longest `grpc-timeout` (the adapter's `maxTimeoutMs`). */
  readonly maxTimeoutMs: number;
  /** The compressions the adapter accepts, in its order (connect-node's default: gzip, br). */
  readonly acceptCompression: readonly Compression[];
}

/** A method's message serialization, with the adapter's limits. */
export type Serialization = ReturnType<
  ReturnType<typeof createMethodSerializationLookup>["getI"]
>;

/** What a lane keeps of one method: made once, used by every call. */
export interface LaneMethod<S extends MethodImplSpec, C> {
  readonly spec: S;
  readonly input: Serialization;
  readonly output: Serialization;
  /** The interceptors around the implementation, applied once (Connect applies them per call). */
  readonly call: C;
}

/** `application/grpc` or `application/grpc+proto` (Connect's content-type match, binary only). */
const BINARY_GRPC = /^application\/grpc(?:\+proto)?$/i;

/**
 * What both fast lanes require of a request's headers before taking it, its
 * method and path aside: binary gRPC, no compression but `identity`, and an
 * authority. Returns the authority and whether the connection is TLS, or
 * undefined for a request to leave to Connect.
 */
export function plainGrpcRequest(
  req: http2.Http2ServerRequest,
): { readonly authority: string; readonly encrypted: boolean } | undefined {
  const headers = req.headers;
  const contentType = headers["content-type"];
  if (contentType === undefined || !BINARY_GRPC.test(contentType)) return undefined;
  const encoding = headers["grpc-encoding"];
  if (encoding !== undefined && encoding !== "identity") return undefined;
  const authority = req.authority;
  if (authority === undefined || authority === "") return undefined;
  const encrypted = (req.socket as { encrypted?: boolean } | undefined)?.encrypted === true;
  return { authority, encrypted };
}

/** Connect's default write limit (limit-io.js). */
const WRITE_MAX_BYTES = 0xffffffff;

/** Serves the plain calls of its methods in front of Connect; see the module doc. */
export abstract class FastLane<M extends LaneMethod<MethodImplSpec, unknown>> {
  /** The lane's methods, by request path (`/package.Service/Method`). */
  protected readonly methods = new Map<string, M>();
  protected readonly contextValues: (req: http2.Http2ServerRequest) => ContextValues;
  protected readonly readMaxBytes: number;
  protected readonly maxTimeoutMs: number;
  protected readonly acceptCompression: Compression[];
  /** The longest answer message Connect's serialization writes (limit-io.js). */
  protected readonly writeMaxBytes = WRITE_MAX_BYTES;
  readonly #limits: { readMaxBytes: number; writeMaxBytes: number; compressMinBytes: number };
  #served = 0;

  constructor(options: FastLaneOptions) {
    this.contextValues = options.contextValues;
    this.readMaxBytes = options.readMaxBytes;
    this.maxTimeoutMs = options.maxTimeoutMs;
    this.acceptCompression = [...options.acceptCompression];
    this.#limits = {
      readMaxBytes: options.readMaxBytes,
      writeMaxBytes: WRITE_MAX_BYTES,
      compressMinBytes: COMPRESS_MIN_BYTES,
    };
  }

  /** Adds a method at `path`, its serialization made with the adapter's limits. */
  protected addMethod<S extends MethodImplSpec>(
    path: string,
    spec: S,
    call: M["call"],
  ): void {
    const serialization = createMethodSerializationLookup(
      spec.method,
      undefined,
      undefined,
      this.#limits,
    );
    this.methods.set(path, {
      spec,
      input: serialization.getI(true),
      output: serialization.getO(true),
      call,
    } as unknown as M);
  }

  /**
   * A request handler that serves what the lane takes and hands every other call
   * to `handler` (Connect's node adapter).
   */
  inFrontOf(
    handler: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
  ): (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void {
    return (req, res) => {
      if (!this.serve(req, res)) handler(req, res);
    };
  }

  /** Calls the lane has taken since the server started (a test's proof that it is used). */
  get served(): number {
    return this.#served;
  }

  /**
   * Takes the call if it is a plain gRPC call of one of the lane's methods and
   * answers it (later, asynchronously); returns false, having touched nothing,
   * for any other call.
   */
  serve(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): boolean {
    if (req.method !== "POST") return false;
    const method = this.methods.get(req.url);
    if (method === undefined) return false;
    const plain = plainGrpcRequest(req);
    if (plain === undefined) return false;
    const answering = this.take(method, req, res, plain);
    if (answering === undefined) return false;
    this.#served++;
    answering.catch((reason) => {
      // As connect-node's adapter: a failed answer is logged, unless the call was aborted.
      if (ConnectError.from(reason).code === Code.Aborted) return;
      console.error(
        `handler for rpc ${method.spec.method.name} of ${method.spec.method.parent.typeName} failed`,
        reason,
      );
    });
    return true;
  }

  /**
   * Answers a plain call of `method`, or returns undefined, having touched
   * nothing, to leave it to Connect (an authority no URL takes).
   */
  protected abstract take(
    method: M,
    req: http2.Http2ServerRequest,
    res: http2.Http2ServerResponse,
    plain: { readonly authority: string; readonly encrypted: boolean },
  ): Promise<void> | undefined;
}
