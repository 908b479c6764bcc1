/**
 * Counts open connections in total and per remote address, and says whether
 * one more may be admitted. Pure bookkeeping: `guard.ts` asks it on every new
 * connection and tells it when one closes.
 *
 * @module
 */

/** Why a connection was refused, or undefined if it is admitted. */
export type GateRefusal = "connections" | "connections per address";

/** Open connections in total and per address, against two limits. */
export class ConnectionGate {
  readonly #max: number;
  readonly #maxPerAddress: number;
  readonly #byAddress = new Map<string, number>();
  #total = 0;

  constructor(max: number, maxPerAddress: number) {
    if (!(max >= 1 && maxPerAddress >= 1)) {
      throw new Error(`ConnectionGate: limits must be at least 1 (${max}, ${maxPerAddress})`);
    }
    this.#max = max;
    this.#maxPerAddress = maxPerAddress;
  }

  /** Open connections in total. */
  get total(): number {
    return this.#total;
  }

  /** Open connections from `address`. */
  from(address: string): number {
    return this.#byAddress.get(address) ?? 0;
  }

  /**
   * Admits a connection from `address` (counting it) or says which limit refuses
   * it (counting nothing). Every admitted connection must be {@link release}d once.
   */
  admit(address: string): GateRefusal | undefined {
    if (this.#total >= this.#max) return "connections";
    const n = this.from(address);
    if (n >= this.#maxPerAddress) return "connections per address";
    this.#byAddress.set(address, n + 1);
    this.#total++;
    return undefined;
  }

  /** Forgets one admitted connection from `address`. */
  release(address: string): void {
    const n = this.from(address);
    if (n <= 0) throw new Error(`ConnectionGate: release of ${address}, which has no connection`);
    if (n === 1) this.#byAddress.delete(address);
    else this.#byAddress.set(address, n - 1);
    this.#total--;
  }
}
