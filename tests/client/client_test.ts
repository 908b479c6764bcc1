/**
 * The client library on real nodes: writes in sessions and reads follow the leader and
 * survive its kill -9; a watch resumes on another node; a lock is never held by two
 * contenders and passes on when its holder dies (its lease expires).
 *
 * @module
 */

import assert from "node:assert/strict";
import { RaftKvClient } from "../../src/client/client.ts";
import { acquireLock } from "../../src/client/lock.ts";
import { guardStrayNetworkErrors } from "../../src/client/stray_errors.ts";
import { sleep, text, waitFor, withCluster } from "../e2e/_harness.ts";

// Deno 2.9.3's node:http2 can emit EPIPE on a session nobody listens to, or reject a
// session's connect promise with it, after a call on it already failed over (the node
// killed under it): this process installs the library's opt-in guard, as an
// application would (src/client/stray_errors.ts).
guardStrayNetworkErrors();

Deno.test("the client follows the leader and retries safely across a leader's kill -9", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    await c.leader();
    const client = new RaftKvClient({
      endpoints: c.ids.map((id) => c.endpoint(id)),
      timeoutMs: 20_000,
    });
    const lead = await client.findLeader();
    assert.equal(lead, c.endpoint(await c.leader()));
    await client.put("n", "0");
    let lastWritten = 0;
    const writer = (async () => {
      for (let i = 1; i <= 60; i++) {
        // Compare-and-increment: applied twice, a retry would skip a number.
        const r = await client.txn({
          compares: [{
            key: "n",
            check: { case: "valueEquals", value: new TextEncoder().encode(String(i - 1)) },
          }],
          success: [{
            op: { case: "put", value: { key: "n", value: new TextEncoder().encode(String(i)) } },
          }],
        });
        assert.equal(r.succeeded, true, `increment ${i} applied exactly once`);
        lastWritten = i;
        await sleep(20);
      }
    })();
    await waitFor("some increments", () => lastWritten >= 10);
    await c.kill(await c.leader());
    await writer;
    assert.equal(text((await client.get("n")).value), "60");
    // CompareAndSwap, in a session too: expected absent, then a value.
    assert.equal((await client.compareAndSwap("c", undefined, "1")).succeeded, true);
    const lost = await client.compareAndSwap("c", undefined, "2");
    assert.equal(lost.succeeded, false);
    assert.equal(text(lost.value), "1");
    assert.equal((await client.compareAndSwap("c", "1", "2")).succeeded, true);
    client.close();
  });
});

Deno.test("a lock is never held by two, and passes on when its holder dies", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    await c.leader();
    const endpoints = c.ids.map((id) => c.endpoint(id));
    const clients = [0, 1, 2].map(() => new RaftKvClient({ endpoints, timeoutMs: 20_000 }));
    let holders = 0;
    let maxHolders = 0;
    const order: number[] = [];
    await Promise.all(clients.map(async (client, who) => {
      for (let round = 0; round < 5; round++) {
        const lock = await acquireLock(client, "locks/test", { ttl: 5 });
        holders++;
        maxHolders = Math.max(maxHolders, holders);
        order.push(who);
        await sleep(30);
        holders--;
        await lock.release();
      }
    }));
    assert.equal(maxHolders, 1, "never two holders at once");
    assert.equal(order.length, 15);

    // A holder that dies (stops renewing, never releases): the next gets the lock
    // once the lease expires.
    const dying = new AbortController();
    const first = await acquireLock(clients[0]!, "locks/crash", { ttl: 2, signal: dying.signal });
    dying.abort(); // renewals stop: as if the process were killed
    const started = Date.now();
    const second = await acquireLock(clients[1]!, "locks/crash", { ttl: 2 });
    assert.ok(second.key > first.key);
    assert.ok(Date.now() - started >= 1000, "not before the first holder's lease ran out");
    await second.release();
    for (const client of clients) client.close();
  });
});
