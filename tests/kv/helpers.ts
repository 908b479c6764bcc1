/**
 * Shared helpers for the key-value tests: building encoded commands and byte strings.
 *
 * @module
 */

import { encodeCommand } from "../../src/kv/mod.ts";

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
