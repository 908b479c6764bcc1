/**
 * Bad input over gRPC: keys and values that break the API's rules are refused with
 * INVALID_ARGUMENT before anything is proposed, through Connect and grpc-js alike,
 * and the limits themselves are accepted.
 *
 * @module
 */

import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { Code } from "@connectrpc/connect";
import { KVService } from "../../src/gen/raftkv/v1/kv_pb.ts";
import { grpcCode, grpcCodeName, GrpcJsClient } from "./_grpc_js_client.ts";
import { codeName, codeOf, text, utf8, withCluster } from "./_harness.ts";

const MAX_KEY_BYTES = 4096;
const MAX_VALUE_BYTES = 1024 * 1024;

/** Awaits `call`, which must fail with one of `codes`; returns the code. */
async function rejectsWith(call: Promise<unknown>, codes: Code[], what: string): Promise<Code> {
  let code: Code;
  try {
    await call;
  } catch (err) {
    code = codeOf(err);
    assert.ok(
      codes.includes(code),
      `${what}: got ${codeName(code)} (${(err as Error).message}), wanted ${
        codes.map(codeName).join(" or ")
      }`,
    );
    return code;
  }
  assert.fail(`${what}: succeeded, wanted ${codes.map(codeName).join(" or ")}`);
}

Deno.test("bad input over gRPC: empty and over-long keys and over-large values are INVALID_ARGUMENT", async (t) => {
  await withCluster({ nodes: 1 }, async (c) => {
    await c.leader();
    const kv = c.kv(1);

    await t.step("an empty key", async () => {
      await rejectsWith(kv.put({ key: "", value: utf8("v") }), [Code.InvalidArgument], "Put");
      await rejectsWith(kv.get({ key: "" }), [Code.InvalidArgument], "Get");
      await rejectsWith(kv.delete({ key: "" }), [Code.InvalidArgument], "Delete");
    });

    await t.step("a 4097-byte key", async () => {
      const key = "k".repeat(MAX_KEY_BYTES + 1);
      await rejectsWith(kv.put({ key, value: utf8("v") }), [Code.InvalidArgument], "Put");
      await rejectsWith(kv.get({ key }), [Code.InvalidArgument], "Get");
      // Bytes, not characters: 2049 two-byte characters are 4098 bytes.
      const wide = "é".repeat(MAX_KEY_BYTES / 2 + 1);
      await rejectsWith(kv.put({ key: wide, value: utf8("v") }), [Code.InvalidArgument], "Put");
    });

    await t.step("a value over 1 MiB", async () => {
      // The request (about 1 MiB) is under the server's 4 MiB message limit, so the
      // value check answers (observed: INVALID_ARGUMENT). RESOURCE_EXHAUSTED here would
      // mean the message limit had dropped below a legal request plus its framing.
      const value = new Uint8Array(MAX_VALUE_BYTES + 1);
      await rejectsWith(kv.put({ key: "big", value }, { timeoutMs: 10_000 }), [
        Code.InvalidArgument,
      ], "Put");
      const got = await kv.get({ key: "big" });
      assert.equal(got.found, false);
    });

    await t.step("a request over the 4 MiB message limit is RESOURCE_EXHAUSTED", async () => {
      const value = new Uint8Array(5 * MAX_VALUE_BYTES);
      await rejectsWith(kv.put({ key: "huge", value }, { timeoutMs: 10_000 }), [
        Code.ResourceExhausted,
      ], "Put");
      assert.equal((await kv.get({ key: "huge" })).found, false);
    });

    await t.step("the limits themselves are accepted: a 4096-byte key, a 1 MiB value", async () => {
      const key = "k".repeat(MAX_KEY_BYTES);
      const value = new Uint8Array(MAX_VALUE_BYTES).fill(7);
      await kv.put({ key, value }, { timeoutMs: 10_000 });
      const got = await kv.get({ key }, { timeoutMs: 10_000 });
      assert.equal(got.found, true);
      assert.equal(got.value.length, MAX_VALUE_BYTES);
      assert.ok(got.value.every((b) => b === 7));
      await kv.put({ key: "empty-value", value: new Uint8Array() });
      const empty = await kv.get({ key: "empty-value" });
      assert.equal(empty.found, true);
      assert.equal(empty.value.length, 0);
    });

    await t.step("the same through grpc-js", async () => {
      const client = new GrpcJsClient(c.endpoint(1));
      try {
        const cases: [string, Promise<unknown>][] = [
          ["empty key", client.call(KVService.method.put, { key: "", value: utf8("v") })],
          [
            "4097-byte key",
            client.call(KVService.method.put, { key: "k".repeat(4097), value: utf8("v") }),
          ],
          [
            "value over 1 MiB",
            client.call(KVService.method.put, {
              key: "big",
              value: new Uint8Array(MAX_VALUE_BYTES + 1),
            }),
          ],
        ];
        for (const [what, call] of cases) {
          const err = await call.then(() => undefined, (e: unknown) => e);
          assert.equal(
            grpcCode(err),
            grpc.status.INVALID_ARGUMENT,
            `${what}: got ${grpcCodeName(grpcCode(err))}`,
          );
        }
        const ok = await client.call(KVService.method.put, { key: "g", value: utf8("js") });
        assert.ok(ok.index > 0n);
        const got = await client.call(KVService.method.get, { key: "g" });
        assert.equal(text(got.value), "js");
      } finally {
        client.close();
      }
    });

    // Refused input never reached the log, and the node still serves.
    const s = await c.status(1);
    assert.equal(s.appliedIndex, s.commitIndex);
    assert.equal(c.exitedOnItsOwn(1), undefined);
  });
});
