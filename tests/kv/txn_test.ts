/**
 * Transactions in the state machine: each kind of compare, which branch runs, what
 * each operation returns, all writes at the transaction's one index, operations that
 * see the ones before them, exactly-once in a session, and bad transactions refused.
 *
 * @module
 */

import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { TxnRequestSchema } from "../../src/gen/raftkv/v1/kv_pb.ts";
import { encodeCommand } from "../../src/kv/command.ts";
import { decodeKvState, encodeKvState } from "../../src/kv/state_codec.ts";
import { KvStore } from "../../src/kv/store.ts";
import { checkTxn, MAX_TXN_OPS } from "../../src/kv/txn.ts";
import { KvInputError } from "../../src/kv/validate.ts";
import { bytes, put, txn, txnResponse } from "./helpers.ts";

const text = (b: Uint8Array | undefined) =>
  b === undefined ? undefined : new TextDecoder().decode(b);

/** A store with a = "1" (written at 1), b = "2" (written at 2). */
function twoKeys(): KvStore {
  const store = new KvStore();
  store.apply(1, put("a", "1"));
  store.apply(2, put("b", "2"));
  return store;
}

const setC = [{ op: { case: "put" as const, value: { key: "c", value: bytes("yes") } } }];
const setD = [{ op: { case: "put" as const, value: { key: "d", value: bytes("no") } } }];

Deno.test("each kind of compare decides the branch", () => {
  type Check = NonNullable<Parameters<typeof txn>[0]["compares"]>[number]["check"];
  const cases: [string, string, Check, boolean][] = [
    ["value equals, same", "a", { case: "valueEquals", value: bytes("1") }, true],
    ["value equals, other", "a", { case: "valueEquals", value: bytes("2") }, false],
    ["value equals, missing key", "zz", { case: "valueEquals", value: bytes("") }, false],
    ["exists, present", "a", { case: "exists", value: true }, true],
    ["exists, missing", "zz", { case: "exists", value: true }, false],
    ["not exists, missing", "zz", { case: "exists", value: false }, true],
    ["not exists, present", "a", { case: "exists", value: false }, false],
    ["mod = its index", "b", { case: "modIndexEquals", value: 2n }, true],
    ["mod = another", "b", { case: "modIndexEquals", value: 1n }, false],
    ["mod = 0, missing key", "zz", { case: "modIndexEquals", value: 0n }, true],
    ["mod < later", "a", { case: "modIndexLess", value: 2n }, true],
    ["mod < itself", "a", { case: "modIndexLess", value: 1n }, false],
    ["mod < 1, missing key", "zz", { case: "modIndexLess", value: 1n }, true],
    ["mod > earlier", "b", { case: "modIndexGreater", value: 1n }, true],
    ["mod > itself", "b", { case: "modIndexGreater", value: 2n }, false],
    ["mod > 0, missing key", "zz", { case: "modIndexGreater", value: 0n }, false],
  ];
  for (const [name, key, check, holds] of cases) {
    const store = twoKeys();
    const result = store.apply(
      3,
      txn({ compares: [{ key, check }], success: setC, failure: setD }),
    );
    assert.equal(result.kind === "txn" && result.succeeded, holds, name);
    assert.equal(store.get(holds ? "c" : "d") !== undefined, true, `${name}: its branch ran`);
    assert.equal(store.get(holds ? "d" : "c"), undefined, `${name}: the other branch did not`);
  }
});

Deno.test("all compares must hold; none means success", () => {
  const store = twoKeys();
  const mixed = store.apply(
    3,
    txn({
      compares: [
        { key: "a", check: { case: "exists", value: true } },
        { key: "b", check: { case: "valueEquals", value: bytes("nope") } },
      ],
      success: setC,
      failure: setD,
    }),
  );
  assert.equal(txnResponse(mixed).succeeded, false);
  assert.equal(txnResponse(store.apply(4, txn({ success: setC }))).succeeded, true);
  assert.equal(text(store.get("c")), "yes");
});

Deno.test("a branch's operations run in order at one index, each seeing the ones before", () => {
  const store = twoKeys();
  const result = store.apply(
    3,
    txn({
      success: [
        { op: { case: "get", value: { key: "a" } } },
        { op: { case: "put", value: { key: "a", value: bytes("10") } } },
        { op: { case: "get", value: { key: "a" } } },
        { op: { case: "delete", value: { key: "b" } } },
        { op: { case: "delete", value: { key: "b" } } },
        { op: { case: "put", value: { key: "n", value: bytes("new") } } },
        { op: { case: "range", value: { start: "a", limit: 10 } } },
      ],
    }),
  );
  const r = txnResponse(result);
  assert.equal(r.succeeded, true);
  assert.equal(r.index, 3n);
  const [get1, put1, get2, del1, del2, , range] = r.responses.map((x) => x.op);
  assert.ok(get1?.case === "get" && text(get1.value.value) === "1" && get1.value.modIndex === 1n);
  assert.ok(put1?.case === "put" && put1.value.index === 3n);
  assert.ok(get2?.case === "get" && text(get2.value.value) === "10" && get2.value.modIndex === 3n);
  assert.ok(get2.value.createIndex === 1n, "an overwrite keeps the create index");
  assert.ok(del1?.case === "delete" && del1.value.deleted === true);
  assert.ok(del2?.case === "delete" && del2.value.deleted === false);
  assert.ok(range?.case === "range");
  assert.deepEqual(range.value.kvs.map((kv) => [kv.key, kv.modIndex, kv.createIndex]), [
    ["a", 3n, 1n],
    ["n", 3n, 3n],
  ]);
  assert.equal(store.getRecord("n")?.modIndex, 3);
  assert.equal(store.appliedIndex, 3);
});

Deno.test("a retried transaction in a session returns its first result, applied once", () => {
  const store = new KvStore();
  store.apply(1, encodeCommand({ op: { case: "openSession", value: {} } }));
  // Create "lock" only if absent: applied twice, the second would fail.
  const acquire = txn({
    compares: [{ key: "lock", check: { case: "exists", value: false } }],
    success: [{ op: { case: "put", value: { key: "lock", value: bytes("me") } } }],
  }, { id: 1, sequence: 1 });
  const first = store.apply(2, acquire);
  store.apply(3, put("other", "x"));
  const retry = store.apply(4, acquire);
  assert.deepEqual(retry, first);
  assert.equal(txnResponse(retry).succeeded, true);
  assert.equal(txnResponse(retry).index, 2n);
  assert.equal(store.getRecord("lock")?.modIndex, 2, "not applied again");
  // And after a snapshot, the retry is still answered from the session.
  const restored = KvStore.fromState(
    decodeKvState(
      encodeKvState({ store: store.exportState(), appliedTerm: 1, chainLink: new Uint8Array(32) }),
    ).store,
  );
  assert.deepEqual(restored.apply(5, acquire), first);
  assert.equal(restored.digest(), (store.apply(5, acquire), store.digest()));
});

Deno.test("bad transactions are refused by name before proposing", () => {
  const bad: [Parameters<typeof create<typeof TxnRequestSchema>>[1], RegExp][] = [
    [{ compares: [{ key: "a" }] }, /compare 0 has no check set/],
    [
      { compares: [{ key: "", check: { case: "exists", value: true } }] },
      /compare 0: .*key is empty/,
    ],
    [{ success: [{}] }, /success operation 0: no operation is set/],
    [
      {
        failure: [{ op: { case: "put", value: { key: "k", session: { id: 1n, sequence: 1n } } } }],
      },
      /failure operation 0: an operation has its own session/,
    ],
    [{ success: [{ op: { case: "range", value: { start: "b", end: "a" } } }] }, /must sort after/],
    [{
      success: Array.from({ length: MAX_TXN_OPS + 1 }, () => ({
        op: { case: "get" as const, value: { key: "k" } },
      })),
    }, /129 success operations, at most 128/],
  ];
  for (const [init, message] of bad) {
    assert.throws(
      () => checkTxn(create(TxnRequestSchema, init)),
      (e) => e instanceof KvInputError && message.test(e.message),
      String(message),
    );
  }
});
