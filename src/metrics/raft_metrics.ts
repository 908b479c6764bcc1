/**
 * Raft's state as Prometheus sees it: leader, term, role, the log's indexes and
 * the proposals of this node. Names after etcd's `etcd_server_*` metrics
 * (`has_leader`, `leader_changes_seen_total`, `proposals_*`) so that an etcd
 * operator finds them. The gauges are read from the node's status at each scrape
 * (`collect`); the counters count what the node reports through its observer.
 *
 * @module
 */

import { Counter, Gauge, type Registry } from "prom-client";
import type { NodeId, Role } from "../raft/types.ts";
import { PREFIX } from "./registry.ts";

const ROLES: readonly Role[] = ["follower", "pre_candidate", "candidate", "leader"];

/** What the Raft metrics read at scrape time. */
export interface RaftStatusSource {
  status(): {
    role: Role;
    term: number;
    lead: NodeId;
    commit: number;
    lastIndex: number;
    kvApplied: number;
  };
}

/** The Raft metrics of one node. */
export class RaftMetrics {
  readonly leaderChanges: Counter;
  readonly proposalsFailed: Counter;
  readonly proposalsCommitted: Counter;
  readonly proposalsPending: Gauge;
  #source: RaftStatusSource | undefined;
  #lastLeader: NodeId = 0;
  /** The applied index already counted by proposals_applied_total. */
  readonly #applied = { counted: 0 };

  constructor(registry: Registry) {
    const registers = [registry];
    const read = () => this.#source?.status();
    new Gauge({
      name: `${PREFIX}has_leader`,
      help: "1 if this node knows a leader, else 0",
      registers,
      collect() {
        const s = read();
        this.set(s !== undefined && s.lead !== 0 ? 1 : 0);
      },
    });
    new Gauge({
      name: `${PREFIX}leader_id`,
      help: "The id of the leader this node knows, 0 for none",
      registers,
      collect() {
        this.set(read()?.lead ?? 0);
      },
    });
    this.leaderChanges = new Counter({
      name: `${PREFIX}leader_changes_seen_total`,
      help:
        "Times this node came to know a new leader (the first included; losing one is not counted)",
      registers,
    });
    new Gauge({
      name: `${PREFIX}term`,
      help: "The current Raft term of this node",
      registers,
      collect() {
        this.set(read()?.term ?? 0);
      },
    });
    new Gauge({
      name: `${PREFIX}role`,
      help: "1 for the role this node has now, 0 for the others",
      labelNames: ["role"],
      registers,
      collect() {
        const role = read()?.role;
        for (const r of ROLES) this.set({ role: r }, r === role ? 1 : 0);
      },
    });
    const index = (name: string, help: string, pick: (s: ReturnType<typeof read>) => number) =>
      new Gauge({
        name: `${PREFIX}${name}`,
        help,
        registers,
        collect() {
          this.set(pick(read()));
        },
      });
    index("commit_index", "The highest log index this node knows committed", (s) => s?.commit ?? 0);
    index(
      "applied_index",
      "The highest log index applied to this node's key-value store",
      (s) => s?.kvApplied ?? 0,
    );
    index(
      "last_log_index",
      "The index of the last entry in this node's log",
      (s) => s?.lastIndex ?? 0,
    );
    this.proposalsCommitted = new Counter({
      name: `${PREFIX}proposals_committed_total`,
      help: "Writes proposed by this node (as leader) that committed and were applied",
      registers,
    });
    this.proposalsFailed = new Counter({
      name: `${PREFIX}proposals_failed_total`,
      help: "Writes proposed by this node that failed: leadership lost, superseded, deadline, stop",
      registers,
    });
    const applied = this.#applied;
    new Counter({
      name: `${PREFIX}proposals_applied_total`,
      help:
        "Log entries applied to this node's key-value store since metrics began (all members' writes)",
      registers,
      collect() {
        // Follows the applied index by its increase since the last scrape.
        const now = read()?.kvApplied ?? 0;
        if (now > applied.counted) this.inc(now - applied.counted);
        applied.counted = Math.max(applied.counted, now);
      },
    });
    this.proposalsPending = new Gauge({
      name: `${PREFIX}proposals_pending`,
      help: "Writes proposed by this node still waiting to commit",
      registers,
    });
  }

  /** Reads term, role and indexes from `source` at each scrape from now on. */
  attach(source: RaftStatusSource): void {
    this.#source = source;
    // What was applied before (replayed from the log at start) is not counted.
    this.#applied.counted = source.status().kvApplied;
  }

  /** The leader this node knows is now `leader` (0: none): counts a change to another node. */
  leaderSeen(leader: NodeId): void {
    if (leader !== 0 && leader !== this.#lastLeader) this.leaderChanges.inc();
    if (leader !== 0) this.#lastLeader = leader;
  }
}
