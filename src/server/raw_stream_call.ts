/**
 * One client-streaming gRPC call written straight on a `node:http2` stream: the
 * sender half of the peers' fast path (peer_stream.ts uses it for
 * `RaftService/Stream`; the receiver half is stream_fast_lane.ts). Each message
 * is written as the caller hands it over, already serialized, in a 5-byte gRPC
 * envelope, in the turn it is handed over: no async generator between the queue
 * and the socket (Connect's client reads the request from an async iterable,
 * through three generators, and waits for each write's callback before it takes
 * the next message).
 *
 * The wire is Connect's gRPC client's, so any gRPC server takes it: the headers
 * of Connect's `requestHeaderWithCompression` (content type, user agent,
 * `grpc-timeout`, `te`, `grpc-accept-encoding`), uncompressed messages, and the
 * answer checked with Connect's `validateResponseWithCompression` and
 * `validateTrailer`, so a refusal is the ConnectError Connect's client gives
 * (UNIMPLEMENTED from an older node, FAILED_PRECONDITION from another cluster...).
 * A stream reset is Connect's error for its code (CANCEL is CANCELED: the server's
 * request timeout), a deadline that passes is DEADLINE_EXCEEDED and resets the
 * stream, as Connect's client does, and so does an abort (CANCELED).
 *
 * The HTTP/2 session is Connect's `Http2SessionManager`, shared with the Connect
 * transport of the same peer (transport.ts): one connection per peer, with its
 * keepalive pings, idle timeout, connection verification and reconnects.
 *
 * @module
 */

import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import {
  requestHeaderWithCompression,
  validateResponseWithCompression,
  validateTrailer,
} from "@connectrpc/connect/protocol-grpc";
import { errorOfResetCode } from "./unary_fast_lane.ts";

/** What Connect's client accepts by default, and says so in `grpc-accept-encoding`. */
const ACCEPT_COMPRESSION = [compressionGzip, compressionBrotli];

/** Options of {@link RawStreamCall.open}. */
export interface RawStreamCallOptions {
  /** The peer's session (one per peer, shared with its Connect transport). */
  readonly session: Http2SessionManager;
  /** `/package.Service/Method`. */
  readonly path: string;
  /** The call's deadline, sent as `grpc-timeout` and enforced here. */
  readonly timeoutMs: number;
  /** Aborts the call (CANCELED, the stream reset with CANCEL). */
  readonly signal: AbortSignal;
}

/** A client-streaming call under way; see the module doc. */
export class RawStreamCall {
  readonly #stream: http2.ClientHttp2Stream;
  readonly #session: Http2SessionManager;
  #error: ConnectError | undefined;
  readonly #failed: Promise<ConnectError>;
  #fail!: (e: ConnectError) => void;
  #header: Headers | undefined;
  readonly #trailer = new Headers();
  #foundStatus = false;
  /** Set when the stream closed: the call is over, whatever our side still had to say. */
  #closed = false;
  /** Settles once the answer has been read (its end), or the call failed. */
  readonly #done: Promise<void>;
  readonly #timer: ReturnType<typeof setTimeout>;
  readonly #onAbort: () => void;
  readonly #signal: AbortSignal;

  private constructor(o: RawStreamCallOptions, stream: http2.ClientHttp2Stream, deadline: number) {
    this.#stream = stream;
    this.#session = o.session;
    this.#signal = o.signal;
    this.#failed = new Promise((resolve) => {
      this.#fail = (e) => {
        if (this.#error !== undefined) return;
        this.#error = e;
        resolve(e);
      };
    });
    // Connect's client: an abort closes with CANCEL, anything else with INTERNAL_ERROR.
    const failWith = (e: ConnectError) => {
      if (this.#error !== undefined) return;
      this.#fail(e);
      if (!stream.destroyed) {
        stream.close(
          e.code === Code.Canceled
            ? http2.constants.NGHTTP2_CANCEL
            : http2.constants.NGHTTP2_INTERNAL_ERROR,
        );
        stream.destroy();
      }
    };
    this.#timer = setTimeout(
      () => failWith(new ConnectError("the operation timed out", Code.DeadlineExceeded)),
      Math.max(0, deadline - performance.now()),
    );
    this.#onAbort = () => failWith(new ConnectError("This operation was aborted", Code.Canceled));
    o.signal.addEventListener("abort", this.#onAbort, { once: true });
    let responded = false;
    stream.on("response", (h) => {
      responded = true;
      const header = webHeadersOf(h);
      this.#header = header;
      try {
        const { foundStatus, headerError } = validateResponseWithCompression(
          ACCEPT_COMPRESSION,
          Number(h[":status"] ?? 0),
          header,
        );
        this.#foundStatus = foundStatus;
        if (headerError !== undefined) failWith(headerError);
      } catch (e) {
        // Not a gRPC answer (an HTTP status, another content type): Connect's error for it.
        failWith(ConnectError.from(e, Code.Internal));
      }
    });
    stream.on("trailers", (t) => webHeadersOf(t).forEach((v, k) => this.#trailer.set(k, v)));
    // The answer's one message (an empty StreamResponse) is not looked at: its
    // trailers say how the call went.
    stream.on("data", () => this.#session.notifyResponseByteRead(stream));
    stream.on("error", (e) => {
      // As Connect's client: a write after the request ended is not the call's failure.
      if (stream.writableEnded && codesOf(e).includes("ERR_STREAM_WRITE_AFTER_END")) return;
      failWith(errorOfNode(e));
    });
    this.#done = new Promise<void>((resolve) => {
      stream.on("close", () => {
        // As Connect's h2Request: a reset's code, else a stream cut before the answer.
        this.#closed = true;
        const reset = errorOfResetCode(stream.rstCode);
        if (reset !== undefined) failWith(reset);
        else if (responded && !this.#foundStatus) {
          // The whole answer is in: the peer may have ended the call before we did
          // (a refusal, a node that stops), and its trailers say how.
          try {
            validateTrailer(this.#trailer, this.#header ?? new Headers());
          } catch (e) {
            failWith(ConnectError.from(e, Code.Internal));
          }
        } else if (!responded) {
          failWith(
            new ConnectError(
              `http/2 stream closed with error code 0x${
                stream.rstCode.toString(16)
              } before the response was received`,
              Code.Internal,
            ),
          );
        }
        resolve();
      });
      void this.#failed.then(() => resolve());
    });
    // Aborted while the stream was being opened: the listener above came too late.
    if (o.signal.aborted) this.#onAbort();
  }

  /** Opens the call (a stream on the peer's session, connecting it if need be). */
  static async open(o: RawStreamCallOptions): Promise<RawStreamCall> {
    if (o.signal.aborted) throw new ConnectError("This operation was aborted", Code.Canceled);
    const header = requestHeaderWithCompression(
      true,
      o.timeoutMs,
      undefined,
      ACCEPT_COMPRESSION,
      null,
    );
    const headers: http2.OutgoingHttpHeaders = {};
    header.forEach((v, k) => headers[k] = v);
    // The deadline and the abort hold from here, as for Connect's client: a peer
    // whose connection hangs (a partition drops its packets) fails the call in time.
    const deadline = performance.now() + o.timeoutMs;
    const requested = o.session.request("POST", o.path, headers, {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort = () => {};
    const givenUp = new Promise<ConnectError>((resolve) => {
      timer = setTimeout(
        () => resolve(new ConnectError("the operation timed out", Code.DeadlineExceeded)),
        o.timeoutMs,
      );
      onAbort = () => resolve(new ConnectError("This operation was aborted", Code.Canceled));
      o.signal.addEventListener("abort", onAbort, { once: true });
    });
    let first: http2.ClientHttp2Stream | ConnectError;
    try {
      first = await Promise.race([requested, givenUp]);
    } catch (e) {
      throw errorOfNode(e);
    } finally {
      clearTimeout(timer);
      o.signal.removeEventListener("abort", onAbort);
    }
    if (first instanceof ConnectError) {
      // A stream opened after all is not wanted any more.
      requested.then((s) => s.close(http2.constants.NGHTTP2_CANCEL), () => {});
      throw first;
    }
    // The answer is read as it comes ("data" listeners), so the window stays open.
    first.resume();
    return new RawStreamCall(o, first, deadline);
  }

  /** The call's failure, once it failed (the peer refused, a reset, the deadline...). */
  get error(): ConnectError | undefined {
    return this.#error;
  }

  /** Whether the call is over (it failed, or the peer answered and closed it). */
  get over(): boolean {
    return this.#error !== undefined || this.#closed;
  }

  /** Settles when the call is over (see {@link over}). */
  get ended(): Promise<void> {
    return this.#done;
  }

  /** Settles with the call's error when it fails. */
  get failed(): Promise<ConnectError> {
    return this.#failed;
  }

  /**
   * Writes one serialized message in its envelope, now. False when HTTP/2 flow
   * control holds the stream's writes back: wait for {@link drained} before more.
   */
  write(message: Uint8Array): boolean {
    if (this.over) return true;
    return this.#stream.write(encodeEnvelope(0, message), swallow);
  }

  /** Resolves when the stream takes writes again (or the call failed). */
  drained(): Promise<void> {
    if (this.over || !this.#stream.writableNeedDrain) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        this.#stream.off("drain", done);
        resolve();
      };
      this.#stream.on("drain", done);
      void this.#done.then(done);
    });
  }

  /**
   * Half-closes the request and waits for the answer: resolves when the peer
   * answered OK, throws the call's ConnectError otherwise.
   */
  async finish(): Promise<void> {
    try {
      if (!this.over) this.#stream.end();
      await this.#done;
      // The trailers were checked when the stream closed (a failure if not OK).
      if (this.#error !== undefined) throw this.#error;
    } finally {
      this.#release();
    }
  }

  /** Ends the call at once (nothing more to say, e.g. after a failure seen elsewhere). */
  cancel(): void {
    this.#onAbort();
    this.#release();
  }

  #release(): void {
    clearTimeout(this.#timer);
    this.#signal.removeEventListener("abort", this.#onAbort);
  }
}

/** A write's failure is the stream's, told through "error"/"close". */
function swallow(): void {}

/** A node header object as web Headers (repeated fields joined, pseudo-headers dropped). */
function webHeadersOf(h: http2.IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const k in h) {
    if (k.startsWith(":")) continue;
    const v = h[k];
    if (v === undefined) continue;
    if (Array.isArray(v)) { for (const e of v) out.append(k, e); }
    else out.set(k, String(v));
  }
  return out;
}

/** The `code`s of an error and of its causes. */
function codesOf(e: unknown): string[] {
  const codes: string[] = [];
  for (let at = e, depth = 0; at instanceof Error && depth < 10; depth++) {
    const code = (at as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
    at = at.cause;
  }
  return codes;
}

/**
 * A failure of the connection or the stream as a ConnectError, with the code
 * connect-node's connectErrorFromNodeReason gives it (not exported by the package):
 * a stream destroyed or reset is ABORTED, a host that cannot be reached UNAVAILABLE,
 * anything else INTERNAL.
 */
function errorOfNode(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  const codes = codesOf(e);
  let code = Code.Internal;
  if (codes.includes("ERR_STREAM_WRITE_AFTER_END")) code = Code.Aborted;
  else if (
    codes.some((c) =>
      c === "ERR_STREAM_DESTROYED" || c === "ERR_HTTP2_INVALID_STREAM" || c === "ECONNRESET"
    )
  ) code = Code.Aborted;
  else if (
    codes.some((c) =>
      c === "ETIMEDOUT" || c === "ENOTFOUND" || c === "EAI_AGAIN" || c === "ECONNREFUSED"
    )
  ) code = Code.Unavailable;
  const ce = ConnectError.from(e, code);
  if (ce !== e) ce.cause = e;
  return ce;
}
