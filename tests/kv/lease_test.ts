/**
 * Leases in the state machine: a grant's id is its index; puts attach keys (and a put
 * without a lease detaches); a revoke deletes every attached key at its one index, in
 * key order; a write naming a missing lease applies nothing; leases and attachments
 * survive a snapshot and stores agree on them.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodeCommand } from "../../src/kv/command.ts";
import { decodeKvState, encodeKvState } from "../../src/kv/state_codec.ts";
import { type KvChange, KvStore } from "../../src/kv/store.ts";
import { bytes, del, put, txn, txnResponse } from "./helpers.ts";

const grant = (ttl: number) =>
  encodeCommand({ op: { case: "leaseGrant", value: { ttlSeconds: BigInt(ttl) } } });
const revoke = (id: number, expired = false) =>
  encodeCommand({ op: { case: "leaseRevoke", value: { id: BigInt(id), expired } } });
const putLeased = (key: string, value: string, lease: number) =>
  encodeCommand({ op: { case: "put", value: { key, value: bytes(value), lease: BigInt(lease) } } });

function store(...entries: Uint8Array[]): { kv: KvStore; changes: KvChange[] } {
  const kv = new KvStore();
  const changes: KvChange[] = [];
  kv.observe({ change: (c) => changes.push(c), restored: () => {} });
  entries.forEach((e, i) => kv.apply(i + 1, e));
  return { kv, changes };
}

Deno.test("a lease's id is its grant's index; keys put with it are attached", () => {
  const { kv } = store(grant(10), putLeased("b", "1", 1), putLeased("a", "2", 1), put("c", "3"));
  assert.deepEqual(kv.leases(), [{ id: 1, ttl: 10 }]);
  assert.deepEqual(kv.lease(1), { ttl: 10, keys: ["a", "b"] });
  assert.equal(kv.getRecord("a")?.lease, 1);
  assert.equal(kv.getRecord("c")?.lease, 0);
});

Deno.test("revoking a lease deletes its keys at one index, in key order; other keys stay", () => {
  const { kv, changes } = store(
    grant(10),
    putLeased("b", "1", 1),
    putLeased("a", "2", 1),
    put("c", "3"),
  );
  changes.length = 0;
  assert.deepEqual(kv.apply(5, revoke(1, true)), {
    kind: "lease_revoked",
    found: true,
    deleted: 2,
  });
  assert.deepEqual(changes.map((c) => [c.kind, c.key, c.index]), [["delete", "a", 5], [
    "delete",
    "b",
    5,
  ]]);
  assert.equal(kv.get("a"), undefined);
  assert.deepEqual(kv.get("c"), bytes("3"));
  assert.equal(kv.lease(1), undefined);
  assert.deepEqual(kv.apply(6, revoke(1)), { kind: "lease_revoked", found: false, deleted: 0 });
});

Deno.test("a put without the lease, or a delete, detaches the key", () => {
  const { kv } = store(
    grant(10),
    putLeased("a", "1", 1),
    putLeased("b", "1", 1),
    put("a", "plain"),
    del("b"),
  );
  assert.deepEqual(kv.lease(1)?.keys, []);
  kv.apply(6, putLeased("b", "again", 1));
  kv.apply(7, revoke(1));
  assert.deepEqual(kv.get("a"), bytes("plain"), "a detached key outlives the lease");
  assert.equal(kv.get("b"), undefined);
});

Deno.test("moving a key to another lease detaches it from the first", () => {
  const { kv } = store(grant(10), grant(20), putLeased("k", "1", 1), putLeased("k", "2", 2));
  assert.deepEqual(kv.lease(1)?.keys, []);
  assert.deepEqual(kv.lease(2)?.keys, ["k"]);
});

Deno.test("a put or a transaction naming a missing lease applies nothing", () => {
  const { kv } = store(put("x", "0"));
  assert.deepEqual(kv.apply(2, putLeased("k", "v", 99)), { kind: "lease_not_found", id: 99 });
  assert.equal(kv.get("k"), undefined);
  const result = kv.apply(
    3,
    txn({
      success: [
        { op: { case: "put", value: { key: "x", value: bytes("changed") } } },
        { op: { case: "put", value: { key: "k", value: bytes("v"), lease: 42n } } },
      ],
    }),
  );
  assert.deepEqual(result, { kind: "lease_not_found", id: 42 });
  assert.deepEqual(kv.get("x"), bytes("0"), "not even the first operation");
  kv.apply(4, grant(5));
  const ok = kv.apply(
    5,
    txn({
      success: [{ op: { case: "put", value: { key: "k", value: bytes("v"), lease: 4n } } }],
    }),
  );
  assert.equal(txnResponse(ok).succeeded, true);
  assert.deepEqual(kv.lease(4)?.keys, ["k"]);
});

Deno.test("leases and attachments survive a snapshot; the restored store agrees", () => {
  const { kv } = store(
    grant(10),
    grant(30),
    putLeased("a", "1", 1),
    putLeased("b", "2", 2),
    put("c", "3"),
  );
  const state = encodeKvState({
    store: kv.exportState(),
    appliedTerm: 1,
    chainLink: new Uint8Array(32),
  });
  const restored = KvStore.fromState(decodeKvState(state).store);
  assert.equal(restored.digest(), kv.digest());
  assert.deepEqual(restored.leases(), kv.leases());
  assert.deepEqual(restored.lease(1), { ttl: 10, keys: ["a"] });
  // Both go on alike: revoking lease 2 deletes "b" on each.
  assert.deepEqual(restored.apply(6, revoke(2)), kv.apply(6, revoke(2)));
  assert.equal(restored.digest(), kv.digest());
  assert.equal(restored.get("b"), undefined);
});

Deno.test("the digest covers leases: a different TTL or attachment differs", () => {
  assert.notEqual(store(grant(10)).kv.digest(), store(grant(11)).kv.digest());
  assert.notEqual(
    store(grant(10), putLeased("a", "1", 1)).kv.digest(),
    store(grant(10), put("a", "1")).kv.digest(),
  );
});

Deno.test("lease numbers no correct leader proposes still apply alike, without throwing", () => {
  const huge = 2n ** 60n;
  const { kv } = store(
    encodeCommand({ op: { case: "put", value: { key: "k", value: bytes("v"), lease: huge } } }),
    encodeCommand({ op: { case: "leaseRevoke", value: { id: huge } } }),
    encodeCommand({ op: { case: "leaseGrant", value: { ttlSeconds: 0n } } }),
    encodeCommand({ op: { case: "leaseGrant", value: { ttlSeconds: huge } } }),
  );
  assert.equal(kv.get("k"), undefined);
  assert.deepEqual(kv.leases().map((l) => l.ttl), [1, 10 * 365 * 24 * 3600]);
  // And the state still encodes (no out-of-range number reached it).
  encodeKvState({ store: kv.exportState(), appliedTerm: 1, chainLink: new Uint8Array(32) });
});

Deno.test("a lease grant retried in its session is answered with the first lease, not a second", () => {
  const inSession = (ttl: number, sequence: number) =>
    encodeCommand({
      sessionId: 1n,
      sequence: BigInt(sequence),
      op: { case: "leaseGrant", value: { ttlSeconds: BigInt(ttl) } },
    });
  const kv = new KvStore();
  kv.apply(1, encodeCommand({ op: { case: "openSession", value: {} } }));
  assert.deepEqual(kv.apply(2, inSession(10, 1)), { kind: "lease_granted", id: 2, ttl: 10 });
  // The answer was lost; the client sends the same grant again, same sequence.
  assert.deepEqual(kv.apply(3, inSession(10, 1)), { kind: "lease_granted", id: 2, ttl: 10 });
  assert.deepEqual(kv.leases(), [{ id: 2, ttl: 10 }]);
  // The next sequence is a new grant.
  assert.deepEqual(kv.apply(4, inSession(10, 2)), { kind: "lease_granted", id: 4, ttl: 10 });
  assert.deepEqual(kv.leases().map((l) => l.id), [2, 4]);
});
