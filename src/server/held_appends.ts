/**
 * Empty appends held back for a moment on their way to a peer, and dropped when
 * a newer append to that peer overtakes them.
 *
 * Why: each time the leader's commit index moves, its core sends every follower
 * an append, empty when the follower already has every entry, only to carry the
 * new commit index (etcd-io/raft's `bcastAppend` after `maybeCommit`); the
 * follower answers it. At one put in flight that doubles the peer messages of a
 * put (an append and its acknowledgement per follower, then an empty append and
 * its acknowledgement per follower), and here a peer message costs far more CPU
 * than in etcd (Connect and HTTP/2 on each side). In issue 11's trace of one put at
 * 1 in flight, the empty appends and their answers ran on the leader in the very
 * turns in which its answer to the client was being written (3 turns held 1 ms
 * instead of 0.4 ms), and the put took 0.5 to 2.4 ms longer at the median (4 runs each) than
 * with no empty appends at all. Held for {@link HOLD_MS}, the empty append is
 * overtaken by the next put's append, which carries the same or a newer commit
 * index, and never sent: the next put costs the same messages, and the empty ones
 * are gone.
 *
 * What it costs: a follower learns that an entry is committed, and applies it,
 * up to {@link HOLD_MS} later when no other append follows, so a watch served by a
 * follower sees the change that much later: `deno task bench:api` at 50 writes/s
 * measured a follower's watch event p50 11.9 ms after the writer's acknowledgement,
 * against -0.2 ms without the hold (load average 7 to 10; at 569 writes/s, 8.2 ms
 * against -4.2 ms; from the write's sending, 53.7 against 52.4 ms). A hold of 0
 * turns it off: every message goes at once, as before. Nothing else: Raft never counts on a
 * message arriving (§5.1: RPCs may be lost, delayed or reordered); a held append
 * that is overtaken is, to the follower, a lost message made stale by a newer
 * one; one that is not overtaken is only late. Acknowledgements, votes,
 * heartbeats and appends with entries are never held.
 *
 * Order: a message to the peer that is not an append (a heartbeat, a vote) lets
 * the held append go first, so a peer sees the sender's messages in the order the
 * core sent them, less those overtaken.
 *
 * @module
 */

import type { Message, NodeId } from "../raft/types.ts";

/**
 * How long an empty append waits for a newer append to the same peer: longer than
 * the time between two puts of one client at 1 in flight on loopback (about 4 ms
 * at the median, 15 ms at the 99th percentile on the developer machine), well
 * under a heartbeat (100 ms by default), which carries the commit index too.
 */
export const HOLD_MS = 10;

/** Whether `m` is an append that carries no entries: only a commit index, or a probe. */
export function isEmptyAppend(m: Message): boolean {
  return m.type === "app" && m.entries.length === 0;
}

/** Timer functions, injectable for tests. */
export interface HoldTimers {
  set(fn: () => void, ms: number): unknown;
  clear(id: unknown): void;
}

const REAL_TIMERS: HoldTimers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (id) => clearTimeout(id as ReturnType<typeof setTimeout>),
};

/** The empty append held for each peer (at most one), and when it goes. */
export class HeldAppends {
  readonly #held = new Map<NodeId, { readonly m: Message; readonly timer: unknown }>();
  readonly #release: (m: Message) => void;
  readonly #holdMs: number;
  readonly #timers: HoldTimers;
  /** Held appends overtaken by a newer one and never sent (a count, for tests). */
  overtaken = 0;

  /**
   * `release` is called with a held append once {@link HOLD_MS} (or `holdMs`) has
   * passed without a newer append to its peer. A `holdMs` of 0 holds nothing.
   */
  constructor(
    release: (m: Message) => void,
    holdMs: number = HOLD_MS,
    timers: HoldTimers = REAL_TIMERS,
  ) {
    this.#release = release;
    this.#holdMs = holdMs;
    this.#timers = timers;
  }

  /**
   * Takes `m`, bound for its peer, and returns what to queue for that peer now,
   * in order: nothing when `m` is an empty append (held; it overtakes one held
   * before), `[m]` when it is an append with entries (it overtakes the held one),
   * and the held append then `m` for any other message.
   */
  offer(m: Message): Message[] {
    if (this.#holdMs <= 0) return [m];
    const held = this.#held.get(m.to);
    if (held !== undefined) {
      this.#timers.clear(held.timer);
      this.#held.delete(m.to);
    }
    if (isEmptyAppend(m)) {
      if (held !== undefined) this.overtaken++;
      const timer = this.#timers.set(() => {
        if (this.#held.get(m.to)?.m !== m) return;
        this.#held.delete(m.to);
        this.#release(m);
      }, this.#holdMs);
      this.#held.set(m.to, { m, timer });
      return [];
    }
    if (held === undefined) return [m];
    if (m.type === "app") {
      // A newer append from the same leader: its commit index is at least the held
      // one's (a leader's commit index only grows), and it reflects where the
      // leader now thinks the follower stands.
      this.overtaken++;
      return [m];
    }
    return [held.m, m];
  }

  /** Forgets the append held for `peer` (no longer dialed), unsent. */
  drop(peer: NodeId): void {
    const held = this.#held.get(peer);
    if (held === undefined) return;
    this.#timers.clear(held.timer);
    this.#held.delete(peer);
  }

  /** Forgets every held append, unsent (the transport closes). */
  clear(): void {
    for (const peer of [...this.#held.keys()]) this.drop(peer);
  }

  /** How many appends are held now. */
  get size(): number {
    return this.#held.size;
  }
}
