/**
 * The wire form of commands: what a normal Raft log entry carries.
 *
 * @module
 */

import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { CommandSchema } from "../../src/gen/raftkv/v1/raft_pb.ts";
import { decodeCommand, encodeCommand } from "../../src/kv/mod.ts";
import { bytes } from "./helpers.ts";

Deno.test("encodeCommand and decodeCommand", async (t) => {
  await t.step("every operation round-trips with its session fields", () => {
    const ops = [
      { case: "put", value: { key: "k", value: bytes("v") } },
      { case: "delete", value: { key: "k" } },
      { case: "compareAndSwap", value: { key: "k", value: bytes("new") } },
      { case: "compareAndSwap", value: { key: "k", expected: bytes("old"), value: bytes("new") } },
    ] as const;
    for (const op of ops) {
      const back = decodeCommand(
        encodeCommand({ sessionId: 7n, sequence: 42n, timeMs: 1000n, op }),
      );
      assert.equal(back.sessionId, 7n);
      assert.equal(back.timeMs, 1000n);
      assert.equal(back.sequence, 42n);
      assert.deepEqual(back.op.case, op.case);
      assert.deepEqual(back.op.value?.key, "k");
    }
  });

  await t.step("a CAS keeps unset expected apart from empty expected", () => {
    const unset = decodeCommand(
      encodeCommand({ op: { case: "compareAndSwap", value: { key: "k" } } }),
    );
    const empty = decodeCommand(
      encodeCommand({
        op: { case: "compareAndSwap", value: { key: "k", expected: new Uint8Array() } },
      }),
    );
    assert.equal(unset.op.case, "compareAndSwap");
    assert.equal(empty.op.case, "compareAndSwap");
    assert.equal(unset.op.value.expected, undefined);
    assert.deepEqual(empty.op.value.expected, new Uint8Array());
  });

  await t.step("an encoded command is never empty, even with an empty key and value", () => {
    const data = encodeCommand({
      op: { case: "put", value: { key: "", value: new Uint8Array() } },
    });
    assert.ok(data.length > 0);
  });

  await t.step("encoding a command with no operation throws", () => {
    assert.throws(() => encodeCommand({ sessionId: 1n }), {
      message: "Cannot encode command: no operation is set",
    });
  });
});

Deno.test("decodeCommand on data that is not a command", async (t) => {
  await t.step("empty data (a no-op entry) throws, naming the no-op", () => {
    assert.throws(() => decodeCommand(new Uint8Array()), {
      message: "Cannot decode command: the data is empty (a no-op entry carries no command)",
    });
  });

  await t.step("garbage bytes throw a clear error", () => {
    const garbage = [
      new Uint8Array([0xff, 0xff, 0xff]), // a tag varint that never ends
      new Uint8Array([0x0f]), // field 1 with wire type 7, which does not exist
      new Uint8Array([0x52, 0x10, 0x0a]), // op put, claiming 16 bytes where there is 1
    ];
    for (const data of garbage) {
      assert.throws(() => decodeCommand(data), (error: unknown) => {
        assert.ok(error instanceof Error);
        assert.match(
          error.message,
          new RegExp(
            `^Cannot decode command: ${data.length} bytes are not a valid protobuf ` +
              `Command \\(.+\\)$`,
          ),
        );
        return true;
      });
    }
  });

  await t.step("a truncated command throws", () => {
    const data = encodeCommand({
      op: { case: "put", value: { key: "key", value: bytes("value") } },
    });
    assert.throws(() => decodeCommand(data.subarray(0, data.length - 1)), {
      message: /^Cannot decode command: /,
    });
  });

  await t.step("a Command with session fields but no operation throws", () => {
    const data = toBinary(CommandSchema, create(CommandSchema, { sessionId: 5n, sequence: 2n }));
    assert.throws(() => decodeCommand(data), {
      message:
        `Cannot decode command: ${data.length} bytes decode to a Command with no operation set`,
    });
  });

  await t.step("a command with an operation this version does not know throws", () => {
    // session_id 5, then field 99 (length-delimited, empty): a newer version's operation.
    const data = new Uint8Array([0x10, 0x05, 0x9a, 0x06, 0x00]);
    assert.throws(() => decodeCommand(data), {
      message: "Cannot decode command: 5 bytes decode to a Command with no operation set",
    });
  });
});
