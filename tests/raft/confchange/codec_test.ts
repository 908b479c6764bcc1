/** The bytes of a conf change entry round-trip, and bad bytes get a clear error. */
import assert from "node:assert/strict";
import {
  decodeConfChange,
  encodeConfChange,
  LEAVE_JOINT,
} from "../../../src/raft/confchange/codec.ts";
import type { ConfChange } from "../../../src/raft/types.ts";

Deno.test("a conf change round-trips through its encoding, context included", () => {
  const cc: ConfChange = {
    changes: [
      { type: "add_voter", nodeId: 4 },
      { type: "add_learner", nodeId: 2 ** 40 + 7 },
      { type: "remove", nodeId: 1 },
    ],
    transition: "explicit",
    context: new TextEncoder().encode('{"address":"10.0.0.4:7001"}'),
  };
  assert.deepEqual(decodeConfChange(encodeConfChange(cc)), cc);
  assert.deepEqual(decodeConfChange(encodeConfChange(LEAVE_JOINT)), LEAVE_JOINT);
  // The base configuration the leader adds for joining nodes round-trips too.
  const base = {
    voters: [1, 2, 4],
    learners: [7],
    votersOutgoing: [1, 2, 3],
    learnersNext: [3],
    autoLeave: true,
  };
  assert.deepEqual(decodeConfChange(encodeConfChange({ ...cc, base })), { ...cc, base });
});

Deno.test("empty data is the leave-joint change, as etcd proposes it", () => {
  assert.deepEqual(decodeConfChange(new Uint8Array()), LEAVE_JOINT);
});

Deno.test("bytes the encoder did not write are refused with what is wrong", () => {
  const good = encodeConfChange({
    changes: [{ type: "remove", nodeId: 3 }],
    transition: "auto",
    context: new Uint8Array(),
  });
  const bad = (mutate: (b: Uint8Array) => Uint8Array, why: RegExp) =>
    assert.throws(() => decodeConfChange(mutate(good.slice())), why);
  bad((b) => b.subarray(0, 5), /shorter than the 10-byte minimum/);
  bad((b) => ((b[0] = 2), b), /unknown version 2/);
  bad((b) => ((b[1] = 7), b), /unknown transition code 7/);
  bad((b) => ((b[6] = 9), b), /change 0 has unknown type code 9/);
  bad((b) => ((b[2] = 200), b), /200 changes do not fit/);
  bad((b) => new Uint8Array([...b, 2]), /unexpected byte 2 after the context/);
  bad((b) => new Uint8Array([...b, 1, 0]), /base voters cut short/);
  assert.throws(
    () =>
      encodeConfChange({
        changes: [{ type: "add_voter", nodeId: -1 }],
        transition: "auto",
        context: new Uint8Array(),
      }),
    /node id -1 is not a safe integer/,
  );
});
