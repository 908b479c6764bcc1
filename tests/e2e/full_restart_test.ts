/**
 * Restarting the whole cluster: every node shuts down cleanly on SIGTERM (exit code
 * 0), and after all of them start again from their data dirs, every write is there.
 *
 * @module
 */

import assert from "node:assert/strict";
import { checkReads, utf8, waitApplied, withCluster } from "./_harness.ts";

Deno.test("restart every node (SIGTERM all, then start all): all data is there", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    await c.leader();
    const expected = new Map<string, string | undefined>();
    let last = 0n;
    for (let i = 0; i < 30; i++) {
      const key = `k${i}`;
      const value = `v${i}`;
      last = (await c.kv(c.ids[i % 3]!).put({ key, value: utf8(value) }, { timeoutMs: 10_000 }))
        .index;
      expected.set(key, value);
    }
    last = (await c.kv(c.ids[0]!).put({ key: "k0", value: utf8("overwritten") })).index;
    expected.set("k0", "overwritten");
    await c.kv(c.ids[1]!).delete({ key: "k1" });
    expected.set("k1", undefined);
    for (const id of c.ids) await waitApplied(c, id, last);

    const exits = await Promise.all(c.ids.map((id) => c.stop(id)));
    for (const [i, exit] of exits.entries()) {
      assert.equal(exit.code, 0, `node ${c.ids[i]} exited with ${exit.code} on SIGTERM`);
      assert.equal(exit.signal, null, `node ${c.ids[i]} died of ${exit.signal}`);
    }
    for (const id of c.ids) {
      assert.match(c.log(id).all(), /node stopped/, `node ${id} did not log its shutdown`);
    }

    for (const id of c.ids) c.spawn(id);
    await Promise.all(c.ids.map((id) => c.waitServing(id)));
    await c.leader();
    for (const id of c.ids) await waitApplied(c, id, last);
    for (const id of c.ids) assert.deepEqual(await checkReads(c, id, expected), []);

    // A second clean shutdown works too (the restarted nodes exit 0 as well).
    const again = await Promise.all(c.ids.map((id) => c.stop(id)));
    assert.deepEqual(again.map((e) => e.code), c.ids.map(() => 0));
  });
});
