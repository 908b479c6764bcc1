/**
 * The disk replacement procedure of deploy/README.md ("Changing the membership"), on
 * a local 3-node cluster: a follower's disk dies, the operator removes the node,
 * wipes its data dir, starts it with `--join`, adds it back as a learner, waits for
 * it to catch up and promotes it; it is then a full member again (with the other
 * follower down, it and the leader take writes). Skipping the removal is shown to
 * fail the way the README says: the leader remembers how far the old disk had got,
 * and the emptied node stops with "lost entries it had acknowledged".
 *
 * @module
 */

import * as assert from "node:assert/strict";
import { putWithRetry, runNodeToExit, waitApplied, waitFor, withCluster } from "../e2e/_harness.ts";
import { memberCall, membersOf } from "../e2e/_membership.ts";

Deno.test("replace a follower's disk: remove, wipe, start with --join, add as a learner, promote", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const leader = await c.leader();
    const [victim, other] = c.ids.filter((id) => id !== leader) as [number, number];
    const expected = new Map<string, string>();
    for (let i = 0; i < 20; i++) {
      await putWithRetry(c, `before-${i}`, `v${i}`);
      expected.set(`before-${i}`, `v${i}`);
    }
    // The disk dies.
    await c.kill(victim, "SIGKILL");
    await Deno.remove(c.dataDir(victim), { recursive: true });

    // Skipping the removal: started on an empty disk as it was, the node hears from the
    // leader that entries it lacks are committed, and refuses to run.
    const refused = await runNodeToExit(c.args(victim));
    assert.equal(refused.code, 1, refused.output);
    assert.match(refused.output, /lost entries it had acknowledged/);
    await Deno.remove(c.dataDir(victim), { recursive: true });

    // 1. Remove it.
    await memberCall(c, `member remove ${victim}`, (cl) => cl.removeMember({ id: BigInt(victim) }));
    // 2. (Wiped above.) 3. Start it with --join, same id and address.
    c.spawn(victim, ["--join"]);
    await c.waitServing(victim);
    // 4. Add it back as a learner; once it has caught up, promote it.
    await memberCall(
      c,
      `member add ${victim}`,
      (cl) => cl.addMember({ id: BigInt(victim), peerAddress: c.endpoint(victim), learner: true }),
    );
    const commit = (await c.status(leader)).commitIndex;
    await waitApplied(c, victim, commit);
    await memberCall(
      c,
      `member promote ${victim}`,
      (cl) => cl.promoteMember({ id: BigInt(victim) }),
    );
    assert.equal(await membersOf(c, leader), "1:voter 2:voter 3:voter");

    // A full member again: with the other follower down, it and the leader are the
    // majority that takes writes and confirms reads.
    await waitFor("the new disk to apply its promotion", async () => {
      const s = await c.status(victim, 1_000);
      return s.voters.includes(BigInt(victim));
    });
    assert.equal((await c.stop(other)).code, 0);
    const after = await putWithRetry(c, "after", "replaced");
    expected.set("after", "replaced");
    await waitApplied(c, victim, after);
    for (const [key, value] of expected) {
      const res = await c.kv(victim).get({ key }, { timeoutMs: 10_000 });
      assert.equal(new TextDecoder().decode(res.value), value, key);
    }
  });
});
