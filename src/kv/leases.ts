/**
 * The replicated part of leases: which leases exist, their granted TTL, and which keys
 * are attached to each. Granting, attaching and revoking happen only by applying log
 * entries, so every node holds the same table. When a lease runs out is not decided
 * here: no node's clock may enter the state machine. The leader keeps the deadlines
 * (`src/server/lessor.ts`) and proposes a revoke when one passes (etcd's lessor does
 * the same: expiry is a leader decision that goes through the log).
 *
 * @module
 */

import type { Hash } from "node:crypto";
import { compareKeys } from "./key_index.ts";

/** A lease as a snapshot holds it. */
export interface LeaseImage {
  readonly id: number;
  /** The granted time to live, in seconds. */
  readonly ttl: number;
}

interface Lease {
  readonly ttl: number;
  readonly keys: Set<string>;
}

/** The leases of a store. */
export class LeaseTable {
  // Ids are the indexes of the entries that granted them, so insertion order is id
  // order, on every node and after a restore alike.
  #leases = new Map<number, Lease>();

  /** The number of leases. */
  get size(): number {
    return this.#leases.size;
  }

  /** Grants lease `id` (the granting entry's index) of `ttl` seconds. */
  grant(id: number, ttl: number): void {
    if (this.#leases.has(id)) throw new Error(`Invariant: lease ${id} granted twice`);
    this.#leases.set(id, { ttl, keys: new Set() });
  }

  has(id: number): boolean {
    return this.#leases.has(id);
  }

  /** The granted TTL and the keys (in key order) of lease `id`, if it exists. */
  get(id: number): { ttl: number; keys: string[] } | undefined {
    const lease = this.#leases.get(id);
    if (lease === undefined) return undefined;
    return { ttl: lease.ttl, keys: [...lease.keys].sort(compareKeys) };
  }

  /** Every lease, in id order. */
  list(): LeaseImage[] {
    return Array.from(this.#leases, ([id, l]) => ({ id, ttl: l.ttl }));
  }

  /** Records that `key` is attached to lease `id` (which must exist). */
  attach(key: string, id: number): void {
    const lease = this.#leases.get(id);
    if (lease === undefined) throw new Error(`Invariant: key attached to missing lease ${id}`);
    lease.keys.add(key);
  }

  /** Records that `key` is no longer attached to lease `id`. */
  detach(key: string, id: number): void {
    this.#leases.get(id)?.keys.delete(key);
  }

  /**
   * Removes lease `id` and returns its keys in key order (the order the store deletes
   * them in, the same on every node), or undefined if there is no such lease.
   */
  revoke(id: number): string[] | undefined {
    const lease = this.#leases.get(id);
    if (lease === undefined) return undefined;
    this.#leases.delete(id);
    return [...lease.keys].sort(compareKeys);
  }

  /**
   * A table holding `leases`, their keys to be attached by the caller.
   *
   * @throws {Error} if an id repeats or a TTL is not a positive integer.
   */
  static fromImage(leases: readonly LeaseImage[]): LeaseTable {
    const table = new LeaseTable();
    for (const { id, ttl } of [...leases].sort((a, b) => a.id - b.id)) {
      if (table.#leases.has(id)) {
        throw new Error(`Cannot restore leases: lease ${id} appears twice`);
      }
      if (!Number.isSafeInteger(ttl) || ttl < 1) {
        throw new Error(`Cannot restore leases: lease ${id} has TTL ${ttl}`);
      }
      table.#leases.set(id, { ttl, keys: new Set() });
    }
    return table;
  }

  /** Feeds the table into a digest, in id order. (Keys' leases are in the key records.) */
  digestInto(hash: Hash, u64: (n: number) => Uint8Array): void {
    hash.update(u64(this.#leases.size));
    for (const [id, lease] of this.#leases) {
      hash.update(u64(id));
      hash.update(u64(lease.ttl));
    }
  }
}

/** A write that names a lease that does not exist: nothing was applied. */
export interface LeaseNotFoundResult {
  /** Discriminant. */
  readonly kind: "lease_not_found";
  readonly id: number;
}

/** A lease granted: its id is the granting entry's index. */
export interface LeaseGrantedResult {
  /** Discriminant. */
  readonly kind: "lease_granted";
  readonly id: number;
  /** The TTL granted, in seconds. */
  readonly ttl: number;
}

/** A lease revoked (or expired) and its keys deleted, or not found. */
export interface LeaseRevokedResult {
  /** Discriminant. */
  readonly kind: "lease_revoked";
  /** False if there was no such lease (nothing changed). */
  readonly found: boolean;
  /** How many keys were deleted with it. */
  readonly deleted: number;
}
