/**
 * Which operations a Wing & Gong search has linearized so far, as two bit sets, and
 * the subsumption test of Lowe's cache over them; shared by the single-key search
 * ({@link import("./linearizability.ts")}) and the multi-register one
 * ({@link import("./multi_register.ts")}).
 *
 * The answered (exact) ops linearized, E, are part of a configuration's identity: E as
 * 16-bit words makes a short string key ({@link LinearizedSet.exactKey}). The
 * unobserved ops linearized, U, are not: a configuration seen before with the same E
 * and state and a subset of U dominates this one (whatever this one can still do,
 * that one could too, having more unknown writes left), so the cache keeps, per key,
 * the U sets it was seen with ({@link LinearizedSet.unknownCopy}) and prunes any
 * configuration {@link LinearizedSet.subsumed} by one of them.
 *
 * @module
 */

/** The ops of a search, exact (an output) or unobserved (none). */
export interface ObservedOp {
  /** Undefined when the outcome is not observed. */
  readonly output: unknown;
}

/** The sets E and U of a search over a fixed array of ops (see the module documentation). */
export class LinearizedSet {
  /** How many ops have an output (the size of E's universe). */
  readonly exactCount: number;
  /** How many ops have none (the size of U's universe). */
  readonly unknownCount: number;
  /** Per op: its bit position in E or in U. */
  readonly #bit: number[] = [];
  readonly #isExact: boolean[] = [];
  readonly #exactWords: Uint16Array;
  readonly #unknownWords: Uint32Array;

  constructor(ops: readonly ObservedOp[]) {
    let exactCount = 0;
    let unknownCount = 0;
    for (const op of ops) {
      const exact = op.output !== undefined;
      this.#isExact.push(exact);
      this.#bit.push(exact ? exactCount++ : unknownCount++);
    }
    this.exactCount = exactCount;
    this.unknownCount = unknownCount;
    this.#exactWords = new Uint16Array(Math.ceil(exactCount / 16));
    this.#unknownWords = new Uint32Array(Math.ceil(unknownCount / 32));
  }

  /** Adds op `i` to its set if absent, removes it if present. */
  flip(i: number): void {
    const b = this.#bit[i] as number;
    if (this.#isExact[i]) {
      this.#exactWords[b >> 4] = (this.#exactWords[b >> 4] as number) ^ (1 << (b & 15));
    } else {
      this.#unknownWords[b >> 5] = ((this.#unknownWords[b >> 5] as number) ^ (1 << (b & 31))) >>>
        0;
    }
  }

  /** E as a string, one character per 16 ops: the start of a cache key. */
  exactKey(): string {
    let s = "";
    for (let w = 0; w < this.#exactWords.length; w++) {
      s += String.fromCharCode(this.#exactWords[w] as number);
    }
    return s;
  }

  /** A copy of U, to remember with a cache entry. */
  unknownCopy(): Uint32Array {
    return this.#unknownWords.slice();
  }

  /** Whether some U set in `list` (seen with the same key) is a subset of the current U. */
  subsumed(list: readonly Uint32Array[] | undefined): boolean {
    if (list === undefined) return false;
    const unknown = this.#unknownWords;
    outer: for (const seen of list) {
      for (let w = 0; w < seen.length; w++) {
        if (((seen[w] as number) & ~(unknown[w] as number)) !== 0) continue outer;
      }
      return true;
    }
    return false;
  }
}
