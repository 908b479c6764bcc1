/**
 * The key-value state machine, one behaviour per step.
 *
 * @module
 */

import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { CommandSchema } from "../../src/gen/raftkv/v1/raft_pb.ts";
import { decodeCommand, KvStore } from "../../src/kv/mod.ts";
import { bytes, cas, del, NOOP, put } from "./helpers.ts";

/** A store with `entries` applied at indexes 1, 2, … */
function storeWith(...entries: Uint8Array[]): KvStore {
  const store = new KvStore();
  for (const data of entries) store.apply(store.appliedIndex + 1, data);
  return store;
}

/** Applies `data` at the next index. */
function next(store: KvStore, data: Uint8Array): ReturnType<KvStore["apply"]> {
  return store.apply(store.appliedIndex + 1, data);
}

Deno.test("KvStore put and get", async (t) => {
  await t.step("a put is read back by get", () => {
    const store = new KvStore();
    assert.deepEqual(store.apply(1, put("a", "1")), { kind: "put", index: 1 });
    assert.deepEqual(store.get("a"), bytes("1"));
    assert.equal(store.size, 1);
  });

  await t.step("a second put to the same key overwrites the value", () => {
    const store = storeWith(put("a", "1"), put("a", "2"));
    assert.deepEqual(store.get("a"), bytes("2"));
    assert.equal(store.size, 1);
  });

  await t.step("get of a key never written is undefined", () => {
    assert.equal(storeWith(put("a", "1")).get("b"), undefined);
  });

  await t.step("an empty value is stored, and is not the same as absent", () => {
    const store = storeWith(put("a", ""));
    assert.deepEqual(store.get("a"), new Uint8Array());
    assert.equal(store.size, 1);
  });

  await t.step("keys are exact strings: no normalization, case folding or trimming", () => {
    const store = storeWith(put("K", "upper"), put("k", "lower"), put("k ", "space"));
    assert.equal(store.size, 3);
    assert.deepEqual(store.get("k"), bytes("lower"));
  });
});

Deno.test("KvStore delete", async (t) => {
  await t.step("deleting an existing key removes it and reports deleted: true", () => {
    const store = storeWith(put("a", "1"), put("b", "2"));
    assert.deepEqual(next(store, del("a")), { kind: "delete", deleted: true });
    assert.equal(store.get("a"), undefined);
    assert.deepEqual(store.get("b"), bytes("2"));
    assert.equal(store.size, 1);
  });

  await t.step("deleting an absent key succeeds with deleted: false and changes no key", () => {
    const store = storeWith(put("b", "2"));
    assert.deepEqual(next(store, del("a")), { kind: "delete", deleted: false });
    assert.equal(store.appliedIndex, 2);
    assert.equal(store.size, 1);
    assert.deepEqual(store.get("b"), bytes("2"));
  });

  await t.step("a key deleted twice reports deleted: true, then false", () => {
    const store = storeWith(put("a", "1"));
    assert.deepEqual(next(store, del("a")), { kind: "delete", deleted: true });
    assert.deepEqual(next(store, del("a")), { kind: "delete", deleted: false });
  });
});

Deno.test("KvStore compare-and-swap", async (t) => {
  await t.step("unset expected on an absent key succeeds and creates the key", () => {
    const store = new KvStore();
    assert.deepEqual(store.apply(1, cas("a", undefined, "new")), {
      kind: "cas",
      succeeded: true,
      found: true,
      value: bytes("new"),
    });
    assert.deepEqual(store.get("a"), bytes("new"));
  });

  await t.step("unset expected on a present key fails and reports the current value", () => {
    const store = storeWith(put("a", "current"));
    assert.deepEqual(next(store, cas("a", undefined, "new")), {
      kind: "cas",
      succeeded: false,
      found: true,
      value: bytes("current"),
    });
    assert.deepEqual(store.get("a"), bytes("current"));
  });

  await t.step("unset expected on a key holding an empty value fails: it exists", () => {
    const store = storeWith(put("a", ""));
    assert.deepEqual(next(store, cas("a", undefined, "new")), {
      kind: "cas",
      succeeded: false,
      found: true,
      value: new Uint8Array(),
    });
  });

  await t.step(
    "expected equal to the current value succeeds, reporting the key as it now stands",
    () => {
      // kv.proto: found and value describe the key as it stands after the call.
      const store = storeWith(put("a", "old"));
      assert.deepEqual(next(store, cas("a", "old", "new")), {
        kind: "cas",
        succeeded: true,
        found: true,
        value: bytes("new"),
      });
      assert.deepEqual(store.get("a"), bytes("new"));
    },
  );

  await t.step("expected unequal to the current value fails and reports the current value", () => {
    const store = storeWith(put("a", "current"));
    assert.deepEqual(next(store, cas("a", "stale", "new")), {
      kind: "cas",
      succeeded: false,
      found: true,
      value: bytes("current"),
    });
    assert.deepEqual(store.get("a"), bytes("current"));
  });

  await t.step("the comparison is byte for byte: one differing byte fails", () => {
    const store = storeWith(put("a", new Uint8Array([1, 2, 3])));
    const result = next(store, cas("a", new Uint8Array([1, 2, 4]), "new"));
    assert.equal(result.kind === "cas" && result.succeeded, false);
    const prefix = next(store, cas("a", new Uint8Array([1, 2]), "new"));
    assert.equal(prefix.kind === "cas" && prefix.succeeded, false);
    assert.deepEqual(store.get("a"), new Uint8Array([1, 2, 3]));
  });

  await t.step("expected set on an absent key fails with found: false", () => {
    const store = new KvStore();
    assert.deepEqual(store.apply(1, cas("a", "anything", "new")), {
      kind: "cas",
      succeeded: false,
      found: false,
      value: new Uint8Array(),
    });
    assert.equal(store.get("a"), undefined);
    assert.equal(store.size, 0);
  });

  await t.step("expected empty bytes matches a key holding an empty value", () => {
    const store = storeWith(put("a", ""));
    const result = next(store, cas("a", new Uint8Array(), "filled"));
    assert.deepEqual(result, {
      kind: "cas",
      succeeded: true,
      found: true,
      value: bytes("filled"),
    });
    assert.deepEqual(store.get("a"), bytes("filled"));
  });

  await t.step("expected empty bytes does not match an absent key", () => {
    const store = new KvStore();
    const result = store.apply(1, cas("a", new Uint8Array(), "filled"));
    assert.equal(result.kind === "cas" && result.succeeded, false);
    assert.equal(store.get("a"), undefined);
  });
});

Deno.test("KvStore applied index", async (t) => {
  await t.step("a new store has applied index 0 and no keys", () => {
    const store = new KvStore();
    assert.equal(store.appliedIndex, 0);
    assert.equal(store.size, 0);
  });

  await t.step("every applied entry advances the index by one", () => {
    const store = new KvStore();
    store.apply(1, put("a", "1"));
    assert.equal(store.appliedIndex, 1);
    store.apply(2, del("a"));
    assert.equal(store.appliedIndex, 2);
    store.apply(3, cas("a", "x", "y")); // a failed CAS is still applied
    assert.equal(store.appliedIndex, 3);
  });

  await t.step("no-op entries (empty data) advance the index and change nothing else", () => {
    const store = storeWith(put("a", "1"));
    const contents = new KvStore();
    contents.apply(1, put("a", "1"));
    assert.deepEqual(store.apply(2, NOOP), { kind: "noop" });
    assert.deepEqual(store.apply(3, NOOP), { kind: "noop" });
    assert.equal(store.appliedIndex, 3);
    assert.equal(store.size, 1);
    assert.deepEqual(store.get("a"), bytes("1"));
    assert.equal(store.getRecord("a")?.modIndex, 1, "a no-op changes no key's mod index");
    // Same state as a store whose entries 2 and 3 changed nothing in another way.
    contents.apply(2, del("absent"));
    contents.apply(3, cas("absent", "x", "y"));
    assert.equal(store.digest(), contents.digest());
  });

  await t.step("a no-op can be the very first entry", () => {
    const store = new KvStore();
    assert.deepEqual(store.apply(1, NOOP), { kind: "noop" });
    assert.equal(store.appliedIndex, 1);
  });

  await t.step("an out-of-order apply throws naming both indexes, and changes nothing", () => {
    const store = storeWith(put("a", "1"), put("b", "2"));
    const before = store.digest();
    const cases: Array<[number, string]> = [
      [4, "Cannot apply entry 4: the store has applied up to 2, so the next entry must be 3"],
      [2, "Cannot apply entry 2: the store has applied up to 2, so the next entry must be 3"],
      [1, "Cannot apply entry 1: the store has applied up to 2, so the next entry must be 3"],
      [0, "Cannot apply entry 0: the store has applied up to 2, so the next entry must be 3"],
      [2.5, "Cannot apply entry 2.5: the store has applied up to 2, so the next entry must be 3"],
    ];
    for (const [index, message] of cases) {
      assert.throws(() => store.apply(index, put("a", "changed")), { message });
      assert.throws(() => store.apply(index, NOOP), { message });
    }
    assert.equal(store.appliedIndex, 2);
    assert.equal(store.digest(), before);
  });

  await t.step("the first entry must be index 1", () => {
    assert.throws(() => new KvStore().apply(0, NOOP), {
      message: "Cannot apply entry 0: the store has applied up to 0, so the next entry must be 1",
    });
  });

  await t.step("an entry that does not decode throws and leaves the store unchanged", () => {
    const store = storeWith(put("a", "1"));
    const before = store.digest();
    assert.throws(() => store.apply(2, new Uint8Array([0xff, 0xff, 0xff])), {
      message: /^Cannot decode command: /,
    });
    assert.equal(store.appliedIndex, 1);
    assert.equal(store.digest(), before);
    // The same index can then be applied with valid data.
    assert.deepEqual(store.apply(2, put("b", "2")), { kind: "put", index: 2 });
  });
});

Deno.test("KvStore applyCommand (the entry already decoded)", async (t) => {
  await t.step("gives the same results and state as apply", () => {
    const entries = [put("a", "1"), NOOP, cas("a", "1", "2"), del("b")];
    const viaApply = new KvStore();
    const viaCommand = new KvStore();
    entries.forEach((data, i) => {
      const decoded = data.length === 0 ? undefined : decodeCommand(data);
      assert.deepEqual(viaCommand.applyCommand(i + 1, decoded), viaApply.apply(i + 1, data));
    });
    assert.equal(viaCommand.digest(), viaApply.digest());
  });

  await t.step("a command with no operation throws and leaves the store unchanged", () => {
    const store = new KvStore();
    assert.throws(() => store.applyCommand(1, create(CommandSchema, { sessionId: 1n })), {
      message: "Cannot apply command: no operation is set",
    });
    assert.equal(store.appliedIndex, 0);
  });
});

Deno.test("KvStore buffers are not shared with callers", async (t) => {
  await t.step("mutating the entry data after apply does not change the stored value", () => {
    // Decoded bytes fields are views into the entry data; the store must copy them.
    const data = put("a", "hello");
    const store = storeWith(data);
    data.fill(0);
    assert.deepEqual(store.get("a"), bytes("hello"));
  });

  await t.step("mutating the value of a command passed to applyCommand does not", () => {
    const value = bytes("hello");
    const store = new KvStore();
    store.applyCommand(
      1,
      create(CommandSchema, { op: { case: "put", value: { key: "a", value } } }),
    );
    value.fill(0);
    assert.deepEqual(store.get("a"), bytes("hello"));
  });

  await t.step("mutating the entry data of a successful CAS does not change the new value", () => {
    const data = cas("a", undefined, "created");
    const store = storeWith(data);
    data.fill(0);
    assert.deepEqual(store.get("a"), bytes("created"));
  });

  await t.step("mutating a value returned by get does not change the store", () => {
    const store = storeWith(put("a", "hello"));
    const got = store.get("a");
    assert.ok(got);
    got.fill(0);
    assert.deepEqual(store.get("a"), bytes("hello"));
    assert.notEqual(store.get("a"), store.get("a")); // a fresh copy each time
  });

  await t.step("mutating the value in a failed CAS result does not change the store", () => {
    const store = storeWith(put("a", "hello"));
    const result = next(store, cas("a", "other", "new"));
    assert.ok(result.kind === "cas" && !result.succeeded);
    result.value.fill(0);
    assert.deepEqual(store.get("a"), bytes("hello"));
  });

  await t.step("mutating the value in a successful CAS result does not change the store", () => {
    const store = storeWith(put("a", "old"));
    const result = next(store, cas("a", "old", "new"));
    assert.ok(result.kind === "cas" && result.succeeded);
    result.value.fill(0);
    assert.deepEqual(store.get("a"), bytes("new"));
    const again = next(store, cas("a", "new", "newer"));
    assert.ok(again.kind === "cas" && again.succeeded);
  });
});

Deno.test("KvStore digest", async (t) => {
  await t.step("is a SHA-256 hex string, stable across calls", () => {
    const store = storeWith(put("a", "1"));
    assert.match(store.digest(), /^[0-9a-f]{64}$/);
    assert.equal(store.digest(), store.digest());
  });

  await t.step("is equal for equal keys, values and indexes, whatever else happened", () => {
    const ab = storeWith(put("a", "1"), put("b", "2"), NOOP);
    const viaDelete = storeWith(put("a", "1"), put("b", "2"), del("c"));
    assert.equal(ab.digest(), viaDelete.digest());
  });

  await t.step("differs when only a key's create or mod index differs", () => {
    // Same keys, values and applied index; "a" was written at 2 instead of 1.
    const early = storeWith(put("a", "1"), put("b", "2"), NOOP);
    const late = storeWith(put("b", "2"), put("a", "1"), NOOP);
    assert.notEqual(early.digest(), late.digest());
    const rewritten = storeWith(put("a", "1"), put("b", "2"), put("a", "1"));
    assert.notEqual(early.digest(), rewritten.digest());
  });

  await t.step("differs when only the applied index differs", () => {
    const store = storeWith(put("a", "1"));
    const before = store.digest();
    store.apply(2, NOOP);
    assert.notEqual(store.digest(), before);
  });

  await t.step("differs when one value differs", () => {
    assert.notEqual(storeWith(put("a", "1")).digest(), storeWith(put("a", "2")).digest());
  });

  await t.step("differs between an empty value and an absent key", () => {
    assert.notEqual(storeWith(put("a", "")).digest(), storeWith(del("a")).digest());
  });

  await t.step("does not confuse where a key ends and its value begins", () => {
    assert.notEqual(storeWith(put("ab", "c")).digest(), storeWith(put("a", "bc")).digest());
  });
});

Deno.test("readRecord shows a key's value and indexes as the store holds them, and a later write replaces the value rather than changing it", () => {
  const store = new KvStore();
  store.apply(1, put("a", "first"));
  store.apply(2, put("a", "second"));
  const seen = store.readRecord("a");
  assert.deepEqual(seen?.value, bytes("second"));
  assert.equal(seen?.createIndex, 1);
  assert.equal(seen?.modIndex, 2);
  assert.equal(seen?.lease, 0);
  // The same as getRecord's copy.
  assert.deepEqual({ ...seen }, { ...store.getRecord("a") });
  store.apply(3, put("a", "third"));
  // What was shown before the write still says what it said: the write made a new buffer.
  assert.deepEqual(seen?.value, bytes("second"));
  assert.deepEqual(store.readRecord("a")?.value, bytes("third"));
  store.apply(4, del("a"));
  assert.equal(store.readRecord("a"), undefined);
  assert.equal(store.readRecord("never"), undefined);
});
