/**
 * Puts the limits of `limits.ts` on a `node:http2` server, for what the HTTP/2
 * layer does not enforce itself: connections in total and per address, the
 * node-wide stream and request byte budgets, the header list size, the request
 * and idle timeouts, and a cut for connections whose streams the HTTP/2 layer
 * keeps refusing, and a cooldown for an address whose connections were cut so
 * three times in a minute (abuse_cooldown.ts). (Streams per connection and header
 * fields per request are HTTP/2 settings that Deno 2.9.3 enforces: see
 * `http2ServerOptions`.) Each limit hit is logged once per source through
 * {@link LimitLog}.
 *
 * Use: build the server with `http2ServerOptions(limits)` and
 * `guard.wrap(handler)` as its request handler, then `guard.install(server)`.
 *
 * @module
 */

import * as http2 from "node:http2";
import type { Logger } from "../raft/logger.ts";
import { AbuseCooldown, COOLDOWN_STRIKES, COOLDOWN_WINDOW_MS } from "./abuse_cooldown.ts";
import { ConnectionGate } from "./connection_gate.ts";
import { LimitLog } from "./limit_log.ts";
import {
  GUARANTEED_CALL_BYTES_PER_CONNECTION,
  GUARANTEED_STREAMS_PER_CONNECTION,
  type Http2Limits,
  MAX_HEADER_LIST_BYTES,
  MAX_UNSERVED_STREAMS,
} from "./limits.ts";
import { type Share, SharedBudget } from "./shared_budget.ts";

/** What the guard knows of one admitted connection. */
interface SessionState {
  readonly address: string;
  /** Its open streams, in the node-wide stream budget. */
  readonly streams: Share;
  /** Call bytes its open streams hold (requests read, answers not taken), node-wide budget. */
  readonly bytes: Share;
  /** When it last had no open stream (Date.now()): its idle time counts from then. */
  idleSince: number;
  /** Streams the handler saw (served or refused here). */
  seen: number;
  /** Whether its socket holds writes back until the loop turns twice ({@link Http2Guard}). */
  corked: boolean;
}

/** A request handler of `node:http2`'s compatibility API. */
export type Http2Handler = (
  req: http2.Http2ServerRequest,
  res: http2.Http2ServerResponse,
) => void;

/**
 * Counts `n` more bytes of a request's body as read by its handler, within the
 * node's call byte budget: false when they do not fit, the stream then reset
 * (ENHANCE_YOUR_CALM) and the handler to stop reading.
 */
export type RequestByteCounter = (n: number) => boolean;

/** Where {@link Http2Guard.wrap} leaves the byte counter of each request it admits. */
const REQUEST_BYTES: unique symbol = Symbol("raftkv http2 guard: request byte counter");

type CountedRequest = http2.Http2ServerRequest & { [REQUEST_BYTES]?: RequestByteCounter };

/**
 * The byte counter of a request the guard admitted, for a handler that reads the
 * body itself ("data" events) rather than through `req.iterator()`, which the
 * guard counts; undefined for a request no guard wrapped.
 */
export function requestByteCounter(req: http2.Http2ServerRequest): RequestByteCounter | undefined {
  return (req as CountedRequest)[REQUEST_BYTES];
}

/** How long a session asked to close (GOAWAY) may take before it is destroyed. */
const CLOSE_GRACE_MS = 2_000;

/**
 * How often sessions are checked for streams the HTTP/2 layer refused, for idleness,
 * and requests for their timeout ({@link Http2Guard}'s sweep): so much later than
 * its limit a request or an idle connection may be cut.
 */
const SWEEP_MS = 50;

/** A request whose body has not ended yet, and what to do when its time runs out. */
interface PendingRequest {
  /** When its time runs out (Date.now()). */
  deadline: number;
  readonly onTimeout: () => void;
}

const UTF8 = new TextEncoder();

/**
 * Turns of the event loop (`setImmediate`s) a connection's writes are held from an
 * answer's headers: measured with strace at 64 puts in flight, 2 sends the trailers
 * apart, 3 sends HEADERS, DATA and trailers in one writev (2.3 fewer socket writes
 * per put on the node), 4 saves nothing more.
 */
const CORK_TURNS = 3;

/**
 * The size of a header list as SETTINGS_MAX_HEADER_LIST_SIZE counts it (RFC 9113
 * §6.5.2): each field's name and value in bytes, plus 32.
 */
export function headerListSize(rawHeaders: readonly string[]): number {
  let n = 0;
  for (const h of rawHeaders) n += utf8Length(h);
  return n + 32 * (rawHeaders.length / 2);
}

/**
 * The UTF-8 length of `s`, counted without encoding it: the guard measures every
 * request's headers, and encoding each one cost about 30 us a call in garbage
 * (issue 11's profile). A lone surrogate counts 3 bytes, as TextEncoder encodes it
 * (U+FFFD).
 */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      n += 1;
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        // A surrogate pair: 4 bytes for its 2 UTF-16 units.
        n += 2;
        i++;
      } else {
        n += 2;
      }
    } else {
      n += 2;
    }
  }
  return n;
}

/** The limits of one server, enforced. */
export class Http2Guard {
  readonly limits: Http2Limits;
  readonly #log: LimitLog;
  readonly #gate: ConnectionGate;
  readonly #cooldown: AbuseCooldown;
  readonly #streams: SharedBudget;
  readonly #bytes: SharedBudget;
  readonly #sessions = new Map<http2.Http2Session, SessionState>();
  #checker: ReturnType<typeof setInterval> | undefined;
  /**
   * Calls not yet answered, each cut at its request timeout unless its request's
   * body has ended by then (GuardedCall.onTimeout), checked by the sweep every
   * {@link SWEEP_MS} rather than by a timer each: a timer made and cleared per call
   * (and another for the connection's idle time) cost more than the check (issue
   * 11's profile).
   */
  readonly #pendingRequests = new Set<PendingRequest>();

  /**
   * Paths of methods whose request is a stream of messages that may stay open for good
   * (a bidirectional keep-alive stream): for these, the request timeout bounds the
   * silence between two reads of the body rather than the whole body, and the bytes
   * of a message read are given back once the handler asks for the next one.
   */
  readonly #streamingRequestPaths: ReadonlySet<string>;
  /** What each call of {@link Http2Guard.wrap} shares of this guard. */
  readonly #calls: GuardShared;

  constructor(
    limits: Http2Limits,
    logger: Logger,
    options: { streamingRequestPaths?: Iterable<string> } = {},
  ) {
    this.limits = limits;
    this.#streamingRequestPaths = new Set(options.streamingRequestPaths ?? []);
    this.#log = new LimitLog(logger);
    this.#gate = new ConnectionGate(limits.maxConnections, limits.maxConnectionsPerAddress);
    this.#cooldown = new AbuseCooldown(limits.abuseCooldownMs);
    this.#streams = new SharedBudget(limits.maxStreams, GUARANTEED_STREAMS_PER_CONNECTION);
    this.#bytes = new SharedBudget(
      limits.maxCallBufferMiB * 1024 * 1024,
      GUARANTEED_CALL_BYTES_PER_CONNECTION,
    );
    this.#calls = {
      limits,
      bytes: this.#bytes,
      streams: this.#streams,
      log: this.#log,
      pendingRequests: this.#pendingRequests,
      coalesce: (session, state) => this.#coalesce(session, state),
    };
  }

  /** Admits or refuses every new connection of `server` and keeps its idle timer. */
  install(server: http2.Http2Server): void {
    server.on("session", (session: http2.ServerHttp2Session) => this.#onSession(session));
  }

  #onSession(session: http2.ServerHttp2Session): void {
    // Heard so that a connection error does not become an uncaught one.
    session.on("error", () => {});
    const address = session.socket?.remoteAddress ?? "unknown";
    if (this.#cooldown.refuses(address)) {
      // The same (source, limit) as the line that started the cooldown: once per source.
      this.#log.hit("abuse cooldown", address, { refused: "new connection" });
      session.destroy();
      return;
    }
    const refusal = this.#gate.admit(address);
    if (refusal !== undefined) {
      this.#log.hit(refusal, address, {
        limit: refusal === "connections"
          ? this.limits.maxConnections
          : this.limits.maxConnectionsPerAddress,
      });
      session.destroy();
      return;
    }
    const state: SessionState = {
      address,
      streams: { held: 0 },
      bytes: { held: 0 },
      idleSince: Date.now(),
      seen: 0,
      corked: false,
    };
    this.#sessions.set(session, state);
    session.once("close", () => {
      this.#gate.release(address);
      this.#sessions.delete(session);
      if (this.#sessions.size === 0) {
        clearInterval(this.#checker);
        this.#checker = undefined;
      }
    });
    this.#checker ??= setInterval(() => this.#sweep(), SWEEP_MS);
  }

  /** Every {@link SWEEP_MS} while connections are open: the checks that need a clock. */
  #sweep(): void {
    const now = Date.now();
    this.#checkUnserved();
    for (const [session, state] of this.#sessions) this.#checkIdle(session, state, now);
    for (const pending of this.#pendingRequests) {
      if (now < pending.deadline) continue;
      this.#pendingRequests.delete(pending);
      pending.onTimeout();
    }
  }

  /**
   * Cuts connections on which the HTTP/2 layer refused or reset more than
   * {@link MAX_UNSERVED_STREAMS} streams the handler never saw. Deno 2.9.3 reports
   * such streams to nobody, but counts every stream id it processed
   * (`session.state.lastProcStreamID`; a client's ids are odd and consecutive),
   * so the difference from the streams the handler saw is what it refused. Each
   * can cost memory that Deno does not give back (see MAX_HEADER_FIELDS).
   */
  #checkUnserved(): void {
    for (const [session, state] of this.#sessions) {
      if (session.destroyed) continue;
      const last = session.state?.lastProcStreamID;
      if (typeof last !== "number") continue;
      const unserved = Math.floor((last + 1) / 2) - state.seen;
      if (unserved > MAX_UNSERVED_STREAMS) {
        this.#log.hit("streams refused by the HTTP/2 layer", state.address, {
          limit: MAX_UNSERVED_STREAMS,
          unserved,
        });
        session.destroy();
        this.#cutForAbuse(state.address);
      }
    }
  }

  /**
   * Counts a connection from `address` cut for abuse toward a cooldown of the
   * address (abuse_cooldown.ts), and logs a cooldown it starts.
   */
  #cutForAbuse(address: string): void {
    const ms = this.#cooldown.cut(address);
    if (ms === undefined) return;
    this.#log.hit("abuse cooldown", address, {
      cuts: COOLDOWN_STRIKES,
      withinMs: COOLDOWN_WINDOW_MS,
      cooldownMs: ms,
    });
  }

  /**
   * Closes a session that has had no open stream for the idle timeout. Also what
   * closes a connection that never completes a stream: a bare preface, a header
   * block sent a byte at a time (the HTTP/2 layer only reports a stream once its
   * headers end).
   */
  #checkIdle(session: http2.Http2Session, state: SessionState, now: number): void {
    if (state.streams.held > 0 || session.closed || session.destroyed) return;
    if (now - state.idleSince < this.limits.idleTimeoutMs) return;
    session.close();
    // A client that ignores GOAWAY and keeps the socket open is cut off.
    setTimeout(() => {
      if (!session.destroyed) session.destroy();
    }, CLOSE_GRACE_MS).unref?.();
  }

  /**
   * Holds the connection's socket writes back from an answer's headers for
   * {@link CORK_TURNS} turns of the event loop, so that the answer's HEADERS, DATA
   * and trailers (and those of the other answers ready by then) leave in one writev
   * instead of one write each. Deno 2.9.3 writes the headers at once (`respond`
   * flushes the session), the data on the next tick, and the trailers only once
   * the data's write callback (itself after a `setImmediate`) has let Connect end
   * the answer, from another `setImmediate` (`sendTrailers`): three syscalls per
   * unary answer, the biggest single cost of serving a call in issue 11's profile
   * (`writeBuffer`, 14 % of the leader's CPU at 64 in flight). A socket is never
   * left corked: its release is scheduled when the cork is taken. `session.socket`
   * is a proxy that throws once the session has let go of its socket (a session
   * destroyed within the turns): the socket's own `cork` and `uncork` are taken
   * from it at once (the proxy binds them to the socket), and uncorking a destroyed
   * socket does nothing.
   */
  #coalesce(session: http2.ServerHttp2Session, state: SessionState): void {
    if (state.corked || session.destroyed) return;
    let cork: unknown;
    let uncork: unknown;
    try {
      const socket = session.socket as { cork?: unknown; uncork?: unknown };
      cork = socket.cork;
      uncork = socket.uncork;
    } catch {
      return; // no socket any more: nothing to hold back
    }
    if (typeof cork !== "function" || typeof uncork !== "function") return;
    state.corked = true;
    cork();
    let turns = CORK_TURNS;
    const release = () => {
      if (--turns > 0) {
        setImmediate(release);
        return;
      }
      state.corked = false;
      uncork();
    };
    setImmediate(release);
  }

  /**
   * Wraps a request handler: a stream past the node-wide stream budget is refused
   * (REFUSED_STREAM, which clients may retry: RFC 9113 §8.7) before `handler`
   * sees it; an admitted one whose request body has not ended within the request
   * timeout is reset (CANCEL), and so is one whose request or answer would take
   * the call bytes held past the byte budget (ENHANCE_YOUR_CALM, which gRPC
   * clients report as RESOURCE_EXHAUSTED). A stream and its request bytes count
   * until its answer is written or it closes (the handler holds the request until
   * it answers); its answer's bytes count until it closes (an answer the client
   * does not read stays in memory until then).
   */
  wrap(handler: Http2Handler): Http2Handler {
    return (req, res) => {
      const stream = req.stream;
      const session = stream.session as http2.ServerHttp2Session | undefined;
      const state = session === undefined ? undefined : this.#sessions.get(session);
      if (session === undefined || state === undefined) {
        // A stream of a session the guard refused or never saw: nothing to serve it on.
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      state.seen++;
      // Deno 2.9.3 advertises SETTINGS_MAX_HEADER_LIST_SIZE but does not enforce it
      // (measured: a 20 KB header is served): the node does.
      const headerBytes = headerListSize(req.rawHeaders);
      if (headerBytes > MAX_HEADER_LIST_BYTES) {
        this.#log.hit("header list size", state.address, {
          limit: MAX_HEADER_LIST_BYTES,
          size: headerBytes,
        });
        stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
        return;
      }
      if (!this.#streams.take(state.streams)) {
        this.#log.hit("streams", state.address, { limit: this.limits.maxStreams });
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      const call = new GuardedCall(
        this.#calls,
        req,
        res,
        stream,
        session,
        state,
        this.#streamingRequestPaths.has(req.url),
      );
      // Pending until answered (or closed): a request whose body has ended by its
      // timeout is not cut (GuardedCall.onTimeout).
      this.#pendingRequests.add(call);
      // Counts the body's bytes as the handler reads them: Connect reads a request
      // through `req.iterator()` and holds what it read until it answers; the unary
      // fast lane (src/server/unary_fast_lane.ts) reads "data" events and counts
      // each chunk through {@link requestByteCounter}. (A "data" listener would
      // switch the request to flowing mode and take chunks from under an iterator:
      // measured, Connect's calls then fail "missing input message".)
      (req as CountedRequest)[REQUEST_BYTES] = call.countRequestBytes;
      // The wrapped methods and the listeners are functions shared by every call,
      // which find their call on the object they are called on: a closure each,
      // and `once`'s wrapper of each listener, were garbage per call (issue 11's
      // heap profile). The events heard fire once per stream, so `on` is `once`.
      (req as GuardedObject)[CALL] = call;
      (res as GuardedObject)[CALL] = call;
      (stream as unknown as GuardedObject)[CALL] = call;
      req.iterator = guardedIterator;
      // One socket write per answer instead of three (see #coalesce).
      (res as { writeHead: unknown }).writeHead = guardedWriteHead;
      (res as { write: unknown }).write = guardedWrite;
      res.on("finish", onAnswerSent);
      stream.on("close", onStreamClose);
      handler(req, res);
    };
  }
}

/**
 * What a {@link GuardedCall} needs of its {@link Http2Guard} (whose fields are
 * private to it): made once per guard.
 */
interface GuardShared {
  readonly limits: Http2Limits;
  readonly bytes: SharedBudget;
  readonly streams: SharedBudget;
  readonly log: LimitLog;
  readonly pendingRequests: Set<PendingRequest>;
  readonly coalesce: (session: http2.ServerHttp2Session, state: SessionState) => void;
}

/** Where {@link Http2Guard.wrap} leaves a call's {@link GuardedCall} on its request, response and stream. */
const CALL: unique symbol = Symbol("raftkv http2 guard: call");

type GuardedObject = { [CALL]?: GuardedCall };

/** The call an object of a wrapped call belongs to; throws for one the guard never wrapped. */
function callOf(o: unknown): GuardedCall {
  const call = (o as GuardedObject)[CALL];
  if (call === undefined) {
    throw new Error("invariant: a guarded method or listener runs on its call's object");
  }
  return call;
}

/**
 * One admitted stream: its request's timeout (it is the guard's pending request
 * until its body ends), the bytes its request and answer hold in the node's call
 * byte budget, and its stream's share of the stream budget, given back when its
 * answer is sent or its stream closes.
 */
class GuardedCall implements PendingRequest {
  deadline: number;
  /** Request bytes counted, given back when released. */
  received = 0;
  /** Whether its stream and request bytes were given back (after that nothing is counted). */
  released = false;
  /** Answer bytes written, given back when the stream closes. */
  answered = 0;
  /** The methods {@link Http2Guard.wrap} replaced, as they were. */
  readonly iterate: http2.Http2ServerRequest["iterator"];
  readonly writeHead: (...args: unknown[]) => unknown;
  readonly write: (chunk: unknown, ...rest: unknown[]) => boolean;
  /** {@link GuardedCall.count} as the request's {@link RequestByteCounter}. */
  readonly countRequestBytes: RequestByteCounter = (n) => this.count(n);

  constructor(
    readonly guard: GuardShared,
    readonly req: http2.Http2ServerRequest,
    readonly res: http2.Http2ServerResponse,
    readonly stream: http2.ServerHttp2Stream,
    readonly session: http2.ServerHttp2Session,
    readonly state: SessionState,
    /** A long-lived request stream (see Http2Guard's `streamingRequestPaths`). */
    readonly streaming: boolean,
  ) {
    this.deadline = Date.now() + guard.limits.requestTimeoutMs;
    this.iterate = req.iterator;
    this.writeHead = res.writeHead as (...args: unknown[]) => unknown;
    this.write = res.write as (chunk: unknown, ...rest: unknown[]) => boolean;
  }

  /**
   * Its request timeout passed before its answer: the stream is reset unless its
   * request's body has ended. (The sweep checks that here rather than an "end"
   * listener per call taking it out of the pending requests: a listener was
   * garbage per call, and the stream's close took it off again.)
   */
  onTimeout(): void {
    const stream = this.stream;
    if (stream.closed || stream.destroyed || stream.readableEnded) return;
    // The path says which call was cut: a peer's Stream call cut by a timeout
    // set below its rotation (peer_stream.ts) is expected, a client's is not.
    // A long-lived stream's cut is logged apart from the others' (its path is
    // one of a fixed few), so a peer's cuts never quiet it.
    this.guard.log.hit("request timeout", this.state.address, {
      timeoutMs: this.guard.limits.requestTimeoutMs,
      path: this.req.url,
    }, this.streaming ? this.req.url : "");
    stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  /** The call is over: no timeout for it any more. */
  requestDone(): void {
    this.guard.pendingRequests.delete(this);
  }

  /**
   * Takes `n` bytes of the node's call byte budget; past it, the stream is reset
   * (ENHANCE_YOUR_CALM, which gRPC clients report as RESOURCE_EXHAUSTED) and false
   * is returned.
   */
  takeBytes(n: number): boolean {
    if (this.guard.bytes.take(this.state.bytes, n)) return true;
    this.guard.log.hit("call bytes", this.state.address, {
      limitMiB: this.guard.limits.maxCallBufferMiB,
    });
    this.stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    return false;
  }

  /** {@link RequestByteCounter}. */
  count(n: number): boolean {
    // After the answer the bytes are given back: nothing more is counted.
    if (this.released) return true;
    if (!this.takeBytes(n)) return false;
    this.received += n;
    if (this.streaming) this.deadline = Date.now() + this.guard.limits.requestTimeoutMs;
    return true;
  }

  /** The handler is done with `n` bytes of a long-lived request it read. */
  giveBack(n: number): void {
    this.guard.bytes.give(this.state.bytes, n);
    this.received -= n;
  }

  /**
   * The stream and its request bytes are given back when the answer is sent or the
   * stream closes, whichever comes first: a stream whose answer is sent may
   * close only later (Connect resets it after the trailers, on a later turn of a
   * busy event loop), and a client calling one call after another must not find
   * its guaranteed share held by calls that are over (measured under rapid reset:
   * a sequential client refused).
   */
  release(): void {
    this.requestDone();
    if (this.released) return;
    this.released = true;
    const state = this.state;
    this.guard.bytes.give(state.bytes, this.received);
    this.guard.streams.give(state.streams);
    if (state.streams.held === 0) state.idleSince = Date.now();
  }

  /** The stream closed: everything it held is given back, its answer's bytes too. */
  closed(): void {
    this.release();
    this.guard.bytes.give(this.state.bytes, this.answered);
    this.answered = 0;
  }
}

/** A wrapped call's `req.iterator`: each chunk counted (see {@link Http2Guard.wrap}). */
function guardedIterator(
  this: http2.Http2ServerRequest,
  options?: Parameters<http2.Http2ServerRequest["iterator"]>[0],
): ReturnType<http2.Http2ServerRequest["iterator"]> {
  const call = callOf(this);
  const chunks = call.iterate.call(this, options);
  return (async function* (): AsyncGenerator<unknown, undefined> {
    for await (const chunk of chunks) {
      const n = (chunk as Uint8Array).length;
      const counted = !call.released;
      if (!call.count(n)) throw new Error("the node holds too many call bytes");
      yield chunk;
      if (call.streaming && counted && !call.released) {
        // The handler asked for the next message: it is done with this one.
        call.giveBack(n);
      }
    }
    return undefined;
  })() as unknown as ReturnType<http2.Http2ServerRequest["iterator"]>;
}

/** A wrapped call's `res.writeHead`: the connection corked first (see Http2Guard's #coalesce). */
function guardedWriteHead(this: http2.Http2ServerResponse, ...args: unknown[]): unknown {
  const call = callOf(this);
  call.guard.coalesce(call.session, call.state);
  return call.writeHead.apply(this, args);
}

/**
 * A wrapped call's `res.write`: counts the answer's bytes as the handler writes
 * them, until the stream closes: a client that never opens its flow control
 * window leaves them all in the node's memory.
 */
function guardedWrite(
  this: http2.Http2ServerResponse,
  chunk: unknown,
  ...rest: unknown[]
): boolean {
  const call = callOf(this);
  const n = chunk instanceof Uint8Array
    ? chunk.length
    : typeof chunk === "string"
    ? UTF8.encode(chunk).length
    : 0;
  // Past the budget the stream is reset, and the write passed on all the same, so
  // that it fails on the closed stream through its callback and the handler sees
  // the failure, not a hang.
  if (call.takeBytes(n)) call.answered += n;
  return call.write.call(this, chunk, ...rest);
}

/** A wrapped call's response "finish": its answer is sent. */
function onAnswerSent(this: http2.Http2ServerResponse): void {
  callOf(this).release();
}

/** A wrapped call's stream "close". */
function onStreamClose(this: http2.ServerHttp2Stream): void {
  callOf(this).closed();
}
