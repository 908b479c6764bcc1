/**
 * Exactly-once writes (dissertation §6.3) on a real cluster: a client that
 * retries a write in its session, through any node, gets the first outcome back
 * and the write is applied once; without a session a retry applies again.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import { codeOf, text, utf8, withCluster } from "./_harness.ts";

Deno.test("a retried write in a session is applied once, whichever node the retry reaches", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const lead = await c.leader();
    const follower = c.ids.find((id) => id !== lead)!;
    const t = { timeoutMs: 10_000 };
    const { sessionId } = await c.kv(follower).openSession({}, t);
    assert.ok(sessionId > 0n);

    await c.kv(lead).put({ key: "k", value: utf8("a") }, t);
    const cas = {
      key: "k",
      expected: utf8("a"),
      value: utf8("b"),
      session: { id: sessionId, sequence: 1n },
    };
    const first = await c.kv(lead).compareAndSwap(cas, t);
    assert.equal(first.succeeded, true);
    // The client never saw that answer and retries, through a follower this time:
    // applied again, the compare would fail ("b" is not "a").
    const retry = await c.kv(follower).compareAndSwap(cas, t);
    assert.equal(retry.succeeded, true, "the retry reports the first outcome");
    assert.equal(text(retry.value), "b");

    const put = { key: "p", value: utf8("x"), session: { id: sessionId, sequence: 2n } };
    const p1 = await c.kv(lead).put(put, t);
    await c.kv(lead).put({ key: "p", value: utf8("y") }, t); // someone else writes after
    const p2 = await c.kv(follower).put(put, t);
    assert.equal(p2.index, p1.index, "the retry answers with the first write's index");
    const got = await c.kv(lead).get({ key: "p" }, t);
    assert.equal(text(got.value), "y", "the retry did not write x again");
  });
});

Deno.test("session errors are definite: unknown session, stale sequence, bad numbers", async () => {
  await withCluster({ nodes: 1 }, async (c) => {
    await c.leader();
    const t = { timeoutMs: 10_000 };
    const unknown = await c.kv(1).put({
      key: "k",
      value: utf8("v"),
      session: { id: 999n, sequence: 1n },
    }, t)
      .catch((e) => e);
    assert.equal(codeOf(unknown), Code.FailedPrecondition, String(unknown));
    const { sessionId } = await c.kv(1).openSession({}, t);
    await c.kv(1).put({ key: "k", value: utf8("1"), session: { id: sessionId, sequence: 1n } }, t);
    await c.kv(1).put({ key: "k", value: utf8("2"), session: { id: sessionId, sequence: 2n } }, t);
    const stale = await c.kv(1).put({
      key: "k",
      value: utf8("1"),
      session: { id: sessionId, sequence: 1n },
    }, t)
      .catch((e) => e);
    assert.equal(codeOf(stale), Code.FailedPrecondition, String(stale));
    const zero = await c.kv(1).put({
      key: "k",
      value: utf8("v"),
      session: { id: sessionId, sequence: 0n },
    }, t)
      .catch((e) => e);
    assert.equal(codeOf(zero), Code.InvalidArgument, String(zero));
    assert.equal(text((await c.kv(1).get({ key: "k" }, t)).value), "2");
  });
});
