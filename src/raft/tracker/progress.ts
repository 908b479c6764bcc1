/**
 * What a leader knows of one follower's log (Figure 2, "Volatile state on
 * leaders": nextIndex and matchIndex), and how it sends to it.
 *
 * - `probe`: the leader does not know where the logs agree. It sends one append
 *   at a time and waits for the answer, backing `next` up on each rejection.
 * - `replicate`: the logs agree up to `match`; the leader streams appends
 *   optimistically, several in flight at once.
 * - `snapshot`: the follower needs entries the leader has compacted; the leader
 *   sent its snapshot and sends nothing else until the runtime reports the send
 *   finished or failed, or the follower acknowledges an index the log covers
 *   (etcd-io/raft's StateSnapshot). At most one snapshot is in flight per follower.
 *
 * @module
 */

import { Inflights } from "./inflights.ts";

export type ProgressState = "probe" | "replicate" | "snapshot";

/** A leader's view of one follower. */
export class Progress {
  /** The highest index known to be replicated on the follower. */
  match = 0;
  /**
   * The next index to send. Invariant: match < next.
   */
  next: number;
  state: ProgressState = "probe";
  /** In snapshot state: the index of the snapshot sent. Invariant: 0 in the other states. */
  pendingSnapshot = 0;
  /** In probe state: an append is out and unanswered; wait before sending another. */
  probeSent = false;
  /** Heard from since the last CheckQuorum round (§6.2). */
  recentActive = false;
  /** A learner: replicated to like any follower, but never votes nor counts for a quorum. */
  isLearner = false;
  readonly inflights: Inflights;

  constructor(next: number, maxInflight: number) {
    this.next = next;
    this.inflights = new Inflights(maxInflight);
  }

  /**
   * Probe from the match, or, leaving the snapshot state with a snapshot still
   * pending (its send finished), from just past the snapshot: the follower most
   * likely holds it by now, and if it does not, it rejects and the leader backs up.
   */
  becomeProbe(): void {
    const after = this.state === "snapshot" ? this.pendingSnapshot + 1 : 0;
    this.state = "probe";
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflights.reset();
    this.next = Math.max(this.match + 1, after);
  }

  becomeReplicate(): void {
    this.state = "replicate";
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflights.reset();
    this.next = this.match + 1;
  }

  /** A snapshot at `index` is being sent to the follower: nothing else goes until it is settled. */
  becomeSnapshot(index: number): void {
    this.state = "snapshot";
    this.probeSent = false;
    this.pendingSnapshot = index;
    this.inflights.reset();
    this.next = index + 1;
  }

  /** Whether the leader must hold appends to this follower for now. */
  isPaused(): boolean {
    switch (this.state) {
      case "probe":
        return this.probeSent;
      case "replicate":
        return this.inflights.full();
      case "snapshot":
        return true;
    }
  }

  /** An append carrying `count` entries ending at `lastIndex` was sent. */
  sentEntries(count: number, lastIndex: number): void {
    if (count === 0) return;
    if (this.state === "replicate") {
      this.next = lastIndex + 1;
      this.inflights.add(lastIndex);
    } else {
      this.probeSent = true;
    }
  }

  /**
   * The follower acknowledged entries up to `index`. Returns false for a stale
   * acknowledgement that tells nothing new.
   */
  maybeUpdate(index: number): boolean {
    if (index <= this.match) return false;
    this.match = index;
    this.next = Math.max(this.next, index + 1);
    this.probeSent = false;
    return true;
  }

  /**
   * The follower rejected an append at `rejected` (its prevLogIndex), hinting it
   * may match at `hint` or below. Returns false for a stale rejection, one that
   * answers an append the leader has since superseded.
   */
  maybeDecrTo(rejected: number, hint: number): boolean {
    if (this.state === "replicate") {
      // The logs agreed up to match, so a rejection at or below it is stale.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // A snapshot is on its way: rejections of appends sent before it are stale.
    if (this.state === "snapshot") return false;
    // In probe only the answer to the last probe counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, hint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }
}
