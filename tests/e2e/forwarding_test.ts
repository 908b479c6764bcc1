/**
 * Followers forward client calls to the leader: a write sent to any node, follower or
 * leader, is acknowledged once committed, and a Get through any node (linearizable,
 * served by the leader) sees it at once.
 *
 * @module
 */

import assert from "node:assert/strict";
import { checkReads, text, utf8, waitApplied, withCluster } from "./_harness.ts";

Deno.test("writes through any node, followers included, are readable through every node", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const lead = await c.leader();
    const followers = c.ids.filter((id) => id !== lead);
    assert.equal(followers.length, 2);

    const expected = new Map<string, string>();
    let lastIndex = 0n;
    for (const id of c.ids) {
      for (let i = 0; i < 10; i++) {
        const key = `via${id}-${i}`;
        const value = `value of ${key}`;
        const res = await c.kv(id).put({ key, value: utf8(value) }, { timeoutMs: 10_000 });
        assert.ok(res.index > lastIndex, `index ${res.index} after ${lastIndex}`);
        lastIndex = res.index;
        expected.set(key, value);
        // Read-your-write through every node, right after the acknowledgement.
        for (const reader of c.ids) {
          const got = await c.kv(reader).get({ key }, { timeoutMs: 10_000 });
          assert.equal(got.found, true, `node ${reader} does not see ${key}`);
          assert.equal(text(got.value), value);
        }
      }
    }

    // Delete and CompareAndSwap through a follower, too.
    const f = followers[0]!;
    const del = await c.kv(f).delete({ key: "via1-0" }, { timeoutMs: 10_000 });
    assert.equal(del.deleted, true);
    expected.delete("via1-0");
    const cas = await c.kv(followers[1]!).compareAndSwap(
      { key: "via2-0", expected: utf8("value of via2-0"), value: utf8("swapped") },
      { timeoutMs: 10_000 },
    );
    assert.equal(cas.succeeded, true);
    expected.set("via2-0", "swapped");

    const all = new Map<string, string | undefined>([...expected, ["via1-0", undefined]]);
    for (const id of c.ids) assert.deepEqual(await checkReads(c, id, all), []);

    // Every node has applied every write (state machines, not only the leader's).
    for (const id of c.ids) await waitApplied(c, id, lastIndex);
  });
});
