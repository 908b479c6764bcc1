/**
 * The node-wide budget of open streams. Each connection may always have its
 * first `guaranteed` streams open; the streams past those, across all
 * connections, share one budget of `max`. So a peer (one Send in flight) or a
 * client with a few calls in flight is never refused because others filled the
 * budget, and the node's open streams stay under connections × guaranteed + max.
 *
 * @module
 */

/** One connection's share: how many of its streams are open. */
export interface StreamShare {
  open: number;
}

/** The node-wide count of streams past each connection's guaranteed share. */
export class StreamBudget {
  readonly #max: number;
  readonly #guaranteed: number;
  #beyond = 0;

  constructor(max: number, guaranteed: number) {
    this.#max = max;
    this.#guaranteed = guaranteed;
  }

  /** Streams open past the guaranteed shares, node-wide. */
  get beyond(): number {
    return this.#beyond;
  }

  /** Opens a stream on `share` if the budget allows; false if it must be refused. */
  open(share: StreamShare): boolean {
    if (share.open >= this.#guaranteed) {
      if (this.#beyond >= this.#max) return false;
      this.#beyond++;
    }
    share.open++;
    return true;
  }

  /** Closes a stream {@link open} admitted on `share`. */
  close(share: StreamShare): void {
    if (share.open <= 0) throw new Error("StreamBudget: close without an open stream");
    share.open--;
    if (share.open >= this.#guaranteed) this.#beyond--;
  }
}
