/**
 * One peer's sending loop: it carries what waits in the peer's queue to the peer
 * on `RaftService/Stream`, a client-streaming call on which every batch is one
 * HTTP/2 DATA frame, not a call (etcd's rafthttp streamWriter keeps one long-lived
 * stream per peer for the same reason). Batches are written as the core emits
 * them, without waiting for the peer to step the earlier ones: pipelining, which
 * the core's in-flight limit bounds (tracker/inflights.ts, etcd's MaxInflightMsgs).
 * HTTP/2 flow control holds the writer back when the peer reads slowly; what
 * waits meanwhile stays in the bounded queue (peer_queue.ts), oldest dropped.
 *
 * Order: one call at a time per peer, and its batches in the order taken from the
 * queue, so the peer steps messages in the order the core sent them. A call ends
 * after {@link ROTATE_MS} or {@link ROTATE_BYTES}, and the next opens only once
 * the peer has answered it (it answers after stepping every batch), so order holds
 * across calls too. Ending calls keeps each within the server's request timeout and
 * call-byte budget (src/http2/limits.ts), which hold for peers as for anyone, and
 * gives a round-trip figure and a liveness check: a call not answered within its
 * deadline fails, as a Send did. A server configured with a request timeout below
 * {@link ROTATE_MS} cuts calls (CANCEL): each cut halves this peer's call length,
 * down to {@link MIN_ROTATE_MS}, so the calls soon end before the server cuts them.
 *
 * Failure: a call that fails loses what it carried (Raft retries: §5.1, "RPCs may
 * be lost"); what is still queued is dropped too, being stale by the time the peer
 * is reached again, and the loop waits before the next call, doubling the wait up
 * to {@link MAX_BACKOFF_MS} while the peer keeps failing, so a dead peer costs a
 * connection attempt every 100 ms, not one per message, and a peer that comes up
 * is reached within a heartbeat of it. The transport logs failures (once per
 * cause: transport.ts).
 *
 * Mixed versions: a peer that answers UNIMPLEMENTED does not serve Stream (an older
 * node during a rolling restart); it is sent unary `Send`s instead, one batch in
 * flight, as before, and Stream is tried again after {@link UNARY_FALLBACK_MS}.
 * The batches of the refused call were not stepped, so they are sent again on Send.
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import {
  RaftService,
  type SendRequest,
  SendRequestSchema,
  type StreamRequest,
  StreamRequestSchema,
} from "../gen/raftkv/v1/raft_pb.ts";
import type { Message, NodeId } from "../raft/types.ts";
import { messageToPb } from "./codec.ts";
import type { PeerQueue } from "./peer_queue.ts";
import { RawStreamCall } from "./raw_stream_call.ts";

/**
 * The most bytes one batch may carry beyond its first message, well under the
 * peer's request limit (MAX_REQUEST_BYTES, 4 MiB): one message holds at most
 * maxSizePerMsg (1 MiB) of entry data, so a batch never exceeds 3 MiB.
 */
export const MAX_BATCH_BYTES = 2 * 1024 * 1024;

/**
 * How long one Stream call lasts at most: well under the server's default request
 * timeout (10 s), so that the server never cuts a peer's call. A new call every
 * 2 s costs one HTTP/2 stream's headers, against a call per batch before.
 */
export const ROTATE_MS = 2_000;

/**
 * After this many bytes a Stream call ends with its batch: the server counts a
 * call's request bytes against its call-byte budget until it answers.
 */
export const ROTATE_BYTES = 1024 * 1024;

/** The shortest a Stream call is made when the peer's server cuts longer ones. */
export const MIN_ROTATE_MS = 50;

/** The first wait after a failed call; it doubles on each further failure. */
export const MIN_BACKOFF_MS = 50;

/**
 * The longest wait between calls to a peer that keeps failing: etcd's rafthttp
 * dials a peer at most every 100 ms too (`Transport.DialRetryFrequency`'s
 * default). It was 1 s: a peer started a moment after its leader (a full restart,
 * three processes starting seconds apart on a busy machine) then heard nothing for
 * up to a second after it listened, and campaigned meanwhile in vain.
 */
export const MAX_BACKOFF_MS = 100;

/**
 * The wait before the next call to a peer whose call just failed, after a wait of
 * `previous` ms (0 after a call that succeeded): {@link MIN_BACKOFF_MS}, doubling
 * to {@link MAX_BACKOFF_MS}.
 */
export function nextBackoffMs(previous: number): number {
  return Math.min(MAX_BACKOFF_MS, Math.max(MIN_BACKOFF_MS, previous * 2));
}

/** The path of `RaftService/Stream`. */
const STREAM_PATH = `/${RaftService.typeName}/${RaftService.method.stream.name}`;

/** How long a peer that does not serve Stream is sent Sends before Stream is tried again. */
export const UNARY_FALLBACK_MS = 60_000;

/** How a call (a Stream call, or a Send) ended, for the transport to log and count. */
export type CallOutcome =
  | { readonly ok: true; readonly seconds: number }
  | {
    readonly ok: false;
    readonly seconds: number;
    readonly error: unknown;
    readonly lost: number;
  };

/** Options of a {@link PeerStream}. */
export interface PeerStreamOptions {
  readonly peer: NodeId;
  /** The peer's queue, which the transport fills. */
  readonly queue: PeerQueue;
  /** The client to call the peer with now (it changes when the peer's address does). */
  client(): Client<typeof RaftService>;
  /** The fields every batch states besides its messages (cluster id, membership). */
  readonly clusterId: string;
  readonly members: readonly bigint[];
  /** How long a Send, or a Stream call after its last batch, may wait for the answer. */
  readonly timeoutMs: number;
  /** Told how each call ended. */
  ended(outcome: CallOutcome): void;
  /**
   * Told when the peer turns out not to serve Stream: it is then sent Sends for
   * {@link UNARY_FALLBACK_MS} (so told at most once in that time).
   */
  fellBack?(): void;
  /** How long a Stream call lasts at most ({@link ROTATE_MS} by default). */
  readonly rotateMs?: number;
  /** After how many bytes a Stream call ends ({@link ROTATE_BYTES} by default). */
  readonly rotateBytes?: number;
  /**
   * The peer's HTTP/2 session (one per peer, shared with its Connect client): when
   * given, Stream calls are written on it directly (raw_stream_call.ts), not
   * through Connect's client; the wire is the same.
   */
  session?(): Http2SessionManager;
}

/** Sends one peer's queue on Stream calls, one at a time, in order; see the module doc. */
export class PeerStream {
  readonly #o: PeerStreamOptions;
  #closed = false;
  /** Resolves the loop's wait for news (a message queued, close). */
  #wake: (() => void) | undefined;
  /** Aborts the call or the wait under way (close). */
  readonly #abort = new AbortController();
  /** Until when this peer is sent Sends, as one that does not serve Stream. */
  #unaryUntil = 0;
  /** How long a Stream call lasts at most: shortened when the peer cuts calls (see #run). */
  #rotateMs: number;
  readonly #loop: Promise<void>;

  constructor(options: PeerStreamOptions) {
    this.#o = options;
    this.#rotateMs = options.rotateMs ?? ROTATE_MS;
    this.#loop = this.#run();
  }

  /** Says that messages were queued. */
  wake(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  /** How long a Stream call lasts at most now (shorter than configured after cuts). */
  get rotateMs(): number {
    return this.#rotateMs;
  }

  /** Stops sending: the call under way is cancelled, what is queued stays unsent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#abort.abort();
    this.wake();
    await this.#loop;
  }

  /** Waits for a message in the queue, `ms` at most (forever if undefined), or close. */
  async #waitForMessages(ms?: number): Promise<void> {
    if (this.#o.queue.length > 0 || this.#closed) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      this.#wake = resolve;
      if (ms !== undefined) timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    this.#wake = undefined;
  }

  /** Waits `ms`, or until close. */
  async #sleep(ms: number): Promise<void> {
    if (this.#closed) return;
    const signal = this.#abort.signal;
    let onAbort = () => {};
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      onAbort = () => (clearTimeout(timer), resolve());
      signal.addEventListener("abort", onAbort, { once: true });
    });
    // A dead peer is waited for every 100 ms for as long as it stays dead: one
    // listener per wait would pile up on the signal.
    signal.removeEventListener("abort", onAbort);
  }

  #request(batch: readonly Message[]): SendRequest {
    return create(SendRequestSchema, {
      clusterId: this.#o.clusterId,
      messages: batch.map(messageToPb),
      members: [...this.#o.members],
    });
  }

  async #run(): Promise<void> {
    let backoff = 0;
    while (!this.#closed) {
      await this.#waitForMessages();
      if (this.#closed) break;
      if (Date.now() < this.#unaryUntil) {
        const batch = this.#o.queue.take(MAX_BATCH_BYTES);
        await this.#unary(batch);
        continue;
      }
      const sent: Message[][] = [];
      const began = performance.now();
      try {
        const seconds = await this.#stream(sent);
        backoff = 0;
        this.#o.ended({ ok: true, seconds });
      } catch (err) {
        if (this.#closed) break;
        if (err instanceof ConnectError && err.code === Code.Unimplemented) {
          // An older peer: nothing of this call was stepped. Send it all again on Send.
          this.#unaryUntil = Date.now() + UNARY_FALLBACK_MS;
          this.#o.fellBack?.();
          for (const batch of sent) await this.#unary(batch);
          continue;
        }
        // A peer whose server cuts calls sooner than ours end (CANCEL: a request
        // timeout set below ROTATE_MS, `--request-timeout-ms`) gets shorter calls,
        // halving down to MIN_ROTATE_MS, rather than a cut on every call forever.
        const age = performance.now() - began;
        if (
          err instanceof ConnectError && err.code === Code.Canceled && age >= MIN_ROTATE_MS &&
          this.#rotateMs > MIN_ROTATE_MS
        ) {
          this.#rotateMs = Math.max(MIN_ROTATE_MS, Math.floor(Math.min(this.#rotateMs, age) / 2));
        }
        const lost = sent.reduce((n, b) => n + b.length, 0) + this.#o.queue.length;
        // Stale by the time the peer is reached again: the core sends afresh (§5.1).
        this.#o.queue.clear();
        this.#o.ended({ ok: false, seconds: (performance.now() - began) / 1000, error: err, lost });
        backoff = nextBackoffMs(backoff);
        await this.#sleep(backoff);
      }
    }
  }

  /**
   * One Stream call: batches from the queue until the call is {@link ROTATE_MS} old
   * or has carried {@link ROTATE_BYTES}, then the peer's answer. Returns the seconds
   * from the last batch to the answer (a round trip through the peer). Every batch
   * written is recorded in `sent`.
   */
  async #stream(sent: Message[][]): Promise<number> {
    if (this.#o.session !== undefined) return await this.#rawStream(sent, this.#o.session());
    const queue = this.#o.queue;
    const rotateMs = this.#rotateMs;
    const rotateBytes = this.#o.rotateBytes ?? ROTATE_BYTES;
    const started = performance.now();
    let lastWritten = started;
    const call = new AbortController();
    const signal = AbortSignal.any([call.signal, this.#abort.signal]);
    // One timer for the call's end, not one per wait for the next batch (a timer
    // made and cleared per batch showed in the leader's profile): it wakes the wait
    // below, which then finds the call old enough to end.
    const rotate = setTimeout(() => this.wake(), rotateMs);
    // deno-lint-ignore no-this-alias
    const self = this;
    async function* batches(): AsyncGenerator<StreamRequest> {
      let bytes = 0;
      for (;;) {
        const left = started + rotateMs - performance.now();
        if (left <= 0 || bytes >= rotateBytes) break;
        if (queue.length === 0) await self.#waitForMessages();
        if (signal.aborted || queue.length === 0) break;
        bytes += queue.bytes;
        const batch = queue.take(MAX_BATCH_BYTES);
        bytes -= queue.bytes;
        sent.push(batch);
        yield create(StreamRequestSchema, { batch: self.#request(batch) });
      }
      lastWritten = performance.now();
    }
    try {
      await this.#o.client().stream(batches(), {
        signal,
        // The call's own deadline bounds a peer that takes the batches but never
        // answers (stopped, a dead connection not yet noticed).
        timeoutMs: rotateMs + this.#o.timeoutMs,
      });
    } finally {
      clearTimeout(rotate);
      // Ends the batches' wait if the call failed while it waited for messages.
      call.abort();
      this.wake();
    }
    return (performance.now() - lastWritten) / 1000;
  }

  /**
   * {@link #stream} written on the peer's session directly (raw_stream_call.ts):
   * the same batches, rotation, deadline, order and errors, each batch written in
   * the turn it is taken from the queue. Flow control: while the stream's writes
   * are held back, the batches wait in the bounded queue, as they waited for
   * Connect's client's write callbacks.
   */
  async #rawStream(sent: Message[][], session: Http2SessionManager): Promise<number> {
    const queue = this.#o.queue;
    const rotateMs = this.#rotateMs;
    const rotateBytes = this.#o.rotateBytes ?? ROTATE_BYTES;
    const started = performance.now();
    const rotate = setTimeout(() => this.wake(), rotateMs);
    let call: RawStreamCall | undefined;
    let finished = false;
    try {
      call = await RawStreamCall.open({
        session,
        path: STREAM_PATH,
        // As #stream's: bounds a peer that takes the batches but never answers.
        timeoutMs: rotateMs + this.#o.timeoutMs,
        signal: this.#abort.signal,
      });
      // A call that ends (fails, or the peer answers) while the loop waits for
      // messages wakes it.
      void call.ended.then(() => this.wake());
      let bytes = 0;
      for (;;) {
        const left = started + rotateMs - performance.now();
        if (left <= 0 || bytes >= rotateBytes) break;
        if (queue.length === 0) await this.#waitForMessages();
        if (call.over || this.#closed || queue.length === 0) break;
        bytes += queue.bytes;
        const batch = queue.take(MAX_BATCH_BYTES);
        bytes -= queue.bytes;
        sent.push(batch);
        const request = create(StreamRequestSchema, { batch: this.#request(batch) });
        if (!call.write(toBinary(StreamRequestSchema, request))) await call.drained();
      }
      const lastWritten = performance.now();
      finished = true;
      await call.finish();
      return (performance.now() - lastWritten) / 1000;
    } finally {
      clearTimeout(rotate);
      // A call left before its end (an exception above) is reset, not left open.
      if (call !== undefined && !finished) call.cancel();
      this.wake();
    }
  }

  /** One batch on a unary Send (a peer that does not serve Stream); failures are told, not thrown. */
  async #unary(batch: Message[]): Promise<void> {
    const began = performance.now();
    try {
      await this.#o.client().send(this.#request(batch), {
        timeoutMs: this.#o.timeoutMs,
        signal: this.#abort.signal,
      });
      this.#o.ended({ ok: true, seconds: (performance.now() - began) / 1000 });
    } catch (err) {
      if (this.#closed) return;
      this.#o.ended({
        ok: false,
        seconds: (performance.now() - began) / 1000,
        error: err,
        lost: batch.length,
      });
    }
  }
}
