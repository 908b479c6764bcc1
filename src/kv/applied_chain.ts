/**
 * The applied chain: a hash chain over every entry a node applied, so two nodes can
 * show in 32 bytes that they applied the same sequence (tests and chaos runs compare
 * it across nodes; `Status` reports it as `applied_chain`).
 *
 * link(i) = SHA-256(link(i-1) ‖ index ‖ term ‖ data), starting from 32 zero bytes.
 *
 * A snapshot carries the link as of its index (see `state_codec.ts`), and a node
 * restored from it continues the chain from there; so a node that caught up by
 * snapshot reports the same chain as one that applied every entry itself.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { Entry } from "../raft/types.ts";

/** The length of a link: a SHA-256 digest. */
export const CHAIN_LINK_BYTES = 32;

/** A hash chain over applied entries (see the module documentation). */
export class AppliedChain {
  #link: Uint8Array;

  /** A chain starting at `link` (32 zero bytes, before any entry, by default). */
  constructor(link: Uint8Array = new Uint8Array(CHAIN_LINK_BYTES)) {
    if (link.length !== CHAIN_LINK_BYTES) {
      throw new Error(
        `Cannot start an applied chain: a link is ${CHAIN_LINK_BYTES} bytes, not ${link.length}`,
      );
    }
    this.#link = link.slice();
  }

  /** Extends the chain with the entry just applied. */
  add(e: Pick<Entry, "index" | "term" | "data">): void {
    const header = new DataView(new ArrayBuffer(16));
    header.setFloat64(0, e.index);
    header.setFloat64(8, e.term);
    this.#link = createHash("sha256").update(this.#link).update(new Uint8Array(header.buffer))
      .update(e.data).digest();
  }

  /** The current link, as a fresh copy (what a snapshot stores). */
  get link(): Uint8Array {
    return this.#link.slice();
  }

  /** The current link in hex. */
  hex(): string {
    return Array.from(this.#link, (b) => b.toString(16).padStart(2, "0")).join("");
  }
}
