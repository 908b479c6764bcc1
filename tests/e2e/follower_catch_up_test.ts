/**
 * A follower that was down while the cluster kept writing catches up when it comes
 * back: its applied index reaches the last write's index, and reads through it see
 * every write.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Role } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { checkReads, utf8, waitApplied, withCluster } from "./_harness.ts";

Deno.test("kill a follower, write, restart it: it catches up", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const lead = await c.leader();
    const follower = c.ids.find((id) => id !== lead)!;
    const other = c.ids.find((id) => id !== lead && id !== follower)!;

    const expected = new Map<string, string>();
    const put = async (via: number, key: string): Promise<bigint> => {
      const value = `value of ${key}`;
      const res = await c.kv(via).put({ key, value: utf8(value) }, { timeoutMs: 10_000 });
      expected.set(key, value);
      return res.index;
    };

    for (let i = 0; i < 10; i++) await put(follower, `before-${i}`);
    await c.kill(follower, "SIGKILL");

    // The two others are a majority: writes go on, through the leader and the other follower.
    let last = 0n;
    for (let i = 0; i < 50; i++) last = await put(i % 2 === 0 ? lead : other, `during-${i}`);

    await c.restart(follower);
    const s = await waitApplied(c, follower, last);
    assert.equal(s.role, Role.FOLLOWER);
    assert.ok(s.commitIndex >= last, `commit ${s.commitIndex} < ${last}`);
    assert.ok(s.lastLogIndex >= last, `last log index ${s.lastLogIndex} < ${last}`);

    // Reads through it (forwarded to the leader) see everything, and it takes writes again.
    assert.deepEqual(await checkReads(c, follower, expected), []);
    const after = await put(follower, "after");
    await waitApplied(c, follower, after);

    // Every node applied the same sequence and holds the same state.
    for (const id of c.ids) await waitApplied(c, id, after);
    const prints = await Promise.all(c.ids.map((id) => c.status(id)));
    for (const p of prints) {
      assert.equal(p.appliedIndex, prints[0]!.appliedIndex);
      assert.equal(
        p.appliedChain,
        prints[0]!.appliedChain,
        `node ${p.id} applied another sequence`,
      );
      assert.equal(p.stateDigest, prints[0]!.stateDigest, `node ${p.id} holds another state`);
    }
    assert.match(prints[0]!.appliedChain, /^[0-9a-f]{64}$/);
  });
});
