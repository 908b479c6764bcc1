/**
 * The HTTP/2 resource limits of a node's gRPC server, and their defaults.
 *
 * Anyone who can reach the port can open connections and streams, so everything
 * a remote party can make the node hold is bounded here (issue 15: one plaintext
 * connection of 100,000 unfinished streams once took a node to 4.6 GB and an
 * out-of-memory death). The bounds, and why each default is what it is:
 *
 * - `maxStreamsPerConnection` (100): SETTINGS_MAX_CONCURRENT_STREAMS, advertised
 *   and enforced by the HTTP/2 layer (streams past it are refused with
 *   REFUSED_STREAM; verified for Deno 2.9.3 by tests/http2/). RFC 9113 §5.1.2
 *   recommends no less than 100. Peers need one: the peer transport keeps at most
 *   one Send in flight per peer. Clients that multiplex more calls on one
 *   connection (Connect, grpc-js, a follower forwarding its clients' calls) wait
 *   on their side for a free stream rather than fail, so the limit queues them.
 * - `maxStreams` (1000): open streams in the whole node beyond the first
 *   {@link GUARANTEED_STREAMS_PER_CONNECTION} of each connection. Without it the
 *   node-wide count is connections × streams per connection (51,200), each an
 *   unfinished stream of about 60 KB. The guaranteed share keeps a peer, or a
 *   client with a few calls in flight, from being refused because someone else
 *   filled the budget.
 * - `maxConnections` (512) and `maxConnectionsPerAddress` (64): each connection
 *   holds a file descriptor and buffers; under a common soft descriptor limit of
 *   1024 the node keeps room for its WAL, its own peer connections and clients.
 *   (In Deno 2.9.3 a failed accept() with EMFILE stops accepting for good: see
 *   tests/e2e/hostile_flood_test.ts.) Per address 64 leaves room for many clients
 *   behind one NAT and for local clusters where every node and client is
 *   127.0.0.1, while one source cannot take all of them.
 * - `maxCallBufferMiB` (64): bytes the node holds for calls in flight, request
 *   bodies read by the handler and responses not yet taken by the client, beyond
 *   the first {@link GUARANTEED_CALL_BYTES_PER_CONNECTION} of each connection.
 *   Without it one connection's 100 streams could make the node hold 400 MiB of
 *   uploads that never finish, or of 1 MiB values asked for and never read
 *   (measured on main: 400 such Gets on 4 connections, +1.1 GB of RSS and normal
 *   calls taking 5 s; each MiB held costs about 2.5 MiB of RSS). 64 MiB lets 64
 *   calls carrying the largest value be under way at once.
 * - `requestTimeoutMs` (10,000): a request whose body has not ended this long
 *   after its headers is reset (CANCEL). A peer's batch is at most 3 MiB and is
 *   abandoned by its sender after the election timeout; a client's request is at
 *   most 4 MiB: 10 s allows a 400 KB/s link.
 * - `idleTimeoutMs` (300,000): a connection with no open stream for this long is
 *   closed (GOAWAY). It also bounds connections that never complete a stream
 *   (a slow header block, a bare preface). It is longer than clients' own idle
 *   timeouts (the peer transport's is 60 s), so that clients close first and do
 *   not race a GOAWAY with a new call; peers send heartbeats many times a second
 *   and are never idle.
 * - `abuseCooldownMs` (60,000; 0 disables): an address whose connections the
 *   node cut for abuse 3 times within a minute is refused new connections this
 *   long, doubling for a repeat offender up to 10 minutes (abuse_cooldown.ts).
 *   A cut bounds one connection; an attacker who reconnects after each cut is
 *   bounded only by this (measured: 30 HPACK-bomb connections one after another,
 *   +243 MiB of RSS without it). A minute makes a reconnecting attacker's cost to
 *   the node three connections a minute, and is short enough that a buggy client
 *   behind the same address (or NAT) is back soon; connections already open are
 *   never refused, so peers and clients connected before keep working.
 *
 * @module
 */

/** Limits of the HTTP/2 server. */
export interface Http2Limits {
  /** SETTINGS_MAX_CONCURRENT_STREAMS: open streams per connection. */
  readonly maxStreamsPerConnection: number;
  /** Open streams in the node beyond each connection's guaranteed share. */
  readonly maxStreams: number;
  /** Call bytes (requests, unread responses) held beyond each connection's share (MiB). */
  readonly maxCallBufferMiB: number;
  /** Open connections in the node. */
  readonly maxConnections: number;
  /** Open connections from one remote address. */
  readonly maxConnectionsPerAddress: number;
  /** A request's body must end within this many ms of its headers. */
  readonly requestTimeoutMs: number;
  /** A connection without open streams for this many ms is closed. */
  readonly idleTimeoutMs: number;
  /** New connections from an address cut for abuse repeatedly are refused this long (0: never). */
  readonly abuseCooldownMs: number;
}

/** The defaults; see the module comment for the reasons. */
export const DEFAULT_HTTP2_LIMITS: Http2Limits = {
  maxStreamsPerConnection: 100,
  maxStreams: 1000,
  maxCallBufferMiB: 64,
  maxConnections: 512,
  maxConnectionsPerAddress: 64,
  requestTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
  abuseCooldownMs: 60_000,
};

/**
 * Streams each connection may open whatever the node-wide count: a peer has one
 * Send in flight, a typical client a few calls.
 */
export const GUARANTEED_STREAMS_PER_CONNECTION = 8;

/**
 * Call bytes each connection may hold whatever the node-wide count: enough for a
 * peer's heartbeats and votes and for small client calls, so those go on while
 * large requests and answers wait for the budget.
 */
export const GUARANTEED_CALL_BYTES_PER_CONNECTION = 64 * 1024;

/**
 * The largest header list a request may carry (SETTINGS_MAX_HEADER_LIST_SIZE):
 * gRPC metadata is small; 16 KiB is grpc-go's default limit on received metadata.
 * Deno 2.9.3 advertises it but serves bigger lists (measured: a 20 KB header), so
 * guard.ts resets such streams itself (ENHANCE_YOUR_CALM).
 */
export const MAX_HEADER_LIST_BYTES = 16 * 1024;

/**
 * A bound on one session's memory in the HTTP/2 layer (Node's `maxSessionMemory`,
 * MB; Node's default): beyond it new streams are refused until the backlog clears.
 * Passed on to Deno 2.9.3, which accepts it; whether it enforces it is not
 * verified (the other limits do not depend on it).
 */
export const MAX_SESSION_MEMORY_MB = 10;

/**
 * The most header fields a request may carry (Node's `maxHeaderListPairs`,
 * default 128). A gRPC request has about ten (pseudo-headers, content-type, te,
 * user-agent, grpc-timeout, grpc-accept-encoding) plus its metadata. Deno 2.9.3
 * enforces the header list limits only by resetting the stream once the block
 * is decoded, and keeps, per stream so reset, the fields it collected up to this
 * count (measured: about 0.5 MB per HPACK-bomb block at 128, 26 KB at 16): a
 * lower count makes each such stream cost less until the connection is cut (see
 * {@link MAX_UNSERVED_STREAMS}; measured at 16: still about 9 MiB per HPACK-bomb
 * connection cut, against 15 MiB at 32, so not worth refusing real clients'
 * metadata for). Raising it so that Deno does not reset such streams, and leaving
 * the header list size to guard.ts, is worse: Deno then decodes the whole list,
 * 64 MB per bomb block (measured: +2.5 GB after one connection, and the node died
 * on the next). What one address can do over and over is bounded by the abuse
 * cooldown (abuse_cooldown.ts).
 */
export const MAX_HEADER_FIELDS = 32;

/**
 * Streams the HTTP/2 layer may refuse or reset on one connection before the
 * request handler sees them (past maxStreamsPerConnection, header limits, resets
 * before serving) before the node cuts the connection. Clients that honour
 * SETTINGS_MAX_CONCURRENT_STREAMS queue their calls instead and never come near
 * it (before the node's SETTINGS arrive, nghttp2-based clients assume 100, so
 * with --max-streams-per-connection under 100 a burst at connect may be refused
 * up to the difference, under this count). Node's `maxSessionRejectedStreams`
 * defaults to the same 100, which Deno 2.9.3 does not enforce (measured: 1,000
 * HPACK-bomb blocks on one connection, each reset, and the connection left open).
 */
export const MAX_UNSERVED_STREAMS = 100;

/** The `node:http2` server options that carry the limits the HTTP/2 layer enforces. */
export function http2ServerOptions(limits: Http2Limits): {
  settings: { maxConcurrentStreams: number; maxHeaderListSize: number };
  maxSessionMemory: number;
  maxHeaderListPairs: number;
} {
  return {
    settings: {
      maxConcurrentStreams: limits.maxStreamsPerConnection,
      maxHeaderListSize: MAX_HEADER_LIST_BYTES,
    },
    maxSessionMemory: MAX_SESSION_MEMORY_MB,
    maxHeaderListPairs: MAX_HEADER_FIELDS,
  };
}
