/**
 * The disk replacement procedure of deploy/README.md, on a local 3-node cluster:
 * stop a follower, check that the other two hold every entry, wipe its data dir,
 * move the leadership by restarting the leader, start it again with the same id:
 * it fetches the whole log (there are no snapshots) and is a full member again.
 * Skipping the leader restart is shown to fail the way the README says: the
 * leader remembers how far the old disk had got, and the emptied node stops with
 * "lost entries it had acknowledged".
 *
 * @module
 */

import * as assert from "node:assert/strict";
import {
  type Cluster,
  putWithRetry,
  runNodeToExit,
  waitApplied,
  waitFor,
  withCluster,
} from "../e2e/_harness.ts";

/** Waits until the leader's Status shows every live follower's log matching its own. */
function othersHoldEverything(c: Cluster, leader: number): Promise<bigint> {
  return waitFor("the live followers to hold every entry", async () => {
    const s = await c.status(leader, 1_000);
    const live = c.liveIds().filter((id) => id !== leader);
    const behind = live.filter((id) =>
      s.peers.find((p) => Number(p.id) === id)?.matchIndex !== s.lastLogIndex
    );
    if (behind.length > 0) throw new Error(`behind the leader's ${s.lastLogIndex}: ${behind}`);
    return s.lastLogIndex;
  });
}

Deno.test("replace a follower's disk: stop, check, wipe, move the leader, start", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const leader = await c.leader();
    const [victim, other] = c.ids.filter((id) => id !== leader) as [number, number];
    const expected = new Map<string, string>();
    for (let i = 0; i < 20; i++) {
      await putWithRetry(c, `before-${i}`, `v${i}`);
      expected.set(`before-${i}`, `v${i}`);
    }

    // 1. Stop it. 2. The others hold every entry.
    assert.equal((await c.stop(victim)).code, 0);
    const last = await othersHoldEverything(c, leader);
    // 3. Wipe its data dir.
    await Deno.remove(c.dataDir(victim), { recursive: true });

    // Skipping 4: the leader, which heard from the old disk, says entries the empty log lacks
    // are committed, and the node refuses to run. (It leaves a term in its data dir, as a
    // Kubernetes pod restarting on its own would: harmless, as step 5 shows.)
    const refused = await runNodeToExit(c.args(victim));
    assert.equal(refused.code, 1, refused.output);
    assert.match(refused.output, /lost entries it had acknowledged/);

    // 4. Move the leadership: restart the leader while the replaced node is down.
    assert.equal((await c.stop(leader)).code, 0);
    await c.restart(leader);
    const newLeader = await c.leader([leader, other]);

    // 5. Start it with the same id and peers: it fetches the whole log.
    await c.restart(victim);
    const commit = (await c.status(newLeader)).commitIndex;
    assert.ok(commit >= last);
    await waitApplied(c, victim, commit);

    // It is a full member again: with the other follower down, it and the leader are the
    // majority that takes writes and confirms reads.
    const survivor = newLeader === other ? leader : other;
    assert.equal((await c.stop(survivor)).code, 0);
    const after = await putWithRetry(c, "after", "replaced");
    expected.set("after", "replaced");
    await waitApplied(c, victim, after);
    for (const [key, value] of expected) {
      const res = await c.kv(victim).get({ key }, { timeoutMs: 10_000 });
      assert.equal(new TextDecoder().decode(res.value), value, key);
    }
    const s = await c.status(victim);
    assert.ok(s.appliedIndex >= after && s.lastLogIndex >= after);
  });
});
