/**
 * A node's Prometheus metrics: the registry, the observer the node reports to
 * (src/server/node_observer.ts), the interceptor that counts calls, and
 * {@link NodeMetrics.attach} to read the node's status at each scrape. Every
 * metric is listed, with what it measures, in README.md ("Metrics").
 *
 * @module
 */

import type { Interceptor } from "@connectrpc/connect";
import type { Registry } from "prom-client";
import type { NodeObserver } from "../server/node_observer.ts";
import { DiskMetrics } from "./disk_metrics.ts";
import { GrpcMetrics } from "./grpc_metrics.ts";
import { PeerMetrics, type ProgressSource } from "./peer_metrics.ts";
import { RaftMetrics, type RaftStatusSource } from "./raft_metrics.ts";
import { createRegistry } from "./registry.ts";
import { SnapshotMetrics, type SnapshotSource } from "./snapshot_metrics.ts";

export { PREFIX } from "./registry.ts";

/** What {@link NodeMetrics.attach} reads at scrape time (a RaftKvNode). */
export type MetricsSource = RaftStatusSource & ProgressSource & SnapshotSource;

/** All the metrics of one node. */
export class NodeMetrics {
  readonly registry: Registry;
  readonly raft: RaftMetrics;
  readonly disk: DiskMetrics;
  readonly peers: PeerMetrics;
  readonly snapshots: SnapshotMetrics;
  readonly grpc: GrpcMetrics;
  /** Pass to the node (`RaftKvNodeOptions.observer`). */
  readonly observer: NodeObserver;

  constructor() {
    this.registry = createRegistry();
    this.raft = new RaftMetrics(this.registry);
    this.disk = new DiskMetrics(this.registry);
    this.peers = new PeerMetrics(this.registry);
    this.snapshots = new SnapshotMetrics(this.registry);
    this.grpc = new GrpcMetrics(this.registry);
    const { raft, disk, peers, snapshots } = this;
    this.observer = {
      walIo: disk.walIo,
      readyHandled: (s) => disk.readyLoop.observe(s),
      walSaved: (s) => disk.walSave.observe(s),
      proposed: () => raft.proposalsPending.inc(),
      proposalEnded: (outcome) => {
        raft.proposalsPending.dec();
        if (outcome === "committed") raft.proposalsCommitted.inc();
        else raft.proposalsFailed.inc();
      },
      softStateChanged: (_role, leader) => raft.leaderSeen(leader),
      snapshotInstalled: () => snapshots.installed.inc(),
      compacted: () => snapshots.compactions.inc(),
      peerSent: (peer, _s, ok) => peers.sent(peer, ok),
      peerRoundTrip: (peer, s) => peers.roundTripped(peer, s),
    };
  }

  /** The interceptors to install on every Connect handler of the node. */
  get interceptors(): Interceptor[] {
    return [this.grpc.interceptor];
  }

  /** Reads the node's status at each scrape from now on. */
  attach(node: MetricsSource): void {
    this.raft.attach(node);
    this.peers.attach(node);
    this.snapshots.attach(node);
  }

  /** The exposition, in Prometheus text format. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }
}
