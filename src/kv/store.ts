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
 * ## Client sessions
 *
 * A command may carry a session id and sequence number (see `sessions.ts`): a retry
 * of a write already applied in its session returns the first result instead of
 * being applied again. Commands without a session are applied every time.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { Command } from "../gen/raftkv/v1/raft_pb.ts";
import { decodeCommand } from "./command.ts";
import { type KeyRecord, type KeyTree, newKeyTree } from "./key_index.ts";
import { rangeOf, type RangeQuery, type RangeResult } from "./range.ts";
import {
  type LeaseGrantedResult,
  type LeaseImage,
  type LeaseNotFoundResult,
  type LeaseRevokedResult,
  LeaseTable,
} from "./leases.ts";
import { type SessionImage, SessionTable } from "./sessions.ts";
import { applyTxn, type TxnResult, type TxnTarget } from "./txn.ts";

export type { LeaseGrantedResult, LeaseNotFoundResult, LeaseRevokedResult, TxnResult };

/** The result of applying a put: it always succeeds. */
export interface PutResult {
  /** Discriminant. */
  readonly kind: "put";
  /** The index of the entry at which the put took effect (the first one, for a retry). */
  readonly index: number;
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

/** The result of opening a session: its id, the index of the entry that opened it. */
export interface SessionOpenedResult {
  /** Discriminant. */
  readonly kind: "session_opened";
  readonly id: number;
}

/**
 * A write in a session that could not be applied (and never will be): the session
 * is unknown or expired, or the sequence number is older than the session's last.
 */
export interface SessionErrorResult {
  /** Discriminant. */
  readonly kind: "session_error";
  readonly message: string;
}

/** What applying one committed entry produced, by the kind of entry. */
export type ApplyResult =
  | PutResult
  | DeleteResult
  | CasResult
  | NoopResult
  | SessionOpenedResult
  | SessionErrorResult
  | TxnResult
  | LeaseGrantedResult
  | LeaseRevokedResult
  | LeaseNotFoundResult;

/**
 * The whole state of a {@link KvStore} at its applied index, as {@link KvStore.exportState}
 * takes it and {@link KvStore.fromState} rebuilds it (`state_codec.ts` turns it into
 * bytes for a snapshot).
 */
export interface KvStoreState {
  /** The index of the last entry applied. */
  readonly appliedIndex: number;
  /** The session table's clock (log time, see `sessions.ts`). */
  readonly sessionsNowMs: number;
  /** The sessions, idlest first (their order is part of the state). */
  readonly sessions: readonly SessionImage[];
  /** Every key, in key order (the store's sorted index). */
  readonly keys: readonly string[];
  /** The value of each key: `values[i]` is the value of `keys[i]`. */
  readonly values: readonly Uint8Array[];
  /**
   * The create index of each key, as `values`. Absent in a state from a snapshot of
   * version 1, which kept none: each key then counts as created and last changed at
   * the state's applied index (the latest it can have been).
   */
  readonly createIndexes?: readonly number[];
  /** The mod index of each key, as `createIndexes`. */
  readonly modIndexes?: readonly number[];
  /** The lease of each key (0 for none), as `createIndexes`; absent: none. */
  readonly keyLeases?: readonly number[];
  /** The leases, in id order; absent: none. */
  readonly leases?: readonly LeaseImage[];
}

/** A key's value with its indexes, as {@link KvStore.getRecord} returns it. */
export interface KeyReadResult {
  /** The value, a fresh copy the caller owns. */
  readonly value: Uint8Array;
  readonly createIndex: number;
  readonly modIndex: number;
  readonly lease: number;
}

/** A key's value with its indexes, as {@link KvStore.readRecord} shows them. */
export interface KeyReadView {
  /** The value: the store's own buffer, never mutated; the caller must not change it. */
  readonly value: Uint8Array;
  readonly createIndex: number;
  readonly modIndex: number;
  readonly lease: number;
}

/** One change to one key, as {@link KvObserver.change} reports it. */
export interface KvChange {
  readonly kind: "put" | "delete";
  readonly key: string;
  /** The new value (empty for a delete); the store's own buffer, never mutated. */
  readonly value: Uint8Array;
  /** The index of the entry that made the change (several changes can share one: a Txn). */
  readonly index: number;
  /** The key's create index after a put; 0 for a delete. */
  readonly createIndex: number;
  /** The key's lease after a put; 0 for a delete. */
  readonly lease: number;
}

/**
 * Told of every change the store applies, synchronously, in log order (watches are
 * built on it, see `watch_hub.ts`). An observer only reads: it must not apply
 * anything to the store, and its work is not part of the replicated state.
 */
export interface KvObserver {
  /** A key changed at `change.index`. */
  change(change: KvChange): void;
  /** The whole state was replaced by a snapshot's at `index`: history has a gap. */
  restored(index: number): void;
}

const NOOP: NoopResult = Object.freeze({ kind: "noop" });
const EMPTY_VALUE = new Uint8Array();
const DIGEST_DOMAIN = new TextEncoder().encode("raftkv.kv.digest.v2\n");

/**
 * The deterministic key-value state machine: a map from string keys to byte values,
 * plus the index of the last log entry applied to it. See the module documentation for
 * the contract.
 */
export class KvStore {
  /** Every key, sorted (see `key_index.ts`): gets and ranges both use it. */
  #data: KeyTree<KeyRecord> = newKeyTree();
  #appliedIndex = 0;
  #sessions = new SessionTable();
  #leases = new LeaseTable();
  #digest: { index: number; hex: string } | undefined;
  #observer: KvObserver | undefined;

  /** Sets the one observer of changes (or none); see {@link KvObserver}. */
  observe(observer: KvObserver | undefined): void {
    this.#observer = observer;
  }

  /**
   * The store's whole state, taken at once (a few milliseconds for 100,000 keys:
   * it copies references, not values). Values and results are shared with the store,
   * which is safe because the store never mutates a buffer it holds: a put replaces
   * the value, it does not overwrite it. So the state stays as of this applied index
   * while the store moves on, and can be encoded later, off the apply path.
   */
  exportState(): KvStoreState {
    // Flat arrays, not [key, value] pairs: no allocation per key (100,000 keys take
    // about a millisecond this way, and ten times that as pairs).
    const n = this.#data.size;
    const keys: string[] = new Array(n);
    const values: Uint8Array[] = new Array(n);
    const createIndexes: number[] = new Array(n);
    const modIndexes: number[] = new Array(n);
    const keyLeases: number[] = new Array(n);
    let i = 0;
    this.#data.forEachPair((key, r) => {
      keys[i] = key;
      values[i] = r.value;
      createIndexes[i] = r.createIndex;
      modIndexes[i] = r.modIndex;
      keyLeases[i] = r.lease;
      i++;
    });
    return {
      appliedIndex: this.#appliedIndex,
      sessionsNowMs: this.#sessions.nowMs,
      sessions: this.#sessions.export(),
      keys,
      values,
      createIndexes,
      modIndexes,
      keyLeases,
      leases: this.#leases.list(),
    };
  }

  /**
   * A store holding `state` (as {@link exportState} took it, or a snapshot decoded):
   * the same keys and values, sessions (so retries stay exactly-once) and applied
   * index, and so the same {@link digest}. Values are copied in.
   *
   * @throws {Error} if a key repeats or a session cannot be restored.
   */
  static fromState(state: KvStoreState): KvStore {
    if (!Number.isSafeInteger(state.appliedIndex) || state.appliedIndex < 0) {
      throw new Error(`Cannot restore a store: applied index ${state.appliedIndex} is invalid`);
    }
    if (state.keys.length !== state.values.length) {
      throw new Error(
        `Cannot restore a store: ${state.keys.length} keys but ${state.values.length} values`,
      );
    }
    const lists = [
      ["create", state.createIndexes],
      ["mod", state.modIndexes],
      ["lease", state.keyLeases],
    ] as const;
    for (const [name, list] of lists) {
      if (list !== undefined && list.length !== state.keys.length) {
        throw new Error(
          `Cannot restore a store: ${state.keys.length} keys but ${list.length} ${name} indexes`,
        );
      }
    }
    const store = new KvStore();
    store.#leases = LeaseTable.fromImage(state.leases ?? []);
    for (let i = 0; i < state.keys.length; i++) {
      const key = state.keys[i]!;
      const record: KeyRecord = {
        value: state.values[i]!.slice(),
        createIndex: state.createIndexes?.[i] ?? state.appliedIndex,
        modIndex: state.modIndexes?.[i] ?? state.appliedIndex,
        lease: state.keyLeases?.[i] ?? 0,
      };
      if (!store.#data.setIfNotPresent(key, record)) {
        throw new Error(`Cannot restore a store: key ${JSON.stringify(key)} appears twice`);
      }
      if (record.lease !== 0) {
        if (!store.#leases.has(record.lease)) {
          throw new Error(
            `Cannot restore a store: key ${
              JSON.stringify(key)
            } has lease ${record.lease}, which does not exist`,
          );
        }
        store.#leases.attach(key, record.lease);
      }
    }
    store.#sessions = SessionTable.fromImage(state.sessionsNowMs, state.sessions);
    store.#appliedIndex = state.appliedIndex;
    return store;
  }

  /**
   * Replaces this store's whole state with `state` (a snapshot installed from the
   * leader, §7), keeping the object that services hold. Builds the new state first,
   * so a bad `state` throws with this store unchanged.
   */
  restore(state: KvStoreState): void {
    const fresh = KvStore.fromState(state);
    this.#data = fresh.#data;
    this.#sessions = fresh.#sessions;
    this.#leases = fresh.#leases;
    this.#appliedIndex = fresh.#appliedIndex;
    this.#digest = undefined;
    this.#observer?.restored(this.#appliedIndex);
  }

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
   * entry itself can call it directly.
   *
   * @throws {Error} if `index` is not `appliedIndex + 1`, or the command has no
   * operation set; in both cases the store is left unchanged.
   */
  applyCommand(index: number, command: Command | undefined): ApplyResult {
    this.#checkIndex(index);
    if (command !== undefined && command.op.case === undefined) {
      throw new Error("Cannot apply command: no operation is set");
    }
    const result = command === undefined ? NOOP : this.#applySession(index, command);
    this.#appliedIndex = index;
    return result;
  }

  /** The granted TTL (seconds) and keys of lease `id`, or undefined if it does not exist. */
  lease(id: number): { ttl: number; keys: string[] } | undefined {
    return this.#leases.get(id);
  }

  /** Every lease and its granted TTL, in id order. */
  leases(): LeaseImage[] {
    return this.#leases.list();
  }

  /** The number of live client sessions. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Applies a command through its session, if it has one (dissertation §6.3). */
  #applySession(index: number, command: Command): ApplyResult {
    this.#sessions.advanceTime(safe(command.timeMs));
    if (command.op.case === "openSession") {
      this.#sessions.open(index);
      return { kind: "session_opened", id: index };
    }
    if (command.sessionId === 0n) return this.#execute(index, command);
    const id = safe(command.sessionId);
    const sequence = safe(command.sequence);
    const session = this.#sessions.get(id);
    if (session === undefined) {
      return {
        kind: "session_error",
        message: `session ${id} is unknown or expired: open a new session`,
      };
    }
    if (sequence === 0) {
      return { kind: "session_error", message: `session ${id}: sequence numbers start at 1` };
    }
    if (sequence === session.lastSequence && session.lastResult !== undefined) {
      return session.lastResult; // a retry: the first outcome, not a second application
    }
    if (sequence < session.lastSequence) {
      return {
        kind: "session_error",
        message: `session ${id}: sequence ${sequence} is older than the last applied ` +
          `(${session.lastSequence}); its result is no longer kept`,
      };
    }
    const result = this.#execute(index, command);
    this.#sessions.record(id, sequence, result);
    return result;
  }

  /** The value stored under `key`, as a fresh copy, or `undefined` if there is none. */
  get(key: string): Uint8Array | undefined {
    return this.#data.get(key)?.value.slice();
  }

  /** The value (a fresh copy) and indexes of `key`, or `undefined` if there is none. */
  getRecord(key: string): KeyReadResult | undefined {
    const r = this.#data.get(key);
    if (r === undefined) return undefined;
    return {
      value: r.value.slice(),
      createIndex: r.createIndex,
      modIndex: r.modIndex,
      lease: r.lease,
    };
  }

  /**
   * The value and indexes of `key` as the store holds them, or `undefined` if there
   * is none: no copy (a linearizable get's answer is encoded at once; a copy per get
   * was garbage, issue 11). The value is the store's own buffer, which it never
   * mutates (a write replaces it): encode or copy it, never change it.
   */
  readRecord(key: string): KeyReadView | undefined {
    return this.#data.get(key);
  }

  /**
   * A page of the keys in a range, in key order (see `range.ts`). The values in the
   * result are the store's own buffers, which it never mutates: encode or copy them
   * before the next apply if they must not be shared.
   */
  range(query: RangeQuery): RangeResult {
    return rangeOf(this.#data, query);
  }

  /**
   * A SHA-256 hex digest of the full contents and the applied index. Two stores have
   * equal digests exactly when (barring hash collisions) they hold the same keys with
   * the same values at the same applied index, however they got there; so tests can
   * check that every node's state machine is the same.
   */
  digest(): string {
    // Status calls ask for it often and it sorts every key: compute it once per
    // applied index (every change to the store advances that index).
    if (this.#digest?.index === this.#appliedIndex) return this.#digest.hex;
    const hash = createHash("sha256");
    hash.update(DIGEST_DOMAIN);
    hash.update(u64(this.#appliedIndex));
    this.#sessions.digestInto(hash, u64);
    this.#leases.digestInto(hash, u64);
    hash.update(u64(this.#data.size));
    const encoder = new TextEncoder();
    // In key order (the index is sorted), so the digest does not depend on the
    // order keys were inserted in.
    this.#data.forEachPair((key, { value, createIndex, modIndex, lease }) => {
      const keyBytes = encoder.encode(key);
      // Length prefixes keep the encoding unambiguous ("ab"+"c" vs "a"+"bc").
      hash.update(u64(keyBytes.length));
      hash.update(keyBytes);
      hash.update(u64(value.length));
      hash.update(value);
      hash.update(u64(createIndex));
      hash.update(u64(modIndex));
      hash.update(u64(lease));
    });
    const hex = hash.digest("hex");
    this.#digest = { index: this.#appliedIndex, hex };
    return hex;
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

  /**
   * Stores `value` (owned by the store from now on) under `key` at `index`: the key
   * keeps its create index if it exists, and its mod index becomes `index`.
   */
  #write(index: number, key: string, value: Uint8Array, lease = 0): void {
    const old = this.#data.get(key);
    const createIndex = old?.createIndex ?? index;
    // A put without a lease detaches the key from any it had (etcd does the same).
    if (old !== undefined && old.lease !== 0 && old.lease !== lease) {
      this.#leases.detach(key, old.lease);
    }
    if (lease !== 0) this.#leases.attach(key, lease);
    this.#data.set(key, { value, createIndex, modIndex: index, lease });
    this.#observer?.change({ kind: "put", key, value, index, createIndex, lease });
  }

  /** The store as a transaction sees it (see `txn.ts`). */
  readonly #txnTarget: TxnTarget = {
    record: (key) => this.#data.get(key),
    write: (index, key, value, lease) => this.#write(index, key, value, lease),
    hasLease: (id) => this.#leases.has(id),
    remove: (index, key) => this.#remove(index, key),
    range: (query) => rangeOf(this.#data, query),
  };

  /** Removes `key` at `index`; false if it did not exist. */
  #remove(index: number, key: string): boolean {
    const old = this.#data.get(key);
    if (old === undefined) return false;
    this.#data.delete(key);
    if (old.lease !== 0) this.#leases.detach(key, old.lease);
    const change: KvChange = {
      kind: "delete",
      key,
      value: EMPTY_VALUE,
      index,
      createIndex: 0,
      lease: 0,
    };
    this.#observer?.change(change);
    return true;
  }

  /** Executes one operation. Throws only before changing anything. */
  #execute(index: number, command: Command): ApplyResult {
    const op = command.op;
    switch (op.case) {
      case "put": {
        // Ids past 2^53 cannot exist: "not found", the same on every node, never a throw
        // (a committed entry that throws would stop every node that applies it).
        const lease = leaseNumber(op.value.lease);
        if (lease !== 0 && !this.#leases.has(lease)) {
          return { kind: "lease_not_found", id: Math.max(lease, 0) };
        }
        this.#write(index, op.value.key, op.value.value.slice(), lease);
        return { kind: "put", index };
      }
      case "leaseGrant": {
        // The leader proposes 1 s to a year; anything else is clamped alike on every node.
        const ttl = Number(
          op.value.ttlSeconds < 1n
            ? 1n
            : op.value.ttlSeconds > MAX_TTL
            ? MAX_TTL
            : op.value.ttlSeconds,
        );
        this.#leases.grant(index, ttl);
        return { kind: "lease_granted", id: index, ttl };
      }
      case "leaseRevoke": {
        const keys = this.#leases.revoke(leaseNumber(op.value.id));
        if (keys === undefined) return { kind: "lease_revoked", found: false, deleted: 0 };
        for (const key of keys) this.#remove(index, key);
        return { kind: "lease_revoked", found: true, deleted: keys.length };
      }
      case "delete": {
        return { kind: "delete", deleted: this.#remove(index, op.value.key) };
      }
      case "compareAndSwap": {
        const { key, expected, value } = op.value;
        const current = this.#data.get(key)?.value;
        const succeeded = expected === undefined
          ? current === undefined
          : current !== undefined && bytesEqual(current, expected);
        if (succeeded) {
          this.#write(index, key, value.slice());
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
      case "txn":
        return applyTxn(this.#txnTarget, index, op.value);
      case "openSession":
      case undefined:
        throw new Error(`Cannot execute a ${op.case ?? "missing"} operation here`);
    }
  }
}

/** The largest lease TTL the state machine keeps, in seconds (ten years). */
const MAX_TTL = 10n * 365n * 24n * 3600n;

/** A lease id as a number; -1 (no such lease) past 2^53. */
function leaseNumber(id: bigint): number {
  return id > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(id);
}

/** A uint64 from a command as a number; values past 2^53 cannot come from a real log. */
function safe(n: bigint): number {
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new Error(`Cannot apply command: ${n} is above 2^53 - 1`);
  }
  return Number(n);
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
