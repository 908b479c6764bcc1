/**
 * Seeded byte mutations for fuzzing: the usual dumb-but-effective set (flip a
 * bit, set a byte, insert, delete, truncate, duplicate or splice a range, write an
 * interesting varint), applied one to a few at a time, plus purely random bytes.
 * Every choice comes from the {@link Random} it is given, so a seed replays a run.
 *
 * @module
 */

import { type Random, randomInt } from "../../src/raft/rand.ts";

/** Varints worth writing into a protobuf: zero, small, 2^53 - 1 and 2^53, 2^63, 2^64 - 1, ... */
const INTERESTING: readonly bigint[] = [
  0n,
  1n,
  2n,
  7n,
  99n,
  127n,
  128n,
  2n ** 31n,
  2n ** 32n - 1n,
  2n ** 53n - 1n,
  2n ** 53n,
  2n ** 63n,
  2n ** 64n - 1n,
];

/** The protobuf varint encoding of `v` (`v` in [0, 2^64)). */
export function varint(v: bigint): Uint8Array {
  const out: number[] = [];
  let x = v;
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x > 0n) b |= 0x80;
    out.push(b);
  } while (x > 0n);
  return new Uint8Array(out);
}

/** `n` random bytes. */
export function randomBytes(random: Random, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = randomInt(random, 0, 256);
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The mutation operators, by name (the name goes into failure reports). */
export type Mutation =
  | "flip"
  | "set"
  | "insert"
  | "delete"
  | "truncate"
  | "duplicate"
  | "splice"
  | "varint";

const MUTATIONS: readonly Mutation[] = [
  "flip",
  "set",
  "insert",
  "delete",
  "truncate",
  "duplicate",
  "splice",
  "varint",
];

/** Applies one mutation to `input` (never modified); `other` feeds splices. */
export function mutateOnce(
  random: Random,
  input: Uint8Array,
  other: Uint8Array,
): { bytes: Uint8Array; mutation: Mutation } {
  const mutation = MUTATIONS[randomInt(random, 0, MUTATIONS.length)]!;
  const n = input.length;
  const at = randomInt(random, 0, n + 1);
  const b = input.slice();
  switch (mutation) {
    case "flip":
      if (n > 0) b[at % n]! ^= 1 << randomInt(random, 0, 8);
      return { bytes: b, mutation };
    case "set":
      if (n > 0) b[at % n] = randomInt(random, 0, 256);
      return { bytes: b, mutation };
    case "insert":
      return {
        bytes: concat(
          b.subarray(0, at),
          randomBytes(random, randomInt(random, 1, 9)),
          b.subarray(at),
        ),
        mutation,
      };
    case "delete": {
      const len = randomInt(random, 1, 9);
      return { bytes: concat(b.subarray(0, at), b.subarray(Math.min(n, at + len))), mutation };
    }
    case "truncate":
      return { bytes: b.subarray(0, at), mutation };
    case "duplicate": {
      const len = randomInt(random, 1, Math.max(2, n - at + 1));
      const part = b.subarray(at, at + len);
      return { bytes: concat(b.subarray(0, at), part, part, b.subarray(at + len)), mutation };
    }
    case "splice": {
      const from = randomInt(random, 0, other.length + 1);
      const len = randomInt(random, 0, other.length - from + 1);
      const cut = randomInt(random, at, n + 1);
      return {
        bytes: concat(b.subarray(0, at), other.subarray(from, from + len), b.subarray(cut)),
        mutation,
      };
    }
    case "varint": {
      // Overwrite what follows `at` with an interesting varint (a field value, or a length).
      const v = varint(INTERESTING[randomInt(random, 0, INTERESTING.length)]!);
      return {
        bytes: concat(b.subarray(0, at), v, b.subarray(Math.min(n, at + v.length))),
        mutation,
      };
    }
  }
}

/** One to four mutations in a row; returns the bytes and the operators applied. */
export function mutate(
  random: Random,
  input: Uint8Array,
  other: Uint8Array,
): { bytes: Uint8Array; mutations: Mutation[] } {
  let bytes = input;
  const mutations: Mutation[] = [];
  const rounds = randomInt(random, 1, 5);
  for (let i = 0; i < rounds; i++) {
    const r = mutateOnce(random, bytes, other);
    bytes = r.bytes;
    mutations.push(r.mutation);
  }
  return { bytes, mutations };
}

/** Hex of bytes, for failure reports (long inputs are elided in the middle). */
export function hex(b: Uint8Array, max = 512): string {
  const all = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return all.length <= 2 * max
    ? all
    : `${all.slice(0, max)}...(${b.length} bytes)...${all.slice(-max)}`;
}
