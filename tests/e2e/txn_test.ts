/**
 * Txn on real nodes: through a follower, compares decide the branch and each
 * operation's result comes back; a transaction retried in a session is applied once;
 * a bad transaction is INVALID_ARGUMENT with the reason.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import { codeOf, text, utf8, withCluster } from "./_harness.ts";

const T = { timeoutMs: 30_000 };

Deno.test("a transaction through a follower: compares, branches, results, one index", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const lead = await c.leader();
    const follower = c.ids.find((id) => id !== lead)!;
    const kv = c.kv(follower);
    const a = await kv.put({ key: "acct/a", value: utf8("10") }, T);
    // Move 3 from a to b only if a is still as read (its mod index).
    const move = {
      compares: [{ key: "acct/a", check: { case: "modIndexEquals" as const, value: a.index } }],
      success: [
        { op: { case: "put" as const, value: { key: "acct/a", value: utf8("7") } } },
        { op: { case: "put" as const, value: { key: "acct/b", value: utf8("3") } } },
        { op: { case: "range" as const, value: { prefix: "acct/" } } },
      ],
      failure: [{ op: { case: "get" as const, value: { key: "acct/a" } } }],
    };
    const done = await kv.txn(move, T);
    assert.equal(done.succeeded, true);
    const range = done.responses[2]?.op;
    assert.ok(range?.case === "range");
    assert.deepEqual(range.value.kvs.map((x) => [x.key, text(x.value), x.modIndex]), [
      ["acct/a", "7", done.index],
      ["acct/b", "3", done.index],
    ]);
    // The same transaction again: a's mod index moved on, so the failure branch runs.
    const again = await kv.txn(move, T);
    assert.equal(again.succeeded, false);
    const got = again.responses[0]?.op;
    assert.ok(got?.case === "get" && text(got.value.value) === "7");
    assert.equal(got.value.modIndex, done.index);
  });
});

Deno.test("a transaction retried in its session is applied once", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const lead = await c.leader();
    const follower = c.ids.find((id) => id !== lead)!;
    const { sessionId } = await c.kv(lead).openSession({}, T);
    const acquire = {
      compares: [{ key: "lock", check: { case: "exists" as const, value: false } }],
      success: [{ op: { case: "put" as const, value: { key: "lock", value: utf8("me") } } }],
      session: { id: sessionId, sequence: 1n },
    };
    const first = await c.kv(lead).txn(acquire, T);
    assert.equal(first.succeeded, true);
    // The answer was lost; the retry goes through another node. Applied again, the
    // compare would fail (the lock exists now).
    const retry = await c.kv(follower).txn(acquire, T);
    assert.equal(retry.succeeded, true);
    assert.equal(retry.index, first.index);
    assert.equal((await c.kv(lead).get({ key: "lock" }, T)).modIndex, first.index);
  });
});

Deno.test("a bad transaction is INVALID_ARGUMENT naming the operation", async () => {
  await withCluster({ nodes: 1 }, async (c) => {
    await c.leader();
    const err = await c.kv(1).txn({
      success: [{ op: { case: "put", value: { key: "", value: utf8("x") } } }],
    }, T).catch((e) => e);
    assert.equal(codeOf(err), Code.InvalidArgument, String(err));
    assert.match(String(err), /success operation 0: Cannot use key: key is empty/);
  });
});
