/**
 * When a Ready's write must be made durable before its `persistedMessages` go out
 * (etcd-io/raft's `MustSync`, which etcd's WAL save uses to skip the fsync).
 *
 * Raft's persistent state (Figure 2) is the log, `currentTerm` and `votedFor`; the
 * commit index is volatile state. A node that forgets how far it knew entries were
 * committed recomputes it: a leader from its followers' acknowledgements (§5.3,
 * after committing an entry of its own term), a follower from the leader's next
 * append or heartbeat. Forgetting it loses no write: every entry a node
 * acknowledged is on its disk, and an entry committed is on a majority's disks
 * whatever any commit index on disk says. So a Ready whose only durable change is
 * the commit index needs no fsync; a runtime may even skip writing it, and write
 * the newest hard state with the next save that must sync anyway. After a crash
 * the node restarts with an older commit index (never below its snapshot's index:
 * see `RaftLog`) and applies the rest once it hears the commit index again.
 *
 * One exception, for liveness: the configuration in force is the last one
 * *applied* (membership.ts, etcd's design), and a restart applies only up to the
 * durable commit index. A node that forgot the commit of a membership change it
 * applied would restart under the configuration before it, and a cluster that
 * removed members could then be left waiting for their votes. So a Ready that
 * applies a `conf_change` entry syncs its hard state (its commit index covers the
 * entry): no node ever restarts under an older configuration than it applied.
 *
 * @module
 */

import type { Entry, HardState, Snapshot } from "./types.ts";

/** What of a Ready decides whether it must sync. */
export interface SyncInputs {
  readonly snapshot?: Snapshot;
  readonly entries: readonly Entry[];
  readonly committedEntries: readonly Entry[];
}

/**
 * True when persisting `rd` and the hard state `next`, after `prev` was last made
 * durable, needs a sync: a snapshot or entries to persist, a change of term or
 * vote (a vote must be durable before it is granted: Figure 2, "updated on stable
 * storage before responding to RPCs"), or a membership change applied (see the
 * module documentation). A change of the commit index alone needs none.
 */
export function mustSync(prev: HardState, next: HardState | undefined, rd: SyncInputs): boolean {
  if (rd.snapshot !== undefined || rd.entries.length > 0) return true;
  if (next === undefined) return false;
  if (next.term !== prev.term || next.vote !== prev.vote) return true;
  return next.commit > prev.commit && rd.committedEntries.some((e) => e.type === "conf_change");
}
