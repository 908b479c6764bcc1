/**
 * The sorted index of the key-value store: a B+ tree (npm `sorted-btree`) from key to
 * record, in the order {@link compareKeys} defines. A Range is a walk from one key in
 * it, O(log n + k), so paging through 100,000 keys never sorts the whole map per call
 * (etcd keeps its keys in a B-tree for the same reason: `mvcc/index.go`).
 *
 * @module
 */

import sortedBtree from "sorted-btree";

// sorted-btree is CommonJS with its class on `exports.default`; Deno hands a default
// import the whole `module.exports`, so the class is one level down.
const BTree = sortedBtree.default;

/** A sorted map from keys to `V`. */
export type KeyTree<V> = InstanceType<typeof BTree<string, V>>;

/** An empty {@link KeyTree} ordered by {@link compareKeys}. */
export function newKeyTree<V>(): KeyTree<V> {
  return new BTree<string, V>(undefined, compareKeys);
}

/**
 * Orders keys by their UTF-8 bytes (that is, by Unicode code point), the order etcd
 * and every byte-oriented client use. JavaScript's `<` compares UTF-16 code units,
 * which puts U+E000..U+FFFF after the surrogate pairs of U+10000 and above; shifting
 * code units at the first difference corrects that without encoding the keys.
 */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** Surrogates (code points past U+FFFF) rank above U+E000..U+FFFF, as in UTF-8. */
function codePointRank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit < 0xe000 ? unit + 0x2000 : unit - 0x800;
}

/**
 * What the store keeps per key. Records are immutable once stored: a write stores a
 * new record, so an exported state or a range result can share them safely.
 */
export interface KeyRecord {
  /** The value; the store never mutates it, and copies it for any caller. */
  readonly value: Uint8Array;
  /** The log index of the write that created the key (since it last did not exist). */
  readonly createIndex: number;
  /** The log index of the key's last change. */
  readonly modIndex: number;
  /** The lease the key is attached to, or 0 for none. */
  readonly lease: number;
}
