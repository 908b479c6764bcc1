/**
 * What a {@link RaftKvNode} reports as it runs, for metrics (src/metrics/) and the
 * web view's timeline (src/http/). Every hook is optional and synchronous: the
 * node calls it in passing and never waits on it, so an observer can slow the
 * node only by what it does inline (a counter increment). The state a scrape can
 * read at any time (term, role, indexes, follower progress) is not reported here:
 * observers read it from `RaftKvNode.status()` when asked.
 *
 * @module
 */

import type { NodeId, Role } from "../raft/types.ts";
import type { WalIo } from "../wal/mod.ts";

/** How a proposal this node made ended. */
export type ProposalOutcome = "committed" | "failed";

/** Hooks a node calls; see the module doc. */
export interface NodeObserver {
  /** One Ready was handled (persisted, sent, applied): how long it took, in seconds. */
  readyHandled?(seconds: number): void;
  /** One WAL save (records written and fsynced) took this long, in seconds. */
  walSaved?(seconds: number): void;
  /** This node, the leader, proposed a write. */
  proposed?(): void;
  /** A write this node proposed committed and applied, or failed (any reason). */
  proposalEnded?(outcome: ProposalOutcome): void;
  /** The role or the leader this node knows of changed (a Ready's soft state), at `term`. */
  softStateChanged?(role: Role, leader: NodeId, term: number): void;
  /** A snapshot from the leader was installed. */
  snapshotInstalled?(): void;
  /** The log was compacted behind a snapshot this node took. */
  compacted?(): void;
  /** A transport call to `peer` was answered (`ok`) or failed, after `seconds`. */
  peerSent?(peer: NodeId, seconds: number, ok: boolean): void;
  /** On the leader: a heartbeat to `peer` was answered `seconds` after it was sent. */
  peerRoundTrip?(peer: NodeId, seconds: number): void;
  /** WAL file operations to use instead of the default ones (to time fsyncs). */
  readonly walIo?: Partial<WalIo>;
}
