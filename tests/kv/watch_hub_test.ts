/**
 * The watch hub: changes in log order from now or from an index, filters, progress
 * (throughIndex), the bounded history (compacted before it, slow when a watcher falls
 * out of it), a snapshot install cancelling watches, whole indexes per batch.
 *
 * @module
 */

import assert from "node:assert/strict";
import { KvStore } from "../../src/kv/store.ts";
import { type Watcher, WatchError, WatchHub } from "../../src/kv/watch_hub.ts";
import { del, put, txn } from "./helpers.ts";
import { bytes } from "./helpers.ts";

function setup(limits = { historyEvents: 1000, historyBytes: 1 << 20 }) {
  const store = new KvStore();
  const hub = new WatchHub(store, limits);
  let index = store.appliedIndex;
  const apply = (...entries: Uint8Array[]) => entries.forEach((e) => store.apply(++index, e));
  return { store, hub, apply };
}

const seen = (w: Watcher) => w.take().events.map((e) => `${e.index}:${e.kind}:${e.key}`);

Deno.test("a watch from now sees each later matching change once, in log order", () => {
  const { hub, apply } = setup();
  apply(put("a/1", "x"));
  const w = hub.watch({ kind: "prefix", prefix: "a/" }, 0);
  assert.equal(w.nextIndex, 2);
  apply(put("a/2", "y"), put("b/1", "z"), del("a/1"), del("a/none"));
  assert.deepEqual(seen(w), ["2:put:a/2", "4:delete:a/1"]);
  assert.deepEqual(
    w.take(),
    { events: [], throughIndex: 5 },
    "progress: through the applied index",
  );
  apply(put("a/2", "again"));
  const batch = w.take();
  assert.deepEqual(
    batch.events.map((e) => [e.index, new TextDecoder().decode(e.value), e.createIndex]),
    [[
      6,
      "again",
      2,
    ]],
  );
});

Deno.test("a watch from an index replays the history held, then goes on live", () => {
  const { hub, apply } = setup();
  apply(put("k", "1"), put("k", "2"), put("other", "x"), put("k", "3"));
  const w = hub.watch({ kind: "key", key: "k" }, 2);
  apply(put("k", "4"));
  assert.deepEqual(seen(w), ["2:put:k", "4:put:k", "5:put:k"]);
});

Deno.test("key, prefix and range filters", () => {
  const { hub, apply } = setup();
  const key = hub.watch({ kind: "key", key: "b" }, 0);
  const range = hub.watch({ kind: "range", start: "b", end: "c" }, 0);
  const all = hub.watch({ kind: "range", start: "", end: "" }, 0);
  apply(put("a", ""), put("b", ""), put("ba", ""), put("c", ""));
  assert.deepEqual(seen(key), ["2:put:b"]);
  assert.deepEqual(seen(range), ["2:put:b", "3:put:ba"]);
  assert.equal(seen(all).length, 4);
});

Deno.test("a transaction's changes share its index and are never split across batches", () => {
  const { hub, apply } = setup();
  const w = hub.watch({ kind: "prefix", prefix: "" }, 0);
  const big = new Uint8Array(1000);
  apply(txn({
    success: Array.from({ length: 5 }, (_, i) => ({
      op: { case: "put" as const, value: { key: `t${i}`, value: big } },
    })),
  }));
  apply(put("after", big));
  const first = w.take(10); // a tiny budget: still one whole index
  assert.deepEqual(first.events.map((e) => e.index), [1, 1, 1, 1, 1]);
  assert.equal(first.throughIndex, 1);
  const second = w.take(10);
  assert.deepEqual(second.events.map((e) => e.key), ["after"]);
  assert.equal(second.throughIndex, 2);
});

Deno.test("a watch before the history held is refused, naming the oldest index", () => {
  const { hub, apply } = setup({ historyEvents: 3, historyBytes: 1 << 20 });
  for (let i = 0; i < 10; i++) apply(put("k", String(i)));
  assert.equal(hub.oldestIndex, 8);
  assert.throws(
    () => hub.watch({ kind: "key", key: "k" }, 7),
    (e) =>
      e instanceof WatchError && e.kind === "compacted" && e.oldestIndex === 8 &&
      /holds changes from index 8 on/.test(e.message),
  );
  assert.deepEqual(seen(hub.watch({ kind: "key", key: "k" }, 8)), [
    "8:put:k",
    "9:put:k",
    "10:put:k",
  ]);
});

Deno.test("a watcher that falls out of the history is cancelled as slow; others go on", () => {
  const { hub, apply } = setup({ historyEvents: 5, historyBytes: 1 << 20 });
  const slow = hub.watch({ kind: "key", key: "k" }, 0);
  const quick = hub.watch({ kind: "key", key: "k" }, 0);
  const got: number[] = [];
  for (let i = 0; i < 20; i++) {
    apply(put("k", String(i)));
    got.push(...quick.take().events.map((e) => e.index));
  }
  assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => i + 1));
  assert.throws(
    () => slow.take(),
    (e) => e instanceof WatchError && e.kind === "slow" && /fell behind/.test(e.message),
  );
  assert.equal(hub.size, 1, "the slow watcher left the hub");
});

Deno.test("the history is bounded in bytes too", () => {
  const { hub, apply } = setup({ historyEvents: 1000, historyBytes: 10_000 });
  for (let i = 0; i < 50; i++) apply(put(`k${i}`, new Uint8Array(1000)));
  assert.ok(hub.oldestIndex > 35, `oldest ${hub.oldestIndex}`);
});

Deno.test("installing a snapshot cancels every watch and restarts history after it", () => {
  const { store, hub, apply } = setup();
  const w = hub.watch({ kind: "key", key: "k" }, 0);
  apply(put("k", "1"));
  const other = new KvStore();
  for (let i = 1; i <= 40; i++) other.apply(i, put("k", String(i)));
  store.restore(other.exportState());
  assert.throws(
    () => w.take(),
    (e) => e instanceof WatchError && e.kind === "compacted" && e.oldestIndex === 41,
  );
  assert.throws(() => hub.watch({ kind: "key", key: "k" }, 40), /from index 41 on/);
  const after = hub.watch({ kind: "key", key: "k" }, 41);
  store.apply(41, put("k", bytes("x")));
  assert.deepEqual(seen(after), ["41:put:k"]);
});

Deno.test("wait wakes on a matching change, not on others, and on close", async () => {
  const { hub, apply } = setup();
  const w = hub.watch({ kind: "key", key: "k" }, 0);
  w.take();
  let woke = false;
  const waiting = w.wait(60_000).then(() => woke = true);
  apply(put("other", "x"));
  await Promise.resolve();
  await Promise.resolve();
  assert.equal(woke, false);
  apply(put("k", "x"));
  await waiting;
  assert.equal(woke, true);
  const closing = w.wait(60_000);
  hub.close();
  await closing;
  assert.throws(() => w.take(), (e) => e instanceof WatchError && e.kind === "closed");
});
