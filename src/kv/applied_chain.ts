/**
 * The applied chain: a hash chain over every entry a node applied, so two nodes can
 * show in 32 bytes that they applied the same sequence (tests and chaos runs compare
 * it across nodes; `Status` reports it as `applied_chain`).
 *
 * The entries are hashed in groups, not one by one: a SHA-256 per entry cost more
 * than the node's whole WAL encode of it (issue 11: mostly the fixed cost of making
 * and finishing a hash, not the hashing of a few hundred bytes). Each applied entry
 * is framed as
 *
 * ```
 * u64 index | u64 term | u32 data length | data        (little-endian)
 * ```
 *
 * and appended to the open group. A group closes after the entry that brings its
 * frames to {@link CHAIN_GROUP_BYTES} bytes or more; the link then becomes
 *
 *     link = SHA-256(link ‖ the group's frames),   starting from 32 zero bytes,
 *
 * and the next group opens empty. The chain's value after entry i is the link when
 * the group is empty, else SHA-256(link ‖ the open group's frames). Where a group
 * closes depends only on the entries, so the value is a function of the applied
 * sequence alone (not of how the entries were batched into Readies); frames carry
 * their lengths, so two different sequences never frame to the same bytes; and every
 * value covers the whole history through the links. Two nodes at the same applied
 * index report the same value exactly when they applied the same entries (short of a
 * SHA-256 collision), which is what the entry-by-entry chain this replaced proved.
 *
 * A snapshot carries the link and the open group (at most {@link CHAIN_GROUP_BYTES}
 * of frames; see `state_codec.ts`), and a node restored from it continues the chain
 * from there; so a node that caught up by snapshot, or restarted from one, reports
 * the same chain as one that applied every entry itself.
 *
 * Older data: a snapshot written before groups carries the entry-by-entry link
 * (SHA-256(link ‖ f64 index ‖ f64 term ‖ data) per entry) and no group. A node
 * restored from it continues as if a group had closed at the snapshot's index. Nodes
 * that restored such snapshots at different indexes therefore report different
 * chains from then on (their state digests still agree), as do a node that restored
 * one and a node that replayed its log instead; the chains of a cluster whose
 * snapshots all come from this code agree again.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { Entry } from "../raft/types.ts";

/** The length of a link: a SHA-256 digest. */
export const CHAIN_LINK_BYTES = 32;

/**
 * A group closes once its frames reach this many bytes: about 50 entries of 300
 * bytes share one SHA-256 (one digest's fixed cost), and a snapshot carries at most
 * this much of an open group.
 */
export const CHAIN_GROUP_BYTES = 16 * 1024;

/** The bytes of a frame before the entry's data. */
const FRAME_HEADER_BYTES = 20;

/** What a snapshot stores of a chain: its link and the frames of the open group. */
export interface AppliedChainImage {
  /** The link after the last group that closed (32 bytes). */
  readonly chainLink: Uint8Array;
  /** The frames of the entries applied since (fewer than {@link CHAIN_GROUP_BYTES}). */
  readonly chainGroup: Uint8Array;
}

/**
 * Why `group` cannot be a chain's open group ending at entry `appliedIndex`, or
 * undefined when it can: frames that fit exactly, consecutive indexes ending at
 * `appliedIndex`, and fewer than {@link CHAIN_GROUP_BYTES} bytes (more would have
 * closed the group). The state codec checks a snapshot's group with it.
 */
export function checkChainGroup(group: Uint8Array, appliedIndex: number): string | undefined {
  if (group.length === 0) return undefined;
  if (group.length >= CHAIN_GROUP_BYTES) {
    return `the open group is ${group.length} bytes; a group closes at ${CHAIN_GROUP_BYTES}`;
  }
  const view = new DataView(group.buffer, group.byteOffset, group.byteLength);
  let offset = 0;
  let last = -1;
  while (offset < group.length) {
    if (group.length - offset < FRAME_HEADER_BYTES) {
      return `a frame header at offset ${offset} runs past the group's end`;
    }
    const index = view.getUint32(offset, true) + view.getUint32(offset + 4, true) * 2 ** 32;
    const length = view.getUint32(offset + 16, true);
    if (last !== -1 && index !== last + 1) {
      return `entry ${index} follows entry ${last} in the open group`;
    }
    if (group.length - offset - FRAME_HEADER_BYTES < length) {
      return `entry ${index}'s ${length} bytes of data run past the group's end`;
    }
    last = index;
    offset += FRAME_HEADER_BYTES + length;
  }
  if (last !== appliedIndex) {
    return `the open group ends at entry ${last}, not at the applied index ${appliedIndex}`;
  }
  return undefined;
}

/** A hash chain over applied entries (see the module documentation). */
export class AppliedChain {
  #link: Uint8Array;
  /** The open group's frames: `#group.subarray(0, #used)`. */
  #group = new Uint8Array(CHAIN_GROUP_BYTES);
  #used = 0;
  /** The value in hex, until the next entry (status calls ask for it repeatedly). */
  #hex: string | undefined;

  /**
   * A chain starting at `chainLink` (32 zero bytes, before any entry, by default)
   * with `chainGroup` open (none by default): what {@link image} returned.
   */
  constructor(
    chainLink: Uint8Array = new Uint8Array(CHAIN_LINK_BYTES),
    chainGroup: Uint8Array = new Uint8Array(0),
  ) {
    if (chainLink.length !== CHAIN_LINK_BYTES) {
      throw new Error(
        `Cannot start an applied chain: a link is ${CHAIN_LINK_BYTES} bytes, not ${chainLink.length}`,
      );
    }
    if (chainGroup.length >= CHAIN_GROUP_BYTES) {
      throw new Error(
        `Cannot start an applied chain: an open group is under ${CHAIN_GROUP_BYTES} bytes, ` +
          `not ${chainGroup.length}`,
      );
    }
    this.#link = chainLink.slice();
    this.#group.set(chainGroup);
    this.#used = chainGroup.length;
  }

  /** Extends the chain with the entry just applied. */
  add(e: Pick<Entry, "index" | "term" | "data">): void {
    this.#hex = undefined;
    const frame = FRAME_HEADER_BYTES + e.data.length;
    if (this.#used + frame < CHAIN_GROUP_BYTES) {
      this.#writeHeader(this.#group, this.#used, e);
      this.#group.set(e.data, this.#used + FRAME_HEADER_BYTES);
      this.#used += frame;
      return;
    }
    // This entry closes the group: hash it straight from the entry, without a copy.
    const header = new Uint8Array(FRAME_HEADER_BYTES);
    this.#writeHeader(header, 0, e);
    this.#link = new Uint8Array(
      createHash("sha256").update(this.#link).update(this.#group.subarray(0, this.#used))
        .update(header).update(e.data).digest(),
    );
    this.#used = 0;
  }

  #writeHeader(into: Uint8Array, at: number, e: Pick<Entry, "index" | "term" | "data">): void {
    const view = new DataView(into.buffer, into.byteOffset + at, FRAME_HEADER_BYTES);
    view.setUint32(0, e.index % 2 ** 32, true);
    view.setUint32(4, Math.floor(e.index / 2 ** 32), true);
    view.setUint32(8, e.term % 2 ** 32, true);
    view.setUint32(12, Math.floor(e.term / 2 ** 32), true);
    view.setUint32(16, e.data.length, true);
  }

  /** The chain's value after the last entry added. */
  value(): Uint8Array {
    if (this.#used === 0) return this.#link.slice();
    return new Uint8Array(
      createHash("sha256").update(this.#link).update(this.#group.subarray(0, this.#used))
        .digest(),
    );
  }

  /** The link and the open group, as fresh copies (what a snapshot stores). */
  image(): AppliedChainImage {
    return { chainLink: this.#link.slice(), chainGroup: this.#group.slice(0, this.#used) };
  }

  /** The chain's value in hex. */
  hex(): string {
    this.#hex ??= Array.from(this.value(), (b) => b.toString(16).padStart(2, "0")).join("");
    return this.#hex;
  }
}
