/**
 * The applied chain (src/kv/applied_chain.ts): its value depends on the applied
 * sequence alone, any difference in it shows, and a chain restored from its image
 * (what a snapshot stores) goes on exactly like the original.
 */
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { AppliedChain, CHAIN_GROUP_BYTES, checkChainGroup } from "../../src/kv/applied_chain.ts";
import { decodeKvState, encodeKvState, KvStateCodecError } from "../../src/kv/state_codec.ts";
import { KvStore } from "../../src/kv/store.ts";

function entry(
  index: number,
  size = 300,
  term = 2,
): { index: number; term: number; data: Uint8Array } {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (index * 31 + i) % 251;
  return { index, term, data };
}

/** The chain's value after each of `entries`, adding them one at a time. */
function values(entries: ReturnType<typeof entry>[]): string[] {
  const c = new AppliedChain();
  return entries.map((e) => {
    c.add(e);
    return c.hex();
  });
}

/** The definition written out by hand: groups close at CHAIN_GROUP_BYTES of frames. */
function byHand(entries: ReturnType<typeof entry>[]): string {
  let link: Uint8Array = new Uint8Array(32);
  let group: number[] = [];
  const frame = (e: ReturnType<typeof entry>): number[] => {
    const h = new DataView(new ArrayBuffer(20));
    h.setBigUint64(0, BigInt(e.index), true);
    h.setBigUint64(8, BigInt(e.term), true);
    h.setUint32(16, e.data.length, true);
    return [...new Uint8Array(h.buffer), ...e.data];
  };
  for (const e of entries) {
    group.push(...frame(e));
    if (group.length >= CHAIN_GROUP_BYTES) {
      link = createHash("sha256").update(link).update(Uint8Array.from(group)).digest();
      group = [];
    }
  }
  const value = group.length === 0
    ? link
    : createHash("sha256").update(link).update(Uint8Array.from(group)).digest();
  return Buffer.from(value).toString("hex");
}

const history = Array.from({ length: 200 }, (_, i) => entry(i + 1, i % 7 === 0 ? 0 : 300));

Deno.test("the chain's value follows its definition, across closed groups and an open one", () => {
  assert.equal(new AppliedChain().hex(), "0".repeat(64));
  for (const n of [1, 2, 53, 54, 55, 120, 200]) {
    assert.equal(values(history.slice(0, n))[n - 1], byHand(history.slice(0, n)), `after ${n}`);
  }
});

Deno.test("nodes that applied the same entries agree at every index", () => {
  assert.deepEqual(values(history), values(history.map((e) => ({ ...e }))));
});

Deno.test("any difference in the applied sequence shows, at that index and every later one", () => {
  const base = values(history);
  const changes: [string, ReturnType<typeof entry>[]][] = [
    [
      "one byte of data",
      history.map((e) =>
        e.index === 30 ? { ...e, data: e.data.map((b, i) => i === 5 ? b ^ 1 : b) } : e
      ),
    ],
    ["a term", history.map((e) => e.index === 30 ? { ...e, term: 3 } : e)],
    [
      "a byte moved between entries",
      history.map((e) =>
        e.index === 30 ? { ...e, data: e.data.subarray(0, 299) } : e.index === 31
          ? {
            ...e,
            data: Uint8Array.of(
              e.data[0]!,
              ...history[29]!.data.subarray(299),
              ...e.data.subarray(1),
            ),
          }
          : e
      ),
    ],
  ];
  for (const [what, changed] of changes) {
    const other = values(changed);
    assert.deepEqual(other.slice(0, 29), base.slice(0, 29), `${what}: before the change`);
    for (let i = 29; i < base.length; i++) {
      assert.notEqual(other[i], base[i], `${what}: at index ${i + 1}`);
    }
  }
});

Deno.test("a chain restored from its image goes on like the original, whatever the open group holds", () => {
  for (const cut of [1, 40, 54, 55, 150]) {
    const original = new AppliedChain();
    for (const e of history.slice(0, cut)) original.add(e);
    const image = original.image();
    assert.ok(image.chainGroup.length < CHAIN_GROUP_BYTES);
    assert.equal(checkChainGroup(image.chainGroup, cut), undefined);
    const restored = new AppliedChain(image.chainLink, image.chainGroup);
    assert.equal(restored.hex(), original.hex(), `restored at ${cut}`);
    for (const e of history.slice(cut)) {
      original.add(e);
      restored.add(e);
      assert.equal(restored.hex(), original.hex(), `restored at ${cut}, after ${e.index}`);
    }
  }
});

Deno.test("an entry larger than a group closes the group by itself", () => {
  const big = [entry(1, 10), entry(2, CHAIN_GROUP_BYTES * 3), entry(3, 10)];
  const c = new AppliedChain();
  for (const e of big) c.add(e);
  assert.equal(c.hex(), byHand(big));
  assert.equal(c.image().chainGroup.length, 30);
});

Deno.test("a snapshot's state carries the open group; one that does not fit is refused", () => {
  const store = new KvStore();
  const chain = new AppliedChain();
  for (const e of history.slice(0, 40)) {
    store.applyCommand(e.index, undefined);
    chain.add(e);
  }
  const bytes = encodeKvState({ store: store.exportState(), appliedTerm: 2, ...chain.image() });
  const decoded = decodeKvState(bytes);
  assert.equal(new AppliedChain(decoded.chainLink, decoded.chainGroup).hex(), chain.hex());
  // The same group, claimed to end at another index.
  assert.throws(
    () =>
      decodeKvState(
        encodeKvState({
          store: { ...store.exportState(), appliedIndex: 41 },
          appliedTerm: 2,
          ...chain.image(),
        }),
      ),
    (err: Error) =>
      err instanceof KvStateCodecError &&
      /ends at entry 40, not at the applied index 41/.test(err.message),
  );
  const group = chain.image().chainGroup;
  assert.match(
    checkChainGroup(group.subarray(0, 10), 40) ?? "",
    /frame header at offset 0 runs past/,
  );
  assert.match(
    checkChainGroup(group.subarray(0, group.length - 1), 40) ?? "",
    /run past the group's end/,
  );
});

Deno.test("a snapshot from before groups (a link, no open group) continues as if a group had closed there", () => {
  // Such a state decodes with an empty group: its entry-by-entry link is the seed.
  const store = new KvStore();
  store.applyCommand(1, undefined);
  const oldLink = new Uint8Array(32).fill(9);
  const decoded = decodeKvState(
    encodeKvState({ store: store.exportState(), appliedTerm: 2, chainLink: oldLink }),
  );
  assert.deepEqual(decoded.chainGroup, new Uint8Array(0));
  const restored = new AppliedChain(decoded.chainLink, decoded.chainGroup);
  assert.equal(restored.hex(), "09".repeat(32));
  // Two nodes that restored it agree from there on.
  const other = new AppliedChain(oldLink);
  for (const e of history.slice(1, 80)) {
    restored.add(e);
    other.add(e);
  }
  assert.equal(restored.hex(), other.hex());
});
