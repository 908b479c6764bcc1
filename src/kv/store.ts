/**
 * The key-value state machine that Raft applies committed log entries to.
 *
 * ## The FSM contract
 *
 * Every node applies the same committed entries in the same order, and must end up in
 * the same state with the same results. In hashicorp/raft's words for its FSM
 * interface: "Apply must be deterministic and produce the same result on all peers in
 * the cluster." So {@link KvStore.apply} depends only on the store's current state and
 * the entry: it reads no clock, draws no random numbers, does no I/O, and does not
 * depend on iteration order of anything but its own deterministic data. A clock or a
 * random source would differ between nodes (each applies an entry at its own moment),
 * and one divergent read is enough to split the replicas for good. Anything
 * time-dependent, such as expiring client sessions, must be driven by values carried
 * in the log itself (the index, or a timestamp the leader wrote into the entry), never
 * by the applying node's clock.
 *
 * Entries are applied exactly once, in index order: `apply(index, …)` must be called
 * with `index === appliedIndex + 1`. Anything else is a bug in the caller, and the
 * store throws rather than guess. An entry with empty data is the no-op a new leader
 * appends (§8): it advances the applied index and changes nothing else.
 *
 * The store does not re-validate keys and values (see `validate.ts`): the gRPC layer
 * checks them before proposing, and the state machine applies whatever was committed.
 *
 * ## Buffers
 *
 * The store owns its values exclusively: it copies a value on the way in (decoded
 * `bytes` fields are views into the entry's data, which the caller may reuse) and on
 * the way out (from {@link KvStore.get} and in a compare-and-swap result). No caller
 * can change the store by mutating a buffer it passed in or got back.
 *
 * ## Room for client sessions
 *
 * Exactly-once execution of client retries (a session table keyed by `client_id`,
 * remembering the last `sequence` and its result, expiring by log index or a
 * leader-written timestamp) is not implemented yet. It will sit in
 * {@link KvStore.applyCommand}, which receives the whole decoded {@link Command}
 * (`clientId` and `sequence` included), before the operation is executed; the session
 * table will then be part of the state, and of {@link KvStore.digest}.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { Command } from "../gen/raftkv/v1/raft_pb.ts";
import { decodeCommand } from "./command.ts";

/** The result of applying a put: it always succeeds. */
export interface PutResult {
  /** Discriminant. */
  readonly kind: "put";
}

/** The result of applying a delete. */
export interface DeleteResult {
  /** Discriminant. */
  readonly kind: "delete";
  /** True if the key existed and was removed; false if it did not exist. */
  readonly deleted: boolean;
}

/**
 * The result of applying a compare-and-swap, in the shape of kv.proto's
 * `CompareAndSwapResponse`: `found` and `value` describe the key as it stands after
 * the call. On success that is the new value; on failure, the value that did not match
 * (or not found), so a client can retry without a separate read.
 */
export interface CasResult {
  /** Discriminant. */
  readonly kind: "cas";
  /** True if the comparison held and the new value was stored. */
  readonly succeeded: boolean;
  /** True if the key exists after the call. */
  readonly found: boolean;
  /** The key's value after the call; empty when `found` is false. A fresh buffer the caller owns. */
  readonly value: Uint8Array;
}

/** The result of applying a no-op entry (empty data): nothing changed. */
export interface NoopResult {
  /** Discriminant. */
  readonly kind: "noop";
}

/** What applying one committed entry produced, by the kind of entry. */
export type ApplyResult = PutResult | DeleteResult | CasResult | NoopResult;

const NOOP: NoopResult = Object.freeze({ kind: "noop" });
const PUT: PutResult = Object.freeze({ kind: "put" });
const DIGEST_DOMAIN = new TextEncoder().encode("raftkv.kv.digest.v1\n");

/**
 * The deterministic key-value state machine: a map from string keys to byte values,
 * plus the index of the last log entry applied to it. See the module documentation for
 * the contract.
 */
export class KvStore {
  #data = new Map<string, Uint8Array>();
  #appliedIndex = 0;

  /** The index of the last entry applied; 0 before any. */
  get appliedIndex(): number {
    return this.#appliedIndex;
  }

  /** The number of keys stored. */
  get size(): number {
    return this.#data.size;
  }

  /**
   * Applies the committed entry at `index`, whose data is an encoded {@link Command} or
   * empty for a no-op.
   *
   * @throws {Error} if `index` is not `appliedIndex + 1` (a bug in the caller), or if
   * the data is not a valid command; in both cases the store is left unchanged.
   */
  apply(index: number, data: Uint8Array): ApplyResult {
    this.#checkIndex(index);
    return this.applyCommand(index, data.length === 0 ? undefined : decodeCommand(data));
  }

  /**
   * Applies an already decoded entry at `index`: a {@link Command}, or `undefined` for
   * a no-op entry. {@link apply} decodes and calls this; a caller that has decoded the
   * entry itself (say, to find its `requestId`) can call it directly. Client sessions
   * will hook in here.
   *
   * @throws {Error} if `index` is not `appliedIndex + 1`, or the command has no
   * operation set; in both cases the store is left unchanged.
   */
  applyCommand(index: number, command: Command | undefined): ApplyResult {
    this.#checkIndex(index);
    const result = command === undefined ? NOOP : this.#execute(command);
    this.#appliedIndex = index;
    return result;
  }

  /** The value stored under `key`, as a fresh copy, or `undefined` if there is none. */
  get(key: string): Uint8Array | undefined {
    return this.#data.get(key)?.slice();
  }

  /**
   * A SHA-256 hex digest of the full contents and the applied index. Two stores have
   * equal digests exactly when (barring hash collisions) they hold the same keys with
   * the same values at the same applied index, however they got there; so tests can
   * check that every node's state machine is the same.
   */
  digest(): string {
    const hash = createHash("sha256");
    hash.update(DIGEST_DOMAIN);
    hash.update(u64(this.#appliedIndex));
    hash.update(u64(this.#data.size));
    const encoder = new TextEncoder();
    // Sorted, so the digest does not depend on the order keys were inserted in.
    const entries = [...this.#data].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [key, value] of entries) {
      const keyBytes = encoder.encode(key);
      // Length prefixes keep the encoding unambiguous ("ab"+"c" vs "a"+"bc").
      hash.update(u64(keyBytes.length));
      hash.update(keyBytes);
      hash.update(u64(value.length));
      hash.update(value);
    }
    return hash.digest("hex");
  }

  #checkIndex(index: number): void {
    const next = this.#appliedIndex + 1;
    if (index !== next) {
      throw new Error(
        `Cannot apply entry ${index}: the store has applied up to ${this.#appliedIndex}, ` +
          `so the next entry must be ${next}`,
      );
    }
  }

  /** Executes one operation. Throws only before changing anything. */
  #execute(command: Command): ApplyResult {
    const op = command.op;
    switch (op.case) {
      case "put": {
        this.#data.set(op.value.key, op.value.value.slice());
        return PUT;
      }
      case "delete": {
        return { kind: "delete", deleted: this.#data.delete(op.value.key) };
      }
      case "compareAndSwap": {
        const { key, expected, value } = op.value;
        const current = this.#data.get(key);
        const succeeded = expected === undefined
          ? current === undefined
          : current !== undefined && bytesEqual(current, expected);
        if (succeeded) {
          this.#data.set(key, value.slice());
          // kv.proto: the key as it stands after the call, which is the new value.
          return { kind: "cas", succeeded, found: true, value: value.slice() };
        }
        return {
          kind: "cas",
          succeeded,
          found: current !== undefined,
          value: current === undefined ? new Uint8Array() : current.slice(),
        };
      }
      case undefined:
        throw new Error("Cannot apply command: no operation is set");
    }
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return false;
  }
  return true;
}

function u64(n: number): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(n));
  return bytes;
}
