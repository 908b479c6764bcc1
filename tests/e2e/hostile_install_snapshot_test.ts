/**
 * Hostile InstallSnapshot streams at a real node process: a stream that starts
 * with a chunk, announces a size over the limit, sends a chunk over the request
 * limit, ends early, or carries a flipped bit gets a clear status, the node keeps
 * serving, and its term does not move (each stream claims a term 1000 above the
 * cluster's: had any reached the core, the term would have jumped).
 *
 * @module
 */

import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  InstallSnapshotHeaderSchema,
  type InstallSnapshotRequest,
  InstallSnapshotRequestSchema,
  RaftService,
} from "../../src/gen/raftkv/v1/raft_pb.ts";
import { encodeSnapshotFile } from "../../src/snapshot/file.ts";
import { utf8, withCluster } from "./_harness.ts";
import { confStateOf } from "../../src/raft/types.ts";

function header(term: bigint, size: number | bigint): InstallSnapshotRequest {
  const value = create(InstallSnapshotHeaderSchema, {
    clusterId: "raftkv-e2e",
    members: [1n, 2n, 3n],
    from: 2n,
    to: 1n,
    term,
    size: BigInt(size),
  });
  return create(InstallSnapshotRequestSchema, { part: { case: "header", value } });
}

function chunk(bytes: Uint8Array): InstallSnapshotRequest {
  return create(InstallSnapshotRequestSchema, { part: { case: "chunk", value: bytes } });
}

async function* iterate(requests: InstallSnapshotRequest[]) {
  for (const r of requests) yield r;
}

Deno.test("hostile InstallSnapshot streams get a clear status; the node serves on, its term unmoved", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    await c.leader();
    const raft = createClient(
      RaftService,
      createGrpcTransport({ baseUrl: `http://${c.endpoint(1)}` }),
    );
    const termBefore = (await c.status(1)).term;
    const term = termBefore + 1000n;
    const file = encodeSnapshotFile({
      meta: { index: 5, term: 1, conf: confStateOf([1, 2, 3]) },
      data: utf8("x".repeat(3000)),
    });
    const flipped = file.slice();
    flipped[1000]! ^= 0x40;
    const cases: [string, InstallSnapshotRequest[], Code, RegExp][] = [
      ["a chunk first", [chunk(file)], Code.InvalidArgument, /must carry the header/],
      ["no header at all", [], Code.InvalidArgument, /ended before its header/],
      [
        "a size over the limit",
        [header(term, 2n ** 40n), chunk(file)],
        Code.ResourceExhausted,
        /over this node's limit of 1073741824 bytes/,
      ],
      [
        "a chunk over the request limit",
        [header(term, 5 * 1024 * 1024), chunk(new Uint8Array(5 * 1024 * 1024))],
        Code.ResourceExhausted,
        /message size \d+ is larger than configured readMaxBytes 4194304/,
      ],
      [
        "a truncated transfer",
        [header(term, file.length), chunk(file.subarray(0, 1000))],
        Code.InvalidArgument,
        /ended after 1000 of the \d+ bytes its header announced \(truncated transfer\)/,
      ],
      [
        "a flipped bit",
        [
          header(term, file.length),
          chunk(flipped.subarray(0, 2000)),
          chunk(flipped.subarray(2000)),
        ],
        Code.DataLoss,
        /checksum mismatch/,
      ],
    ];
    for (const [what, requests, code, message] of cases) {
      try {
        await raft.installSnapshot(iterate(requests), { timeoutMs: 10_000 });
        assert.fail(`${what}: accepted`);
      } catch (err) {
        assert.ok(err instanceof ConnectError, `${what}: ${err}`);
        assert.equal(Code[err.code], Code[code], `${what}: ${err.rawMessage}`);
        assert.match(err.rawMessage, message, what);
      }
    }
    const after = await c.status(1);
    assert.ok(after.term < term, `term ${after.term}: a hostile stream reached the core`);
    c.checkNoCrash();
    // And the cluster still takes writes.
    const leader = await c.leader();
    await c.kv(leader).put({ key: "still", value: utf8("serving") }, { timeoutMs: 10_000 });
  });
});
