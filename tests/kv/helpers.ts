/**
 * Shared helpers for the key-value tests: building encoded commands and byte strings.
 *
 * @module
 */

import { fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import {
  type TxnRequestSchema,
  type TxnResponse,
  TxnResponseSchema,
} from "../../src/gen/raftkv/v1/kv_pb.ts";
import { type ApplyResult, encodeCommand } from "../../src/kv/mod.ts";

const encoder = new TextEncoder();

/** The UTF-8 bytes of `s`. */
export function bytes(s: string): Uint8Array {
  return encoder.encode(s);
}

/** The entry data of a put. */
export function put(key: string, value: Uint8Array | string): Uint8Array {
  const v = typeof value === "string" ? bytes(value) : value;
  return encodeCommand({ op: { case: "put", value: { key, value: v } } });
}

/** The entry data of a delete. */
export function del(key: string): Uint8Array {
  return encodeCommand({ op: { case: "delete", value: { key } } });
}

/** The entry data of a compare-and-swap; `expected` undefined means "must be absent". */
export function cas(
  key: string,
  expected: Uint8Array | string | undefined,
  value: Uint8Array | string,
): Uint8Array {
  const e = typeof expected === "string" ? bytes(expected) : expected;
  const v = typeof value === "string" ? bytes(value) : value;
  return encodeCommand({
    op: {
      case: "compareAndSwap",
      value: { key, value: v, ...(e === undefined ? {} : { expected: e }) },
    },
  });
}

/** The data of a no-op entry. */
export const NOOP: Uint8Array = new Uint8Array();

/** The entry data of a transaction (kv.proto's TxnRequest, in a Command). */
export function txn(
  request: MessageInitShape<typeof TxnRequestSchema>,
  session?: { id: number; sequence: number },
): Uint8Array {
  return encodeCommand({
    sessionId: BigInt(session?.id ?? 0),
    sequence: BigInt(session?.sequence ?? 0),
    op: { case: "txn", value: request },
  });
}

/** The decoded TxnResponse of a transaction's result. */
export function txnResponse(result: ApplyResult): TxnResponse {
  if (result.kind !== "txn") throw new Error(`expected a txn result, got ${result.kind}`);
  return fromBinary(TxnResponseSchema, result.response);
}
