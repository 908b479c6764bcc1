/**
 * Growing a running cluster from 3 nodes to 5 and shrinking it back to 3, under a
 * steady write load, the way deploy/README.md says: each new node starts with
 * `--join`, is added as a learner, catches up, and is promoted; then both are
 * removed (a removed leader steps down and another takes over). No acknowledged
 * write is lost, and the three nodes left end with the same state.
 *
 * @module
 */

import assert from "node:assert/strict";
import { waitFor, withCluster } from "./_harness.ts";
import { lostWrites, memberCall, membersOf, SteadyWriter, waitConverged } from "./_membership.ts";

Deno.test("grow 3 -> 5 (learner, catch up, promote) and shrink back to 3 while writing", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    await c.leader();
    const writer = new SteadyWriter(c);
    try {
      await writer.advance(20);
      for (const id of [4, 5]) {
        const address = c.addNode(id);
        c.spawn(id);
        await c.waitServing(id);
        const added = await memberCall(
          c,
          `AddMember ${id}`,
          (cl) => cl.addMember({ id: BigInt(id), peerAddress: address, learner: true }),
        );
        const me = added.members.find((m) => m.id === BigInt(id));
        assert.ok(me?.learner, `AddMember's answer lists ${id} as a learner`);
        assert.equal(me.peerAddress, address);
        // The learner catches up with the log (a snapshot or entries) while writes go on.
        const target = (await c.status(await c.leader(c.ids.filter((i) => i !== id)))).commitIndex;
        await waitFor(`learner ${id} to catch up`, async () => {
          const s = await c.status(id, 1_000);
          return s.appliedIndex >= target && s.learners.includes(BigInt(id));
        }, { timeoutMs: 60_000 });
        const promoted = await memberCall(
          c,
          `PromoteMember ${id}`,
          (cl) => cl.promoteMember({ id: BigInt(id) }),
        );
        assert.equal(promoted.members.find((m) => m.id === BigInt(id))?.learner, false);
        await writer.advance(20);
      }
      assert.equal(await membersOf(c), "1:voter 2:voter 3:voter 4:voter 5:voter");

      // Shrink: remove 5 and 4 again; if one of them leads, it steps down after the change.
      for (const id of [5, 4]) {
        const removed = await memberCall(
          c,
          `RemoveMember ${id}`,
          (cl) => cl.removeMember({ id: BigInt(id) }),
        );
        assert.ok(!removed.members.some((m) => m.id === BigInt(id)));
        await writer.advance(20);
        await c.stop(id);
        c.forget(id);
      }
      assert.equal(await membersOf(c), "1:voter 2:voter 3:voter");
      await writer.advance(20);
    } finally {
      await writer.stop();
    }
    const statuses = await waitConverged(c, [1, 2, 3]);
    assert.deepEqual(statuses.map((s) => s.voters.join(",")), ["1,2,3", "1,2,3", "1,2,3"]);
    assert.deepEqual(await lostWrites(c, [1, 2, 3], writer.acked), []);
    console.log(
      `${writer.acked.size} writes acknowledged, longest gap ${
        writer.longestGapMs.toFixed(0)
      } ms; errors on attempts: ${writer.errors()}`,
    );
  });
});
