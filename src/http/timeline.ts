/**
 * The recent history of leadership as one node saw it, for the web view's
 * timeline: each change of the leader it knows (a new leader elected, or the
 * leader lost), with the term and the time. Bounded: the oldest events go first.
 *
 * @module
 */

import type { LeaderChange } from "../server/node.ts";
import type { NodeId } from "../raft/types.ts";

/** One event of the timeline. */
export interface TimelineEvent {
  /** Milliseconds since the Unix epoch. */
  readonly at: number;
  readonly term: number;
  /** The leader from then on; 0 when the leader was lost. */
  readonly leader: NodeId;
}

/** What a timeline listens to (a RaftKvNode). */
export interface TimelineSource {
  status(): { term: number };
  onLeaderChange(listener: (change: LeaderChange) => void): () => void;
}

/** The most events kept. */
export const MAX_EVENTS = 200;

/** Records leader changes of `source` from now on. */
export class LeaderTimeline {
  readonly #events: TimelineEvent[] = [];
  readonly #off: () => void;

  constructor(source: TimelineSource, now: () => number = Date.now) {
    this.#off = source.onLeaderChange((change) => {
      if (change.final) return;
      this.#events.push({ at: now(), term: source.status().term, leader: change.leader });
      if (this.#events.length > MAX_EVENTS) this.#events.shift();
    });
  }

  /** The events, oldest first. */
  events(): readonly TimelineEvent[] {
    return [...this.#events];
  }

  /** Stops recording. */
  close(): void {
    this.#off();
  }
}
