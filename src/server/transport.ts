/**
 * Peer transport: carries the core's messages to other nodes over gRPC
 * (`raftkv.v1.RaftService/Send`), each node dialing its peers at the addresses
 * in its own `--peers`, so peer traffic can be routed through a proxy or NAT.
 *
 * Delivery is best effort, as Raft assumes (§5.1: RPCs may be lost; the leader
 * retries). Per peer there is one queue and at most one Send in flight, which
 * keeps messages to a peer in order and lets everything queued meanwhile travel
 * in the next batch. A peer that cannot be reached is logged once when it goes
 * down and once when it comes back, not on every retry.
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { RaftService, SendRequestSchema } from "../gen/raftkv/v1/raft_pb.ts";
import type { Logger } from "../raft/logger.ts";
import type { Message, NodeId } from "../raft/types.ts";
import { messageToPb } from "./codec.ts";
import { PeerErrorLatch } from "./log.ts";

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

/** A gRPC transport to `address` (HTTP/2 without TLS, prior knowledge). */
export function grpcTransportTo(address: PeerAddress): ReturnType<typeof createGrpcTransport> {
  return createGrpcTransport({
    baseUrl: baseUrl(address),
    // Detect a peer that vanished without closing the connection (SIGSTOP, a
    // dropped cable) before the election timeout, not after the OS gives up.
    pingIntervalMs: 5_000,
    pingTimeoutMs: 5_000,
    idleConnectionTimeoutMs: 60_000,
  });
}

/** The most messages waiting for one peer; older ones are dropped past it (Raft resends). */
const MAX_QUEUED = 4096;
/**
 * The most bytes one Send may carry beyond its first message, well under the
 * peer's request limit (MAX_REQUEST_BYTES, 4 MiB): one message holds at most
 * maxSizePerMsg (1 MiB) of entry data, so a batch never exceeds 3 MiB.
 */
const MAX_BATCH_BYTES = 2 * 1024 * 1024;

/** A generous estimate of a message's encoded size: its data plus framing per entry. */
function encodedSize(m: Message): number {
  let n = 64;
  for (const e of m.entries) n += e.data.length + 32;
  return n;
}

interface Peer {
  readonly id: NodeId;
  readonly address: PeerAddress;
  readonly client: Client<typeof RaftService>;
  queue: Message[];
  sending: boolean;
}

/** Options of a {@link PeerTransport}. */
export interface PeerTransportOptions {
  readonly selfId: NodeId;
  readonly clusterId: string;
  readonly peers: ReadonlyMap<NodeId, PeerAddress>;
  readonly logger: Logger;
  /** How long one Send may take before it is abandoned. */
  readonly timeoutMs: number;
}

/** Sends Raft messages to peers, batched per peer, in order, best effort. */
export class PeerTransport {
  readonly #peers = new Map<NodeId, Peer>();
  readonly #options: PeerTransportOptions;
  /** Which peers are failing, so each failure is logged once, not on every retry. */
  readonly #errors = new PeerErrorLatch();
  #closed = false;
  /** Sends under way, so close() can wait for them. */
  readonly #inflight = new Set<Promise<void>>();

  constructor(options: PeerTransportOptions) {
    this.#options = options;
    for (const [id, address] of options.peers) {
      if (id === options.selfId) continue;
      this.#peers.set(id, {
        id,
        address,
        client: createClient(RaftService, grpcTransportTo(address)),
        queue: [],
        sending: false,
      });
    }
  }

  /** Queues messages for their peers and starts sending. */
  send(messages: readonly Message[]): void {
    if (this.#closed) return;
    for (const m of messages) {
      const peer = this.#peers.get(m.to);
      if (peer === undefined) {
        this.#options.logger.error("dropping message to unknown peer", { to: m.to });
        continue;
      }
      peer.queue.push(m);
      if (peer.queue.length > MAX_QUEUED) peer.queue.splice(0, peer.queue.length - MAX_QUEUED);
    }
    for (const peer of this.#peers.values()) this.#pump(peer);
  }

  #pump(peer: Peer): void {
    if (peer.sending || peer.queue.length === 0 || this.#closed) return;
    let bytes = 0;
    let n = 0;
    for (; n < peer.queue.length; n++) {
      bytes += encodedSize(peer.queue[n]!);
      if (n > 0 && bytes > MAX_BATCH_BYTES) break;
    }
    const batch = peer.queue.splice(0, n);
    peer.sending = true;
    const p = this.#deliver(peer, batch).finally(() => {
      peer.sending = false;
      this.#inflight.delete(p);
      this.#pump(peer);
    });
    this.#inflight.add(p);
  }

  async #deliver(peer: Peer, batch: Message[]): Promise<void> {
    const log = this.#options.logger;
    try {
      await peer.client.send(
        create(SendRequestSchema, {
          clusterId: this.#options.clusterId,
          messages: batch.map(messageToPb),
        }),
        { timeoutMs: this.#options.timeoutMs },
      );
      if (this.#errors.clear(peer.id)) log.info("peer reachable again", { peer: peer.id });
    } catch (err) {
      // Latch on "failing" alone: a dead peer's errors alternate between codes
      // (Unavailable, Canceled, Internal) as connections are made and cut, and
      // each would otherwise look like news.
      const code = err instanceof ConnectError ? Code[err.code] : "error";
      if (this.#errors.report(peer.id, "unreachable") && !this.#closed) {
        log.warn("cannot reach peer", {
          peer: peer.id,
          address: `${peer.address.host}:${peer.address.port}`,
          error: err instanceof ConnectError ? `${code}: ${err.rawMessage}` : String(err),
          dropped: batch.length,
        });
      }
    }
  }

  /** Stops sending and waits for Sends under way. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#inflight]);
  }
}
