/**
 * Range on real nodes: paging through 100,000 keys returns each exactly once, in key
 * order; a linearizable range through a follower sees every acknowledged write; a
 * serializable one answers from the follower's own state; bad queries are refused.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import { compareKeys } from "../../src/kv/key_index.ts";
import { codeOf, utf8, waitFor, withCluster } from "./_harness.ts";

const T = { timeoutMs: 30_000 };

Deno.test("paging through 100,000 keys returns each key once, in order", async () => {
  await withCluster({ nodes: 1 }, async (c) => {
    await c.leader();
    const kv = c.kv(1);
    const total = 100_000;
    const keys = Array.from({ length: total }, (_, i) => `item/${(i * 7919) % total}`);
    // Loaded 128 keys per transaction, a few transactions in flight.
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < keys.length) {
        const batch = keys.slice(next, next + 128);
        next += batch.length;
        const success = batch.map((key) => ({
          op: { case: "put" as const, value: { key, value: utf8(key) } },
        }));
        await kv.txn({ success }, T);
      }
    }));
    await kv.put({ key: "other", value: utf8("outside the prefix") }, T);

    const seen: string[] = [];
    let continuation = "";
    let pages = 0;
    for (;;) {
      const page = await kv.range({ prefix: "item/", limit: 1000, continuation }, T);
      pages++;
      for (const item of page.kvs) {
        assert.equal(new TextDecoder().decode(item.value), item.key);
        seen.push(item.key);
      }
      if (!page.more) break;
      assert.equal(page.continuation, page.kvs[page.kvs.length - 1]!.key);
      continuation = page.continuation;
    }
    assert.equal(pages, 100);
    assert.equal(seen.length, total, "every key once");
    assert.equal(new Set(seen).size, total, "no key twice");
    for (let i = 1; i < seen.length; i++) {
      assert.ok(compareKeys(seen[i - 1]!, seen[i]!) < 0, `${seen[i - 1]} before ${seen[i]}`);
    }
    const counted = await kv.range({ prefix: "item/", countOnly: true }, T);
    assert.equal(counted.count, BigInt(total));
    assert.equal(counted.kvs.length, 0);
  });
});

Deno.test("a range through a follower is linearizable; serializable reads its own state", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const lead = await c.leader();
    const follower = c.ids.find((id) => id !== lead)!;
    const put = await c.kv(lead).put({ key: "cfg/a", value: utf8("1") }, T);
    await c.kv(lead).put({ key: "cfg/b", value: utf8("2") }, T);
    // Linearizable by default: the follower's answer includes both acknowledged writes.
    const page = await c.kv(follower).range({ prefix: "cfg/" }, T);
    assert.deepEqual(page.kvs.map((kv) => kv.key), ["cfg/a", "cfg/b"]);
    assert.equal(page.kvs[0]!.modIndex, put.index);
    assert.equal(page.kvs[0]!.createIndex, put.index);
    assert.ok(page.index >= put.index);
    const got = await c.kv(follower).get({ key: "cfg/a" }, T);
    assert.equal(got.modIndex, put.index);
    // Serializable: the follower's own applied state, which catches up.
    await waitFor("the follower's serializable range to show cfg/b", async () => {
      const local = await c.kv(follower).range({ prefix: "cfg/", serializable: true }, T);
      return local.kvs.length === 2;
    });
  });
});

Deno.test("bad range requests are INVALID_ARGUMENT with the reason", async () => {
  await withCluster({ nodes: 1 }, async (c) => {
    await c.leader();
    const err = await c.kv(1).range({ start: "b", end: "a" }, T).catch((e) => e);
    assert.equal(codeOf(err), Code.InvalidArgument, String(err));
    assert.match(String(err), /end "a" must sort after start "b"/);
    const both = await c.kv(1).range({ prefix: "p", start: "a" }, T).catch((e) => e);
    assert.equal(codeOf(both), Code.InvalidArgument, String(both));
  });
});
