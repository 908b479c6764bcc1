/**
 * The fast lane for unary calls (src/server/unary_fast_lane.ts) answers what
 * Connect's node adapter answers. The same table of raw HTTP/2 requests (valid
 * calls, bad keys, malformed and oversize messages, bad deadlines, compressed and
 * JSON requests, torn framing) goes to two in-process nodes, one serving with the
 * fast lane and one through Connect alone (`serve(..., { fastLane: false })`), and
 * every answer is compared whole: status, headers, body bytes, trailers, and how
 * the stream ended. The call metrics (an interceptor) must count the same calls on
 * both. A second story uses a stub service to reach what a real node does not do on
 * demand: a handler throwing a plain Error, an error carrying metadata, a deadline
 * that fires, and a client that resets its call (the handler's signal aborts).
 */

import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  createServiceImplSpec,
  type ServiceImpl,
} from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, connectNodeAdapter } from "@connectrpc/connect-node";
import { Registry } from "prom-client";
import {
  DeleteRequestSchema,
  GetRequestSchema,
  KVService,
  PutRequestSchema,
  RangeRequestSchema,
} from "../../src/gen/raftkv/v1/kv_pb.ts";
import { GrpcMetrics } from "../../src/metrics/grpc_metrics.ts";
import { PREFIX } from "../../src/metrics/registry.ts";
import type { Logger } from "../../src/raft/logger.ts";
import { RaftKvNode } from "../../src/server/node.ts";
import { type GrpcServer, MAX_REQUEST_BYTES, serve } from "../../src/server/server.ts";
import { callContext, UnaryFastLane } from "../../src/server/unary_fast_lane.ts";
import { DEFAULT_HTTP2_LIMITS } from "../../src/http2/limits.ts";
import { Http2Guard } from "../../src/http2/guard.ts";
import { freePort, waitFor } from "../e2e/_harness.ts";

const SILENT: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

/** One raw request: headers, and the body as the chunks written (each its own DATA frame). */
interface RawRequest {
  readonly name: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly method?: string;
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

/** Sends one raw request on `session` and collects the whole answer. */
function send(session: http2.ClientHttp2Session, r: RawRequest): Promise<RawAnswer> {
  let closed: RawAnswer | undefined;
  {
    const req = session.request({
      ":method": r.method ?? "POST",
      ":path": r.path,
      ...(r.headers ?? { "content-type": "application/grpc+proto", "te": "trailers" }),
    });
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
  }
  return waitFor(`${r.name}: its answer`, () => closed, { timeoutMs: 10_000, intervalMs: 5 });
}

function freshDir(): Promise<string> {
  return Deno.makeTempDir({ prefix: "raftkv-fastlane-" });
}

interface Running {
  readonly node: RaftKvNode;
  readonly server: GrpcServer;
  readonly session: http2.ClientHttp2Session;
  readonly registry: Registry;
}

/**
 * A node with its own gRPC server and call metrics: a cluster of one (it leads), or
 * member 1 of three whose others never start (it never has a leader).
 */
async function start(dir: string, fastLane: boolean, leaderless = false): Promise<Running> {
  const port = freePort();
  const peers = new Map([[1, { host: "127.0.0.1", port }]]);
  if (leaderless) {
    peers.set(2, { host: "127.0.0.1", port: freePort() });
    peers.set(3, { host: "127.0.0.1", port: freePort() });
  }
  const node = await RaftKvNode.start({
    id: 1,
    clusterId: "fastlane",
    peers,
    dataDir: join(dir, fastLane ? "fast" : "connect"),
    heartbeatMs: 50,
    electionMs: 300,
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
    { fastLane },
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

const KV = `/${KVService.typeName}`;
const value = new Uint8Array(2_000).fill(0x61); // compressible, and past Connect's 1 KiB

const put = (key: string, v: Uint8Array = new Uint8Array([1, 2, 3])) =>
  frame(toBinary(PutRequestSchema, create(PutRequestSchema, { key, value: v })));
const getOf = (key: string) => frame(toBinary(GetRequestSchema, create(GetRequestSchema, { key })));

/** The table: what a client may send, kind or hostile. `fast` says whether the lane takes it. */
const TABLE: readonly (RawRequest & { fast: boolean })[] = [
  { name: "a valid Put", path: `${KV}/Put`, chunks: [put("a")], fast: true },
  { name: "a valid Get", path: `${KV}/Get`, chunks: [getOf("a")], fast: true },
  {
    name: "a valid Range",
    path: `${KV}/Range`,
    chunks: [frame(toBinary(RangeRequestSchema, create(RangeRequestSchema, { start: "" })))],
    fast: true,
  },
  {
    name: "a Put whose message comes in three DATA frames",
    path: `${KV}/Put`,
    chunks: (() => {
      const f = put("split", value);
      return [f.subarray(0, 3), f.subarray(3, 100), f.subarray(100)];
    })(),
    fast: true,
  },
  {
    name: "a Get of a 2,000-byte value by a client accepting gzip (answer compressed)",
    path: `${KV}/Get`,
    headers: {
      "content-type": "application/grpc",
      "te": "trailers",
      "grpc-accept-encoding": "gzip",
    },
    chunks: [getOf("split")],
    fast: true,
  },
  { name: "a Put with an empty key", path: `${KV}/Put`, chunks: [put("")], fast: true },
  {
    name: "a Delete of a key too long",
    path: `${KV}/Delete`,
    chunks: [
      frame(toBinary(DeleteRequestSchema, create(DeleteRequestSchema, { key: "k".repeat(5000) }))),
    ],
    fast: true,
  },
  {
    name: "malformed protobuf",
    path: `${KV}/Put`,
    chunks: [frame(new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]))],
    fast: true,
  },
  {
    name: "a message larger than MAX_REQUEST_BYTES (by its prefix), the rest never sent",
    path: `${KV}/Put`,
    chunks: [frame(new Uint8Array(16), 0, MAX_REQUEST_BYTES + 1)],
    keepOpen: true,
    fast: true,
  },
  {
    name: "a bad grpc-timeout",
    path: `${KV}/Get`,
    headers: { "content-type": "application/grpc", "te": "trailers", "grpc-timeout": "soon" },
    chunks: [getOf("a")],
    keepOpen: true,
    fast: true,
  },
  {
    name: "a grpc-timeout past MAX_CALL_TIMEOUT_MS",
    path: `${KV}/Get`,
    headers: { "content-type": "application/grpc", "te": "trailers", "grpc-timeout": "9999999H" },
    chunks: [getOf("a")],
    fast: true,
  },
  {
    name: "a deadline already over (grpc-timeout 0m)",
    path: `${KV}/Put`,
    headers: { "content-type": "application/grpc", "te": "trailers", "grpc-timeout": "0m" },
    chunks: [put("late")],
    fast: true,
  },
  {
    name: "a compressed message without grpc-encoding",
    path: `${KV}/Put`,
    chunks: [
      frame(
        new Uint8Array(
          gzipSync(toBinary(PutRequestSchema, create(PutRequestSchema, { key: "z" }))),
        ),
        1,
      ),
    ],
    fast: true,
  },
  { name: "no message", path: `${KV}/Get`, chunks: [], fast: true },
  { name: "two messages", path: `${KV}/Get`, chunks: [getOf("a"), getOf("a")], fast: true },
  {
    name: "a torn message",
    path: `${KV}/Get`,
    chunks: [frame(new Uint8Array(3), 0, 10)],
    fast: true,
  },
  {
    name: "a gzip-compressed request (to Connect)",
    path: `${KV}/Put`,
    headers: { "content-type": "application/grpc", "te": "trailers", "grpc-encoding": "gzip" },
    chunks: [
      frame(
        new Uint8Array(
          gzipSync(
            toBinary(
              PutRequestSchema,
              create(PutRequestSchema, { key: "gz", value: new Uint8Array([9]) }),
            ),
          ),
        ),
        1,
      ),
    ],
    fast: false,
  },
  {
    name: "an unknown grpc-encoding (to Connect)",
    path: `${KV}/Put`,
    headers: { "content-type": "application/grpc", "te": "trailers", "grpc-encoding": "snappy" },
    chunks: [put("sn")],
    fast: false,
  },
  {
    name: "grpc+json (to Connect)",
    path: `${KV}/Get`,
    headers: { "content-type": "application/grpc+json", "te": "trailers" },
    chunks: [frame(new TextEncoder().encode(`{"key":"a"}`))],
    fast: false,
  },
  {
    name: "a GET (to Connect)",
    path: `${KV}/Get`,
    method: "GET",
    headers: { "content-type": "application/grpc", "te": "trailers" },
    chunks: [],
    fast: false,
  },
  {
    name: "a streaming method (to Connect)",
    path: `${KV}/Watch`,
    headers: { "content-type": "application/grpc", "te": "trailers", "grpc-timeout": "200m" },
    chunks: [frame(new Uint8Array([0x0a, 0x01, 0x61]))],
    fast: false,
  },
  { name: "an unknown method (to Connect)", path: `${KV}/Nope`, chunks: [getOf("a")], fast: false },
];

const requestsTotal = `${PREFIX}grpc_requests_total`;

Deno.test("the fast lane answers every request of the table as Connect does, and counts the same calls", async () => {
  const dir = await freshDir();
  const fast = await start(dir, true);
  const slow = await start(dir, false);
  try {
    for (const r of [fast, slow]) {
      await waitFor("the node leads", () => r.node.status().role === "leader");
    }
    for (const r of TABLE) {
      const before = fast.server.fastLaneCalls;
      const a = await send(fast.session, r);
      const b = await send(slow.session, r);
      assert.deepEqual(a, b, `${r.name}: the fast lane answered otherwise than Connect`);
      assert.equal(
        fast.server.fastLaneCalls - before,
        r.fast ? 1 : 0,
        `${r.name}: ${r.fast ? "should" : "should not"} take the fast lane`,
      );
    }
    assert.equal(slow.server.fastLaneCalls, 0);
    assert.equal(
      await fast.registry.getSingleMetricAsString(requestsTotal),
      await slow.registry.getSingleMetricAsString(requestsTotal),
    );
  } finally {
    await stop(fast);
    await stop(slow);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("on a node without a leader, a call runs out its deadline with the same answer on both paths", async () => {
  const dir = await freshDir();
  const fast = await start(dir, true, true);
  const slow = await start(dir, false, true);
  try {
    const r: RawRequest = {
      name: "a Put with a 300 ms deadline",
      path: `${KV}/Put`,
      headers: { "content-type": "application/grpc", "te": "trailers", "grpc-timeout": "300m" },
      chunks: [put("a")],
    };
    const a = await send(fast.session, r);
    const b = await send(slow.session, r);
    assert.deepEqual(a, b);
    assert.equal(a.trailers["grpc-status"], String(Code.Unavailable));
    assert.equal(fast.server.fastLaneCalls, 1);
  } finally {
    await stop(fast);
    await stop(slow);
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// A stub service: what a real node does not do on demand
// ---------------------------------------------------------------------------

/** What the stub's handlers saw of their calls' signals, and how many waits began. */
const aborted: string[] = [];
let waits = 0;

const stub: Partial<ServiceImpl<typeof KVService>> = {
  get(req, ctx) {
    switch (req.key) {
      case "throw":
        throw new Error("a bug in a handler");
      case "metadata":
        throw new ConnectError("refused with metadata", Code.FailedPrecondition, {
          "x-why": "because",
        });
      case "header":
        ctx.responseHeader.set("x-answer", "42");
        ctx.responseTrailer.set("x-trailer", "yes");
        return { found: false };
      case "wait":
        // Until the deadline or the client's reset aborts the call.
        waits++;
        return new Promise((_, reject) => {
          ctx.signal.addEventListener("abort", () => {
            aborted.push(String(ConnectError.from(ctx.signal.reason).code));
            reject(ctx.signal.reason);
          });
        });
      default:
        return { found: true, value: new TextEncoder().encode(`é%\n${req.key}`) };
    }
  },
};

/** A server of the stub behind the guard: with the lane in front of Connect, or Connect alone. */
async function stubServer(
  fastLane: boolean,
): Promise<{ server: http2.Http2Server; lane?: UnaryFastLane; port: number }> {
  const acceptCompression = [compressionGzip, compressionBrotli];
  const contextValues = () => createContextValues();
  const handler = connectNodeAdapter({
    grpc: true,
    grpcWeb: false,
    connect: false,
    acceptCompression,
    contextValues,
    readMaxBytes: MAX_REQUEST_BYTES,
    routes: (r) => r.service(KVService, stub),
  });
  const lane = fastLane
    ? new UnaryFastLane({
      services: [createServiceImplSpec<typeof KVService>(KVService, stub)],
      interceptors: [],
      contextValues,
      readMaxBytes: MAX_REQUEST_BYTES,
      maxTimeoutMs: Number.MAX_SAFE_INTEGER,
      acceptCompression,
    })
    : undefined;
  const guard = new Http2Guard(DEFAULT_HTTP2_LIMITS, SILENT);
  const server = http2.createServer(
    {},
    guard.wrap(lane?.inFrontOf(handler) ?? handler),
  );
  guard.install(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, lane, port: (server.address() as AddressInfo).port };
}

Deno.test("a handler's errors, headers, deadline and a client's reset are the same on the fast lane as through Connect", async () => {
  const fast = await stubServer(true);
  const slow = await stubServer(false);
  const fastSession = http2.connect(`http://127.0.0.1:${fast.port}`);
  const slowSession = http2.connect(`http://127.0.0.1:${slow.port}`);
  try {
    const cases: RawRequest[] = [
      { name: "a plain Error", path: `${KV}/Get`, chunks: [getOf("throw")] },
      { name: "an error with metadata", path: `${KV}/Get`, chunks: [getOf("metadata")] },
      { name: "headers and trailers set", path: `${KV}/Get`, chunks: [getOf("header")] },
      { name: "a value to percent-encode", path: `${KV}/Get`, chunks: [getOf("ok")] },
      {
        name: "a deadline that fires",
        path: `${KV}/Get`,
        headers: { "content-type": "application/grpc", "te": "trailers", "grpc-timeout": "50m" },
        chunks: [getOf("wait")],
      },
    ];
    for (const r of cases) {
      assert.deepEqual(await send(fastSession, r), await send(slowSession, r), r.name);
    }
    assert.equal(fast.lane?.served, cases.length);

    // A client that resets its call: the handler's signal aborts, Canceled, on both.
    aborted.length = 0;
    for (const session of [fastSession, slowSession]) {
      const req = session.request({
        ":method": "POST",
        ":path": `${KV}/Get`,
        "content-type": "application/grpc",
        "te": "trailers",
      });
      req.on("error", () => {});
      const began = waits;
      const seen = aborted.length;
      req.end(getOf("wait"));
      // Once the handler runs, the client gives up.
      await waitFor("the handler runs", () => waits > began);
      req.close(http2.constants.NGHTTP2_CANCEL);
      await waitFor("the handler sees the reset", () => aborted.length > seen);
    }
    assert.deepEqual(aborted, [String(Code.Canceled), String(Code.Canceled)]);
  } finally {
    fastSession.close();
    slowSession.close();
    await new Promise((r) => fast.server.close(r));
    await new Promise((r) => slow.server.close(r));
  }
});

Deno.test("a call's headers read as the Headers Connect makes, whether used whole or one field at a time", () => {
  const fields: http2.IncomingHttpHeaders = {
    ":method": "POST",
    ":path": "/raftkv.v1.KVService/Put",
    "content-type": "application/grpc",
    "x-raftkv-forwarded-by": "2",
    "x-repeated": ["a", "b"],
    "x-padded": " p ",
  };
  // connect-node's nodeHeaderToWebHeader: every field but the pseudo-headers, in order.
  const eager = new Headers();
  eager.append("content-type", "application/grpc");
  eager.append("x-raftkv-forwarded-by", "2");
  eager.append("x-repeated", "a");
  eager.append("x-repeated", "b");
  eager.append("x-padded", " p ");
  const contextOf = () =>
    callContext(KVService.method.put, undefined, fields, "http://x", createContextValues(), "gzip");
  // One field at a time (what route.ts reads), then whole: each as the eager Headers say.
  const ctx = contextOf();
  for (const name of ["X-Raftkv-Forwarded-By", "x-repeated", "x-padded", "x-none"]) {
    assert.equal(ctx.requestHeader.has(name), eager.has(name), name);
    assert.equal(ctx.requestHeader.get(name), eager.get(name), name);
  }
  // A name Headers refuse is refused alike (a pseudo-header's too).
  for (const name of ["bad name", ":path"]) {
    assert.throws(() => eager.get(name), TypeError);
    assert.throws(() => contextOf().requestHeader.get(name), TypeError);
  }
  assert.deepEqual([...ctx.requestHeader], [...eager]);
  // Whole first, then changed: the fields are there once.
  const whole = contextOf();
  const seen: [string, string][] = [];
  whole.requestHeader.forEach((v, k) => void seen.push([k, v]));
  assert.deepEqual(seen, [...eager]);
  whole.requestHeader.set("x-repeated", "c");
  assert.equal(whole.requestHeader.get("x-repeated"), "c");
  assert.equal(whole.requestHeader.get("content-type"), "application/grpc");
  // The response's headers and trailers hold their first fields once read or changed.
  assert.deepEqual([...ctx.responseHeader], [
    ["content-type", "application/grpc+proto"],
    ["grpc-encoding", "gzip"],
  ]);
  assert.equal(ctx.responseTrailer.get("grpc-status"), "0");
  ctx.responseTrailer.append("x-extra", "1");
  assert.deepEqual([...ctx.responseTrailer], [["grpc-status", "0"], ["x-extra", "1"]]);
  ctx.abort();
});
