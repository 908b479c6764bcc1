/**
 * The fast lane's direct envelopes (src/server/direct_envelopes.ts) are byte for
 * byte what protobuf-es's `toBinary` and Connect's `encodeEnvelope` make of the
 * same PutResponse or GetResponse, over edge cases and a seeded spread of values;
 * a message they do not encode (another type, unknown fields, an index past 2^53,
 * a size past the limit) is left to the caller.
 *
 * @module
 */

import assert from "node:assert/strict";
import { create, type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import {
  DeleteResponseSchema,
  GetResponseSchema,
  PutResponseSchema,
} from "../../src/gen/raftkv/v1/kv_pb.ts";
import { seededRandom } from "../../src/raft/rand.ts";
import { directEnvelope, fieldsOf, KNOWN_FIELDS } from "../../src/server/direct_envelopes.ts";

/** What the lane wrote before: the message's binary form behind a 5-byte prefix. */
function viaLibrary<D extends DescMessage>(schema: D, message: MessageShape<D>): Uint8Array {
  return encodeEnvelope(0, toBinary(schema, message));
}

/** An integer in [0, 2^53) whose size in bits is spread evenly (varints of 1 to 8 bytes). */
function spreadInteger(random: () => number): bigint {
  const bits = Math.floor(random() * 54);
  return BigInt(Math.floor(random() * 2 ** bits));
}

Deno.test("direct envelopes: PutResponse and GetResponse edge cases are the library's bytes", () => {
  const edges = [0n, 1n, 127n, 128n, 16_383n, 16_384n, 2n ** 31n, 2n ** 32n, 2n ** 53n - 1n];
  for (const index of edges) {
    const m = create(PutResponseSchema, { index });
    assert.deepEqual(
      directEnvelope(m, Infinity),
      viaLibrary(PutResponseSchema, m),
      `index ${index}`,
    );
  }
  const values = [0, 1, 127, 128, 256, 16_384].map((n) => new Uint8Array(n).fill(7));
  for (const value of values) {
    for (const found of [false, true]) {
      for (const n of edges) {
        const m = create(GetResponseSchema, {
          found,
          value,
          createIndex: n,
          modIndex: n === 0n ? 0n : n - 1n,
          lease: n / 2n,
        });
        assert.deepEqual(
          directEnvelope(m, Infinity),
          viaLibrary(GetResponseSchema, m),
          `found ${found}, ${value.length}-byte value, indexes from ${n}`,
        );
      }
    }
  }
});

Deno.test("direct envelopes: 2,000 seeded GetResponses and PutResponses are the library's bytes", () => {
  const random = seededRandom(11); // the same values on every run
  for (let i = 0; i < 1_000; i++) {
    const put = create(PutResponseSchema, { index: spreadInteger(random) });
    assert.deepEqual(directEnvelope(put, Infinity), viaLibrary(PutResponseSchema, put));
    const value = new Uint8Array(Math.floor(random() * 600));
    for (let j = 0; j < value.length; j++) value[j] = Math.floor(random() * 256);
    const get = create(GetResponseSchema, {
      found: random() < 0.8,
      value,
      createIndex: random() < 0.2 ? 0n : spreadInteger(random),
      modIndex: random() < 0.2 ? 0n : spreadInteger(random),
      lease: random() < 0.5 ? 0n : spreadInteger(random),
    });
    assert.deepEqual(directEnvelope(get, Infinity), viaLibrary(GetResponseSchema, get), `get ${i}`);
  }
});

Deno.test("direct envelopes: what they do not encode is left to the library (undefined)", () => {
  // Another message type.
  assert.equal(
    directEnvelope(create(DeleteResponseSchema, { deleted: true }), Infinity),
    undefined,
  );
  // An index past 2^53 (a Number would round it).
  assert.equal(
    directEnvelope(create(PutResponseSchema, { index: 2n ** 53n }), Infinity),
    undefined,
  );
  assert.equal(
    directEnvelope(create(GetResponseSchema, { found: true, lease: 2n ** 63n }), Infinity),
    undefined,
  );
  // Unknown fields (which toBinary writes back).
  const withUnknown = create(PutResponseSchema, { index: 5n });
  withUnknown.$unknown = [{ no: 9, wireType: 0, data: new Uint8Array([1]) }];
  assert.equal(directEnvelope(withUnknown, Infinity), undefined);
  // A message longer than the limit: 2 + 1 + 1 + 100 bytes against 103.
  const long = create(GetResponseSchema, { found: true, value: new Uint8Array(100) });
  assert.equal(directEnvelope(long, 103), undefined);
  assert.deepEqual(directEnvelope(long, 104), viaLibrary(GetResponseSchema, long));
});

Deno.test("direct envelopes: PutResponse and GetResponse have exactly the fields the direct encoder writes (extend it when the proto grows)", () => {
  for (const schema of [PutResponseSchema, GetResponseSchema]) {
    assert.equal(
      fieldsOf(schema),
      KNOWN_FIELDS[schema.typeName],
      `${schema.typeName} changed: teach src/server/direct_envelopes.ts its fields, or it is left to the library`,
    );
  }
});
