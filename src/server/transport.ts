/**
 * Peer transport: carries the core's messages to other nodes over gRPC
 * (`raftkv.v1.RaftService/Send`), each node dialing its peers at the addresses
 * in its own `--peers`, so peer traffic can be routed through a proxy or NAT.
 *
 * Delivery is best effort, as Raft assumes (§5.1: RPCs may be lost; the leader
 * retries). Per peer there is one bounded queue and one sending loop
 * (peer_stream.ts) that carries it on a long-lived `RaftService/Stream` call, a
 * batch per HTTP/2 frame, in order, without waiting for each batch to be stepped;
 * a peer that does not serve Stream (an older version) is sent unary `Send`s, one
 * in flight, as before. A peer that cannot be reached is logged once when it goes
 * down and once when it comes back, not on every retry; a peer that answers but
 * refuses our messages (another cluster id, another membership: see
 * raft_service.ts) is logged once per cause as "refused", a different trouble with
 * a different fix, and once when it accepts them again.
 *
 * Every batch states the membership this node believes in, so that a peer that
 * believes in another refuses it rather than counting our votes and appends.
 *
 * An empty append (a commit index only, or a probe) waits up to 10 ms for a newer
 * append to the same peer, which overtakes it and makes it stale: at one put in
 * flight the next put's append carries the commit index, and the empty append and
 * its acknowledgement are never sent (held_appends.ts).
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { RaftService, SendRequestSchema } from "../gen/raftkv/v1/raft_pb.ts";
import type { Logger } from "../raft/logger.ts";
import type { Message, NodeId } from "../raft/types.ts";
import { membersToPb } from "./codec.ts";
import { PeerErrorLatch } from "./log.ts";
import type { NodeObserver } from "./node_observer.ts";
import { MAX_QUEUED, MAX_QUEUED_BYTES, PeerQueue } from "./peer_queue.ts";
import { type CallOutcome, PeerStream } from "./peer_stream.ts";
import { SnapshotSender } from "./snapshot_sender.ts";
import { HeldAppends } from "./held_appends.ts";
import type { PeerDialer } from "../tls/dial.ts";

/** host:port of a peer. */
export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

/** `http://host:port`, with IPv6 hosts bracketed. */
export function baseUrl(a: PeerAddress): string {
  const host = a.host.includes(":") ? `[${a.host}]` : a.host;
  return `http://${host}:${a.port}`;
}

/** How peers are dialed: keepalive pings and an idle timeout. */
const PEER_DIAL_OPTIONS = {
  // Detect a peer that vanished without closing the connection (SIGSTOP, a
  // dropped cable) before the election timeout, not after the OS gives up.
  pingIntervalMs: 5_000,
  pingTimeoutMs: 5_000,
  idleConnectionTimeoutMs: 60_000,
};

/**
 * A gRPC transport to `address`: HTTP/2 without TLS (prior knowledge), or over
 * mutual TLS when a `dialer` is given (src/tls/dial.ts), to member `peerId`.
 */
export function grpcTransportTo(
  address: PeerAddress,
  dialer?: PeerDialer,
  peerId?: NodeId,
): Transport {
  const options = PEER_DIAL_OPTIONS;
  if (dialer !== undefined) return dialer.transport(address.host, address.port, options, peerId);
  return createGrpcTransport({ baseUrl: baseUrl(address), ...options });
}

/**
 * A peer's HTTP/2 session and a gRPC transport on it: the peer stream's raw calls
 * (raw_stream_call.ts) and the Connect client's calls (Send, InstallSnapshot)
 * share one connection per peer, with {@link grpcTransportTo}'s keepalive.
 */
export interface PeerLink {
  readonly transport: Transport;
  /** The session in use now (a new one after a TLS credentials reload). */
  readonly session: () => Http2SessionManager;
}

/** A {@link PeerLink} to `address`, as {@link grpcTransportTo} dials it. */
export function peerLinkTo(address: PeerAddress, dialer?: PeerDialer, peerId?: NodeId): PeerLink {
  if (dialer?.sessions !== undefined && dialer.transportOver !== undefined) {
    const session = dialer.sessions(address.host, address.port, PEER_DIAL_OPTIONS, peerId);
    return {
      session,
      transport: dialer.transportOver(address.host, address.port, PEER_DIAL_OPTIONS, session),
    };
  }
  if (dialer !== undefined) {
    throw new Error("invariant: a peer dialer that makes transports makes their sessions too");
  }
  const url = baseUrl(address);
  const manager = new Http2SessionManager(url, PEER_DIAL_OPTIONS);
  return {
    session: () => manager,
    transport: createGrpcTransport({ baseUrl: url, sessionManager: manager }),
  };
}

/**
 * Codes with which a peer that received a batch refuses it: its RaftService ran
 * and said no (another cluster or membership, a message it cannot take). Any
 * other code means the batch did not get there, or not in time.
 */
const REFUSALS: ReadonlySet<Code> = new Set([
  Code.FailedPrecondition,
  Code.PermissionDenied,
  Code.InvalidArgument,
  Code.Unimplemented,
  Code.ResourceExhausted,
  Code.Unauthenticated,
]);

/**
 * Refusals whose message is a fixed sentence (the identity checks of
 * raft_service.ts): the latch tells them apart by message. Others are told apart by
 * code alone, since their message may name an index that changes with every batch.
 */
const IDENTITY_REFUSALS: ReadonlySet<Code> = new Set([
  Code.FailedPrecondition,
  Code.PermissionDenied,
]);

/**
 * How a failed Send is latched and logged: `refused` (the peer answered no) with a
 * cause, or `unreachable`. A dead peer's errors alternate between codes
 * (Unavailable, Canceled, Internal) as connections are made and cut, so all of
 * them are one cause: each would otherwise look like news.
 */
export function classifySendError(
  err: unknown,
): { kind: "refused" | "unreachable"; cause: string } {
  if (err instanceof ConnectError && REFUSALS.has(err.code)) {
    const code = Code[err.code];
    return {
      kind: "refused",
      cause: IDENTITY_REFUSALS.has(err.code)
        ? `refused ${code}: ${err.rawMessage}`
        : `refused ${code}`,
    };
  }
  return { kind: "unreachable", cause: "unreachable" };
}

interface Peer {
  readonly id: NodeId;
  /** Changed in place when the member is dialed at a new address (setPeers). */
  address: PeerAddress;
  client: Client<typeof RaftService>;
  /** The HTTP/2 session under `client`, on which Stream calls are written (raw_stream_call.ts). */
  session: () => Http2SessionManager;
  /** Bounded in count and bytes, oldest dropped past them (peer_queue.ts). */
  readonly queue: PeerQueue;
  /** Carries the queue to the peer (peer_stream.ts). */
  readonly stream: PeerStream;
  /** Whether the queue has dropped messages since it was last empty (logged once then). */
  dropping: boolean;
  /** Set when the peer is no longer dialed (setPeers): what is queued stays unsent. */
  removed?: boolean;
}

/** Options of a {@link PeerTransport}. */
export interface PeerTransportOptions {
  readonly selfId: NodeId;
  readonly clusterId: string;
  readonly peers: ReadonlyMap<NodeId, PeerAddress>;
  /**
   * The membership every batch states (raft_service.ts checks it): the ids of
   * `peers` by default. A node whose membership can change states the cluster's
   * bootstrap membership, its founding identity, which does not change (empty for a
   * node that joined and never saw it: then receivers check message by message).
   */
  readonly members?: readonly NodeId[];
  readonly logger: Logger;
  /** How long one Send may take before it is abandoned. */
  readonly timeoutMs: number;
  /**
   * How a snapshot sent to a peer ended (see snapshot_sender.ts): node.ts passes
   * it on to `RawNode.reportSnapshot`. Called once for every `snap` message that is
   * sent; a `snap` to a peer that has one in flight is dropped unreported.
   */
  readonly onSnapshotReport: (to: NodeId, failed: boolean) => void;
  /**
   * How long a snapshot transfer may make no progress before it is cancelled
   * (default: 4 × timeoutMs, at least 10 s).
   */
  readonly snapshotStallTimeoutMs?: number;
  /** Reads a snapshot file the storage holds only the metadata of (snapshot_sender.ts). */
  readonly readSnapshotFile?: (term: number, index: number) => Promise<Uint8Array>;
  /** How to dial peers over TLS (src/tls/dial.ts); plaintext when undefined. */
  readonly dialer?: PeerDialer;
  /** Told how long each Send took and whether it failed (metrics); none by default. */
  readonly observer?: NodeObserver;
  /**
   * How long an empty append waits to be overtaken by a newer append to its peer
   * (held_appends.ts): its HOLD_MS, 10 ms, by default; 0 sends every message at once.
   */
  readonly holdEmptyAppendsMs?: number;
  /**
   * Whether Stream calls are written on the peer's HTTP/2 session directly
   * (raw_stream_call.ts; default) or made through Connect's client. Same wire.
   */
  readonly rawPeerStream?: boolean;
}

/** Sends Raft messages to peers, batched per peer, in order, best effort. */
export class PeerTransport {
  readonly #peers = new Map<NodeId, Peer>();
  readonly #options: PeerTransportOptions;
  /**
   * The membership every batch states: today the ids of --peers, fixed at start.
   * When membership can change at runtime, this must follow the configuration the
   * core holds (see raft_service.ts on changes in flight).
   */
  readonly #members: bigint[];
  /** Which peers are failing, so each failure is logged once, not on every retry. */
  readonly #errors = new PeerErrorLatch();
  #closed = false;
  /** Set after the constructor's setPeers: later additions are logged. */
  #started = false;
  /** Probes under way (reachablePeers), and sending loops of removed peers, so close() can wait for them. */
  readonly #inflight = new Set<Promise<void>>();
  /** Snapshots travel on their own call, one at a time per peer. */
  readonly #snapshots: SnapshotSender;
  /** Empty appends held back until a newer append overtakes them (held_appends.ts). */
  readonly #held: HeldAppends;

  constructor(options: PeerTransportOptions) {
    this.#options = options;
    this.#held = new HeldAppends((m) => this.#releaseHeld(m), options.holdEmptyAppendsMs);
    this.#members = membersToPb(options.members ?? options.peers.keys());
    this.#snapshots = new SnapshotSender({
      clusterId: options.clusterId,
      members: this.#members,
      logger: options.logger,
      stallTimeoutMs: options.snapshotStallTimeoutMs ?? Math.max(4 * options.timeoutMs, 10_000),
      report: options.onSnapshotReport,
      readFile: options.readSnapshotFile,
    });
    this.setPeers(options.peers);
  }

  /**
   * Dials exactly `peers` from now on (a membership change applied): a new peer gets
   * a queue and a client, a peer no longer listed is dropped with what is queued for
   * it (a Send under way finishes), and a peer whose address changed is dialed at
   * the new one. This node itself is never a peer.
   */
  setPeers(peers: ReadonlyMap<NodeId, PeerAddress>): void {
    for (const id of [...this.#peers.keys()]) {
      if (!peers.has(id)) {
        const peer = this.#peers.get(id)!;
        peer.removed = true;
        const closed = peer.stream.close();
        this.#inflight.add(closed);
        void closed.finally(() => this.#inflight.delete(closed));
        this.#peers.delete(id);
        this.#held.drop(id);
        this.#errors.clear(id);
        this.#options.logger.info("stopped dialing a former member", { peer: id });
      }
    }
    for (const [id, address] of peers) {
      if (id === this.#options.selfId) continue;
      const known = this.#peers.get(id);
      if (
        known !== undefined && known.address.host === address.host &&
        known.address.port === address.port
      ) continue;
      const link = peerLinkTo(address, this.#options.dialer, id);
      const client = createClient(RaftService, link.transport);
      if (known === undefined) {
        const queue = new PeerQueue();
        const peer: Peer = {
          id,
          address,
          client,
          session: link.session,
          queue,
          stream: new PeerStream({
            peer: id,
            queue,
            client: () => peer.client,
            ...(this.#options.rawPeerStream === false ? {} : { session: () => peer.session() }),
            clusterId: this.#options.clusterId,
            members: this.#members,
            timeoutMs: this.#options.timeoutMs,
            ended: (outcome) => this.#ended(peer, outcome),
            fellBack: () =>
              this.#options.logger.info(
                "peer does not serve RaftService/Stream (an older version?): sending it unary Sends",
                { peer: id },
              ),
          }),
          dropping: false,
        };
        this.#peers.set(id, peer);
      } else {
        // In place: the sending loop takes the new client for its next call.
        known.address = address;
        known.client = client;
        known.session = link.session;
      }
      if (known !== undefined || this.#started) {
        this.#options.logger.info(
          known === undefined ? "dialing a new member" : "dialing a member at a new address",
          { peer: id, address: `${address.host}:${address.port}` },
        );
      }
    }
    this.#started = true;
  }

  /** The ids dialed now, ascending. */
  peerIds(): NodeId[] {
    return [...this.#peers.keys()].sort((a, b) => a - b);
  }

  /**
   * Queues messages for their peers and starts sending. A `snap` message goes on
   * its own InstallSnapshot stream (snapshot_sender.ts), never in a Send batch.
   */
  send(messages: readonly Message[]): void {
    if (this.#closed) return;
    for (const m of messages) {
      const peer = this.#peers.get(m.to);
      if (peer === undefined) {
        this.#options.logger.error("dropping message to unknown peer", { to: m.to });
        continue;
      }
      if (m.type === "snap") {
        this.#snapshots.send(peer.client, m);
        continue;
      }
      for (const out of this.#held.offer(m)) this.#queue(peer, out);
    }
    for (const peer of this.#peers.values()) {
      if (peer.queue.length === 0) peer.dropping = false;
      else peer.stream.wake();
    }
  }

  /** Queues `m` for `peer`, logging when the queue starts to drop its oldest. */
  #queue(peer: Peer, m: Message): void {
    const dropped = peer.queue.push(m);
    if (dropped > 0 && !peer.dropping) {
      peer.dropping = true;
      this.#options.logger.warn("peer queue full: dropping its oldest messages", {
        peer: peer.id,
        dropped,
        maxMessages: MAX_QUEUED,
        maxBytes: MAX_QUEUED_BYTES,
      });
    }
  }

  /** A held empty append that no newer append overtook goes now (held_appends.ts). */
  #releaseHeld(m: Message): void {
    const peer = this.#peers.get(m.to);
    if (this.#closed || peer === undefined) return;
    this.#queue(peer, m);
    peer.stream.wake();
  }

  /** A call to `peer` ended: counted, and logged when the peer's health changed. */
  #ended(peer: Peer, outcome: CallOutcome): void {
    const log = this.#options.logger;
    this.#options.observer?.peerSent?.(peer.id, outcome.seconds, outcome.ok);
    if (outcome.ok) {
      const was = this.#errors.errorOf(peer.id);
      if (this.#errors.clear(peer.id)) {
        if (was === "unreachable") log.info("peer reachable again", { peer: peer.id });
        else log.info("peer accepted our messages again", { peer: peer.id });
      }
      return;
    }
    const err = outcome.error;
    const { kind, cause } = classifySendError(err);
    if (!this.#errors.report(peer.id, cause) || this.#closed) return;
    const fields = {
      peer: peer.id,
      address: `${peer.address.host}:${peer.address.port}`,
      error: err instanceof ConnectError ? `${Code[err.code]}: ${err.rawMessage}` : String(err),
      dropped: outcome.lost,
    };
    if (kind === "refused") log.warn("peer refused our messages", fields);
    else log.warn("cannot reach peer", fields);
  }

  /**
   * The peers that answer an empty Send now (no messages: only our cluster id and
   * membership, which they check as for any batch), like etcd's
   * `Transport.ActivePeers`: node.ts asks at boot whether an election could
   * already be won before it shortens its first election timeout.
   */
  async reachablePeers(timeoutMs: number): Promise<NodeId[]> {
    if (this.#closed) return [];
    const peers = [...this.#peers.values()];
    const probe = Promise.all(peers.map(async (peer) => {
      try {
        await peer.client.send(
          create(SendRequestSchema, {
            clusterId: this.#options.clusterId,
            messages: [],
            members: this.#members,
          }),
          { timeoutMs },
        );
        return true;
      } catch {
        return false;
      }
    }));
    const done = probe.then(() => {});
    this.#inflight.add(done);
    const answered = await probe.finally(() => this.#inflight.delete(done));
    return peers.filter((_, i) => answered[i]).map((p) => p.id);
  }

  /** Stops sending, cancels calls and snapshot transfers under way, and waits for them to end. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#held.clear();
    await Promise.allSettled([
      ...[...this.#peers.values()].map((p) => p.stream.close()),
      ...this.#inflight,
      this.#snapshots.close(),
    ]);
    // Nothing is sent any more: the peers' connections go now, not when idle.
    for (const p of this.#peers.values()) p.session().abort();
  }
}
