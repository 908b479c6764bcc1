/**
 * The simulated nodes' state machine: a hash chain over the entries applied, so
 * that states can be compared across nodes and across snapshot restores.
 *
 * The state after applying index `i` is `(i, h_i)`, with
 * `h_i = mix(h_{i-1}, i, term_i, data_i)` and `h_0 = 0`. Two nodes at the same
 * index have the same hash exactly when (barring a collision, about one in 2^53)
 * they applied the same entries, no matter whether they got there by applying
 * them one by one or by restoring a snapshot taken by another node. A snapshot's
 * data is that state, `(index, hash)`, as 16 bytes.
 *
 * The mix is two 32-bit multiplicative lanes (FNV-1a and a Murmur-style one)
 * folded into one 53-bit number: no cryptography is needed to catch divergence.
 *
 * @module
 */

import type { AppliedEntry } from "./invariants.ts";

/** A state machine's state: the index applied last and the hash chain up to it. */
export interface MachineState {
  readonly index: number;
  readonly hash: number;
}

/** The state of a state machine that has applied nothing. */
export const INITIAL_STATE: MachineState = { index: 0, hash: 0 };

/** Folds the 32-bit word `x` into both lanes. */
function word(a: number, b: number, x: number): [number, number] {
  for (let k = 0; k < 4; k++) {
    const byte = (x >>> (8 * k)) & 0xff;
    a = Math.imul(a ^ byte, 0x01000193);
    b = Math.imul(b ^ byte, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return [a, b];
}

/** The state after applying `e` to `s`, whose index must be `e.index - 1`. */
export function applyEntry(s: MachineState, e: AppliedEntry): MachineState {
  if (e.index !== s.index + 1) {
    throw new Error(`Cannot apply index ${e.index} to a state machine at index ${s.index}`);
  }
  // Seed the lanes from the previous hash (53 bits: 32 high, 21 low).
  let a = (Math.floor(s.hash / 2097152) ^ 0x811c9dc5) | 0;
  let b = ((s.hash % 2097152) ^ 0x9747b28c) | 0;
  [a, b] = word(a, b, e.index);
  [a, b] = word(a, b, e.index / 4294967296);
  [a, b] = word(a, b, e.term);
  [a, b] = word(a, b, e.data.length);
  for (let i = 0; i < e.data.length; i++) {
    const byte = e.data[i]!;
    a = Math.imul(a ^ byte, 0x01000193);
    b = Math.imul(b ^ byte, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return { index: e.index, hash: (a >>> 0) * 2097152 + (b >>> 11) };
}

/** A state as snapshot data: the index and the hash, two float64s (exact below 2^53). */
export function encodeState(s: MachineState): Uint8Array {
  const bytes = new Uint8Array(16);
  const view = new DataView(bytes.buffer);
  view.setFloat64(0, s.index);
  view.setFloat64(8, s.hash);
  return bytes;
}

/** Reads back what {@link encodeState} wrote; throws on anything else. */
export function decodeState(data: Uint8Array): MachineState {
  if (data.length !== 16) {
    throw new Error(`Cannot decode a state machine snapshot of ${data.length} bytes (want 16)`);
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const index = view.getFloat64(0);
  const hash = view.getFloat64(8);
  if (!Number.isSafeInteger(index) || index < 0 || !Number.isSafeInteger(hash) || hash < 0) {
    throw new Error(`Cannot decode a state machine snapshot: index ${index}, hash ${hash}`);
  }
  return { index, hash };
}

/** A hash as 14 hex digits, for traces and failure messages. */
export function showHash(hash: number): string {
  return hash.toString(16).padStart(14, "0");
}
