/**
 * Errors the core reports to its caller: expected situations, not bugs.
 *
 * @module
 */

import type { NodeId } from "./types.ts";

/**
 * A proposal reached a node that is not the leader. `leader` is the leader this
 * node knows of ({@link NONE} when none), so the caller can forward there.
 */
export class NotLeaderError extends Error {
  override name = "NotLeaderError";
  constructor(readonly leader: NodeId) {
    super(
      leader === 0
        ? "Cannot propose: this node is not the leader and knows no leader"
        : `Cannot propose: this node is not the leader; the leader is node ${leader}`,
    );
  }
}

/**
 * A log position below the compacted prefix was asked for: its entry (or its
 * term) was discarded when a snapshot replaced it (§7). Only the term at the
 * compaction point itself (`firstIndex - 1`) is still known. A caller that may ask
 * this (a leader looking for what a follower lacks) sends the snapshot instead.
 */
export class CompactedError extends Error {
  override name = "CompactedError";
  constructor(
    /** What was being read, e.g. "term of index 7" or "entries [3, 9)". */
    readonly what: string,
    /** The lowest index the log still holds an entry for. */
    readonly firstIndex: number,
  ) {
    super(
      `Cannot read ${what}: it is compacted (the log holds entries from index ${firstIndex}` +
        ` on, and the term at index ${firstIndex - 1})`,
    );
  }
}

/**
 * A snapshot older than (or, where stated, as old as) the one storage already
 * holds was offered: taking it would move the log backwards (etcd's
 * ErrSnapOutOfDate).
 */
export class SnapshotOutOfDateError extends Error {
  override name = "SnapshotOutOfDateError";
  constructor(
    readonly what: string,
    /** The index of the snapshot offered. */
    readonly index: number,
    /** The index of the snapshot storage holds. */
    readonly current: number,
  ) {
    super(
      `Cannot ${what} at index ${index}: storage already holds a snapshot at index ${current}`,
    );
  }
}

/**
 * A proposal the leader refused for a reason that may pass (a leadership
 * transfer under way, a membership change not yet applied): the caller may retry
 * later, here or at the new leader (etcd's ErrProposalDropped).
 */
export class ProposalDroppedError extends Error {
  override name = "ProposalDroppedError";
  constructor(reason: string) {
    super(`Cannot propose: ${reason}`);
  }
}

/**
 * A membership change that is invalid against the configuration in force
 * (removing the last voter, adding a member in the role it already has, leaving a
 * joint configuration that is not joint, ...). Retrying it as it is cannot succeed.
 */
export class ConfChangeRejected extends Error {
  override name = "ConfChangeRejected";
  constructor(reason: string) {
    super(`Cannot change membership: ${reason}`);
  }
}

/**
 * A leadership transfer that cannot be made: to the leader itself, to a
 * learner, or to a node that is not a member (dissertation §3.10).
 */
export class LeaderTransferRefused extends Error {
  override name = "LeaderTransferRefused";
  constructor(reason: string) {
    super(`Cannot transfer leadership: ${reason}`);
  }
}
