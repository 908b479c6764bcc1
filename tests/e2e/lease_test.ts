/**
 * Leases on real nodes: a key put with a lease lives while keep-alives reach the
 * leader (through any node) and is deleted on every node once they stop; a leader
 * change does not expire a lease that was kept alive; revoke deletes at once; a missing
 * lease is NOT_FOUND.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import { type Cluster, codeOf, sleep, utf8, waitFor, withCluster } from "./_harness.ts";

const T = { timeoutMs: 10_000 };

/** Renews `id` every `everyMs` through the live nodes in turn until stopped. */
function keepAlive(c: Cluster, id: bigint, everyMs: number) {
  let stopped = false;
  let renewals = 0;
  const done = (async () => {
    let i = 0;
    while (!stopped) {
      const live = c.liveIds();
      const node = live[i++ % live.length]!;
      try {
        await c.kv(node).leaseKeepAlive({ id }, { timeoutMs: 2_000 });
        renewals++;
      } catch {
        // A node down or an election under way: the next one, soon.
      }
      await sleep(everyMs);
    }
  })();
  return {
    renewals: () => renewals,
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

/** True once no live node holds `key` (serializable, each node's own state). */
async function goneEverywhere(c: Cluster, key: string): Promise<boolean> {
  for (const id of c.liveIds()) {
    const page = await c.kv(id).range({ start: key, end: `${key}\0`, serializable: true }, T);
    if (page.kvs.length > 0) return false;
  }
  return true;
}

Deno.test("a leased key lives while kept alive and is deleted everywhere after", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const lead = await c.leader();
    const follower = c.ids.find((id) => id !== lead)!;
    const { id, ttl } = await c.kv(follower).leaseGrant({ ttl: 2n }, T);
    assert.equal(ttl, 2n);
    await c.kv(follower).put({ key: "svc/a", value: utf8("up"), lease: id }, T);
    const got = await c.kv(follower).get({ key: "svc/a" }, T);
    assert.equal(got.lease, id);
    const alive = keepAlive(c, id, 400);
    // Three TTLs pass: still there.
    const until = Date.now() + 6_000;
    while (Date.now() < until) {
      assert.equal((await c.kv(lead).get({ key: "svc/a" }, T)).found, true, "kept alive");
      await sleep(300);
    }
    const ttlNow = await c.kv(follower).leaseTimeToLive({ id, keys: true }, T);
    assert.deepEqual(ttlNow.keys, ["svc/a"]);
    assert.ok(ttlNow.ttl >= 1n && ttlNow.grantedTtl === 2n, `${ttlNow.ttl}`);
    await alive.stop();
    await waitFor("the leased key to be deleted on every node", () => goneEverywhere(c, "svc/a"));
    const err = await c.kv(follower).leaseKeepAlive({ id }, T).catch((e) => e);
    assert.equal(codeOf(err), Code.NotFound, String(err));
    // The expiry went through the log: every node deleted the key at the same index,
    // and their states (leases included) are the same.
    const settled = await waitFor("every node at the same applied index", async () => {
      const all = await Promise.all(c.ids.map((n) => c.status(n)));
      return new Set(all.map((x) => x.appliedIndex)).size === 1 && all;
    });
    assert.equal(new Set(settled.map((x) => x.stateDigest)).size, 1, "state digests differ");
  });
});

Deno.test("a leader change does not expire a lease that was kept alive", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const lead = await c.leader();
    const { id } = await c.kv(lead).leaseGrant({ ttl: 3n }, T);
    await c.kv(lead).put({ key: "lock", value: utf8("holder"), lease: id }, T);
    const alive = keepAlive(c, id, 500);
    await waitFor("a few renewals", () => alive.renewals() >= 2);
    await c.kill(lead);
    const next = await c.leader(c.liveIds());
    assert.notEqual(next, lead);
    // Well past the TTL after the change, kept alive through the new leader: still held.
    const until = Date.now() + 7_000;
    while (Date.now() < until) {
      const got = await c.kv(next).get({ key: "lock" }, T);
      assert.equal(got.found, true, "the lease survived the leader change");
      await sleep(300);
    }
    await alive.stop();
    await waitFor("the lock to be released once keep-alives stop", () => goneEverywhere(c, "lock"));
  });
});

Deno.test("revoke deletes a lease's keys at once; a missing lease is NOT_FOUND", async () => {
  await withCluster({ nodes: 1 }, async (c) => {
    await c.leader();
    const kv = c.kv(1);
    const { id } = await kv.leaseGrant({ ttl: 60n }, T);
    await kv.put({ key: "a", value: utf8("1"), lease: id }, T);
    await kv.txn({
      success: [{ op: { case: "put", value: { key: "b", value: utf8("2"), lease: id } } }],
    }, T);
    const revoked = await kv.leaseRevoke({ id }, T);
    assert.equal(revoked.deleted, 2n);
    assert.equal((await kv.range({}, T)).kvs.length, 0);
    for (
      const call of [
        () => kv.leaseRevoke({ id }, T),
        () => kv.leaseTimeToLive({ id }, T),
        () => kv.put({ key: "c", value: utf8("3"), lease: id }, T),
      ]
    ) {
      const err = await call().catch((e) => e);
      assert.equal(codeOf(err), Code.NotFound, String(err));
    }
    assert.equal((await kv.get({ key: "c" }, T)).found, false, "nothing written");
    const bad = await kv.leaseGrant({ ttl: 0n }, T).catch((e) => e);
    assert.equal(codeOf(bad), Code.InvalidArgument, String(bad));
  });
});

Deno.test("a LeaseGrant retried in its session grants one lease, whichever node it reaches", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const lead = await c.leader();
    const follower = c.ids.find((id) => id !== lead)!;
    const { sessionId } = await c.kv(lead).openSession({}, T);
    const session = { id: sessionId, sequence: 1n };
    const first = await c.kv(lead).leaseGrant({ ttl: 60n, session }, T);
    // The answer was "lost": the same grant again, through a follower this time.
    const retry = await c.kv(follower).leaseGrant({ ttl: 60n, session }, T);
    assert.equal(retry.id, first.id, "the retry is answered with the first lease");
    const next = await c.kv(follower).leaseGrant({
      ttl: 60n,
      session: { ...session, sequence: 2n },
    }, T);
    assert.notEqual(next.id, first.id, "the next sequence is a new grant");
    // Both are real leases (the store test shows no third was made): each revokes.
    for (const id of [first.id, next.id]) await c.kv(lead).leaseRevoke({ id }, T);
    const gone = await c.kv(lead).leaseTimeToLive({ id: first.id }, T).catch((e) => e);
    assert.equal(codeOf(gone), Code.NotFound, String(gone));
    // A session that does not exist is refused before anything is granted.
    const bad = await c.kv(lead).leaseGrant(
      { ttl: 60n, session: { id: 999_999n, sequence: 1n } },
      T,
    )
      .catch((e) => e);
    assert.equal(codeOf(bad), Code.FailedPrecondition, String(bad));
  });
});
