/**
 * Followers forward client calls to the leader: a write sent to any node, follower or
 * leader, is acknowledged once committed, and a Get through any node (linearizable,
 * served by the leader) sees it at once.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { checkReads, text, utf8, waitApplied, waitFor, withCluster } from "./_harness.ts";

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

Deno.test("a follower forwards on one RaftService/Forward call to the leader, and errors keep their status and message", async () => {
  await withCluster({ nodes: 3, http: true }, async (c) => {
    const lead = await c.leader();
    const f = c.ids.find((id) => id !== lead)!;

    // Many writes at once through the follower: each acknowledged with its own index.
    const puts = await Promise.all(
      Array.from(
        { length: 40 },
        (_, i) => c.kv(f).put({ key: `many-${i}`, value: utf8(`v${i}`) }, { timeoutMs: 20_000 }),
      ),
    );
    assert.equal(new Set(puts.map((p) => p.index)).size, 40);

    // A refusal decided at the leader (the lease does not exist) reads the same
    // through the follower as at the leader: same code, same message.
    const refusal = async (id: number) => {
      try {
        await c.kv(id).leaseRevoke({ id: 424242n }, { timeoutMs: 10_000 });
      } catch (err) {
        return ConnectError.from(err);
      }
      assert.fail(`LeaseRevoke of an unknown lease through node ${id} succeeded`);
    };
    const atLeader = await refusal(lead);
    const viaFollower = await refusal(f);
    assert.equal(atLeader.code, Code.NotFound, atLeader.message);
    assert.equal(viaFollower.code, atLeader.code);
    assert.equal(viaFollower.rawMessage, atLeader.rawMessage);

    // The leader served them on Forward: its call metrics count the Forward call once
    // it ends (the follower ends an idle one after a couple of seconds).
    const forwardCalls = async () => {
      const text = await (await fetch(`${c.httpUrl(lead)}/metrics`)).text();
      const line = text.split("\n").find((l) =>
        l.startsWith("raftkv_grpc_requests_total{") && l.includes('method="Forward"') &&
        l.includes('code="ok"')
      );
      return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
    };
    await waitFor("the leader to count a Forward call", async () => (await forwardCalls()) >= 1);
  });
});
