/**
 * Smoke test for the generated protobuf code and the Connect packages: the
 * messages round-trip through the binary wire format with every field intact
 * (uint64 as bigint included), and a KVService implementation answers a client
 * over Connect's in-memory router transport and over real gRPC on a loopback
 * `node:http2` server.
 *
 * @module
 */

import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient, createRouterTransport, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import {
  CommandSchema,
  EntryType,
  MessageSchema,
  MessageType,
  SendRequestSchema,
} from "../../src/gen/raftkv/v1/raft_pb.ts";
import {
  CompareAndSwapRequestSchema,
  KVService,
  PutRequestSchema,
} from "../../src/gen/raftkv/v1/kv_pb.ts";

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

Deno.test("generated messages round-trip through the binary format", async (t) => {
  await t.step("Message with entries, in a SendRequest", () => {
    const msg = create(MessageSchema, {
      type: MessageType.APP,
      from: 1n,
      to: 3n,
      term: 7n,
      index: 41n,
      logTerm: 6n,
      commit: 40n,
      entries: [
        { term: 7n, index: 42n, type: EntryType.NORMAL, data: bytes("put a=1") },
        { term: 7n, index: 43n, type: EntryType.NORMAL, data: new Uint8Array() },
      ],
    });
    const req = create(SendRequestSchema, { clusterId: "c1", messages: [msg] });

    const back = fromBinary(SendRequestSchema, toBinary(SendRequestSchema, req));

    assert.equal(back.clusterId, "c1");
    assert.equal(back.messages.length, 1);
    const m = back.messages[0];
    assert.ok(m);
    assert.equal(m.type, MessageType.APP);
    assert.equal(typeof m.term, "bigint");
    assert.equal(m.from, 1n);
    assert.equal(m.to, 3n);
    assert.equal(m.term, 7n);
    assert.equal(m.index, 41n);
    assert.equal(m.logTerm, 6n);
    assert.equal(m.commit, 40n);
    assert.equal(m.reject, false);
    assert.equal(m.rejectHint, 0n);
    assert.equal(m.entries.length, 2);
    assert.equal(m.entries[0]?.index, 42n);
    assert.deepEqual(m.entries[0]?.data, bytes("put a=1"));
    assert.equal(m.entries[1]?.data.length, 0);
  });

  await t.step("uint64 beyond 2^53 survives", () => {
    const big = 2n ** 64n - 1n;
    const msg = create(MessageSchema, { type: MessageType.APP_RESP, term: big, reject: true });
    const back = fromBinary(MessageSchema, toBinary(MessageSchema, msg));
    assert.equal(back.term, big);
    assert.equal(back.reject, true);
  });

  await t.step("KV PutRequest", () => {
    const req = create(PutRequestSchema, { key: "k", value: bytes("v") });
    const back = fromBinary(PutRequestSchema, toBinary(PutRequestSchema, req));
    assert.equal(back.key, "k");
    assert.deepEqual(back.value, bytes("v"));
  });

  await t.step("optional bytes tell unset from empty", () => {
    const unset = create(CompareAndSwapRequestSchema, { key: "k", value: bytes("v") });
    const empty = create(CompareAndSwapRequestSchema, {
      key: "k",
      expected: new Uint8Array(),
      value: bytes("v"),
    });
    const unsetBack = fromBinary(
      CompareAndSwapRequestSchema,
      toBinary(CompareAndSwapRequestSchema, unset),
    );
    const emptyBack = fromBinary(
      CompareAndSwapRequestSchema,
      toBinary(CompareAndSwapRequestSchema, empty),
    );
    assert.equal(unsetBack.expected, undefined);
    assert.deepEqual(emptyBack.expected, new Uint8Array());
  });

  await t.step("Command oneof", () => {
    const cmd = create(CommandSchema, {
      sessionId: 9n,
      sequence: 3n,
      timeMs: 1_700_000_000_000n,
      op: { case: "put", value: { key: "k", value: bytes("v") } },
    });
    const back = fromBinary(CommandSchema, toBinary(CommandSchema, cmd));
    assert.equal(back.sessionId, 9n);
    assert.equal(back.timeMs, 1_700_000_000_000n);
    assert.equal(back.sequence, 3n);
    assert.equal(back.op.case, "put");
    if (back.op.case !== "put") return;
    assert.equal(back.op.value.key, "k");
    assert.deepEqual(back.op.value.value, bytes("v"));
  });
});

/** A trivial KVService: every Put commits at the next index; the store holds only "k" = "v". */
function echoKV(): Partial<ServiceImpl<typeof KVService>> {
  let next = 0n;
  return {
    put(req) {
      assert.equal(req.key, "k");
      next += 1n;
      return { index: next };
    },
    get(req) {
      return req.key === "k" ? { found: true, value: bytes("v") } : { found: false };
    },
  };
}

Deno.test("Connect router transport serves a KVService implementation", async () => {
  const transport = createRouterTransport((router) => router.service(KVService, echoKV()));
  const client = createClient(KVService, transport);

  const first = await client.put({ key: "k", value: bytes("v") });
  const second = await client.put({ key: "k", value: bytes("w") });
  assert.equal(first.index, 1n);
  assert.equal(second.index, 2n);

  const got = await client.get({ key: "k" });
  assert.equal(got.found, true);
  assert.deepEqual(got.value, bytes("v"));
  assert.equal((await client.get({ key: "x" })).found, false);
});

Deno.test("connect-node serves gRPC over node:http2 on loopback", async () => {
  const server = http2.createServer(
    connectNodeAdapter({ routes: (router) => router.service(KVService, echoKV()) }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const client = createClient(
      KVService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }),
    );
    for (let i = 1n; i <= 3n; i++) {
      assert.equal((await client.put({ key: "k", value: bytes("v") })).index, i);
    }
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
