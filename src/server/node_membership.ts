/**
 * A node's membership calls (ClusterService): changing the configuration,
 * handing leadership on, and answering who is a member and where it is dialed.
 * membership.ts has the rules (what a change may be, whom to hand leadership
 * to); this file runs them against the node's core and applied state, through
 * the few pieces of the node it needs ({@link MembershipHost}), so that the
 * node's file keeps to the Ready loop.
 *
 * @module
 */

import type { MemberChange, MemberRecord, MemberRegistry } from "../kv/members.ts";
import {
  ConfChangeRejected,
  LeaderTransferRefused,
  NotLeaderError,
  ProposalDroppedError,
} from "../raft/errors.ts";
import type { Logger } from "../raft/logger.ts";
import type { RawNode } from "../raft/raw_node.ts";
import { confMembers, type NodeId, NONE } from "../raft/types.ts";
import { parseHostPort } from "./flags.ts";
import type { LeaderChange } from "./leader_watch.ts";
import {
  confChangeFor,
  type ConfView,
  listMembers,
  MembershipRefused,
  peerAddressOf,
  pickTransferTarget,
} from "./membership.ts";
import { NodeError } from "./node_error.ts";
import type { RaftKvNodeOptions } from "./node_options.ts";
import type { PendingCalls } from "./pending_calls.ts";
import type { PeerAddress } from "./transport.ts";

/** What the membership calls need of the node. */
export interface MembershipHost {
  readonly id: NodeId;
  readonly options: RaftKvNodeOptions;
  readonly raw: RawNode;
  readonly log: Logger;
  readonly pending: PendingCalls;
  /** The addresses of the members added through the log (replaced when a snapshot is restored). */
  members(): MemberRegistry;
  /** The index of the last membership change applied (or of the snapshot that holds it). */
  configIndex(): number;
  /** Throws the NodeError a call gets once the node stops or fails. */
  checkRunning(): void;
  /** Whether the node is stopping or has failed. */
  stopped(): boolean;
  /** Wakes the Ready loop. */
  kick(): void;
  onLeaderChange(listener: (change: LeaderChange) => void): () => void;
}

/** The membership calls of one node. */
export class NodeMembership {
  readonly #host: MembershipHost;

  constructor(host: MembershipHost) {
    this.#host = host;
  }

  /**
   * Proposes a membership change on this node, the leader, after checking it
   * (membership.ts), and resolves once it is committed and applied here, with the
   * new membership. Refusals are {@link MembershipRefused}: nothing was proposed.
   */
  async changeMembership(
    change: MemberChange & { readonly learner?: boolean },
    signal?: AbortSignal,
  ): Promise<{ members: MemberRecord[]; configIndex: number }> {
    this.#host.checkRunning();
    const s = this.#host.raw.status();
    const cc = confChangeFor(change, {
      conf: this.#conf(),
      members: this.#host.members(),
      peers: this.#host.options.peers,
      learnerMatch: (id) => s.progress?.get(id)?.match,
      leaderLast: s.lastIndex,
    });
    let proposed: { index: number; term: number };
    try {
      proposed = this.#host.raw.proposeConfChange(cc);
    } catch (err) {
      if (err instanceof NotLeaderError) throw new NodeError("not_leader", err.message, err.leader);
      if (err instanceof ConfChangeRejected || err instanceof ProposalDroppedError) {
        // Invalid against the configuration in force, or another change (or a
        // leadership transfer) is under way: nothing entered the log.
        throw new MembershipRefused("failed_precondition", err.message);
      }
      throw err;
    }
    this.#host.log.info("proposed a membership change", {
      index: proposed.index,
      change: `${change.op} ${change.id}`,
    });
    this.#host.kick();
    const { index, term } = proposed;
    await this.#host.pending.waitForProposal(
      index,
      term,
      signal,
      () =>
        new NodeError(
          "deadline",
          `the deadline passed before the membership change (index ${index}) was applied; ` +
            `it may still take effect (check ListMembers)`,
        ),
    );
    return { members: this.membership().members, configIndex: index };
  }

  /**
   * Hands leadership from this node, the leader, to voter `target` (0: the most
   * up-to-date other voter; dissertation §3.10) and resolves with the new leader
   * once it leads, or rejects when it did not take over within two election
   * timeouts (the core gives up after one and takes proposals again).
   */
  async transferLeadership(
    target: NodeId,
    signal?: AbortSignal,
  ): Promise<{ leader: NodeId; term: number }> {
    this.#host.checkRunning();
    const s = this.#host.raw.status();
    if (s.role !== "leader") {
      throw new NodeError("not_leader", `node ${this.#host.id} is not the leader`, s.lead);
    }
    const to = pickTransferTarget(
      s.conf,
      this.#host.id,
      target,
      (id) => s.progress?.get(id)?.match ?? 0,
    );
    if (to === this.#host.id) return { leader: this.#host.id, term: s.term };
    let off = () => {};
    const moved = new Promise<NodeId>((resolve) => {
      off = this.#host.onLeaderChange((change) => {
        if (change.final || (change.leader !== NONE && change.leader !== this.#host.id)) {
          off();
          resolve(change.leader);
        }
      });
    });
    try {
      this.#host.raw.transferLeader(to);
    } catch (err) {
      off();
      if (err instanceof LeaderTransferRefused) {
        throw new MembershipRefused("failed_precondition", err.message);
      }
      if (err instanceof NotLeaderError) throw new NodeError("not_leader", err.message, err.leader);
      throw err;
    }
    this.#host.log.info("transferring leadership", { to });
    this.#host.kick();
    const limitMs = 2 * this.#host.options.electionMs;
    const timeout = new Promise<"timeout">((r) => {
      const t = setTimeout(() => r("timeout"), limitMs);
      signal?.addEventListener("abort", () => {
        clearTimeout(t);
        r("timeout");
      }, { once: true });
      void moved.then(() => clearTimeout(t));
    });
    const outcome = await Promise.race([moved, timeout]);
    off();
    if (outcome === "timeout" || outcome === NONE) {
      throw new MembershipRefused(
        "failed_precondition",
        `Cannot transfer leadership to ${to}: it did not take over within ${limitMs} ms ` +
          `(down, or too far behind?); node ${this.#host.id} leads on`,
      );
    }
    return { leader: outcome, term: this.#host.raw.status().term };
  }

  /**
   * Before a clean stop (SIGTERM): if this node leads, hands leadership to the
   * most up-to-date other voter and waits (bounded by two election timeouts) for
   * it to take over, so the cluster has a leader again within a heartbeat or two
   * instead of an election timeout (etcd does the same on shutdown). Never throws.
   */
  async handOffLeadership(): Promise<void> {
    if (this.#host.stopped()) return;
    const s = this.#host.raw.status();
    if (s.role !== "leader" || s.conf.voters.filter((id) => id !== this.#host.id).length === 0) {
      return;
    }
    const started = performance.now();
    try {
      const { leader } = await this.transferLeadership(0);
      this.#host.log.info("transferred leadership before stopping", {
        to: leader,
        ms: Math.round(performance.now() - started),
      });
    } catch (err) {
      this.#host.log.warn("could not transfer leadership before stopping", {
        error: (err as Error).message,
      });
    }
  }

  /**
   * Whether `id` is a node this one talks to: a member of the configuration in
   * force, a member the log recorded, or an entry of `--peers` (raft_service.ts
   * refuses messages from anyone else).
   */
  knows(id: NodeId): boolean {
    return this.#host.options.peers.has(id) || this.#host.members().get(id) !== undefined ||
      confMembers(this.#host.raw.status().conf).includes(id);
  }

  /** The configuration in force: the last one this node applied (the core's). */
  #conf(): ConfView {
    return this.#host.raw.status().conf;
  }

  /**
   * The membership as this node has applied it: the configuration and every member
   * with the address this node dials it at (ClusterService/ListMembers).
   */
  membership(): { conf: ConfView; members: MemberRecord[]; configIndex: number } {
    const conf = this.#conf();
    return {
      conf,
      members: listMembers(conf, this.#host.members(), this.#host.options.peers),
      configIndex: this.#host.configIndex(),
    };
  }

  /**
   * Where this node dials member `id`: its `--peers` entry, else the address the log
   * recorded when the member was added; undefined if neither names it.
   */
  peerAddress(id: NodeId): PeerAddress | undefined {
    const own = this.#host.options.peers.get(id);
    if (own !== undefined) return own;
    const text = peerAddressOf(id, this.#host.members(), this.#host.options.peers);
    return text === undefined ? undefined : parseHostPort(text, `member ${id}'s address`);
  }
}
