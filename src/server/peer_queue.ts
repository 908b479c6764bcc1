/**
 * The messages waiting for one peer, bounded in count and in bytes: past either
 * bound the oldest are dropped. Raft tolerates lost messages (§5.1: the leader
 * retries; a follower that missed appends is probed and sent them again), so a
 * peer that is slow or gone costs this node at most the bounds, not its memory.
 * The count alone did not bound memory: 4,096 appends of 1 MiB of entries each
 * is 4 GiB.
 *
 * @module
 */

import type { Message } from "../raft/types.ts";

/** The most messages waiting for one peer. */
export const MAX_QUEUED = 4096;

/**
 * The most bytes (by {@link encodedSize}) waiting for one peer: 64 appends
 * carrying a full 1 MiB of entries each, many batches' worth (a Send carries at
 * most 3 MiB), so only a peer that takes nothing for a while loses messages.
 */
export const MAX_QUEUED_BYTES = 64 * 1024 * 1024;

/** A generous estimate of a message's encoded size: its data plus framing per entry. */
export function encodedSize(m: Message): number {
  let n = 64;
  for (const e of m.entries) n += e.data.length + 32;
  return n;
}

/** A FIFO of messages to one peer, oldest dropped past its bounds. */
export class PeerQueue {
  readonly #maxCount: number;
  readonly #maxBytes: number;
  #items: { m: Message; size: number }[] = [];
  #bytes = 0;

  constructor(maxCount = MAX_QUEUED, maxBytes = MAX_QUEUED_BYTES) {
    if (!(maxCount >= 1 && maxBytes >= 1)) {
      throw new Error(`PeerQueue: bounds must be at least 1 (${maxCount}, ${maxBytes})`);
    }
    this.#maxCount = maxCount;
    this.#maxBytes = maxBytes;
  }

  /** Messages waiting. */
  get length(): number {
    return this.#items.length;
  }

  /** Their estimated encoded bytes. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Appends `m`, then drops the oldest messages while a bound is exceeded (never
   * `m` itself: one message is always let through, whatever its size). Returns
   * how many were dropped.
   */
  push(m: Message): number {
    const size = encodedSize(m);
    this.#items.push({ m, size });
    this.#bytes += size;
    let drop = 0;
    let bytes = this.#bytes;
    while (
      drop < this.#items.length - 1 &&
      (this.#items.length - drop > this.#maxCount || bytes > this.#maxBytes)
    ) {
      bytes -= this.#items[drop]!.size;
      drop++;
    }
    if (drop > 0) {
      this.#items.splice(0, drop);
      this.#bytes = bytes;
    }
    return drop;
  }

  /**
   * Takes the oldest messages for one batch: at least one, then as many as fit
   * within `maxBatchBytes` in all.
   */
  take(maxBatchBytes: number): Message[] {
    let bytes = 0;
    let n = 0;
    for (; n < this.#items.length; n++) {
      bytes += this.#items[n]!.size;
      if (n > 0 && bytes > maxBatchBytes) break;
    }
    const taken = this.#items.splice(0, n);
    for (const t of taken) this.#bytes -= t.size;
    return taken.map((t) => t.m);
  }

  /** Drops every message waiting; returns how many there were. */
  clear(): number {
    const n = this.#items.length;
    this.#items = [];
    this.#bytes = 0;
    return n;
  }
}
