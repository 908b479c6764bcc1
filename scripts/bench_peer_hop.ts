/**
 * What one peer hop costs, by path (issue 11's peer fast path: the raw sender of
 * src/server/raw_stream_call.ts, the receiving lane of
 * src/server/stream_fast_lane.ts): a sender process's PeerStream writes one
 * heartbeat at a time on RaftService/Stream to a receiver process serving
 * RaftService (the node's implementation, behind the HTTP/2 guard, with a fake
 * node that records when each message is stepped). Each message carries its send
 * time (wall clock in microseconds, shared by both processes on one machine), so
 * the receiver knows the one-way latency from the sender's queue to the step.
 * The CPU time of each process per message comes from /proc (utime + stime).
 *
 * Paths: `connect/connect` (Connect's client to Connect's adapter: before),
 * `raw/lane` (now), and the two halves alone (`raw/connect`, `connect/lane`).
 * Runs alternate path by path for `--rounds`. It prints figures and asserts nothing.
 *
 *   deno run -A scripts/bench_peer_hop.ts [--paths connect/connect,raw/lane]
 *     [--messages 3000] [--interval-ms 2] [--rounds 3] [--port 7690]
 *
 * @module
 */

import * as http2 from "node:http2";
import { parseArgs } from "node:util";
import { createClient, createContextValues, createServiceImplSpec } from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  connectNodeAdapter,
  createGrpcTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { RaftService } from "../src/gen/raftkv/v1/raft_pb.ts";
import { Http2Guard } from "../src/http2/guard.ts";
import { DEFAULT_HTTP2_LIMITS, http2ServerOptions } from "../src/http2/limits.ts";
import { type Message, message } from "../src/raft/types.ts";
import { PeerQueue } from "../src/server/peer_queue.ts";
import { PeerStream } from "../src/server/peer_stream.ts";
import { raftService, type RaftServiceNode } from "../src/server/raft_service.ts";
import { StreamFastLane } from "../src/server/stream_fast_lane.ts";
import { MAX_CALL_TIMEOUT_MS, MAX_REQUEST_BYTES } from "../src/server/server.ts";

const PATHS = ["connect/connect", "raw/lane", "raw/connect", "connect/lane"] as const;
type Path = typeof PATHS[number];
const WARMUP = 300;

/** Wall-clock microseconds, comparable between processes on one machine. */
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

/** utime + stime of `pid` ("self" for this process), in seconds. */
function cpuSeconds(pid: number | "self"): number {
  const s = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** The receiver: serves RaftService as node 2 on `port`; after `messages`, prints its figures. */
function runReceiver(lane: boolean, port: number, messages: number): void {
  const latencies: number[] = [];
  let cpuAtWarmup = 0;
  let seen = 0;
  const silent = { debug() {}, info() {}, warn() {}, error() {} };
  const node = {
    options: {
      id: 2,
      clusterId: "hop",
      peers: new Map([[1, { host: "127.0.0.1", port: 1 }], [2, { host: "127.0.0.1", port }]]),
      logger: silent,
    },
    status: () => ({ role: "follower", term: 1, lastIndex: 0 }),
    logEnd: () => ({ role: "follower", term: 1, lastIndex: 0 }),
    receive: (ms: readonly Message[]) => {
      const at = nowUs();
      for (const m of ms) {
        seen++;
        if (seen === WARMUP) cpuAtWarmup = cpuSeconds("self");
        if (seen > WARMUP) latencies.push((at - (m.context ?? 0)) / 1000);
        if (seen === WARMUP + messages) {
          const cpu = cpuSeconds("self") - cpuAtWarmup;
          latencies.sort((a, b) => a - b);
          console.log(JSON.stringify({
            p50: quantile(latencies, 0.5),
            p90: quantile(latencies, 0.9),
            p99: quantile(latencies, 0.99),
            cpuUsPerMessage: cpu / messages * 1e6,
          }));
        }
      }
    },
  } as unknown as RaftServiceNode;
  const impl = raftService(node);
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
    routes: (r) => r.service(RaftService, impl),
  });
  const streamLane = lane
    ? new StreamFastLane({
      methods: [createServiceImplSpec<typeof RaftService>(RaftService, impl).methods.stream!],
      interceptors: [],
      contextValues,
      readMaxBytes: MAX_REQUEST_BYTES,
      maxTimeoutMs: MAX_CALL_TIMEOUT_MS,
      acceptCompression,
    })
    : undefined;
  const guard = new Http2Guard(DEFAULT_HTTP2_LIMITS, silent);
  const server = http2.createServer(
    http2ServerOptions(DEFAULT_HTTP2_LIMITS),
    guard.wrap(streamLane?.inFrontOf(adapter) ?? adapter),
  );
  guard.install(server);
  server.listen(port, "127.0.0.1", () => console.log("ready"));
}

/** One run: a receiver process of `path`, fed by a PeerStream here. */
async function measure(path: Path, port: number, messages: number, intervalMs: number) {
  const [send, receive] = path.split("/") as ["raw" | "connect", "lane" | "connect"];
  const receiver = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      import.meta.filename!,
      "--receive",
      receive,
      "--port",
      String(port),
      "--messages",
      String(messages),
    ],
    stdout: "piped",
  }).spawn();
  const lines = receiver.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const nextLine = async (): Promise<string> => {
    for (;;) {
      const nl = buffered.indexOf("\n");
      if (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        return line;
      }
      const r = await lines.read();
      if (r.done) throw new Error("the receiver ended early");
      buffered += r.value;
    }
  };
  await nextLine(); // "ready"
  const session = new Http2SessionManager(`http://127.0.0.1:${port}`);
  const client = createClient(
    RaftService,
    createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}`, sessionManager: session }),
  );
  const queue = new PeerQueue();
  const stream = new PeerStream({
    peer: 2,
    queue,
    client: () => client,
    ...(send === "raw" ? { session: () => session } : {}),
    clusterId: "hop",
    members: [1n, 2n],
    timeoutMs: 5_000,
    ended: () => {},
  });
  try {
    const report = nextLine();
    let cpuAtWarmup = 0;
    for (let k = 1; k <= WARMUP + messages; k++) {
      if (k === WARMUP + 1) cpuAtWarmup = cpuSeconds("self");
      queue.push(message({ type: "heartbeat", from: 1, to: 2, term: 1, context: nowUs() }));
      stream.wake();
      await new Promise((r) => setTimeout(r, intervalMs));
    }
    const senderCpu = (cpuSeconds("self") - cpuAtWarmup) / messages * 1e6;
    const r = JSON.parse(await report) as Record<string, number>;
    console.log(
      `${path.padEnd(16)} one-way p50 ${r.p50!.toFixed(3)} ms  p90 ${r.p90!.toFixed(3)} ms  ` +
        `p99 ${r.p99!.toFixed(3)} ms  CPU/message: receiver ${
          r.cpuUsPerMessage!.toFixed(0)
        } us, sender ${senderCpu.toFixed(0)} us  load ${Deno.loadavg()[0]!.toFixed(2)}`,
    );
  } finally {
    await stream.close();
    session.abort();
    lines.releaseLock();
    receiver.kill("SIGKILL");
    await receiver.status;
  }
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    receive: { type: "string" },
    paths: { type: "string", default: "connect/connect,raw/lane" },
    messages: { type: "string", default: "3000" },
    "interval-ms": { type: "string", default: "2" },
    rounds: { type: "string", default: "3" },
    port: { type: "string", default: "7690" },
  },
});
const port = Number(values.port);
if (values.receive !== undefined) {
  runReceiver(values.receive === "lane", port, Number(values.messages));
} else {
  const paths = values.paths.split(",") as Path[];
  for (const p of paths) {
    if (!PATHS.includes(p)) throw new Error(`Cannot bench path ${p}: one of ${PATHS.join(", ")}`);
  }
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const p of paths) {
      await measure(p, port, Number(values.messages), Number(values["interval-ms"]));
    }
  }
  Deno.exit(0);
}
