/**
 * A rolling restart of every node with writes running: each node in turn is
 * stopped with SIGTERM and started again, the leader last; the leader hands its
 * leadership to an up-to-date follower before it stops (it logs the transfer). No
 * acknowledged write is lost and every node ends with the same state. (How long
 * writes stall is measured by `deno task bench:rolling-restart`, not asserted.)
 *
 * @module
 */

import assert from "node:assert/strict";
import { withCluster } from "./_harness.ts";
import { lostWrites, SteadyWriter, waitConverged } from "./_membership.ts";

Deno.test("rolling restart of every node, leader last, with writes running", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const first = await c.leader();
    const order = [...c.ids.filter((id) => id !== first), first];
    const writer = new SteadyWriter(c);
    try {
      await writer.advance(20);
      for (const id of order) {
        const status = await c.stop(id);
        assert.equal(status.code, 0, `node ${id} stopped cleanly`);
        await c.restart(id);
        await c.leader(c.ids);
        await writer.advance(20);
      }
    } finally {
      await writer.stop();
    }
    assert.match(
      c.log(first).tail(400),
      /transferred leadership before stopping/,
      `the leader, node ${first}, handed over its leadership on SIGTERM`,
    );
    await waitConverged(c, c.ids);
    assert.deepEqual(await lostWrites(c, c.ids, writer.acked), []);
    console.log(
      `${writer.acked.size} writes acknowledged; longest gap between two ${
        writer.longestGapMs.toFixed(0)
      } ms (heartbeat 50 ms, election 500 ms); errors on attempts: ${writer.errors()}`,
    );
  });
});
