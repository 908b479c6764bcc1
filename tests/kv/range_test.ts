/**
 * Range over the store's sorted index: key order, bounds, prefixes, pages and their
 * continuation, keys_only and count_only, the byte budget, and bad queries refused by
 * name; checked against a plain sorted model over a seeded-random history.
 *
 * @module
 */

import assert from "node:assert/strict";
import { compareKeys } from "../../src/kv/key_index.ts";
import { checkRangeQuery, type RangeQuery } from "../../src/kv/range.ts";
import { KvStore } from "../../src/kv/store.ts";
import { KvInputError } from "../../src/kv/validate.ts";
import { randomInt, seededRandom } from "../../src/raft/rand.ts";
import { del, put } from "./helpers.ts";

function storeWith(...entries: Uint8Array[]): KvStore {
  const store = new KvStore();
  entries.forEach((data, i) => store.apply(i + 1, data));
  return store;
}

const keysOf = (store: KvStore, q: RangeQuery): string[] => store.range(q).kvs.map((kv) => kv.key);

Deno.test("keys come in UTF-8 byte order, not UTF-16 code unit order", () => {
  // U+FF5E sorts below U+1F600 in UTF-8 (EF BD 9E < F0 9F 98 80), above it in UTF-16.
  const keys = ["b", "a", "\u{1F600}", "\uFF5E", "ab", "A", "é"];
  const store = storeWith(...keys.map((k) => put(k, k)));
  const expected = [...keys].sort((x, y) =>
    Buffer.compare(Buffer.from(x, "utf8"), Buffer.from(y, "utf8"))
  );
  assert.deepEqual(keysOf(store, {}), expected);
  assert.deepEqual(expected.slice(-2), ["\uFF5E", "\u{1F600}"]);
  assert.ok(compareKeys("\uFF5E", "\u{1F600}") < 0);
});

Deno.test("a range is [start, end); a prefix is the keys that start with it", () => {
  const store = storeWith(
    ...["a", "app", "apple", "apq", "b", "ba", "c"].map((k) => put(k, "v")),
  );
  assert.deepEqual(keysOf(store, { start: "app", end: "b" }), ["app", "apple", "apq"]);
  assert.deepEqual(keysOf(store, { start: "b" }), ["b", "ba", "c"]);
  assert.deepEqual(keysOf(store, { end: "apple" }), ["a", "app"]);
  assert.deepEqual(keysOf(store, { prefix: "app" }), ["app", "apple"]);
  assert.deepEqual(keysOf(store, { prefix: "zz" }), []);
  assert.deepEqual(keysOf(store, { start: "bb", end: "bc" }), []);
});

Deno.test("pages: limit, more, and a continuation that returns each key once", () => {
  const store = storeWith(...Array.from({ length: 10 }, (_, i) => put(`k${i}`, `v${i}`)));
  const first = store.range({ prefix: "k", limit: 4 });
  assert.deepEqual(first.kvs.map((kv) => kv.key), ["k0", "k1", "k2", "k3"]);
  assert.equal(first.more, true);
  const second = store.range({ prefix: "k", limit: 4, after: "k3" });
  assert.deepEqual(second.kvs.map((kv) => kv.key), ["k4", "k5", "k6", "k7"]);
  const last = store.range({ prefix: "k", limit: 4, after: "k7" });
  assert.deepEqual(last.kvs.map((kv) => kv.key), ["k8", "k9"]);
  assert.equal(last.more, false, "the last page says no more");
  // Exactly a page's worth left: no more, and no empty page after it.
  assert.equal(store.range({ prefix: "k", limit: 2, after: "k7" }).more, false);
  // A continuation key that was deleted meanwhile still places the next page.
  store.apply(11, del("k3"));
  assert.deepEqual(keysOf(store, { prefix: "k", limit: 2, after: "k3" }), ["k4", "k5"]);
  // A continuation before start does not widen the range.
  assert.deepEqual(keysOf(store, { start: "k5", after: "a" }), ["k5", "k6", "k7", "k8", "k9"]);
});

Deno.test("each key carries its create and mod index, and its value unless keys_only", () => {
  const store = storeWith(put("a", "1"), put("b", "2"), put("a", "3"), del("b"), put("b", "4"));
  const [a, b] = store.range({}).kvs;
  assert.deepEqual(
    { key: a!.key, createIndex: a!.createIndex, modIndex: a!.modIndex },
    { key: "a", createIndex: 1, modIndex: 3 },
  );
  assert.deepEqual(new TextDecoder().decode(a!.value), "3");
  assert.deepEqual({ createIndex: b!.createIndex, modIndex: b!.modIndex }, {
    createIndex: 5,
    modIndex: 5,
  }, "a key deleted and put again is created anew");
  const keysOnly = store.range({ keysOnly: true }).kvs;
  assert.deepEqual(keysOnly.map((kv) => kv.value.length), [0, 0]);
  assert.deepEqual(keysOnly.map((kv) => kv.modIndex), [3, 5]);
});

Deno.test("count_only counts the range without returning keys, ignoring the byte budget", () => {
  const store = storeWith(...Array.from({ length: 50 }, (_, i) => put(`k${i}`, "x".repeat(100))));
  const counted = store.range({ prefix: "k", countOnly: true, maxBytes: 10 });
  assert.deepEqual({ count: counted.count, kvs: counted.kvs.length, more: counted.more }, {
    count: 50,
    kvs: 0,
    more: false,
  });
  assert.equal(store.range({ start: "k2", end: "k3", countOnly: true }).count, 11);
});

Deno.test("a page stops at the byte budget, but always holds at least one key", () => {
  const store = storeWith(...Array.from({ length: 10 }, (_, i) => put(`k${i}`, "x".repeat(1000))));
  const page = store.range({ maxBytes: 2500 });
  assert.equal(page.kvs.length, 3);
  assert.equal(page.more, true);
  assert.equal(store.range({ maxBytes: 1 }).kvs.length, 1);
});

Deno.test("bad queries are refused by name", () => {
  const bad: [RangeQuery, RegExp][] = [
    [{ prefix: "a", start: "b" }, /either prefix or start\/end/],
    [{ start: "b", end: "a" }, /end "a" must sort after start "b"/],
    [{ start: "a", end: "a" }, /must sort after start/],
    [{ limit: -1 }, /limit -1/],
    [{ start: "x".repeat(5000) }, /start 5000 bytes is over/],
    [{ after: "\uD800" }, /continuation key is not valid UTF-8/],
  ];
  for (const [q, message] of bad) {
    assert.throws(
      () => checkRangeQuery(q),
      (e) => e instanceof KvInputError && message.test(e.message),
      JSON.stringify(q),
    );
  }
  checkRangeQuery({ start: "a", end: "b", limit: 10, after: "a" });
});

Deno.test("ranges match a sorted model over a seeded-random history, paged any way", () => {
  const random = seededRandom(1313);
  const store = new KvStore();
  const model = new Map<string, string>();
  const alphabet = ["a", "b", "é", "\u{1F600}", "\uFF5E", "/"];
  const randomKey = () =>
    Array.from(
      { length: randomInt(random, 1, 4) },
      () => alphabet[randomInt(random, 0, alphabet.length)],
    ).join("");
  for (let i = 1; i <= 2000; i++) {
    const key = randomKey();
    if (random() < 0.7) {
      store.apply(i, put(key, `v${i}`));
      model.set(key, `v${i}`);
    } else {
      store.apply(i, del(key));
      model.delete(key);
    }
  }
  const sorted = [...model.keys()].sort(compareKeys);
  for (let round = 0; round < 200; round++) {
    let q: RangeQuery;
    let expected: string[];
    if (random() < 0.5) {
      const prefix = randomKey().slice(0, randomInt(random, 1, 3));
      q = { prefix };
      expected = sorted.filter((k) => k.startsWith(prefix));
    } else {
      const [x, y] = [randomKey(), randomKey()].sort(compareKeys);
      if (x === y) continue;
      q = { start: x, end: y };
      expected = sorted.filter((k) => compareKeys(k, x!) >= 0 && compareKeys(k, y!) < 0);
    }
    const limit = randomInt(random, 1, 20);
    const got: string[] = [];
    let after = "";
    for (;;) {
      const page = store.range({ ...q, limit, after });
      got.push(...page.kvs.map((kv) => kv.key));
      if (!page.more) break;
      after = page.kvs[page.kvs.length - 1]!.key;
    }
    assert.deepEqual(got, expected, JSON.stringify({ q, limit }));
    assert.equal(store.range({ ...q, countOnly: true }).count, expected.length);
    for (const k of got) assert.equal(new TextDecoder().decode(store.get(k)!), model.get(k));
  }
});
