/**
 * Range queries over the store's sorted index: the keys in `[start, end)` or under a
 * prefix, in key order ({@link compareKeys}), a page at a time.
 *
 * A page ends after `limit` keys or once it holds about `maxBytes` of keys and values,
 * whichever comes first; `more` then says keys remain, and the next page starts
 * strictly after the last key returned (the continuation). Each page is read at its
 * own applied index: the store keeps one version of each key (no MVCC, unlike etcd),
 * so a paged read is not one snapshot, but it returns every key that exists
 * throughout the paging exactly once, in order, because pages never overlap.
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import {
  type RangeRequest,
  type RangeResponse,
  RangeResponseSchema,
} from "../gen/raftkv/v1/kv_pb.ts";
import { compareKeys, type KeyRecord, type KeyTree } from "./key_index.ts";
import { KvInputError, validateKey } from "./validate.ts";

/** Which keys to read, and how much of them. */
export interface RangeQuery {
  /** The first key (inclusive); "" reads from the first key. Not with `prefix`. */
  readonly start?: string;
  /** The end (exclusive); "" reads to the last key. Not with `prefix`. */
  readonly end?: string;
  /** Only keys that start with this; "" means no prefix. */
  readonly prefix?: string;
  /** The continuation: only keys strictly after this one; "" for the first page. */
  readonly after?: string;
  /** At most this many keys; 0 for no limit but the byte budget. */
  readonly limit?: number;
  /** Return keys and indexes but no values. */
  readonly keysOnly?: boolean;
  /** Return no keys, only how many there are. */
  readonly countOnly?: boolean;
  /** A page stops once its keys and values reach this many bytes (at least one key). */
  readonly maxBytes?: number;
}

/** One key as a range returns it. */
export interface KeyValue {
  readonly key: string;
  /** The value (shared with the store, which never mutates it: copy before changing). */
  readonly value: Uint8Array;
  readonly createIndex: number;
  readonly modIndex: number;
  readonly lease: number;
}

/** A page of a range. */
export interface RangeResult {
  /** The keys of this page, in key order (none with `countOnly`). */
  readonly kvs: KeyValue[];
  /** With `countOnly`, the number of keys in the range; otherwise `kvs.length`. */
  readonly count: number;
  /** True if keys remain after this page (continue after the last key). */
  readonly more: boolean;
}

/** The byte budget of a page when the query sets none: well below gRPC's 4 MiB message. */
export const DEFAULT_PAGE_BYTES = 2 * 1024 * 1024;

const EMPTY = new Uint8Array();

/**
 * Checks a query the way the API requires: a prefix excludes start and end, a bounded
 * range must not be empty by construction (end after start), keys are valid keys, the
 * limit is a non-negative integer.
 *
 * @throws {KvInputError} naming the rule broken.
 */
export function checkRangeQuery(q: RangeQuery): void {
  const start = q.start ?? "";
  const end = q.end ?? "";
  const prefix = q.prefix ?? "";
  if (prefix !== "" && (start !== "" || end !== "")) {
    throw new KvInputError("Cannot range: give either prefix or start/end, not both");
  }
  for (
    const [name, key] of [["start", start], ["end", end], ["prefix", prefix], [
      "continuation",
      q.after ?? "",
    ]]
  ) {
    if (key === "") continue;
    try {
      validateKey(key!);
    } catch (err) {
      throw new KvInputError(
        `Cannot range: ${name} ${(err as Error).message.replace(/^Cannot use key: /, "")}`,
      );
    }
  }
  if (start !== "" && end !== "" && compareKeys(end, start) <= 0) {
    throw new KvInputError(
      `Cannot range: end ${JSON.stringify(end)} must sort after start ${JSON.stringify(start)}`,
    );
  }
  const limit = q.limit ?? 0;
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw new KvInputError(`Cannot range: limit ${limit} is not a non-negative integer`);
  }
}

/**
 * Reads a page of `q` from `tree`: a walk from the first key in range, stopping at
 * the range's end, the limit or the byte budget. O(log n + keys read).
 */
export function rangeOf(tree: KeyTree<KeyRecord>, q: RangeQuery): RangeResult {
  const prefix = q.prefix ?? "";
  const start = prefix !== "" ? prefix : (q.start ?? "");
  const end = q.end ?? "";
  const after = q.after ?? "";
  const from = after !== "" && compareKeys(after, start) >= 0 ? after : start;
  const inRange = (key: string): boolean =>
    prefix !== "" ? key.startsWith(prefix) : end === "" || compareKeys(key, end) < 0;
  const limit = q.limit ?? 0;
  const maxBytes = q.maxBytes ?? DEFAULT_PAGE_BYTES;
  const kvs: KeyValue[] = [];
  let count = 0;
  let bytes = 0;
  let more = false;
  for (const [key, record] of tree.entries(from === "" ? undefined : from)) {
    if (after !== "" && key === after) continue;
    if (!inRange(key)) break;
    if (q.countOnly) {
      count++;
      continue;
    }
    if ((limit > 0 && kvs.length >= limit) || (kvs.length > 0 && bytes >= maxBytes)) {
      more = true;
      break;
    }
    const value = q.keysOnly ? EMPTY : record.value;
    kvs.push({
      key,
      value,
      createIndex: record.createIndex,
      modIndex: record.modIndex,
      lease: record.lease,
    });
    bytes += key.length * 3 + value.length + 32;
  }
  return { kvs, count: q.countOnly ? count : kvs.length, more };
}

/** kv.proto's RangeRequest as a query (unchecked: see {@link checkRangeQuery}). */
export function rangeQueryOf(req: RangeRequest): RangeQuery {
  return {
    start: req.start,
    end: req.end,
    prefix: req.prefix,
    after: req.continuation,
    limit: req.limit,
    keysOnly: req.keysOnly,
    countOnly: req.countOnly,
  };
}

/** A page as kv.proto's RangeResponse, read at applied index `index`. */
export function rangeResponseOf(page: RangeResult, index: number): RangeResponse {
  const last = page.kvs[page.kvs.length - 1];
  return create(RangeResponseSchema, {
    kvs: page.kvs.map((kv) => ({
      key: kv.key,
      value: kv.value,
      createIndex: BigInt(kv.createIndex),
      modIndex: BigInt(kv.modIndex),
      lease: BigInt(kv.lease),
    })),
    count: BigInt(page.count),
    more: page.more,
    continuation: page.more && last !== undefined ? last.key : "",
    index: BigInt(index),
  });
}
