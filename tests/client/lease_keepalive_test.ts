/**
 * LeaseKeepAliveStream (etcd's bidirectional keep-alive) on real nodes: the client
 * library's keeper, talking only to a follower (which forwards each renewal to the
 * leader), keeps a leased key alive many TTLs and past the node's request timeout;
 * closing the stream stops the renewals and the key goes; a renewal of a lease that
 * is gone is answered with TTL 0 on a stream that goes on serving.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { RaftKvClient } from "../../src/client/client.ts";
import { sleep, utf8, waitFor, withCluster } from "../e2e/_harness.ts";

const T = { timeoutMs: 10_000 };

Deno.test("the client's keep-alive stream to a follower keeps a lease alive until it is closed", async () => {
  // A short request timeout: the stream must outlive it (it bounds the silence
  // between two renewals, not the stream).
  await withCluster({ nodes: 3, extraArgs: ["--request-timeout-ms", "2000"] }, async (c) => {
    const lead = await c.leader();
    const follower = c.ids.find((id) => id !== lead)!;
    const client = new RaftKvClient({ endpoints: [c.endpoint(follower)], timeoutMs: 10_000 });
    const { id, ttl } = await client.leaseGrant(2);
    await client.put("svc/a", "up", { lease: id });
    const stop = new AbortController();
    const kept = client.keepAlive(id, Number(ttl), stop.signal);
    // Three TTLs and twice the request timeout pass: still there.
    const until = Date.now() + 6_000;
    while (Date.now() < until) {
      assert.equal((await c.kv(lead).get({ key: "svc/a" }, T)).found, true, "kept alive");
      await sleep(300); // sampling pace, not a wait for a condition
    }
    // One stream all along: the follower never reset it for its request timeout.
    // (It may cut the leader's peer Stream calls, which then shorten: peer_stream.ts.)
    const timeouts = c.log(follower).lines.filter((l) => l.includes("limit hit: request timeout"));
    assert.ok(timeouts.every((l) => / path=\S+/.test(l)), "a request timeout names its call");
    const resets = timeouts.filter((l) => l.includes("LeaseKeepAliveStream"));
    assert.deepEqual(resets, [], "the keep-alive stream was reset");
    stop.abort();
    await kept; // resolves once stopped
    await waitFor(
      "the leased key to be deleted once the stream is closed",
      async () => !(await c.kv(lead).get({ key: "svc/a" }, T)).found,
    );
    const err = await client.keepAlive(id, Number(ttl), new AbortController().signal)
      .catch((e) => e);
    assert.ok(err instanceof ConnectError && err.code === Code.NotFound, String(err));
    client.close();
  });
});

Deno.test("a keep-alive stream answers TTL 0 for a lease that is gone and goes on", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const lead = await c.leader();
    const follower = c.ids.find((id) => id !== lead)!;
    const live = await c.kv(lead).leaseGrant({ ttl: 60n }, T);
    const gone = await c.kv(lead).leaseGrant({ ttl: 60n }, T);
    await c.kv(lead).put({ key: "k", value: utf8("v"), lease: live.id }, T);
    await c.kv(lead).leaseRevoke({ id: gone.id }, T);
    const ids = [live.id, gone.id, live.id];
    const answers = [];
    for await (
      const a of c.kv(follower).leaseKeepAliveStream(
        (async function* () {
          for (const id of ids) yield { id };
        })(),
        T,
      )
    ) {
      answers.push({ id: a.id, ttl: a.ttl });
    }
    assert.deepEqual(answers, [
      { id: live.id, ttl: 60n },
      { id: gone.id, ttl: 0n },
      { id: live.id, ttl: 60n },
    ]);
    // A bad id ends the stream with INVALID_ARGUMENT.
    const bad = await (async () => {
      for await (
        const _ of c.kv(follower).leaseKeepAliveStream(
          (async function* () {
            yield { id: 0n };
          })(),
          T,
        )
      ) {
        // (no answer expected)
      }
    })().catch((e) => e);
    assert.ok(bad instanceof ConnectError && bad.code === Code.InvalidArgument, String(bad));
  });
});
