/**
 * A network partition, made with the TCP proxies on every peer link: the minority
 * side, the old leader included, cannot write (a Put sent to it is UNAVAILABLE within
 * its deadline), while the majority elects a leader and accepts writes; after the
 * partition heals, every node converges on the same log and the same values.
 *
 * The same scenario runs twice: with links that are reset (connections closed, new
 * ones accepted and closed at once) and with links that silently drop everything.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import { Role } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import type { BlockMode } from "./_proxy.ts";
import {
  checkReads,
  codeName,
  codeOf,
  utf8,
  waitApplied,
  waitFor,
  withCluster,
} from "./_harness.ts";

/** The deadline of a Put sent to the minority: the node must say UNAVAILABLE within it. */
const MINORITY_DEADLINE_MS = 3_000;

/** The scenario, with the links between the two sides cut the way `mode` says. */
async function partitionScenario(mode: BlockMode): Promise<void> {
  await withCluster({ nodes: 5, proxied: true }, async (c) => {
    const oldLeader = await c.leader();
    const expected = new Map<string, string | undefined>();
    const put = async (via: number, key: string): Promise<bigint> => {
      const value = `value of ${key}`;
      const res = await c.kv(via).put({ key, value: utf8(value) }, { timeoutMs: 10_000 });
      expected.set(key, value);
      return res.index;
    };
    for (let i = 0; i < 10; i++) await put(c.ids[i % 5]!, `before-${i}`);

    // The old leader and one follower on one side, the other three on the other.
    const minority = [oldLeader, c.ids.find((id) => id !== oldLeader)!];
    const majority = c.ids.filter((id) => !minority.includes(id));
    c.partitionBy(mode, minority, majority);

    const newLeader = await c.leader(majority);
    assert.ok(majority.includes(newLeader));
    // The old leader notices it lost its quorum (CheckQuorum) and steps down.
    await waitFor(`old leader ${oldLeader} to step down`, async () => {
      c.checkNoCrash();
      const s = await c.status(oldLeader, 1_000);
      return s.role !== Role.LEADER;
    });

    // Both minority nodes refuse writes: UNAVAILABLE, within the deadline.
    const refused = await Promise.all(minority.map(async (id) => {
      const key = `minority-${id}`;
      try {
        await c.kv(id).put({ key, value: utf8("must not commit") }, {
          timeoutMs: MINORITY_DEADLINE_MS,
        });
        return `node ${id}: the Put succeeded`;
      } catch (err) {
        expected.set(key, undefined); // Never committed, so never visible.
        return `node ${id}: ${codeName(codeOf(err))}`;
      }
    }));
    assert.deepEqual(
      refused,
      minority.map((id) => `node ${id}: ${codeName(Code.Unavailable)}`),
      "Puts to the minority side",
    );

    // The majority accepts writes, through its leader and its followers.
    let last = 0n;
    for (let i = 0; i < 15; i++) last = await put(majority[i % 3]!, `during-${i}`);

    c.heal();
    const lead = await c.leader(c.ids);
    assert.ok(majority.includes(lead), `leader ${lead} after healing is not from the majority`);
    for (let i = 0; i < 5; i++) last = await put(c.ids[i]!, `after-${i}`);

    // Convergence: every node at the same commit and applied index, and the same values.
    await waitFor("all nodes at the same commit and applied index", async () => {
      c.checkNoCrash();
      const all = await Promise.all(c.ids.map((id) => c.status(id, 1_000)));
      const commit = all[0]!.commitIndex;
      const same = all.every((s) => s.commitIndex === commit && s.appliedIndex === commit);
      if (!same || commit < last) {
        throw new Error(all.map((s) => `${s.id}: ${s.commitIndex}/${s.appliedIndex}`).join(", "));
      }
      return true;
    });
    for (const id of c.ids) await waitApplied(c, id, last);
    for (const id of c.ids) assert.deepEqual(await checkReads(c, id, expected), []);
  });
}

Deno.test("a network partition (links reset): the minority cannot write, the majority can; after healing all nodes converge", async () => {
  await partitionScenario("reset");
});

Deno.test("a network partition (packets dropped): the minority cannot write, the majority can; after healing all nodes converge", async () => {
  await partitionScenario("blackhole");
});
