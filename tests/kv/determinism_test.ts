/**
 * The FSM contract end to end: stores that apply the same log agree, exactly.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type ApplyResult, decodeCommand, KvStore } from "../../src/kv/mod.ts";
import { type Random, randomInt, seededRandom } from "../../src/raft/rand.ts";
import { decodeKvState, encodeKvState } from "../../src/kv/state_codec.ts";
import { encodeCommand } from "../../src/kv/mod.ts";
import { cas, del, NOOP, put, txn } from "./helpers.ts";

const KEYS = Array.from({ length: 16 }, (_, i) => `key-${i}`);
const VALUES = [
  new Uint8Array(),
  new Uint8Array([0]),
  new Uint8Array([1, 2, 3]),
  new TextEncoder().encode("hello"),
  new TextEncoder().encode("héllo 😀"),
  new Uint8Array(300).fill(7),
];

function pick<T>(random: Random, items: readonly T[]): T {
  return items[randomInt(random, 0, items.length)] as T;
}

/**
 * `n` entries of seeded-random data: puts, deletes, CASes (a small key and value pool,
 * so CASes both hit and miss) and no-ops.
 */
function randomLog(seed: number, n: number): Uint8Array[] {
  const random = seededRandom(seed);
  const log: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const roll = random();
    const key = pick(random, KEYS);
    if (roll < 0.35) log.push(put(key, pick(random, VALUES)));
    else if (roll < 0.5) log.push(del(key));
    else if (roll < 0.95) {
      const expected = random() < 0.3 ? undefined : pick(random, VALUES);
      log.push(cas(key, expected, pick(random, VALUES)));
    } else log.push(NOOP);
  }
  return log;
}

function applyAll(store: KvStore, log: Uint8Array[]): ApplyResult[] {
  return log.map((data, i) => store.apply(i + 1, data));
}

Deno.test("stores applying the same log agree", async (t) => {
  const log = randomLog(20240601, 1000);

  await t.step("the log exercises every kind of entry and outcome", () => {
    const results = applyAll(new KvStore(), log);
    const count = (f: (r: ApplyResult) => boolean): number => results.filter(f).length;
    assert.ok(count((r) => r.kind === "put") > 0);
    assert.ok(count((r) => r.kind === "noop") > 0);
    assert.ok(count((r) => r.kind === "delete" && r.deleted) > 0);
    assert.ok(count((r) => r.kind === "delete" && !r.deleted) > 0);
    assert.ok(count((r) => r.kind === "cas" && r.succeeded) > 0);
    assert.ok(count((r) => r.kind === "cas" && !r.succeeded && r.found) > 0);
    assert.ok(count((r) => r.kind === "cas" && !r.succeeded && !r.found) > 0);
  });

  await t.step(
    "two stores applying the same 1,000 seeded-random commands have equal digests",
    () => {
      const a = new KvStore();
      const b = new KvStore();
      const resultsA = applyAll(a, log);
      const resultsB = applyAll(b, randomLog(20240601, 1000)); // regenerated, not shared
      assert.deepEqual(resultsA, resultsB);
      assert.equal(a.appliedIndex, 1000);
      assert.equal(a.size, b.size);
      for (const key of KEYS) assert.deepEqual(a.get(key), b.get(key));
      assert.equal(a.digest(), b.digest());
    },
  );

  await t.step("a different sequence gives a different digest", () => {
    const a = new KvStore();
    const b = new KvStore();
    applyAll(a, log);
    applyAll(b, randomLog(20240602, 1000));
    assert.notEqual(a.digest(), b.digest());
  });

  await t.step("results and contents match a plain Map model after every entry", () => {
    const store = new KvStore();
    const model = new Map<string, Uint8Array>();
    log.forEach((data, i) => {
      assert.deepEqual(store.apply(i + 1, data), applyToModel(model, data, i + 1));
      assert.equal(store.size, model.size);
    });
    for (const key of KEYS) assert.deepEqual(store.get(key), model.get(key));
  });
});

/** The semantics of kv.proto, written as plainly as possible, as an oracle. */
function applyToModel(
  model: Map<string, Uint8Array>,
  data: Uint8Array,
  index: number,
): ApplyResult {
  if (data.length === 0) return { kind: "noop" };
  const op = decodeCommand(data).op;
  switch (op.case) {
    case "put":
      model.set(op.value.key, op.value.value.slice());
      return { kind: "put", index };
    case "delete":
      return { kind: "delete", deleted: model.delete(op.value.key) };
    case "compareAndSwap": {
      const before = model.get(op.value.key);
      const expected = op.value.expected;
      const succeeded = expected === undefined
        ? before === undefined
        : before !== undefined && before.join() === expected.join();
      if (succeeded) model.set(op.value.key, op.value.value.slice());
      // The key as it stands after the call.
      const after = model.get(op.value.key);
      return {
        kind: "cas",
        succeeded,
        found: after !== undefined,
        value: after?.slice() ?? new Uint8Array(),
      };
    }
    default:
      throw new Error("unreachable: the generator sets an operation");
  }
}

/**
 * `n` entries mixing puts, deletes and transactions (every kind of compare, every kind
 * of operation, some in sessions with retries), seeded.
 */
function randomTxnLog(seed: number, n: number): Uint8Array[] {
  const random = seededRandom(seed);
  const log: Uint8Array[] = [encodeCommand({ op: { case: "openSession", value: {} } })];
  let sequence = 0;
  let last: Uint8Array | undefined;
  const op = () => {
    const key = pick(random, KEYS);
    const roll = random();
    if (roll < 0.4) {
      return { op: { case: "put" as const, value: { key, value: pick(random, VALUES) } } };
    }
    if (roll < 0.6) return { op: { case: "delete" as const, value: { key } } };
    if (roll < 0.8) return { op: { case: "get" as const, value: { key } } };
    return {
      op: { case: "range" as const, value: { start: "key-1", limit: randomInt(random, 0, 5) } },
    };
  };
  const compare = () => {
    const key = pick(random, KEYS);
    const near = BigInt(Math.max(0, log.length - randomInt(random, 0, 40)));
    const checks = [
      { case: "valueEquals" as const, value: pick(random, VALUES) },
      { case: "exists" as const, value: random() < 0.5 },
      { case: "modIndexEquals" as const, value: near },
      { case: "modIndexLess" as const, value: near },
      { case: "modIndexGreater" as const, value: near },
    ];
    return { key, check: pick(random, checks) };
  };
  const leaseIds: number[] = [];
  while (log.length < n) {
    const roll = random();
    if (roll < 0.05) {
      leaseIds.push(log.length + 1); // a lease's id is its grant's index
      log.push(encodeCommand({ op: { case: "leaseGrant", value: { ttlSeconds: 5n } } }));
    } else if (roll < 0.08 && leaseIds.length > 0) {
      const id = pick(random, leaseIds);
      log.push(encodeCommand({ op: { case: "leaseRevoke", value: { id: BigInt(id) } } }));
    } else if (roll < 0.15 && leaseIds.length > 0) {
      // Some of these leases are revoked by now: the put then applies nothing.
      const lease = BigInt(pick(random, leaseIds));
      const value = { key: pick(random, KEYS), value: pick(random, VALUES), lease };
      log.push(encodeCommand({ op: { case: "put", value } }));
    } else if (roll < 0.2) log.push(put(pick(random, KEYS), pick(random, VALUES)));
    else if (roll < 0.3) log.push(del(pick(random, KEYS)));
    else if (roll < 0.35 && last !== undefined) log.push(last); // a retry in the session
    else {
      const request = {
        compares: Array.from({ length: randomInt(random, 0, 3) }, compare),
        success: Array.from({ length: randomInt(random, 0, 4) }, op),
        failure: Array.from({ length: randomInt(random, 0, 4) }, op),
      };
      const inSession = random() < 0.3;
      const data = txn(request, inSession ? { id: 1, sequence: ++sequence } : undefined);
      if (inSession) last = data;
      log.push(data);
    }
  }
  return log;
}

Deno.test("stores applying the same log of transactions and leases agree, restored from a snapshot or not", () => {
  const log = randomTxnLog(1313, 1000);
  const a = new KvStore();
  const b = new KvStore();
  const resultsA = applyAll(a, log);
  const resultsB = applyAll(b, randomTxnLog(1313, 1000));
  assert.deepEqual(resultsA, resultsB);
  assert.equal(a.digest(), b.digest());
  const txns = resultsA.filter((r) => r.kind === "txn");
  assert.ok(txns.some((r) => r.kind === "txn" && r.succeeded), "some transactions succeed");
  assert.ok(txns.some((r) => r.kind === "txn" && !r.succeeded), "some fail");
  const kinds = new Set(resultsA.map((r) => r.kind));
  for (const kind of ["lease_granted", "lease_revoked", "lease_not_found"]) {
    assert.ok(kinds.has(kind as ApplyResult["kind"]), `the log has a ${kind}`);
  }
  assert.ok(
    resultsA.some((r) => r.kind === "lease_revoked" && r.deleted > 0),
    "a revoke deletes keys",
  );
  // A node that joins from a snapshot taken half-way ends in the same state.
  const half = new KvStore();
  log.slice(0, 500).forEach((data, i) => half.apply(i + 1, data));
  const snapshot = encodeKvState({
    store: half.exportState(),
    appliedTerm: 1,
    chainLink: new Uint8Array(32),
  });
  const joined = KvStore.fromState(decodeKvState(snapshot).store);
  const rest = log.slice(500).map((data, i) => joined.apply(501 + i, data));
  assert.deepEqual(rest, resultsA.slice(500));
  assert.equal(joined.digest(), a.digest());
});
