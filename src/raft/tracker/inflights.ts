/**
 * The window of AppendEntries in flight to one follower. A leader pipelines
 * appends (dissertation §10.2.1) but bounds how many are unacknowledged, so a
 * slow follower cannot make it buffer without limit.
 *
 * @module
 */

/** A bounded FIFO of the last indexes of in-flight appends. */
export class Inflights {
  readonly #capacity: number;
  // Invariant: strictly increasing, length <= capacity.
  #lastIndexes: number[] = [];

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  get count(): number {
    return this.#lastIndexes.length;
  }

  full(): boolean {
    return this.#lastIndexes.length >= this.#capacity;
  }

  /** Records an append whose last entry is `lastIndex`. */
  add(lastIndex: number): void {
    if (this.full()) throw new Error(`inflights: add(${lastIndex}) on a full window`);
    const prev = this.#lastIndexes[this.#lastIndexes.length - 1];
    if (prev !== undefined && lastIndex <= prev) {
      throw new Error(`inflights: add(${lastIndex}) is not after ${prev}`);
    }
    this.#lastIndexes.push(lastIndex);
  }

  /** Frees every append whose last index is <= `index` (they were acknowledged). */
  freeLE(index: number): void {
    let n = 0;
    while (n < this.#lastIndexes.length && this.#lastIndexes[n]! <= index) n++;
    if (n > 0) this.#lastIndexes.splice(0, n);
  }

  /** Frees the oldest append, presumed lost (see the leader's heartbeat handling). */
  freeFirstOne(): void {
    this.#lastIndexes.shift();
  }

  reset(): void {
    this.#lastIndexes = [];
  }
}
