/**
 * What serving one unary gRPC call costs a server, by path (issue 11's unary fast
 * lane, src/server/unary_fast_lane.ts): a server process answers a Get of a
 * 256-byte value, and a Connect gRPC client drives it with 64 calls in flight over
 * 16 HTTP/2 connections; the server's CPU time per call is read from /proc (utime +
 * stime), which a busy machine disturbs less than calls per second. Paths:
 *
 * - `connect`: Connect's node adapter behind the HTTP/2 guard, as a node served every call before;
 * - `lane`: the fast lane behind the guard, Connect's adapter for anything else, as a node serves now;
 * - `compat`: a bare handler on node:http2's compatibility API (req/res), no guard: a floor;
 * - `core`: a bare handler on node:http2's core 'stream' API, no guard: the other floor.
 *
 * Runs alternate path by path for `--rounds`. It prints figures and asserts nothing.
 *
 *   deno run -A scripts/bench_unary_lane.ts [--paths connect,lane,compat,core] [--calls 20000]
 *     [--rounds 2] [--port 7701]   (--help: scripts/bench/unary_lane_flags.ts)
 *
 * @module
 */

import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient, createContextValues, createServiceImplSpec } from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  connectNodeAdapter,
  createGrpcTransport,
} from "@connectrpc/connect-node";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { GetRequestSchema, GetResponseSchema, KVService } from "../src/gen/raftkv/v1/kv_pb.ts";
import { Http2Guard } from "../src/http2/guard.ts";
import { DEFAULT_HTTP2_LIMITS, http2ServerOptions } from "../src/http2/limits.ts";
import { UnaryFastLane } from "../src/server/unary_fast_lane.ts";
import { MAX_CALL_TIMEOUT_MS, MAX_REQUEST_BYTES } from "../src/server/server.ts";
import {
  parseUnaryLaneFlags,
  type Path,
  UNARY_LANE_USAGE,
  UnaryLaneFlagError,
  type UnaryLaneOptions,
} from "./bench/unary_lane_flags.ts";

const CONNECTIONS = 16;
const IN_FLIGHT = 64;

const value = new Uint8Array(256).fill(120);
const answer = () => create(GetResponseSchema, { found: true, value });

/** Decodes the one GetRequest of a bare handler's body, as any server must. */
function decode(chunks: Uint8Array[]): void {
  const all = chunks.length === 1 ? chunks[0]! : new Uint8Array(Buffer.concat(chunks));
  const len = new DataView(all.buffer, all.byteOffset).getUint32(1);
  fromBinary(GetRequestSchema, all.subarray(5, 5 + len));
}

/** The server side: serves `path` on `port` until killed. */
function runServer(path: Path, port: number): void {
  const impl = { get: () => answer() };
  let server: http2.Http2Server;
  if (path === "connect" || path === "lane") {
    const acceptCompression = [compressionGzip, compressionBrotli];
    const contextValues = () => createContextValues();
    const adapter = connectNodeAdapter({
      grpc: true,
      grpcWeb: false,
      connect: false,
      acceptCompression,
      contextValues,
      readMaxBytes: MAX_REQUEST_BYTES,
      maxTimeoutMs: MAX_CALL_TIMEOUT_MS,
      routes: (r) => r.service(KVService, impl),
    });
    const lane = path === "lane"
      ? new UnaryFastLane({
        services: [createServiceImplSpec<typeof KVService>(KVService, impl)],
        interceptors: [],
        contextValues,
        readMaxBytes: MAX_REQUEST_BYTES,
        maxTimeoutMs: MAX_CALL_TIMEOUT_MS,
        acceptCompression,
      })
      : undefined;
    const silent = { debug() {}, info() {}, warn() {}, error() {} };
    const limits = { ...DEFAULT_HTTP2_LIMITS, maxConnectionsPerAddress: 1_000 };
    const guard = new Http2Guard(limits, silent);
    server = http2.createServer(
      http2ServerOptions(limits),
      guard.wrap(lane?.inFrontOf(adapter) ?? adapter),
    );
    guard.install(server);
  } else if (path === "compat") {
    server = http2.createServer({}, (req, res) => {
      const chunks: Uint8Array[] = [];
      req.on("data", (c: Uint8Array) => chunks.push(c));
      req.on("end", () => {
        decode(chunks);
        res.writeHead(200, { "content-type": "application/grpc+proto" });
        res.addTrailers({ "grpc-status": "0" });
        res.end(encodeEnvelope(0, toBinary(GetResponseSchema, answer())));
      });
    });
  } else {
    server = http2.createServer({});
    server.on("stream", (stream: http2.ServerHttp2Stream) => {
      const chunks: Uint8Array[] = [];
      stream.on("data", (c: Uint8Array) => chunks.push(c));
      stream.on("end", () => {
        decode(chunks);
        stream.respond({ ":status": 200, "content-type": "application/grpc+proto" }, {
          waitForTrailers: true,
        });
        stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        stream.end(encodeEnvelope(0, toBinary(GetResponseSchema, answer())));
      });
    });
  }
  server.listen(port, "127.0.0.1", () => console.log("ready"));
}

/** utime + stime of `pid`, in seconds. */
function cpuSeconds(pid: number): number {
  const s = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Starts a server of `path`, drives it, prints its CPU per call. */
async function measure(path: Path, port: number, calls: number): Promise<void> {
  const server = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", import.meta.filename!, "--serve", path, "--port", String(port)],
    stdout: "piped",
  }).spawn();
  const reader = server.stdout.getReader();
  await reader.read(); // "ready"
  try {
    const clients = Array.from(
      { length: CONNECTIONS },
      () => createClient(KVService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` })),
    );
    for (let i = 0; i < 100; i++) await Promise.all(clients.map((c) => c.get({ key: "k" })));
    const cpu0 = cpuSeconds(server.pid);
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async (_, k) => {
        while (next++ < calls) await clients[k % CONNECTIONS]!.get({ key: "k" });
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(server.pid) - cpu0;
    console.log(
      `${path.padEnd(8)} ${(calls / seconds).toFixed(0).padStart(6)} calls/s  server CPU ` +
        `${(cpu / calls * 1e6).toFixed(0).padStart(4)} us/call  load ${
          Deno.loadavg()[0]!.toFixed(2)
        }`,
    );
  } finally {
    reader.releaseLock();
    server.kill("SIGKILL");
    await server.status;
  }
}

let flags: UnaryLaneOptions;
try {
  flags = parseUnaryLaneFlags(Deno.args);
} catch (err) {
  if (!(err instanceof UnaryLaneFlagError)) throw err;
  console.error(`error: ${err.message} (see --help)`);
  Deno.exit(2);
}
if (flags.help) {
  console.log(UNARY_LANE_USAGE);
  Deno.exit(0);
}
if (flags.serve !== undefined) {
  runServer(flags.serve, flags.port);
} else {
  for (let round = 0; round < flags.rounds; round++) {
    for (const p of flags.paths) await measure(p, flags.port, flags.calls);
  }
  Deno.exit(0);
}
