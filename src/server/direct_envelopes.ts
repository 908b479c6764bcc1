/**
 * The gRPC envelopes of the unary fast lane's two most frequent answers,
 * `PutResponse` and `GetResponse`, encoded straight into one buffer of their size.
 *
 * Why: protobuf-es's `toBinary` writes into a buffer that starts at 128 bytes and
 * doubles as it fills (a get of a 256-byte value allocates 128, 256 and 512 bytes
 * and copies twice), then copies what it wrote out of it, and the envelope copies
 * it once more behind its 5-byte prefix: five allocations and three copies per
 * answer, about 1.2 KB of garbage per get, and `ensureCapacity` was the busiest
 * protobuf-es function in the leader's CPU profile (issue 11). Here the size is
 * counted first and every byte written once.
 *
 * The bytes are protobuf-es's own (proto3: fields in number order, a field at its
 * zero value left out; varints of the least bytes): tests/server/direct_envelopes_test.ts
 * compares them with `toBinary` on many messages. A message this file does not
 * encode (another type, unknown fields, an index past 2^53) gets `undefined`:
 * the caller encodes it as before.
 *
 * @module
 */

import { type DescMessage, ScalarType } from "@bufbuild/protobuf";
import {
  type GetResponse,
  GetResponseSchema,
  type PutResponse,
  PutResponseSchema,
} from "../gen/raftkv/v1/kv_pb.ts";

/**
 * The fields this file writes, as `number name type` per field. A message whose
 * schema (from proto/raftkv/v1/kv.proto) has other fields is left to the library:
 * a field added to the proto can never be dropped from an answer here, and
 * tests/server/direct_envelopes_test.ts fails until this file learns it.
 */
export const KNOWN_FIELDS: Readonly<Record<string, string>> = {
  [PutResponseSchema.typeName]: "1 index uint64",
  [GetResponseSchema.typeName]: "1 found bool, 2 value bytes, 3 create_index uint64, " +
    "4 mod_index uint64, 5 lease uint64",
};

/** `schema`'s fields in the form of {@link KNOWN_FIELDS}. */
export function fieldsOf(schema: DescMessage): string {
  return schema.fields.map((f) =>
    `${f.number} ${f.name} ${
      f.fieldKind === "scalar" ? ScalarType[f.scalar].toLowerCase() : f.fieldKind
    }`
  ).join(", ");
}

/** The type names this file encodes (a message's `$typeName`), if their schemas are as it knows them. */
const PUT_RESPONSE = encodable(PutResponseSchema);
const GET_RESPONSE = encodable(GetResponseSchema);

function encodable(schema: DescMessage): string | undefined {
  return fieldsOf(schema) === KNOWN_FIELDS[schema.typeName] ? schema.typeName : undefined;
}

/** The prefix of an envelope: a flags byte and the message's length (4 bytes, big-endian). */
const PREFIX_BYTES = 5;

/** Wire tags (field number << 3 | wire type): varint 0, length-delimited 2. */
const TAG_PUT_INDEX = (1 << 3) | 0;
const TAG_GET_FOUND = (1 << 3) | 0;
const TAG_GET_VALUE = (2 << 3) | 2;
const TAG_GET_CREATE_INDEX = (3 << 3) | 0;
const TAG_GET_MOD_INDEX = (4 << 3) | 0;
const TAG_GET_LEASE = (5 << 3) | 0;

/** The largest uint64 encoded here: past it a bigint loses nothing, but a Number would. */
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * The envelope (flags 0: not compressed) of `message`, when it is a `PutResponse`
 * or a `GetResponse` this file encodes and its encoding is at most `maxBytes`
 * long; otherwise undefined.
 */
export function directEnvelope(message: unknown, maxBytes: number): Uint8Array | undefined {
  const m = message as { readonly $typeName?: string; readonly $unknown?: readonly unknown[] };
  if (m.$unknown !== undefined && m.$unknown.length > 0) return undefined;
  if (m.$typeName === undefined) return undefined;
  if (m.$typeName === PUT_RESPONSE) return putEnvelope(message as PutResponse, maxBytes);
  if (m.$typeName === GET_RESPONSE) return getEnvelope(message as GetResponse, maxBytes);
  return undefined;
}

function putEnvelope(m: PutResponse, maxBytes: number): Uint8Array | undefined {
  if (!safe(m.index)) return undefined;
  const index = Number(m.index);
  const size = index === 0 ? 0 : 1 + varintSize(index);
  if (size > maxBytes) return undefined;
  const out = envelope(size);
  if (index !== 0) {
    out[PREFIX_BYTES] = TAG_PUT_INDEX;
    writeVarint(out, PREFIX_BYTES + 1, index);
  }
  return out;
}

function getEnvelope(m: GetResponse, maxBytes: number): Uint8Array | undefined {
  if (!safe(m.createIndex) || !safe(m.modIndex) || !safe(m.lease)) return undefined;
  const createIndex = Number(m.createIndex);
  const modIndex = Number(m.modIndex);
  const lease = Number(m.lease);
  const valueLength = m.value.length;
  let size = 0;
  if (m.found) size += 2;
  if (valueLength > 0) size += 1 + varintSize(valueLength) + valueLength;
  if (createIndex !== 0) size += 1 + varintSize(createIndex);
  if (modIndex !== 0) size += 1 + varintSize(modIndex);
  if (lease !== 0) size += 1 + varintSize(lease);
  if (size > maxBytes) return undefined;
  const out = envelope(size);
  let at = PREFIX_BYTES;
  if (m.found) {
    out[at++] = TAG_GET_FOUND;
    out[at++] = 1;
  }
  if (valueLength > 0) {
    out[at++] = TAG_GET_VALUE;
    at = writeVarint(out, at, valueLength);
    out.set(m.value, at);
    at += valueLength;
  }
  if (createIndex !== 0) {
    out[at++] = TAG_GET_CREATE_INDEX;
    at = writeVarint(out, at, createIndex);
  }
  if (modIndex !== 0) {
    out[at++] = TAG_GET_MOD_INDEX;
    at = writeVarint(out, at, modIndex);
  }
  if (lease !== 0) {
    out[at++] = TAG_GET_LEASE;
    at = writeVarint(out, at, lease);
  }
  if (at !== out.length) {
    throw new Error(
      `invariant: a GetResponse envelope of ${out.length} bytes was written to ${at}`,
    );
  }
  return out;
}

/** Whether a uint64 field's value is a safe integer (a Number holds it exactly). */
function safe(v: bigint): boolean {
  return v >= 0n && v <= MAX_SAFE;
}

/** A buffer for an envelope of a `size`-byte message, its prefix written. */
function envelope(size: number): Uint8Array {
  const out = new Uint8Array(PREFIX_BYTES + size);
  // out[0] = 0: flags, not compressed.
  out[1] = (size >>> 24) & 0xff;
  out[2] = (size >>> 16) & 0xff;
  out[3] = (size >>> 8) & 0xff;
  out[4] = size & 0xff;
  return out;
}

/** Bytes of the varint of `n` (a safe non-negative integer). */
function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    size++;
  }
  return size;
}

/** Writes the varint of `n` (a safe non-negative integer) at `at`; returns where it ends. */
function writeVarint(out: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[at++] = n;
  return at;
}
