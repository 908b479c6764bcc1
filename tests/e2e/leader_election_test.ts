/**
 * Elections: a fresh cluster elects exactly one leader, and every node names it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Role } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { type Cluster, withCluster } from "./_harness.ts";

/** Asserts one leader, known to every node, in one term; returns its id. */
async function assertOneAgreedLeader(c: Cluster): Promise<number> {
  const lead = await c.leader();
  const all = await Promise.all(c.ids.map((id) => c.status(id)));
  const leaders = all.filter((s) => s.role === Role.LEADER);
  // A node that has just lost leadership could still say so; after agreement there is one.
  assert.deepEqual(leaders.map((s) => Number(s.id)), [lead]);
  for (const s of all) {
    assert.equal(Number(s.leaderId), lead, `node ${s.id} names leader ${s.leaderId}`);
    assert.equal(s.term, all[0]!.term, `node ${s.id} is in term ${s.term}`);
    if (Number(s.id) !== lead) assert.equal(s.role, Role.FOLLOWER, `node ${s.id} role ${s.role}`);
  }
  return lead;
}

Deno.test("a 3-node cluster elects one leader and every node agrees who it is", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    await assertOneAgreedLeader(c);
  });
});

Deno.test("a 5-node cluster elects one leader and every node agrees who it is", async () => {
  await withCluster({ nodes: 5 }, async (c) => {
    await assertOneAgreedLeader(c);
  });
});
