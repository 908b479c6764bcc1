/**
 * What a {@link RaftKvNode} is started with, and the defaults and derived
 * values read from it: in one place so that the node, its boot and its
 * election-tick advance agree on them.
 *
 * @module
 */

import type { Logger } from "../raft/logger.ts";
import type { Random } from "../raft/rand.ts";
import type { NodeId } from "../raft/types.ts";
import type { PeerDialer } from "../tls/dial.ts";
import type { NodeObserver } from "./node_observer.ts";
import type { PeerAddress } from "./transport.ts";

/** Options of a {@link RaftKvNode}. */
export interface RaftKvNodeOptions {
  readonly id: NodeId;
  readonly clusterId: string;
  /** Every member, this node included, at the address this node dials it. */
  readonly peers: ReadonlyMap<NodeId, PeerAddress>;
  readonly dataDir: string;
  readonly heartbeatMs: number;
  readonly electionMs: number;
  /** The logger for this node; its context should name node, term and role. */
  readonly logger: Logger;
  /** Randomness for election timeouts. */
  readonly random: Random;
  /** A snapshot is taken every this many applied entries (`--snapshot-entries`). */
  readonly snapshotEntries?: number;
  /** Entries kept behind a snapshot for slow followers (`--snapshot-catchup-entries`). */
  readonly snapshotCatchupEntries?: number;
  /** Changes kept for watches (`--watch-history-events`); watch_hub.ts's default when undefined. */
  readonly watchHistoryEvents?: number;
  /**
   * Join a running cluster (`--join`): on an empty data dir, start with no
   * configuration (the core never campaigns) and learn it from the leader; never
   * bootstrap one from `peers`. A data dir with a history knows how it began.
   */
  readonly join?: boolean;
  /** How to dial peers over TLS (src/tls/dial.ts); plaintext when undefined. */
  readonly dialer?: PeerDialer;
  /**
   * Whether peer Stream calls are written on raw HTTP/2 streams (default) or made
   * through Connect's client (transport.ts; the wire is the same either way).
   */
  readonly rawPeerStream?: boolean;
  /** Told of what the node does, for metrics (node_observer.ts); none by default. */
  readonly observer?: NodeObserver;
}

/** `--snapshot-entries` by default, etcd's `--snapshot-count` of late. */
export const DEFAULT_SNAPSHOT_ENTRIES = 10_000;
/** `--snapshot-catchup-entries` by default, etcd's `SnapshotCatchUpEntries`. */
export const DEFAULT_SNAPSHOT_CATCHUP_ENTRIES = 5_000;

/** The election timeout in ticks of --heartbeat-ms (the core's electionTick). */
export function electionTicks(options: RaftKvNodeOptions): number {
  return Math.max(2, Math.round(options.electionMs / options.heartbeatMs));
}
