/**
 * The key-value state codec: a store encoded and decoded is the same store (same
 * digest, same answers, same exactly-once sessions), and bad bytes are refused by name.
 */

import assert from "node:assert/strict";
import { AppliedChain } from "../../src/kv/applied_chain.ts";
import { encodeCommand } from "../../src/kv/command.ts";
import { SESSION_TTL_MS } from "../../src/kv/sessions.ts";
import {
  decodeKvState,
  encodeKvState,
  encodeKvStateInSteps,
  KvStateCodecError,
} from "../../src/kv/state_codec.ts";
import { KvStore } from "../../src/kv/store.ts";
import { bytes, cas, del, put } from "./helpers.ts";

const T0 = 1_700_000_000_000;

function command(cmd: Parameters<typeof encodeCommand>[0]): Uint8Array {
  return encodeCommand(cmd);
}

/** A store with keys, deletes, a CAS, a no-op and two sessions, one of them with a CAS result. */
function busyStore(): { store: KvStore; chain: AppliedChain } {
  const store = new KvStore();
  const chain = new AppliedChain();
  const entries: Uint8Array[] = [
    new Uint8Array(), // a leader's no-op
    put("a", "1"),
    put("b", "2"),
    put("ключ", new Uint8Array([0, 255, 7])),
    del("b"),
    cas("a", "1", "3"),
    command({ timeMs: BigInt(T0), op: { case: "openSession", value: {} } }),
    command({ timeMs: BigInt(T0 + 1), op: { case: "openSession", value: {} } }),
    command({
      sessionId: 7n,
      sequence: 1n,
      timeMs: BigInt(T0 + 2),
      op: { case: "compareAndSwap", value: { key: "c", value: bytes("x") } },
    }),
    command({
      sessionId: 8n,
      sequence: 1n,
      timeMs: BigInt(T0 + 3),
      op: { case: "put", value: { key: "d", value: bytes("y") } },
    }),
    put("", ""),
  ];
  entries.forEach((data, i) => {
    store.apply(i + 1, data);
    chain.add({ index: i + 1, term: 2, data });
  });
  return { store, chain };
}

function roundTrip(store: KvStore, chain: AppliedChain) {
  const bytes = encodeKvState({
    store: store.exportState(),
    appliedTerm: 2,
    ...chain.image(),
  });
  return { bytes, decoded: decodeKvState(bytes) };
}

Deno.test("a restored store has the same digest, keys, values, applied index and chain", () => {
  const { store, chain } = busyStore();
  const { decoded } = roundTrip(store, chain);
  const restored = KvStore.fromState(decoded.store);
  assert.equal(restored.digest(), store.digest());
  assert.equal(restored.appliedIndex, 11);
  assert.equal(decoded.appliedTerm, 2);
  assert.equal(new AppliedChain(decoded.chainLink, decoded.chainGroup).hex(), chain.hex());
  assert.deepEqual(restored.get("a"), bytes("3"));
  assert.equal(restored.get("b"), undefined);
  assert.deepEqual(restored.get("ключ"), new Uint8Array([0, 255, 7]));
  assert.deepEqual(restored.get(""), new Uint8Array());
  assert.equal(restored.size, store.size);
  assert.equal(restored.sessionCount, 2);
});

Deno.test("the restored chain continues like the original: both add the next entry alike", () => {
  const { store, chain } = busyStore();
  const { decoded } = roundTrip(store, chain);
  const resumed = new AppliedChain(decoded.chainLink, decoded.chainGroup);
  const next = { index: 12, term: 3, data: put("e", "z") };
  chain.add(next);
  resumed.add(next);
  assert.equal(resumed.hex(), chain.hex());
});

Deno.test("a retry of a write applied before the snapshot is answered once after restore", () => {
  const { store, chain } = busyStore();
  const restored = KvStore.fromState(roundTrip(store, chain).decoded.store);
  const retry = command({
    sessionId: 7n,
    sequence: 1n,
    timeMs: BigInt(T0 + 4),
    op: { case: "compareAndSwap", value: { key: "c", value: bytes("x") } },
  });
  // Applied again, the CAS (expecting "c" absent) would fail; the session answers
  // with the first outcome, success, on both stores.
  const a = store.apply(12, retry);
  const b = restored.apply(12, retry);
  assert.deepEqual(b, a);
  assert.deepEqual(b, { kind: "cas", succeeded: true, found: true, value: bytes("x") });
  assert.equal(restored.digest(), store.digest());
});

Deno.test("session order survives a restore: the idlest session expires first on both", () => {
  const { store, chain } = busyStore();
  const restored = KvStore.fromState(roundTrip(store, chain).decoded.store);
  // Session 8 was used last. An hour later, a write in session 8 keeps it alive
  // while session 7 expires, on the original and the restored store alike.
  const later = command({
    sessionId: 8n,
    sequence: 2n,
    timeMs: BigInt(T0 + SESSION_TTL_MS + 3),
    op: { case: "put", value: { key: "d", value: bytes("w") } },
  });
  assert.deepEqual(restored.apply(12, later), store.apply(12, later));
  assert.equal(store.sessionCount, 1);
  assert.equal(restored.sessionCount, 1);
  assert.equal(restored.digest(), store.digest());
});

Deno.test("encoding is deterministic: the same history gives the same bytes", () => {
  const one = busyStore();
  const two = busyStore();
  assert.deepEqual(roundTrip(one.store, one.chain).bytes, roundTrip(two.store, two.chain).bytes);
  // And a restored store encodes back to the same bytes.
  const { bytes: first, decoded } = roundTrip(one.store, one.chain);
  const again = encodeKvState({
    store: KvStore.fromState(decoded.store).exportState(),
    appliedTerm: decoded.appliedTerm,
    chainLink: decoded.chainLink,
    chainGroup: decoded.chainGroup,
  });
  assert.deepEqual(again, first);
});

Deno.test("an exported state stays as of its index while the store moves on", () => {
  const { store, chain } = busyStore();
  const state = store.exportState();
  const digest = store.digest();
  store.apply(12, put("a", "changed"));
  store.apply(13, del("ключ"));
  const restored = KvStore.fromState(
    decodeKvState(encodeKvState({ store: state, appliedTerm: 2, ...chain.image() })).store,
  );
  assert.equal(restored.digest(), digest);
  assert.deepEqual(restored.get("a"), bytes("3"));
});

Deno.test("encoding in steps yields between slices and gives the same bytes", () => {
  const store = new KvStore();
  for (let i = 1; i <= 200; i++) store.apply(i, put(`key-${i}`, "v".repeat(100)));
  const state = { store: store.exportState(), appliedTerm: 1, chainLink: new Uint8Array(32) };
  const steps = encodeKvStateInSteps(state, 1000);
  let yields = 0;
  let result;
  for (;;) {
    const next = steps.next();
    if (next.done) {
      result = next.value;
      break;
    }
    yields++;
  }
  assert.ok(yields >= 20, `expected a yield per ~1000 bytes, got ${yields}`);
  assert.deepEqual(result, encodeKvState(state));
});

Deno.test("an empty store round-trips", () => {
  const store = new KvStore();
  const decoded = decodeKvState(
    encodeKvState({ store: store.exportState(), appliedTerm: 0, chainLink: new Uint8Array(32) }),
  );
  assert.equal(KvStore.fromState(decoded.store).digest(), store.digest());
});

Deno.test("every truncation of an encoded state is refused with a KvStateCodecError", () => {
  const { store, chain } = busyStore();
  const { bytes: full } = roundTrip(store, chain);
  for (let n = 0; n < full.length; n++) {
    assert.throws(
      () => decodeKvState(full.subarray(0, n)),
      KvStateCodecError,
      `a prefix of ${n} of ${full.length} bytes was accepted`,
    );
  }
});

Deno.test("a truncation inside a key's record names that key and field; non-ASCII keys decode as UTF-8", () => {
  const store = new KvStore();
  const chain = new AppliedChain();
  // An ASCII key, and a non-ASCII one (decoded by the UTF-8 decoder, which checks it).
  store.apply(1, put("plain", "v1"));
  store.apply(2, put("größe-ключ", "v2"));
  const { bytes: full, decoded } = roundTrip(store, chain);
  assert.deepEqual(decoded.store.keys, ["größe-ключ", "plain"]);
  // Key 1 is "plain" (key order): cut its value "v1" after its first byte.
  let at = -1;
  for (let k = 0; k + 1 < full.length && at < 0; k++) {
    if (full[k] === 0x76 && full[k + 1] === 0x31) at = k;
  }
  assert.ok(at > 0, "the value's bytes are in the encoding");
  assert.throws(
    () => decodeKvState(full.subarray(0, at + 1)),
    /key 1's value at offset \d+ needs 2 bytes, only 1 remain/,
  );
});

Deno.test("bad bytes are refused by name: magic, version, tag, leftovers, repeated key", () => {
  const { store, chain } = busyStore();
  const { bytes: full } = roundTrip(store, chain);
  const flip = (offset: number, value: number) => {
    const b = full.slice();
    b[offset] = value;
    return b;
  };
  assert.throws(() => decodeKvState(flip(0, 0x58)), /does not start with RKVSTATE/);
  assert.throws(() => decodeKvState(flip(8, 3)), /version 3; this node reads versions 1 to 2/);
  const withExtra = new Uint8Array(full.length + 1);
  withExtra.set(full);
  assert.throws(() => decodeKvState(withExtra), /1 bytes left over after the last section/);
  // The first session's result tag sits after the fixed part and three u64s.
  const firstTag = 8 + 4 + 8 + 8 + 32 + 8 + 4 + 24;
  assert.throws(() => decodeKvState(flip(firstTag, 99)), /unknown tag 99/);
  const twice = new KvStore();
  twice.apply(1, put("k", "v"));
  const state = twice.exportState();
  const doubled = {
    ...state,
    keys: [...state.keys, ...state.keys],
    values: [...state.values, ...state.values],
    createIndexes: [...state.createIndexes!, ...state.createIndexes!],
    modIndexes: [...state.modIndexes!, ...state.modIndexes!],
    keyLeases: [...state.keyLeases!, ...state.keyLeases!],
  };
  const encoded = encodeKvState({ store: doubled, appliedTerm: 1, chainLink: new Uint8Array(32) });
  assert.throws(() => decodeKvState(encoded), /key "k" appears twice/);
});

Deno.test("restore replaces a store's whole state in place", () => {
  const { store, chain } = busyStore();
  const other = new KvStore();
  other.apply(1, put("only", "here"));
  other.restore(roundTrip(store, chain).decoded.store);
  assert.equal(other.digest(), store.digest());
  assert.equal(other.get("only"), undefined);
  assert.equal(other.appliedIndex, 11);
});

Deno.test("create and mod indexes survive a snapshot", () => {
  const { store, chain } = busyStore();
  const restored = KvStore.fromState(roundTrip(store, chain).decoded.store);
  // "a": put at 2, CAS at 6; "d": put at 10 in a session.
  assert.deepEqual(
    { c: restored.getRecord("a")?.createIndex, m: restored.getRecord("a")?.modIndex },
    { c: 2, m: 6 },
  );
  assert.equal(restored.getRecord("d")?.modIndex, 10);
});

/**
 * The bytes of the sections of a store with no leases: key indexes, leases, key
 * leases, and the chain's open group when it has one.
 */
function sectionBytes(store: KvStore, chain: AppliedChain): number {
  const group = chain.image().chainGroup.length;
  return 4 + (8 + 16 * store.size) + (8 + 4) + (8 + 4) + (group > 0 ? 8 + group : 0);
}

/** How many sections a store with no leases has (see sectionBytes). */
function sectionCount(chain: AppliedChain): number {
  return chain.image().chainGroup.length > 0 ? 4 : 3;
}

/** A state in version 1's layout (no sections), as a node before key indexes wrote it. */
function versionOneBytes(store: KvStore, chain: AppliedChain): Uint8Array {
  const v2 = roundTrip(store, chain).bytes;
  const keysEnd = v2.length - sectionBytes(store, chain); // the sections come last
  const v1 = v2.slice(0, keysEnd);
  new DataView(v1.buffer).setUint32(8, 1, true);
  return v1;
}

Deno.test("a version 1 state is still read: its keys count as changed at its applied index", () => {
  const { store, chain } = busyStore();
  const decoded = decodeKvState(versionOneBytes(store, chain));
  const restored = KvStore.fromState(decoded.store);
  assert.deepEqual(restored.get("a"), bytes("3"));
  assert.equal(restored.size, store.size);
  assert.deepEqual(restored.getRecord("a")?.createIndex, 11);
  assert.deepEqual(restored.getRecord("a")?.modIndex, 11);
  // Two nodes restoring the same old snapshot agree.
  const again = KvStore.fromState(decodeKvState(versionOneBytes(store, chain)).store);
  assert.equal(again.digest(), restored.digest());
});

Deno.test("an unknown section is refused by name, not skipped", () => {
  const { store, chain } = busyStore();
  const { bytes: full } = roundTrip(store, chain);
  const withSection = new Uint8Array(full.length + 8);
  withSection.set(full);
  const view = new DataView(withSection.buffer);
  const countAt = full.length - sectionBytes(store, chain);
  view.setUint32(countAt, sectionCount(chain) + 1, true);
  view.setUint32(full.length, 99, true);
  view.setUint32(full.length + 4, 0, true);
  assert.throws(() => decodeKvState(withSection), /unknown section 99/);
});
