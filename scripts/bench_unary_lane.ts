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
 * With `--garbage`, the server also runs V8's sampling heap profiler (every 1 KiB
 * allocated, counting what the garbage collector took back) from the moment it
 * listens, and the figures add the bytes it allocated per call (warm-up included),
 * the garbage a call leaves; the profiler's own cost then inflates the CPU figure.
 *
 * Runs alternate path by path for `--rounds`. It prints figures and asserts nothing.
 *
 *   deno run -A scripts/bench_unary_lane.ts [--paths connect,lane,compat,core] [--calls 20000]
 *     [--rounds 2] [--port 7701] [--garbage]   (--help: scripts/bench/unary_lane_flags.ts)
 *
 * @module
 */

import * as http2 from "node:http2";
import { Session } from "node:inspector";
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
/** Calls of the warm-up: 100 rounds of one call on each connection. */
const WARMUP_CALLS = 100 * CONNECTIONS;

const value = new Uint8Array(256).fill(120);
const answer = () => create(GetResponseSchema, { found: true, value });

/** Decodes the one GetRequest of a bare handler's body, as any server must. */
function decode(chunks: Uint8Array[]): void {
  const all = chunks.length === 1 ? chunks[0]! : new Uint8Array(Buffer.concat(chunks));
  const len = new DataView(all.buffer, all.byteOffset).getUint32(1);
  fromBinary(GetRequestSchema, all.subarray(5, 5 + len));
}

/** A node:inspector call as a promise. */
function post<T>(session: Session, method: string, params: object = {}): Promise<T> {
  return new Promise((resolve, reject) =>
    session.post(method, params, (err, result) => err ? reject(err) : resolve(result as T))
  );
}

interface SamplingNode {
  selfSize: number;
  children?: SamplingNode[];
}

/**
 * Samples every allocation of the process (about one per KiB, the collected ones
 * too); on SIGTERM prints the bytes sampled since, then exits.
 */
async function sampleAllocations(): Promise<void> {
  const session = new Session();
  session.connect();
  await post(session, "HeapProfiler.enable");
  await post(session, "HeapProfiler.startSampling", {
    samplingInterval: 1024,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  Deno.addSignalListener("SIGTERM", async () => {
    const { profile } = await post<{ profile: { head: SamplingNode } }>(
      session,
      "HeapProfiler.getSamplingProfile",
    );
    let bytes = 0;
    const nodes = [profile.head];
    for (let n = nodes.pop(); n !== undefined; n = nodes.pop()) {
      bytes += n.selfSize;
      nodes.push(...(n.children ?? []));
    }
    console.log(`allocated ${bytes}`);
    Deno.exit(0);
  });
}

/** The server side: serves `path` on `port` until killed. */
function runServer(path: Path, port: number, garbage: boolean): void {
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
  server.listen(port, "127.0.0.1", async () => {
    if (garbage) await sampleAllocations();
    console.log("ready");
  });
}

/** utime + stime of `pid`, in seconds. */
function cpuSeconds(pid: number): number {
  const s = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Starts a server of `path`, drives it, prints its CPU per call. */
async function measure(
  path: Path,
  port: number,
  calls: number,
  garbage: boolean,
): Promise<void> {
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      import.meta.filename!,
      "--serve",
      path,
      "--port",
      String(port),
      ...(garbage ? ["--garbage"] : []),
    ],
    stdout: "piped",
  }).spawn();
  const lines = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  await lines.read(); // "ready"
  let killed = false;
  try {
    const clients = Array.from(
      { length: CONNECTIONS },
      () => createClient(KVService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` })),
    );
    for (let i = 0; i < WARMUP_CALLS / CONNECTIONS; i++) {
      await Promise.all(clients.map((c) => c.get({ key: "k" })));
    }
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
    let allocated = "";
    if (garbage) {
      server.kill("SIGTERM");
      killed = true;
      let out = "";
      for (let r = await lines.read(); !r.done; r = await lines.read()) out += r.value;
      const bytes = Number(/allocated (\d+)/.exec(out)?.[1]);
      allocated = `  ${(bytes / (calls + WARMUP_CALLS) / 1024).toFixed(1).padStart(5)} KB/call`;
    }
    console.log(
      `${path.padEnd(8)} ${(calls / seconds).toFixed(0).padStart(6)} calls/s  server CPU ` +
        `${(cpu / calls * 1e6).toFixed(0).padStart(4)} us/call${allocated}  load ${
          Deno.loadavg()[0]!.toFixed(2)
        }`,
    );
  } finally {
    lines.releaseLock();
    if (!killed) server.kill("SIGKILL");
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
  runServer(flags.serve, flags.port, flags.garbage);
} else {
  for (let round = 0; round < flags.rounds; round++) {
    for (const p of flags.paths) await measure(p, flags.port, flags.calls, flags.garbage);
  }
  Deno.exit(0);
}
