/**
 * The member registry (src/kv/members.ts): what conf-change contexts and applied
 * configurations make of it, how a snapshot's state carries it (version 2 of the
 * state codec) while a state without members is still written and read as version 1,
 * and how bad contexts and bad member sections are refused by name.
 */

import assert from "node:assert/strict";
import {
  decodeMemberChange,
  encodeMemberChange,
  MemberContextError,
  MemberRegistry,
} from "../../src/kv/members.ts";
import { decodeKvState, encodeKvState, KvStateCodecError } from "../../src/kv/state_codec.ts";
import { KvStore } from "../../src/kv/store.ts";
import { put } from "./helpers.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);

Deno.test("an added member is recorded as a learner, promoted, then forgotten when removed", () => {
  const r = new MemberRegistry();
  r.apply({ op: "add", id: 4, peerAddress: "10.0.0.4:7001" }, {
    voters: [1, 2, 3],
    learners: [4],
  });
  assert.deepEqual(r.list(), [{ id: 4, peerAddress: "10.0.0.4:7001", learner: true }]);
  r.apply({ op: "promote", id: 4 }, { voters: [1, 2, 3, 4], learners: [] });
  assert.deepEqual(r.get(4), { id: 4, peerAddress: "10.0.0.4:7001", learner: false });
  assert.equal(r.byAddress("10.0.0.4:7001")?.id, 4);
  r.apply({ op: "remove", id: 4 }, { voters: [1, 2, 3], learners: [] });
  assert.deepEqual(r.list(), []);
});

Deno.test("roles follow the applied configuration, also for a change with an empty context", () => {
  const r = new MemberRegistry([{ id: 5, peerAddress: "h:5", learner: false }]);
  // Leaving a joint configuration carries no context; 5 became a learner (learnersNext).
  r.apply(undefined, { voters: [1, 2, 3], learners: [5] });
  assert.equal(r.get(5)?.learner, true);
});

Deno.test("contexts round-trip, an empty one means no change, bad ones are refused by name", () => {
  for (
    const c of [
      { op: "add", id: 4, peerAddress: "h:1" },
      { op: "promote", id: 4 },
      { op: "remove", id: 9 },
    ] as const
  ) {
    assert.deepEqual(decodeMemberChange(encodeMemberChange(c)), c);
  }
  assert.equal(decodeMemberChange(new Uint8Array()), undefined);
  assert.throws(() => decodeMemberChange(utf8("{")), MemberContextError);
  assert.throws(() => decodeMemberChange(utf8('{"v":2,"op":"add"}')), /version 2/);
  assert.throws(
    () => decodeMemberChange(utf8('{"v":1,"op":"add","id":0}')),
    /id 0 is not a positive integer/,
  );
  assert.throws(() => decodeMemberChange(utf8('{"v":1,"op":"add","id":3}')), /no peer address/);
  assert.throws(() => decodeMemberChange(utf8('{"v":1,"op":"swap","id":3}')), /unknown op "swap"/);
});

function stateWith(members: { id: number; peerAddress: string; learner: boolean }[]) {
  const store = new KvStore();
  store.apply(1, put("k", "v"));
  return { store: store.exportState(), appliedTerm: 1, chainLink: new Uint8Array(32), members };
}

Deno.test("a snapshot's state carries the registry (version 2) and gives it back", () => {
  const members = [
    { id: 4, peerAddress: "10.0.0.4:7001", learner: true },
    { id: 7, peerAddress: "[::1]:7007", learner: false },
  ];
  const bytes = encodeKvState(stateWith(members));
  assert.equal(new DataView(bytes.buffer).getUint32(8, true), 2);
  const decoded = decodeKvState(bytes);
  assert.deepEqual(decoded.members, members);
  assert.deepEqual(new MemberRegistry(decoded.members).list(), members);
});

Deno.test("a state without members has no members section", () => {
  const without = encodeKvState({ ...stateWith([]), members: undefined });
  const empty = encodeKvState(stateWith([]));
  assert.deepEqual(empty, without);
  const one = encodeKvState(stateWith([{ id: 4, peerAddress: "a:1", learner: false }]));
  // The section: tag and length (8 bytes), count (4), one member (8 + 1 + 4 + 3).
  assert.equal(one.length - empty.length, 8 + 4 + 16);
  assert.deepEqual(decodeKvState(empty).members, []);
});

Deno.test("a bad member section is refused by name: order, id 0, learner flag, truncation", () => {
  const good = encodeKvState(stateWith([
    { id: 4, peerAddress: "a:1", learner: false },
    { id: 5, peerAddress: "b:1", learner: true },
  ]));
  for (let n = good.length - 1; n > good.length - 30; n--) {
    assert.throws(() => decodeKvState(good.subarray(0, n)), KvStateCodecError);
  }
  const outOfOrder = encodeKvState(stateWith([
    { id: 5, peerAddress: "b:1", learner: true },
    { id: 4, peerAddress: "a:1", learner: false },
  ]));
  assert.throws(() => decodeKvState(outOfOrder), /member 4 is out of order or repeated/);
  const zero = encodeKvState(stateWith([{ id: 0, peerAddress: "a:1", learner: false }]));
  assert.throws(() => decodeKvState(zero), /member 0 has id 0/);
  // The last member's learner flag sits 1 + 4 + 3 bytes before the end ("b:1").
  const flag = good.slice();
  flag[flag.length - 8] = 2;
  assert.throws(() => decodeKvState(flag), /member 5's learner flag/);
});
