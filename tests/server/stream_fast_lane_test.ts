/**
 * The stream fast lane (src/server/stream_fast_lane.ts) answers peers'
 * `RaftService/Stream` calls as Connect's node adapter does, and steps the same
 * batches. The same table of raw HTTP/2 Stream requests (valid batches, several
 * messages per frame, one message over several frames, malformed protobuf,
 * oversize, bad deadlines, refused batches, torn framing, compressed and JSON
 * requests) goes to two in-process nodes, one serving with the lane and one
 * through Connect alone (`serve(..., { peerLane: false })`); every answer is
 * compared whole (status, headers, body, trailers, how the stream ended), what
 * each node stepped is compared through the term its batches raised it to, and
 * the call metrics (an interceptor) must count the same calls on both. A second
 * story resets a call mid-stream on both, a third stops a node under an open call.
 */

import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { Registry } from "prom-client";
import {
  MessageSchema,
  MessageType,
  RaftService,
  SendRequestSchema,
  StreamRequestSchema,
} from "../../src/gen/raftkv/v1/raft_pb.ts";
import { GrpcMetrics } from "../../src/metrics/grpc_metrics.ts";
import { PREFIX } from "../../src/metrics/registry.ts";
import type { Logger } from "../../src/raft/logger.ts";
import { RaftKvNode } from "../../src/server/node.ts";
import { type GrpcServer, MAX_REQUEST_BYTES, serve } from "../../src/server/server.ts";
import { DEFAULT_HTTP2_LIMITS } from "../../src/http2/limits.ts";
import { freePort, waitFor } from "../e2e/_harness.ts";

const SILENT: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

/** One raw request: headers, and the body as the chunks written (each its own DATA frame). */
interface RawRequest {
  readonly name: string;
  readonly headers?: Record<string, string>;
  readonly chunks: readonly Uint8Array[];
  /** Leave the request open (no END_STREAM): the server answers without the rest. */
  readonly keepOpen?: boolean;
}

/** Everything that came back, in a form two answers can be compared in. */
interface RawAnswer {
  status: number;
  headers: Record<string, unknown>;
  body: string;
  trailers: Record<string, unknown>;
  end: string;
}

const STREAM = `/${RaftService.typeName}/${RaftService.method.stream.name}`;
const GRPC = { "content-type": "application/grpc", "te": "trailers" };

function frame(payload: Uint8Array, flags = 0, declared = payload.length): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, declared);
  out.set(payload, 5);
  return out;
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function withoutDate(h: http2.IncomingHttpHeaders): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(h)) if (k !== "date") o[k] = v;
  return o;
}

/** Opens one raw Stream call on `session`; `answer` settles with all that came back. */
function open(session: http2.ClientHttp2Session, r: RawRequest) {
  let closed: RawAnswer | undefined;
  const req = session.request({ ":method": "POST", ":path": STREAM, ...(r.headers ?? GRPC) });
  const answer: RawAnswer = { status: 0, headers: {}, body: "", trailers: {}, end: "end" };
  const body: Uint8Array[] = [];
  req.on("response", (h) => {
    answer.status = Number(h[":status"]);
    answer.headers = withoutDate(h);
  });
  req.on("trailers", (t) => answer.trailers = withoutDate(t));
  req.on("data", (c: Uint8Array) => body.push(c));
  req.on("error", () => {}); // the end says how it went
  req.on("close", () => {
    answer.body = hex(new Uint8Array(Buffer.concat(body)));
    if (req.rstCode !== undefined && req.rstCode !== http2.constants.NGHTTP2_NO_ERROR) {
      answer.end = `reset ${req.rstCode}`;
    }
    closed = answer;
  });
  for (const c of r.chunks) req.write(c);
  if (r.keepOpen !== true) req.end();
  return {
    req,
    answer: () =>
      waitFor(`${r.name}: its answer`, () => closed, { timeoutMs: 15_000, intervalMs: 5 }),
  };
}

function send(session: http2.ClientHttp2Session, r: RawRequest): Promise<RawAnswer> {
  return open(session, r).answer();
}

interface Running {
  readonly node: RaftKvNode;
  readonly server: GrpcServer;
  readonly session: http2.ClientHttp2Session;
  readonly registry: Registry;
}

/** Member 1 of {1,2,3} in cluster "peerlane", whose others never start: batches "from 2" reach it. */
async function start(dir: string, peerLane: boolean): Promise<Running> {
  const port = freePort();
  const peers = new Map([
    [1, { host: "127.0.0.1", port }],
    [2, { host: "127.0.0.1", port: freePort() }],
    [3, { host: "127.0.0.1", port: freePort() }],
  ]);
  const node = await RaftKvNode.start({
    id: 1,
    clusterId: "peerlane",
    peers,
    dataDir: join(dir, peerLane ? "lane" : "connect"),
    heartbeatMs: 50,
    // Long: the node must not campaign and raise its own term during the table.
    electionMs: 60_000,
    logger: SILENT,
    random: () => 0.5,
  });
  const registry = new Registry();
  const metrics = new GrpcMetrics(registry);
  const server = await serve(
    node,
    "127.0.0.1",
    port,
    DEFAULT_HTTP2_LIMITS,
    undefined,
    [metrics.interceptor],
    { peerLane },
  );
  const session = http2.connect(`http://127.0.0.1:${server.port}`);
  session.on("error", () => {});
  return { node, server, session, registry };
}

async function stop(r: Running): Promise<void> {
  r.session.close();
  await r.node.stop();
  await r.server.close();
}

/** A heartbeat from node 2 in `term`: stepping it raises node 1's term to it. */
function heartbeat(term: number, to = 1n) {
  return create(MessageSchema, {
    type: MessageType.HEARTBEAT,
    from: 2n,
    to,
    term: BigInt(term),
  });
}

/** One Stream request of a batch, as its envelope's payload. */
function batchBytes(
  messages: ReturnType<typeof heartbeat>[],
  clusterId = "peerlane",
  members = [1n, 2n, 3n],
): Uint8Array {
  return toBinary(
    StreamRequestSchema,
    create(StreamRequestSchema, {
      batch: create(SendRequestSchema, { clusterId, members, messages }),
    }),
  );
}

const batch = (term: number, clusterId?: string) => frame(batchBytes([heartbeat(term)], clusterId));

function concat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** The table: what a peer (or anyone) may send. `lane` says whether the lane takes it. */
const TABLE: readonly (RawRequest & { lane: boolean })[] = [
  { name: "two batches, a frame each", chunks: [batch(2), batch(3)], lane: true },
  {
    name: "three batches in one frame",
    chunks: [concat(batch(4), batch(5), batch(6))],
    lane: true,
  },
  {
    name: "one batch over three frames, the next in the last",
    chunks: (() => {
      const f = concat(batch(7), batch(8));
      return [f.subarray(0, 3), f.subarray(3, 12), f.subarray(12)];
    })(),
    lane: true,
  },
  { name: "no batch at all (a call that ends at once)", chunks: [], lane: true },
  {
    name: "a client accepting gzip",
    headers: { ...GRPC, "grpc-accept-encoding": "gzip" },
    chunks: [batch(9)],
    lane: true,
  },
  {
    name: "malformed protobuf after a valid batch",
    chunks: [batch(10), frame(new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]))],
    lane: true,
  },
  {
    name: "a request without a batch",
    chunks: [batch(11), frame(new Uint8Array(0))],
    lane: true,
  },
  {
    name: "a batch of another cluster after a valid one, then one more",
    chunks: [batch(12), batch(13, "other"), batch(14)],
    lane: true,
  },
  {
    name: "a batch of a sender believing in other members",
    chunks: [frame(batchBytes([heartbeat(15)], "peerlane", [1n, 2n]))],
    lane: true,
  },
  {
    name: "a message for another node",
    chunks: [frame(batchBytes([heartbeat(16, 3n)]))],
    lane: true,
  },
  {
    name: "a message larger than MAX_REQUEST_BYTES (by its prefix), the rest never sent",
    chunks: [batch(17), frame(new Uint8Array(16), 0, MAX_REQUEST_BYTES + 1)],
    keepOpen: true,
    lane: true,
  },
  {
    name: "a bad grpc-timeout",
    headers: { ...GRPC, "grpc-timeout": "soon" },
    chunks: [batch(18)],
    keepOpen: true,
    lane: true,
  },
  {
    name: "a grpc-timeout past MAX_CALL_TIMEOUT_MS",
    headers: { ...GRPC, "grpc-timeout": "9999999H" },
    chunks: [batch(19)],
    lane: true,
  },
  {
    name: "a deadline already over (grpc-timeout 0m)",
    headers: { ...GRPC, "grpc-timeout": "0m" },
    chunks: [batch(20)],
    lane: true,
  },
  {
    name: "a compressed message without grpc-encoding",
    chunks: [batch(21), frame(new Uint8Array(gzipSync(batchBytes([heartbeat(22)]))), 1)],
    lane: true,
  },
  {
    name: "a torn message at the end",
    chunks: [batch(23), frame(new Uint8Array(3), 0, 10)],
    lane: true,
  },
  {
    name: "a gzip-compressed request (to Connect)",
    headers: { ...GRPC, "grpc-encoding": "gzip" },
    chunks: [frame(new Uint8Array(gzipSync(batchBytes([heartbeat(24)]))), 1)],
    lane: false,
  },
  {
    name: "an unknown grpc-encoding (to Connect)",
    headers: { ...GRPC, "grpc-encoding": "snappy" },
    chunks: [batch(25)],
    lane: false,
  },
  {
    name: "grpc+json (to Connect)",
    headers: { "content-type": "application/grpc+json", "te": "trailers" },
    chunks: [frame(new TextEncoder().encode(`{"batch":{"clusterId":"peerlane"}}`))],
    lane: false,
  },
  { name: "a valid batch again", chunks: [batch(26)], lane: true },
];

const requestsTotal = `${PREFIX}grpc_requests_total`;

/** The call metrics, as text, of Stream calls only. */
async function streamMetrics(r: Running): Promise<string> {
  const all = await r.registry.getSingleMetricAsString(requestsTotal);
  return all.split("\n").filter((l) => l.includes(`method="Stream"`)).join("\n");
}

Deno.test("the stream fast lane answers every Stream request of the table as Connect does, steps the same batches, and counts the same calls", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-peerlane-" });
  const lane = await start(dir, true);
  const connect = await start(dir, false);
  try {
    for (const r of TABLE) {
      const before = lane.server.peerLaneCalls;
      const a = await send(lane.session, r);
      const b = await send(connect.session, r);
      assert.deepEqual(a, b, `${r.name}: the lane answered otherwise than Connect`);
      assert.equal(
        lane.node.status().term,
        connect.node.status().term,
        `${r.name}: the lane stepped other batches than Connect`,
      );
      assert.equal(
        lane.server.peerLaneCalls - before,
        r.lane ? 1 : 0,
        `${r.name}: ${r.lane ? "should" : "should not"} take the lane`,
      );
    }
    assert.equal(connect.server.peerLaneCalls, 0);
    assert.equal(lane.node.status().term, 26, "the last valid batch was stepped");
    assert.equal(await streamMetrics(lane), await streamMetrics(connect));
  } finally {
    await stop(lane);
    await stop(connect);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a peer that resets its call mid-stream: the batches before it are stepped, and the call counted alike on both paths", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-peerlane-" });
  const lane = await start(dir, true);
  const connect = await start(dir, false);
  try {
    for (const r of [lane, connect]) {
      const call = open(r.session, {
        name: "a call reset mid-stream",
        chunks: [batch(5)],
        keepOpen: true,
      });
      await waitFor("the first batch is stepped", () => r.node.status().term === 5);
      call.req.close(http2.constants.NGHTTP2_CANCEL);
      const a = await call.answer();
      assert.equal(a.end, `reset ${http2.constants.NGHTTP2_CANCEL}`);
      // The node serves the next call as before.
      assert.equal(
        (await send(r.session, { name: "the next call", chunks: [batch(6)] }))
          .trailers["grpc-status"],
        "0",
      );
      assert.equal(r.node.status().term, 6);
    }
    await waitFor(
      "both count the reset call",
      async () =>
        (await streamMetrics(lane)).split("\n").length >= 2 &&
        (await streamMetrics(lane)) === (await streamMetrics(connect)),
    );
  } finally {
    await stop(lane);
    await stop(connect);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a node that stops ends a peer's open Stream call with the same answer on both paths", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-peerlane-" });
  const lane = await start(dir, true);
  const connect = await start(dir, false);
  try {
    const answers: RawAnswer[] = [];
    for (const r of [lane, connect]) {
      // A peer's call under way: a batch stepped, the request not ended.
      const call = open(r.session, { name: "an open call", chunks: [batch(4)], keepOpen: true });
      await waitFor("the batch is stepped", () => r.node.status().term === 4);
      await r.node.stop();
      answers.push(await call.answer());
    }
    assert.deepEqual(answers[0], answers[1]);
    assert.equal(answers[0]!.trailers["grpc-status"], "0", "answered OK: every batch was stepped");
    assert.equal(lane.server.peerLaneCalls, 1);
  } finally {
    for (const r of [lane, connect]) {
      r.session.close();
      await r.server.close();
    }
    await Deno.remove(dir, { recursive: true });
  }
});
