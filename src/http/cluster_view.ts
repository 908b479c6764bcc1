/**
 * `/api/cluster`: the whole cluster as one node sees it, for the web view. The
 * node asks every member (itself directly, the others over gRPC,
 * ClusterService/Status with a short deadline) at each request, so the page needs
 * to reach one HTTP port only, and a member that does not answer in time is shown
 * down rather than as it last was. The leader's answer carries each follower's
 * replication progress (matchIndex, nextIndex: Raft §5.3).
 *
 * @module
 */

import { type Client, createClient } from "@connectrpc/connect";
import { ClusterService, Role } from "../gen/raftkv/v1/cluster_pb.ts";
import type { NodeId, Role as CoreRole } from "../raft/types.ts";
import { grpcTransportTo, type PeerAddress } from "../server/transport.ts";
import type { PeerDialer } from "../tls/dial.ts";
import type { TimelineEvent } from "./timeline.ts";

/** One member in the view. */
export interface MemberView {
  readonly id: NodeId;
  /** host:port of its gRPC server, as this node dials it. */
  readonly address: string;
  readonly up: boolean;
  /** Why it is shown down (the error of the Status call). */
  readonly error?: string;
  readonly role?: CoreRole;
  readonly term?: number;
  readonly leader?: NodeId;
  readonly commit?: number;
  readonly applied?: number;
  readonly lastIndex?: number;
  /** The leader's commit index minus this member's applied index, when a leader answered. */
  readonly lag?: number;
  /** On the leader: what it knows of each follower's log. */
  readonly progress?: readonly { id: NodeId; match: number; next: number }[];
}

/** The answer of `/api/cluster`. */
export interface ClusterView {
  /** The node that answered. */
  readonly from: NodeId;
  /** Milliseconds since the Unix epoch, when the answers were gathered. */
  readonly at: number;
  readonly members: readonly MemberView[];
  /** The answering node's leadership timeline, oldest first. */
  readonly timeline: readonly TimelineEvent[];
}

/** What the view reads of the node it runs in (a RaftKvNode). */
export interface ViewSource {
  readonly id: NodeId;
  readonly options: {
    readonly peers: ReadonlyMap<NodeId, PeerAddress>;
    /** How the node dials its peers (TLS); the view asks members the same way. */
    readonly dialer?: PeerDialer;
  };
  /** Where the node dials member `id` (its --peers, else the address the log recorded). */
  peerAddress?(id: NodeId): PeerAddress | undefined;
  status(): {
    /** The configuration in force: its members are the ones shown. */
    conf?: { readonly voters: readonly NodeId[]; readonly learners: readonly NodeId[] };
    role: CoreRole;
    term: number;
    lead: NodeId;
    commit: number;
    kvApplied: number;
    lastIndex: number;
    progress?: ReadonlyMap<NodeId, { match: number; next: number }>;
  };
}

const ROLES: Record<number, CoreRole> = {
  [Role.FOLLOWER]: "follower",
  [Role.PRE_CANDIDATE]: "pre_candidate",
  [Role.CANDIDATE]: "candidate",
  [Role.LEADER]: "leader",
};

/** How long a member may take to answer before it is shown down. */
export const STATUS_TIMEOUT_MS = 400;

/** Gathers the cluster view; one per node, keeping a client per peer. */
export class ClusterViewer {
  readonly #source: ViewSource;
  readonly #clients = new Map<NodeId, Client<typeof ClusterService>>();
  readonly #timeline: () => readonly TimelineEvent[];

  constructor(source: ViewSource, timeline: () => readonly TimelineEvent[]) {
    this.#source = source;
    this.#timeline = timeline;
  }

  #client(id: NodeId, address: PeerAddress): Client<typeof ClusterService> {
    let c = this.#clients.get(id);
    if (c === undefined) {
      c = createClient(
        ClusterService,
        grpcTransportTo(address, this.#source.options.dialer, id),
      );
      this.#clients.set(id, c);
    }
    return c;
  }

  #self(address: string): MemberView {
    const s = this.#source.status();
    return {
      id: this.#source.id,
      address,
      up: true,
      role: s.role,
      term: s.term,
      leader: s.lead,
      commit: s.commit,
      applied: s.kvApplied,
      lastIndex: s.lastIndex,
      progress: s.progress === undefined ? undefined : [...s.progress]
        .filter(([id]) => id !== this.#source.id)
        .map(([id, p]) => ({ id, match: p.match, next: p.next })),
    };
  }

  async #peer(id: NodeId, address: PeerAddress, text: string): Promise<MemberView> {
    try {
      const r = await this.#client(id, address).status({}, { timeoutMs: STATUS_TIMEOUT_MS });
      const role = ROLES[r.role];
      return {
        id,
        address: text,
        up: true,
        role,
        term: Number(r.term),
        leader: Number(r.leaderId),
        commit: Number(r.commitIndex),
        applied: Number(r.appliedIndex),
        lastIndex: Number(r.lastLogIndex),
        progress: role === "leader"
          ? r.peers.map((p) => ({
            id: Number(p.id),
            match: Number(p.matchIndex),
            next: Number(p.nextIndex),
          }))
          : undefined,
      };
    } catch (err) {
      return { id, address: text, up: false, error: (err as Error).message };
    }
  }

  /** Asks every member now (see the module doc). */
  async view(): Promise<ClusterView> {
    // The members of the configuration in force (membership changes included),
    // else --peers (a node that has not learned one yet).
    const conf = this.#source.status().conf;
    const ids = conf !== undefined && conf.voters.length + conf.learners.length > 0
      ? [...new Set([...conf.voters, ...conf.learners])]
      : [...this.#source.options.peers.keys()];
    const members = await Promise.all(
      ids.sort((a, b) => a - b).map((id) => {
        const address = this.#source.peerAddress?.(id) ?? this.#source.options.peers.get(id);
        if (address === undefined) {
          return Promise.resolve<MemberView>({
            id,
            address: "?",
            up: false,
            error: "no address known for this member",
          });
        }
        const text = `${address.host}:${address.port}`;
        return id === this.#source.id ? this.#self(text) : this.#peer(id, address, text);
      }),
    );
    // Lag behind the leader of the highest term that answered.
    const leader = members.filter((m) => m.up && m.role === "leader")
      .sort((a, b) => (b.term ?? 0) - (a.term ?? 0))[0];
    const withLag = members.map((m) =>
      leader !== undefined && m.up
        ? { ...m, lag: Math.max(0, (leader.commit ?? 0) - (m.applied ?? 0)) }
        : m
    );
    return { from: this.#source.id, at: Date.now(), members: withLag, timeline: this.#timeline() };
  }
}
