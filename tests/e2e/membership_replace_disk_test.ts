/**
 * Replacing a dead node's disk with the membership commands, as deploy/README.md
 * says: the node is dead (stopped), an operator removes it, wipes its disk, starts
 * it with `--join`, adds it back as a learner, waits for it to catch up and promotes
 * it, all while writes go on. No acknowledged write is lost and all three end with
 * the same state; the new disk holds every write.
 *
 * @module
 */

import assert from "node:assert/strict";
import { waitFor, withCluster } from "./_harness.ts";
import { lostWrites, memberCall, membersOf, SteadyWriter, waitConverged } from "./_membership.ts";

Deno.test("replace a dead follower's disk: remove, wipe, start with --join, add as learner, promote", async () => {
  await withCluster({
    nodes: 3,
    extraArgs: ["--snapshot-entries", "50", "--snapshot-catchup-entries", "10"],
  }, async (c) => {
    const leader = await c.leader();
    const victim = c.ids.find((id) => id !== leader)!;
    const writer = new SteadyWriter(c);
    try {
      await writer.advance(60);
      // The disk died: the node is gone.
      await c.kill(victim, "SIGKILL");
      await writer.advance(20);
      const removed = await memberCall(
        c,
        `RemoveMember ${victim}`,
        (cl) => cl.removeMember({ id: BigInt(victim) }),
      );
      assert.ok(!removed.members.some((m) => m.id === BigInt(victim)));
      await Deno.remove(c.dataDir(victim), { recursive: true });
      c.spawn(victim, ["--join"]);
      await c.waitServing(victim);
      const added = await memberCall(
        c,
        `AddMember ${victim}`,
        (cl) =>
          cl.addMember({ id: BigInt(victim), peerAddress: c.endpoint(victim), learner: true }),
      );
      assert.equal(added.members.find((m) => m.id === BigInt(victim))?.learner, true);
      const others = c.ids.filter((id) => id !== victim);
      const target = (await c.status(await c.leader(others))).commitIndex;
      await waitFor(`the new disk of node ${victim} to catch up`, async () => {
        const s = await c.status(victim, 1_000);
        return s.appliedIndex >= target;
      }, { timeoutMs: 60_000 });
      await memberCall(
        c,
        `PromoteMember ${victim}`,
        (cl) => cl.promoteMember({ id: BigInt(victim) }),
      );
      assert.equal(await membersOf(c), "1:voter 2:voter 3:voter");
      await writer.advance(20);
    } finally {
      await writer.stop();
    }
    await waitConverged(c, c.ids);
    assert.deepEqual(await lostWrites(c, c.ids, writer.acked), []);
  });
});
