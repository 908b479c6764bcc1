/**
 * A node-wide budget shared by connections, with a guaranteed share each: every
 * connection may always hold up to `guaranteed` units (streams, bytes); what
 * connections hold past their guaranteed share, all together, is at most `max`.
 * So a peer (one Send in flight) or a client with a few small calls is never
 * refused because others filled the budget, and the node holds at most
 * connections × guaranteed + max units.
 *
 * Used twice: for open streams and for request body bytes held (guard.ts).
 *
 * @module
 */

/** What one connection holds. */
export interface Share {
  held: number;
}

/** Units held past each connection's guaranteed share, node-wide, against a maximum. */
export class SharedBudget {
  readonly #max: number;
  readonly #guaranteed: number;
  #beyond = 0;

  constructor(max: number, guaranteed: number) {
    if (!(max >= 0 && guaranteed >= 0)) {
      throw new Error(`SharedBudget: bad limits (${max}, ${guaranteed})`);
    }
    this.#max = max;
    this.#guaranteed = guaranteed;
  }

  /** Units held past the guaranteed shares, node-wide. */
  get beyond(): number {
    return this.#beyond;
  }

  #over(held: number): number {
    return Math.max(0, held - this.#guaranteed);
  }

  /** Takes `n` units for `share` if the budget allows (all or nothing); false if not. */
  take(share: Share, n = 1): boolean {
    const more = this.#over(share.held + n) - this.#over(share.held);
    if (more > 0 && this.#beyond + more > this.#max) return false;
    this.#beyond += more;
    share.held += n;
    return true;
  }

  /** Gives back `n` units {@link take} granted to `share`. */
  give(share: Share, n = 1): void {
    if (share.held < n) {
      throw new Error(`SharedBudget: give of ${n} units, but the share holds ${share.held}`);
    }
    this.#beyond -= this.#over(share.held) - this.#over(share.held - n);
    share.held -= n;
  }
}
