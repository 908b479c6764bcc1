/**
 * The network between members: round trips and failures of the Send calls that
 * carry Raft messages to each peer (etcd's `etcd_network_peer_round_trip_time_seconds`
 * and `..._sent_failures_total`), and, on the leader, how far each follower's log
 * is behind its own (from the leader's progress tracker, Raft §5.3's matchIndex).
 *
 * @module
 */

import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { NodeId } from "../raft/types.ts";
import { NETWORK_BUCKETS } from "./buckets.ts";
import { PREFIX } from "./registry.ts";

/** What the lag gauge reads at scrape time: a leader's progress, none elsewhere. */
export interface ProgressSource {
  status(): {
    id: NodeId;
    lastIndex: number;
    progress?: ReadonlyMap<NodeId, { match: number }>;
  };
}

/** The peer metrics of one node. */
export class PeerMetrics {
  readonly roundTrip: Histogram;
  readonly failures: Counter;
  #source: ProgressSource | undefined;

  constructor(registry: Registry) {
    const registers = [registry];
    this.roundTrip = new Histogram({
      name: `${PREFIX}peer_round_trip_seconds`,
      help:
        "On the leader: a heartbeat to a follower until its answer (queue, stream, the follower's step), by peer id",
      labelNames: ["peer"],
      buckets: [...NETWORK_BUCKETS],
      registers,
    });
    this.failures = new Counter({
      name: `${PREFIX}peer_send_failures_total`,
      help: "Calls carrying Raft messages to a peer that failed (unreachable, refused, timed out)",
      labelNames: ["peer"],
      registers,
    });
    const read = () => this.#source?.status();
    new Gauge({
      name: `${PREFIX}follower_lag_entries`,
      help: "On the leader: its last log index minus what each follower is known to hold",
      labelNames: ["follower"],
      registers,
      collect() {
        // Reset: a node that stopped leading exports no stale lag.
        this.reset();
        const s = read();
        if (s?.progress === undefined) return;
        for (const [id, p] of s.progress) {
          if (id !== s.id) this.set({ follower: String(id) }, Math.max(0, s.lastIndex - p.match));
        }
      },
    });
  }

  /** Reads the leader's progress from `source` at each scrape from now on. */
  attach(source: ProgressSource): void {
    this.#source = source;
  }

  /** A transport call to `peer` ended; `ok` if it was answered. Failures are counted. */
  sent(peer: NodeId, ok: boolean): void {
    if (!ok) this.failures.inc({ peer: String(peer) });
  }

  /** On the leader: a heartbeat to `peer` was answered after `seconds`. */
  roundTripped(peer: NodeId, seconds: number): void {
    this.roundTrip.observe({ peer: String(peer) }, seconds);
  }
}
