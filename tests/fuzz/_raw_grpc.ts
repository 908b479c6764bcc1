/**
 * A raw gRPC client for hostile-input tests: it sends exactly the bytes it is given,
 * over `node:http2` (h2c), with whatever headers it is given, and reports exactly what
 * came back: the HTTP status, the gRPC status and message (from the trailers, or from
 * the headers of a trailers-only answer), the body, and how the stream ended. Nothing
 * is validated or serialized on the way out, so malformed protobuf, bad gRPC framing
 * and wrong content types reach the server as written.
 *
 * Every call has a deadline: a server that never answers fails the call with
 * {@link HangError} instead of hanging the test.
 *
 * @module
 */

import * as http2 from "node:http2";
import * as net from "node:net";
import { Buffer } from "node:buffer";

/** A call got no complete answer before its deadline. */
export class HangError extends Error {
  override name = "HangError";
}

/** What the server answered to one raw call. */
export interface RawResponse {
  /** The HTTP status of the response headers (0 if none arrived). */
  readonly httpStatus: number;
  /** The response's content-type header, if any. */
  readonly contentType: string | undefined;
  /** `grpc-status` from the trailers, or from the headers of a trailers-only response. */
  readonly grpcStatus: number | undefined;
  /** `grpc-message`, percent-decoded, or "". */
  readonly grpcMessage: string;
  /** The response body (gRPC-framed messages for a gRPC answer). */
  readonly body: Uint8Array;
  /** How the stream ended: normally, or reset by the server with an HTTP/2 error code. */
  readonly end: "end" | { readonly rstCode: number };
}

/** Options of one {@link RawGrpcClient.call}. */
export interface RawCallOptions {
  /**
   * Request headers besides `:method`/`:path`. When omitted, the gRPC defaults:
   * `content-type: application/grpc+proto` and `te: trailers`. Pass your own to send
   * other content types, or none at all.
   */
  readonly headers?: Record<string, string>;
  /** Give up after this many ms with {@link HangError}; 5000 by default. */
  readonly timeoutMs?: number;
  /** `:method`; POST by default. */
  readonly method?: string;
}

/** The default request headers of a gRPC call. */
export const GRPC_HEADERS: Readonly<Record<string, string>> = {
  "content-type": "application/grpc+proto",
  "te": "trailers",
};

/**
 * Frames `payload` as one gRPC length-prefixed message: a flag byte (1 = compressed)
 * and a 4-byte big-endian length, which may be set to a lie with `declaredLength`.
 */
export function grpcFrame(
  payload: Uint8Array,
  opts: { compressed?: boolean; declaredLength?: number } = {},
): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = opts.compressed === true ? 1 : 0;
  new DataView(out.buffer).setUint32(1, opts.declaredLength ?? payload.length, false);
  out.set(payload, 5);
  return out;
}

/**
 * One HTTP/2 connection to a node, reopened when the server closes it. Close it with
 * {@link RawGrpcClient.close}, which waits until every socket it opened is closed.
 */
export class RawGrpcClient {
  readonly #host: string;
  readonly #port: number;
  #session: http2.ClientHttp2Session | undefined;
  readonly #sockets = new Set<net.Socket>();
  readonly #socketClosed = new Set<Promise<void>>();
  /** Sessions opened so far (1 plus the reconnects after the server dropped one). */
  sessionsOpened = 0;

  /** A client for `endpoint` (`host:port`); nothing connects before the first call. */
  constructor(endpoint: string) {
    const colon = endpoint.lastIndexOf(":");
    this.#host = endpoint.slice(0, colon);
    this.#port = Number(endpoint.slice(colon + 1));
  }

  #sessionFor(): http2.ClientHttp2Session {
    const s = this.#session;
    if (s !== undefined && !s.closed && !s.destroyed) return s;
    const session = http2.connect(`http://${this.#host}:${this.#port}`, {
      createConnection: () => {
        const socket = net.connect({ host: this.#host, port: this.#port });
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
    });
    // Session errors reach the streams; the session's own error event must be heard.
    session.on("error", () => {});
    session.on("goaway", () => session.close());
    this.#session = session;
    this.sessionsOpened++;
    return session;
  }

  /** Sends `body` to `path` and resolves with the complete answer, or rejects with {@link HangError}. */
  call(path: string, body: Uint8Array, opts: RawCallOptions = {}): Promise<RawResponse> {
    const timeoutMs = opts.timeoutMs ?? 5_000;
    const session = this.#sessionFor();
    return new Promise<RawResponse>((resolve, reject) => {
      let httpStatus = 0;
      let contentType: string | undefined;
      let grpcStatus: number | undefined;
      let grpcMessage = "";
      const chunks: Uint8Array[] = [];
      let settled = false;
      const readGrpc = (h: http2.IncomingHttpHeaders) => {
        const st = h["grpc-status"];
        if (typeof st === "string") grpcStatus = Number(st);
        const msg = h["grpc-message"];
        if (typeof msg === "string") {
          try {
            grpcMessage = decodeURIComponent(msg);
          } catch {
            grpcMessage = msg;
          }
        }
      };
      const stream = session.request({
        ":method": opts.method ?? "POST",
        ":path": path,
        ...(opts.headers ?? GRPC_HEADERS),
      }, { endStream: false });
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        stream.close(http2.constants.NGHTTP2_CANCEL);
        reject(new HangError(`no complete answer to ${path} within ${timeoutMs} ms`));
      }, timeoutMs);
      const finish = (end: RawResponse["end"]) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({
          httpStatus,
          contentType,
          grpcStatus,
          grpcMessage,
          body: new Uint8Array(Buffer.concat(chunks)),
          end,
        });
      };
      stream.on("response", (h) => {
        httpStatus = Number(h[":status"] ?? 0);
        const ct = h["content-type"];
        contentType = typeof ct === "string" ? ct : undefined;
        readGrpc(h);
      });
      stream.on("trailers", (h) => readGrpc(h));
      stream.on("data", (c: Uint8Array) => chunks.push(c));
      stream.on("error", () => {});
      // The answer is complete when the response ends (its trailers came before), even
      // if the server never read the whole request: a server that refuses a large body
      // answers at once and stops reading, and the call is over for the client then.
      stream.on("end", () => {
        finish("end");
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      });
      stream.on("close", () => {
        const code = stream.rstCode ?? 0;
        finish(code === http2.constants.NGHTTP2_NO_ERROR ? "end" : { rstCode: code });
      });
      // The server may answer and reset before reading the whole body; a write error
      // then surfaces on the stream, which is already handled above.
      stream.end(Buffer.from(body));
    });
  }

  /** Closes the connection and waits until its sockets are closed. */
  async close(): Promise<void> {
    const s = this.#session;
    this.#session = undefined;
    if (s !== undefined && !s.destroyed) s.destroy();
    for (const sock of this.#sockets) sock.destroy();
    while (this.#socketClosed.size > 0) await Promise.all([...this.#socketClosed]);
  }
}

/** The gRPC status names, by code, for messages. */
export const GRPC_CODE_NAMES: readonly string[] = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

/** A one-line rendering of a response, for assertion messages. */
export function describeResponse(r: RawResponse): string {
  const st = r.grpcStatus === undefined
    ? "no grpc-status"
    : `${GRPC_CODE_NAMES[r.grpcStatus] ?? r.grpcStatus} "${r.grpcMessage}"`;
  const end = r.end === "end" ? "" : `, reset ${r.end.rstCode}`;
  return `HTTP ${r.httpStatus} (${
    r.contentType ?? "no content-type"
  }), ${st}, ${r.body.length} body bytes${end}`;
}
