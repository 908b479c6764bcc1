/**
 * RaftService/InstallSnapshot, the receiving end: a snapshot streamed in chunks
 * reaches the core as one `snap` message only when it came from a member of this
 * cluster that believes in the same membership, and every byte of the file arrived
 * and checks out. A hostile or broken stream (no header, a chunk first, a size over
 * the limit, too few or too many bytes, a flipped bit, a second header) gets a
 * status that says what was wrong, and nothing is stepped. One transfer per sender
 * at a time. Served in memory by a fake node that records what it is given.
 *
 * @module
 */

import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import {
  InstallSnapshotHeaderSchema,
  type InstallSnapshotRequest,
  InstallSnapshotRequestSchema,
  RaftService,
} from "../../src/gen/raftkv/v1/raft_pb.ts";
import type { Message, Snapshot } from "../../src/raft/types.ts";
import { encodeSnapshotFile } from "../../src/snapshot/file.ts";
import { raftService, type RaftServiceNode } from "../../src/server/raft_service.ts";
import { MAX_SNAPSHOT_CHUNK_BYTES } from "../../src/server/snapshot_chunks.ts";
import type { LogFields } from "../../src/raft/logger.ts";
import { waitFor } from "../e2e/_harness.ts";
import { confStateOf } from "../../src/raft/types.ts";

const PEERS = new Map([1, 2, 3].map((id) => [id, { host: "127.0.0.1", port: 7000 + id }]));

/** Node 1 of cluster "c" with members {1,2,3}; records what it steps and logs. */
function setup(maxBytes = 64 * 1024 * 1024) {
  const stepped: Message[] = [];
  const lines: string[] = [];
  const add = (level: string) => (msg: string, f?: LogFields) =>
    lines.push(`${level} ${msg} ${JSON.stringify(f ?? {})}`);
  const node: RaftServiceNode = {
    options: {
      id: 1,
      clusterId: "c",
      peers: PEERS,
      logger: { debug: () => {}, info: add("info"), warn: add("warn"), error: add("error") },
    } as unknown as RaftServiceNode["options"],
    status: () =>
      ({ role: "follower", term: 1, lastIndex: 0 }) as ReturnType<
        RaftServiceNode["status"]
      >,
    receive: (ms: readonly Message[]) => void stepped.push(...ms),
  };
  const client = createClient(
    RaftService,
    createRouterTransport((r) => r.service(RaftService, raftService(node, { maxBytes }))),
  );
  return { stepped, lines, client };
}

/** A snapshot at 2/40 of the given size of state, with bytes that differ from each other. */
function snapshotOf(dataBytes: number): Snapshot {
  const data = new Uint8Array(dataBytes);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
  return { meta: { index: 40, term: 2, conf: confStateOf([1, 2, 3]) }, data };
}

/** Header fields a test overrides. */
interface HeaderFields {
  clusterId?: string;
  members?: bigint[];
  from?: bigint;
  to?: bigint;
  term?: bigint;
  size?: bigint;
}

function header(fields: HeaderFields = {}): InstallSnapshotRequest {
  const value = create(InstallSnapshotHeaderSchema, {
    clusterId: "c",
    members: [1n, 2n, 3n],
    from: 2n,
    to: 1n,
    term: 3n,
    ...fields,
  });
  return create(InstallSnapshotRequestSchema, { part: { case: "header", value } });
}

function chunk(bytes: Uint8Array): InstallSnapshotRequest {
  return create(InstallSnapshotRequestSchema, { part: { case: "chunk", value: bytes } });
}

/** The header and then `file` in chunks of `size` bytes. */
function stream(
  file: Uint8Array,
  size = MAX_SNAPSHOT_CHUNK_BYTES,
  fields: HeaderFields = {},
): InstallSnapshotRequest[] {
  const out = [header({ size: BigInt(file.length), ...fields })];
  for (let off = 0; off < file.length; off += size) out.push(chunk(file.subarray(off, off + size)));
  return out;
}

async function* iterate(requests: InstallSnapshotRequest[]) {
  for (const r of requests) yield r;
}

async function refusal(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ConnectError, `expected a ConnectError, got ${err}`);
    return err;
  }
  assert.fail("the snapshot was accepted");
}

Deno.test("a snapshot streamed in chunks is stepped as one snap message, whole", async () => {
  const { stepped, lines, client } = setup();
  const snapshot = snapshotOf(2_500_000);
  const file = encodeSnapshotFile(snapshot);
  await client.installSnapshot(iterate(stream(file)));
  assert.equal(stepped.length, 1);
  const m = stepped[0]!;
  assert.deepEqual([m.type, m.from, m.to, m.term], ["snap", 2, 1, 3]);
  assert.deepEqual(m.snapshot?.meta, snapshot.meta);
  assert.deepEqual(m.snapshot?.data, snapshot.data);
  assert.ok(lines.some((l) => l.startsWith("info received snapshot") && l.includes('"2/40"')));
});

Deno.test("a stream that does not start with its header is refused", async () => {
  const { stepped, client } = setup();
  const file = encodeSnapshotFile(snapshotOf(100));
  const empty = await refusal(client.installSnapshot(iterate([])));
  assert.equal(empty.code, Code.InvalidArgument);
  assert.equal(empty.rawMessage, "Cannot install snapshot: the stream ended before its header");
  const chunkFirst = await refusal(client.installSnapshot(iterate([chunk(file)])));
  assert.equal(chunkFirst.code, Code.InvalidArgument);
  assert.equal(
    chunkFirst.rawMessage,
    "Cannot install snapshot: the first request must carry the header, not a chunk",
  );
  const nothing = await refusal(
    client.installSnapshot(iterate([create(InstallSnapshotRequestSchema, {})])),
  );
  assert.match(nothing.rawMessage, /must carry the header, not nothing/);
  assert.deepEqual(stepped, []);
});

Deno.test("a size over the limit is refused before any byte is read", async () => {
  const { stepped, client } = setup(1000);
  let pulled = 0;
  async function* requests() {
    yield header({ size: 1001n });
    // A sender that would go on forever: the refusal must not wait for it.
    for (;;) {
      pulled++;
      yield chunk(new Uint8Array(1000));
    }
  }
  const err = await refusal(client.installSnapshot(requests()));
  assert.equal(err.code, Code.ResourceExhausted);
  assert.equal(
    err.rawMessage,
    "Cannot install snapshot: its 1001 bytes are over this node's limit of 1000 bytes",
  );
  const huge = await refusal(client.installSnapshot(iterate([header({ size: 2n ** 64n - 1n })])));
  assert.equal(huge.code, Code.ResourceExhausted);
  const zero = await refusal(client.installSnapshot(iterate([header({ size: 0n })])));
  assert.equal(zero.code, Code.InvalidArgument);
  assert.match(zero.rawMessage, /header.size is 0/);
  assert.deepEqual(stepped, []);
  assert.ok(pulled <= 2, `the receiver read ${pulled} chunks of a refused stream`);
});

Deno.test("a truncated transfer is refused, naming how much arrived", async () => {
  const { stepped, lines, client } = setup();
  const file = encodeSnapshotFile(snapshotOf(5000));
  const requests = stream(file, 1000);
  const err = await refusal(client.installSnapshot(iterate(requests.slice(0, -2))));
  assert.equal(err.code, Code.InvalidArgument);
  assert.equal(
    err.rawMessage,
    `Cannot install snapshot: the stream from node 2 ended after 4000 of the ${file.length} ` +
      "bytes its header announced (truncated transfer)",
  );
  assert.deepEqual(stepped, []);
  assert.ok(lines.some((l) => l.startsWith("warn refused a snapshot")));
});

Deno.test("more bytes than announced are refused", async () => {
  const { stepped, client } = setup();
  const file = encodeSnapshotFile(snapshotOf(5000));
  const requests = stream(file, 1000, { size: BigInt(file.length - 10) });
  const err = await refusal(client.installSnapshot(iterate(requests)));
  assert.equal(err.code, Code.InvalidArgument);
  assert.match(err.rawMessage, /sent more than the \d+ bytes its header announced/);
  assert.deepEqual(stepped, []);
});

Deno.test("a flipped bit anywhere in the file is refused as DATA_LOSS", async () => {
  const { stepped, client } = setup();
  const file = encodeSnapshotFile(snapshotOf(3000));
  // In the header JSON, in the state, and in the checksum itself.
  for (const at of [20, 1500, file.length - 1]) {
    const damaged = file.slice();
    damaged[at]! ^= 0x10;
    const err = await refusal(client.installSnapshot(iterate(stream(damaged, 1024))));
    assert.equal(err.code, Code.DataLoss, `bit flipped at ${at}`);
    assert.match(
      err.rawMessage,
      /^Cannot read snapshot stream from node 2: checksum mismatch .*truncated or damaged$/,
    );
  }
  // Bytes that are no snapshot at all.
  const junk = await refusal(client.installSnapshot(iterate(stream(new Uint8Array(64)))));
  assert.equal(junk.code, Code.DataLoss);
  assert.match(junk.rawMessage, /does not start with RKVSNAP1/);
  assert.deepEqual(stepped, []);
});

Deno.test("chunks must be 1 byte to 1 MiB, and only one header comes", async () => {
  const { stepped, client } = setup();
  const file = encodeSnapshotFile(snapshotOf(MAX_SNAPSHOT_CHUNK_BYTES + 10));
  const big = await refusal(client.installSnapshot(iterate(stream(file, file.length))));
  assert.equal(big.code, Code.InvalidArgument);
  assert.match(big.rawMessage, /a chunk of \d+ bytes \(chunks are 1 to 1048576 bytes\)/);
  const small = encodeSnapshotFile(snapshotOf(100));
  const emptyChunk = await refusal(
    client.installSnapshot(
      iterate([header({ size: BigInt(small.length) }), chunk(new Uint8Array(0)), chunk(small)]),
    ),
  );
  assert.match(emptyChunk.rawMessage, /a chunk of 0 bytes/);
  const twice = await refusal(
    client.installSnapshot(
      iterate([header({ size: BigInt(small.length) }), chunk(small.subarray(0, 10)), header()]),
    ),
  );
  assert.equal(twice.code, Code.InvalidArgument);
  assert.match(twice.rawMessage, /after 10 bytes the stream from node 2 sent a second header/);
  assert.deepEqual(stepped, []);
});

Deno.test("the sender is checked as for Send: cluster, membership, addressee, member, term", async () => {
  const { stepped, client } = setup();
  const file = encodeSnapshotFile(snapshotOf(100));
  const cases: [HeaderFields, Code, RegExp][] = [
    [{ clusterId: "other" }, Code.FailedPrecondition, /cluster id "other" does not match/],
    [{ members: [1n, 2n] }, Code.FailedPrecondition, /believes the members are \{1,2\}/],
    [{ members: [] }, Code.InvalidArgument, /its header names no members/],
    [{ members: [2n, 1n, 3n] }, Code.InvalidArgument, /Cannot decode members: 1 after 2/],
    [{ to: 3n }, Code.InvalidArgument, /message for node 3 sent to node 1/],
    [{ from: 9n }, Code.PermissionDenied, /node 9 is not a member/],
    [{ from: 1n }, Code.PermissionDenied, /node 1 is not a member/],
    [{ term: 0n }, Code.InvalidArgument, /term 0 is outside/],
    [{ from: 2n ** 60n }, Code.InvalidArgument, /header.from: \d+ is above 2\^53 - 1/],
  ];
  for (const [fields, code, why] of cases) {
    const err = await refusal(client.installSnapshot(iterate(stream(file, 1024, fields))));
    assert.equal(err.code, code, JSON.stringify(fields, (_, v) => String(v)));
    assert.match(err.rawMessage, why);
  }
  // A snapshot of a later term than its sender's, or at index 0, cannot come from a leader.
  const later = encodeSnapshotFile({
    ...snapshotOf(10),
    meta: { ...snapshotOf(10).meta, term: 4 },
  });
  const err = await refusal(client.installSnapshot(iterate(stream(later))));
  assert.equal(err.code, Code.InvalidArgument);
  assert.match(err.rawMessage, /a snapshot at 4\/40 sent in term 3/);
  assert.deepEqual(stepped, []);
});

Deno.test("a newer transfer from a sender supersedes its one under way; others are not held up", async () => {
  const { stepped, lines, client } = setup();
  const file = encodeSnapshotFile(snapshotOf(3000));
  let headerSent!: () => void;
  const started = new Promise<void>((r) => headerSent = r);
  async function* stuck() {
    const [h, c] = stream(file, 1000);
    yield h!;
    yield c!;
    headerSent();
    // A sender gone silent, its stream never closed.
    await new Promise(() => {});
  }
  const first = client.installSnapshot(stuck());
  await started;
  await waitFor("node 2's transfer to begin", () => lines.some((l) => l.includes("receiving")));
  // Node 3 is not held up by node 2's transfer.
  await client.installSnapshot(iterate(stream(file, 1000, { from: 3n })));
  assert.deepEqual(stepped.map((m) => m.from), [3]);
  // Node 2's next transfer replaces the stuck one, which ends refused.
  await client.installSnapshot(iterate(stream(file, 1000)));
  const err = await refusal(first);
  assert.equal(err.code, Code.Aborted);
  assert.match(err.rawMessage, /superseded by a newer transfer from it/);
  assert.deepEqual(stepped.map((m) => m.from), [3, 2]);
});

Deno.test("a transfer the sender abandons steps nothing", async () => {
  const { stepped, client } = setup();
  const file = encodeSnapshotFile(snapshotOf(3000));
  const abort = new AbortController();
  async function* abandoned() {
    const [h, c] = stream(file, 1000);
    yield h!;
    yield c!;
    abort.abort();
    await new Promise(() => {});
  }
  const err = await refusal(client.installSnapshot(abandoned(), { signal: abort.signal }));
  assert.equal(err.code, Code.Canceled);
  assert.deepEqual(stepped, []);
  await client.installSnapshot(iterate(stream(file, 1000)));
  assert.equal(stepped.length, 1);
});
