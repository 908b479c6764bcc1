/**
 * Transactions (kv.proto's `Txn`, etcd's mini-transactions): compares on keys, then the
 * operations of one branch, all applied at one log index. Because the whole
 * transaction is one log entry, it is atomic and isolated for free: no other write can
 * come between its compares and its writes, on any node.
 *
 * Operations run in order, each seeing what the earlier ones did (a get after a put
 * in the same branch reads the new value); every write of the branch gets the
 * transaction's index as its mod index. Applying reads nothing but the store and the
 * entry, so every node gets the same result (the FSM contract, see `store.ts`).
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import {
  type Compare,
  GetResponseSchema,
  type RequestOp,
  type ResponseOp,
  ResponseOpSchema,
  type TxnRequest,
  TxnResponseSchema,
} from "../gen/raftkv/v1/kv_pb.ts";
import type { KeyRecord } from "./key_index.ts";
import type { LeaseNotFoundResult } from "./leases.ts";
import {
  checkRangeQuery,
  type RangeQuery,
  rangeQueryOf,
  rangeResponseOf,
  type RangeResult,
} from "./range.ts";
import { KvInputError, validateKey, validateLeaseId, validateValue } from "./validate.ts";

/** The most compares, and the most operations per branch, of one transaction (etcd's `--max-txn-ops`). */
export const MAX_TXN_OPS = 128;

/** The result of applying a transaction. */
export interface TxnResult {
  /** Discriminant. */
  readonly kind: "txn";
  /** True if every compare held and the success branch ran. */
  readonly succeeded: boolean;
  /**
   * The encoded `TxnResponse`: kept as bytes so a session can hold it and a
   * snapshot can carry it as it is. The store never mutates it.
   */
  readonly response: Uint8Array;
}

/** What a transaction needs of the store: reads and the two writes, at an index. */
export interface TxnTarget {
  record(key: string): KeyRecord | undefined;
  write(index: number, key: string, value: Uint8Array, lease: number): void;
  hasLease(id: number): boolean;
  remove(index: number, key: string): boolean;
  range(query: RangeQuery): RangeResult;
}

/**
 * Checks a transaction the way the API requires: a check set on every compare, at
 * most {@link MAX_TXN_OPS} compares and operations per branch, valid keys, values and
 * ranges, no session inside an operation.
 *
 * @throws {KvInputError} naming the compare or operation and the rule broken.
 */
export function checkTxn(txn: TxnRequest): void {
  if (txn.compares.length > MAX_TXN_OPS) {
    throw new KvInputError(
      `Cannot run transaction: ${txn.compares.length} compares, at most ${MAX_TXN_OPS}`,
    );
  }
  txn.compares.forEach((c, i) => {
    within(`compare ${i}`, () => validateKey(c.key));
    if (c.check.case === undefined) {
      throw new KvInputError(`Cannot run transaction: compare ${i} has no check set`);
    }
    if (c.check.case === "valueEquals") {
      within(`compare ${i}`, () => validateValue(c.check.value as Uint8Array));
    }
  });
  for (const [branch, ops] of [["success", txn.success], ["failure", txn.failure]] as const) {
    if (ops.length > MAX_TXN_OPS) {
      throw new KvInputError(
        `Cannot run transaction: ${ops.length} ${branch} operations, at most ${MAX_TXN_OPS}`,
      );
    }
    ops.forEach((op, i) => within(`${branch} operation ${i}`, () => checkOp(op)));
  }
}

function within(where: string, check: () => void): void {
  try {
    check();
  } catch (err) {
    if (!(err instanceof KvInputError)) throw err;
    throw new KvInputError(`Cannot run transaction: ${where}: ${err.message}`);
  }
}

function checkOp(op: RequestOp): void {
  switch (op.op.case) {
    case "put":
      validateKey(op.op.value.key);
      validateValue(op.op.value.value);
      validateLeaseId(op.op.value.lease);
      if (op.op.value.session !== undefined) throw sessionInside();
      return;
    case "delete":
      validateKey(op.op.value.key);
      if (op.op.value.session !== undefined) throw sessionInside();
      return;
    case "get":
      validateKey(op.op.value.key);
      return;
    case "range":
      checkRangeQuery(rangeQueryOf(op.op.value));
      return;
    case undefined:
      throw new KvInputError("no operation is set");
  }
}

function sessionInside(): KvInputError {
  return new KvInputError("an operation has its own session; set the Txn's session instead");
}

/** Whether `compare` holds for a key whose record is `record` (undefined: no key). */
export function compareHolds(record: KeyRecord | undefined, compare: Compare): boolean {
  const mod = BigInt(record?.modIndex ?? 0);
  const check = compare.check;
  switch (check.case) {
    case "valueEquals":
      return record !== undefined && bytesEqual(record.value, check.value);
    case "exists":
      return (record !== undefined) === check.value;
    case "modIndexEquals":
      return mod === check.value;
    case "modIndexLess":
      return mod < check.value;
    case "modIndexGreater":
      return mod > check.value;
    case undefined:
      // Refused before proposing; a committed one fails the same way on every node.
      return false;
  }
}

/**
 * Applies `txn` at `index` to `target`; if the branch that runs puts a key with a
 * lease that does not exist, applies nothing and says so.
 */
export function applyTxn(
  target: TxnTarget,
  index: number,
  txn: TxnRequest,
): TxnResult | LeaseNotFoundResult {
  const succeeded = txn.compares.every((c) => compareHolds(target.record(c.key), c));
  const branch = succeeded ? txn.success : txn.failure;
  for (const op of branch) {
    if (op.op.case !== "put" || op.op.value.lease === 0n) continue;
    const id = op.op.value.lease;
    // An id past 2^53 cannot exist: not found, never a throw on apply.
    const lease = id > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(id);
    if (!target.hasLease(lease)) return { kind: "lease_not_found", id: Math.max(lease, 0) };
  }
  const responses = branch.map((op) => applyOp(target, index, op));
  const response = toBinary(
    TxnResponseSchema,
    create(TxnResponseSchema, { succeeded, responses, index: BigInt(index) }),
  );
  return { kind: "txn", succeeded, response };
}

function applyOp(target: TxnTarget, index: number, op: RequestOp): ResponseOp {
  switch (op.op.case) {
    case "put": {
      // Decoded bytes are views into the entry: the store keeps its own copy.
      target.write(index, op.op.value.key, op.op.value.value.slice(), Number(op.op.value.lease));
      return create(ResponseOpSchema, { op: { case: "put", value: { index: BigInt(index) } } });
    }
    case "delete": {
      const deleted = target.remove(index, op.op.value.key);
      return create(ResponseOpSchema, { op: { case: "delete", value: { deleted } } });
    }
    case "get": {
      const r = target.record(op.op.value.key);
      const value = create(GetResponseSchema, {
        found: r !== undefined,
        value: r?.value ?? new Uint8Array(),
        createIndex: BigInt(r?.createIndex ?? 0),
        modIndex: BigInt(r?.modIndex ?? 0),
        lease: BigInt(r?.lease ?? 0),
      });
      return create(ResponseOpSchema, { op: { case: "get", value } });
    }
    case "range": {
      const page = target.range(rangeQueryOf(op.op.value));
      return create(ResponseOpSchema, {
        op: { case: "range", value: rangeResponseOf(page, index) },
      });
    }
    case undefined:
      return create(ResponseOpSchema, {});
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return false;
  }
  return true;
}
