/**
 * A put on the leader hands the node the command it encoded, to be applied as it
 * is (node.propose's `command`): that command must be what the entry's data
 * decode to, and must own its value, for the request's bytes are a view into the
 * body's buffer (a node Buffer, whose own slice() is a view too), which may be
 * reused before the entry is applied.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { create, equals } from "@bufbuild/protobuf";
import { createContextValues } from "@connectrpc/connect";
import { KVService, PutRequestSchema } from "../../src/gen/raftkv/v1/kv_pb.ts";
import { type Command, CommandSchema } from "../../src/gen/raftkv/v1/raft_pb.ts";
import { decodeCommand } from "../../src/kv/command.ts";
import type { WatchHub } from "../../src/kv/watch_hub.ts";
import { kvService } from "../../src/server/kv_service.ts";
import type { Lessor } from "../../src/server/lessor.ts";
import type { RaftKvNode } from "../../src/server/node.ts";
import { Router } from "../../src/server/route.ts";
import { callContext } from "../../src/server/unary_fast_lane.ts";

Deno.test("a put on the leader keeps the command its entry decodes to, with a value of its own", async () => {
  const proposals: { data: Uint8Array; command: Command | undefined }[] = [];
  const node = {
    id: 1,
    waitForLeader: () => Promise.resolve(1),
    propose: (data: Uint8Array, _signal?: AbortSignal, command?: Command) => {
      proposals.push({ data, command });
      return Promise.resolve({ index: 5, result: { kind: "put", index: 5 } });
    },
  } as unknown as RaftKvNode;
  const service = kvService(node, new Router(node), {} as WatchHub, {} as Lessor);
  // The request's value: a view into a larger Buffer, as a parsed request body's is.
  const body = Buffer.from("....value bytes....");
  const value = body.subarray(4, 15);
  const req = create(PutRequestSchema, { key: "k", value });
  const ctx = callContext(
    KVService.method.put,
    10_000,
    {},
    "http://127.0.0.1",
    createContextValues(),
    undefined,
  );
  try {
    const res = await service.put!(req, ctx);
    assert.equal(res.index, 5n);
  } finally {
    ctx.abort();
  }
  assert.equal(proposals.length, 1);
  const { data, command } = proposals[0]!;
  assert.ok(command !== undefined, "the put's command is handed to the node");
  assert.ok(equals(CommandSchema, command, decodeCommand(data)), "it is what the entry decodes to");
  assert.equal(command.op.case, "put");
  const kept = command.op.case === "put" ? command.op.value.value : undefined;
  body.fill(0); // the body's buffer reused
  assert.deepEqual(kept, new TextEncoder().encode("value bytes"), "the kept value is its own copy");
});
