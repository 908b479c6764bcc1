/**
 * A fault-injecting TCP proxy for the end-to-end tests, owned by the test process.
 *
 * One proxy carries one directed peer link: node i dials node j through proxy(i→j).
 * {@link TcpProxy.block} cuts the link until {@link TcpProxy.unblock}, in one of two ways:
 *
 * - `reset` (the default): existing connections are closed both ways, new ones are
 *   accepted and closed at once; what a peer sees when a host or a proxy in between
 *   drops it (and what Docker's userland proxy does when its backend is down).
 * - `blackhole`: connections stay open but nothing gets through (bytes are read and
 *   dropped, new connections are accepted and held); what a peer sees when packets
 *   are silently dropped. On unblock the held connections, whose byte streams are
 *   broken, are closed.
 *
 * @module
 */

/** How {@link TcpProxy.block} cuts a link. */
export type BlockMode = "reset" | "blackhole";

/** One proxied connection: the accepted client side and the dialed upstream side. */
interface Pipe {
  readonly client: Deno.Conn;
  upstream: Deno.Conn | undefined;
  closed: boolean;
  /** Set while blackholed: bytes read from either side are dropped. */
  dropping: boolean;
  /**
   * Bytes forwarded toward the target since an armed {@link TcpProxy.cutOnceAfter}
   * started counting on this connection (at once, or once its marker went by).
   */
  sentSinceArmed: number;
  /** True once the armed trip's marker has gone by toward the target on this connection. */
  markerSeen: boolean;
  /** The last bytes sent toward the target, so a marker split between two reads is found. */
  tail: Uint8Array;
}

/** An armed {@link TcpProxy.cutOnceAfter}. */
interface Trip {
  readonly bytes: number;
  /** Counting starts on a connection once these bytes have gone by on it (if set). */
  readonly after: Uint8Array | undefined;
  readonly fired: PromiseWithResolvers<number>;
}

/** The index just past the first occurrence of `needle` in `hay`, or -1. */
function endOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (hay[i + j] !== needle[j]) continue outer;
    }
    return i + needle.length;
  }
  return -1;
}

const BUFFER_BYTES = 64 * 1024;

/** Writes all of `bytes` to `conn`. */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await conn.write(bytes.subarray(done));
}

/**
 * Turns Nagle's algorithm off on a proxied connection: the nodes' HTTP/2 frames are
 * small, and Nagle holding them back until the peer's delayed ACK adds some 40 ms per
 * hop, which the nodes' own sockets (TCP_NODELAY, as Node's http2 sets) never see.
 */
function noDelay(conn: Deno.Conn): void {
  try {
    (conn as Deno.TcpConn).setNoDelay(true);
  } catch {
    // Already closed.
  }
}

/** Closes a pipe's two connections, once. */
function closePipe(p: Pipe): void {
  if (p.closed) return;
  p.closed = true;
  for (const c of [p.client, p.upstream]) {
    try {
      c?.close();
    } catch {
      // Already closed.
    }
  }
}

/** A TCP proxy from an ephemeral port on 127.0.0.1 to a fixed target. */
export class TcpProxy {
  /** The port the proxy listens on (chosen by the OS). */
  readonly port: number;
  /** The port on 127.0.0.1 connections are forwarded to. */
  readonly targetPort: number;
  readonly #listener: Deno.TcpListener;
  readonly #pipes = new Set<Pipe>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #acceptLoop: Promise<void>;
  #blocked: BlockMode | undefined;
  #trip: Trip | undefined;
  #closed = false;

  private constructor(listener: Deno.TcpListener, targetPort: number) {
    this.#listener = listener;
    this.port = listener.addr.port;
    this.targetPort = targetPort;
    this.#acceptLoop = this.#accept();
  }

  /** Starts a proxy on an ephemeral port of 127.0.0.1 forwarding to 127.0.0.1:`targetPort`. */
  static start(targetPort: number): TcpProxy {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0, transport: "tcp" });
    return new TcpProxy(listener, targetPort);
  }

  /** How the link is currently cut, or undefined if it is not. */
  get blocked(): BlockMode | undefined {
    return this.#blocked;
  }

  /** Cuts the link until {@link unblock}; see the module documentation for `mode`. */
  block(mode: BlockMode = "reset"): void {
    this.#blocked = mode;
    for (const p of this.#pipes) {
      if (mode === "reset") closePipe(p);
      else p.dropping = true;
    }
  }

  /** Restores the link for new connections; closes connections held by a blackhole. */
  unblock(): void {
    this.#blocked = undefined;
    for (const p of this.#pipes) {
      if (p.dropping) closePipe(p);
    }
  }

  /**
   * Resets the first connection that forwards more than `bytes` bytes toward the
   * target from now on (counted per connection), once; the connections stay as they
   * are otherwise, and later ones pass. With `after`, a connection's count starts
   * only once those bytes have gone by on it (so a test can cut the stream that
   * carries a given payload, say a snapshot file's magic, and not whatever else
   * shares the link). The promise resolves, with the bytes that connection had
   * carried since counting started, when the cut is made.
   */
  cutOnceAfter(bytes: number, after?: Uint8Array): Promise<number> {
    const trip: Trip = { bytes, after, fired: Promise.withResolvers<number>() };
    this.#trip = trip;
    for (const p of this.#pipes) {
      p.sentSinceArmed = 0;
      p.markerSeen = false;
      p.tail = new Uint8Array(0);
    }
    return trip.fired.promise;
  }

  /** Stops listening, closes every connection and waits for the copy loops to end. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    for (const p of this.#pipes) closePipe(p);
    await this.#acceptLoop;
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch {
        return; // The listener was closed.
      }
      if (this.#blocked === "reset" || this.#closed) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
        continue;
      }
      noDelay(conn);
      const pipe: Pipe = {
        client: conn,
        upstream: undefined,
        closed: false,
        dropping: this.#blocked === "blackhole",
        sentSinceArmed: 0,
        markerSeen: false,
        tail: new Uint8Array(0),
      };
      this.#pipes.add(pipe);
      const task = this.#serve(pipe).finally(() => {
        closePipe(pipe);
        this.#pipes.delete(pipe);
        this.#tasks.delete(task);
      });
      this.#tasks.add(task);
    }
  }

  async #serve(pipe: Pipe): Promise<void> {
    if (pipe.dropping) {
      // Accepted during a blackhole: hold it, read and drop, until unblock or close.
      await this.#copy(pipe, pipe.client, undefined);
      return;
    }
    let upstream: Deno.Conn;
    try {
      upstream = await Deno.connect({ hostname: "127.0.0.1", port: this.targetPort });
    } catch {
      return; // Target down: the client sees its connection closed.
    }
    noDelay(upstream);
    pipe.upstream = upstream;
    if (pipe.closed || this.#closed || this.#blocked === "reset") {
      closePipe(pipe);
      return;
    }
    // Either direction ending (EOF, error, block, close) closes both connections,
    // which ends the other direction's read too.
    await Promise.all([
      this.#copy(pipe, pipe.client, upstream),
      this.#copy(pipe, upstream, pipe.client),
    ]);
  }

  /**
   * Counts `n` more bytes toward the target on `pipe`; true (and the trip is spent)
   * when that takes it past an armed {@link cutOnceAfter}: the caller drops the bytes
   * and the pipe is closed.
   */
  #tripped(pipe: Pipe, chunk: Uint8Array): boolean {
    const trip = this.#trip;
    let n = chunk.length;
    if (trip?.after !== undefined && !pipe.markerSeen) {
      const seen = new Uint8Array(pipe.tail.length + chunk.length);
      seen.set(pipe.tail, 0);
      seen.set(chunk, pipe.tail.length);
      const end = endOf(seen, trip.after);
      if (end < 0) {
        pipe.tail = seen.slice(Math.max(0, seen.length - trip.after.length + 1));
        return false;
      }
      pipe.markerSeen = true;
      n = seen.length - end; // count what follows the marker
    }
    pipe.sentSinceArmed += n;
    if (trip === undefined || pipe.sentSinceArmed <= trip.bytes) return false;
    this.#trip = undefined;
    trip.fired.resolve(pipe.sentSinceArmed - n);
    return true;
  }

  /** Copies `from` to `to` (or drops what `from` sends while the pipe is dropping). */
  async #copy(pipe: Pipe, from: Deno.Conn, to: Deno.Conn | undefined): Promise<void> {
    const buf = new Uint8Array(BUFFER_BYTES);
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null || pipe.closed) return;
        if (from === pipe.client && this.#tripped(pipe, buf.subarray(0, n))) return;
        if (!pipe.dropping && to !== undefined) await writeAll(to, buf.subarray(0, n));
      }
    } catch {
      // A closed or reset connection ends the copy.
    } finally {
      closePipe(pipe);
    }
  }
}
