/**
 * Round trips to each follower, timed on the leader from a heartbeat to its
 * answer: the whole path a Raft message takes (the peer queue, the stream, the
 * follower stepping it, the answer back). With a long-lived stream per peer
 * (peer_stream.ts) a transport call no longer answers each batch, so the round
 * trip is measured where Raft itself has one: heartbeats go out every
 * `--heartbeat-ms` and each is answered (dissertation §3.4).
 *
 * One heartbeat per follower is timed at a time; heartbeats sent while one is
 * outstanding are not timed, so a lost heartbeat makes the next answer count from
 * the first send. That over-reports a lossy link, which is what an operator wants
 * to see. An answer that is not heartbeat-shaped is ignored.
 *
 * @module
 */

import type { Message, NodeId } from "../raft/types.ts";

/** Times heartbeat → heartbeat_resp per follower. */
export class HeartbeatRoundTrips {
  readonly #outstanding = new Map<NodeId, number>();

  /** Messages this node sends now: the first heartbeat to each follower starts a timing. */
  sent(messages: readonly Message[], now: number): void {
    for (const m of messages) {
      if (m.type === "heartbeat" && !this.#outstanding.has(m.to)) {
        this.#outstanding.set(m.to, now);
      }
    }
  }

  /** A message received: the seconds since the timed heartbeat if it answers one. */
  received(m: Message, now: number): number | undefined {
    if (m.type !== "heartbeat_resp") return undefined;
    const since = this.#outstanding.get(m.from);
    if (since === undefined) return undefined;
    this.#outstanding.delete(m.from);
    return (now - since) / 1000;
  }

  /** Leadership lost: no heartbeat of ours is outstanding any more. */
  reset(): void {
    this.#outstanding.clear();
  }
}
