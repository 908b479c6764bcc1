/**
 * The load generator: keeps N operations in flight against one system over C
 * gRPC channels (grpc-js, one HTTP/2 connection each; operation k uses channel
 * k mod C), for a warm-up and then a measured window. Latencies go into an HDR
 * histogram in microseconds; the server processes' CPU time is read at the edges
 * of the window (proc_cpu.ts). An operation counts if it completes inside the
 * window (its latency measured from its start, which may precede the window);
 * those still in flight when the window closes finish, but are not counted.
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import * as hdr from "hdr-histogram-js";
import { cpuSeconds, loadAverage } from "./proc_cpu.ts";
import type { SystemUnderTest, UnaryOp } from "./system.ts";

/** Latencies up to 10 minutes, in microseconds, to 3 significant digits. */
export function newHistogram(): hdr.Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });
}

/** How one run is made. */
export interface RunSpec {
  /** Operations in flight. */
  inFlight: number;
  /** gRPC channels (connections) they share. */
  connections: number;
  /** Number of distinct keys; operation j uses key j mod keys. */
  keys: number;
  /** Seconds of load before the window, not measured. */
  warmupSeconds: number;
  /** Seconds of the measured window. */
  durationSeconds: number;
  /** Clock ticks per second of /proc/<pid>/stat. */
  ticksPerSecond: number;
}

/** What one run measured. */
export interface RunResult {
  /** Operations completed inside the window. */
  ops: number;
  /** Failed calls or wrong answers inside the window (not in `ops`). */
  errors: number;
  /** The first few error messages, for the report. */
  errorSamples: string[];
  /** Length of the window, seconds. */
  seconds: number;
  /** Latencies of the counted operations, microseconds. */
  histogram: hdr.Histogram;
  /** CPU seconds each server process used in the window, in the order of `pids`. */
  serverCpuSeconds: number[];
  /** CPU seconds the bench process (the load generator) used in the window. */
  clientCpuSeconds: number;
  /** Load average at the end of the window. */
  loadAverage: [number, number, number];
}

function callOnce(
  channel: grpc.Client,
  op: UnaryOp,
  request: Buffer,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    channel.makeUnaryRequest<Buffer, Buffer>(
      op.path,
      (b) => b,
      (b) => b,
      request,
      new grpc.Metadata(),
      { deadline: Date.now() + 60_000 },
      (err, res) => {
        if (err !== null) reject(err);
        else if (res === undefined) reject(new Error(`${op.path}: no response`));
        else resolve(res);
      },
    );
  });
}

/** Waits until `channel` is connected (or throws after `ms`). */
export function connect(channel: grpc.Client, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    channel.waitForReady(Date.now() + ms, (err) => err === undefined ? resolve() : reject(err));
  });
}

/**
 * Calls `op` for every key once, `inFlight` at a time, over one channel: the data
 * the gets read. Throws on the first failure.
 */
export async function populate(
  system: SystemUnderTest,
  op: UnaryOp,
  keys: number,
  inFlight = 16,
): Promise<void> {
  const channel = system.channel(op.address);
  try {
    await connect(channel, 30_000);
    let next = 0;
    await Promise.all(Array.from({ length: inFlight }, async () => {
      for (let i = next++; i < keys; i = next++) {
        const bad = op.check(await callOnce(channel, op, op.request(i)));
        if (bad !== undefined) throw new Error(`${system.name} ${op.path}: ${bad}`);
      }
    }));
  } finally {
    channel.close();
  }
}

/** Runs `op` against `system` as `spec` says: a warm-up, then the measured window. */
export async function runLoad(
  system: SystemUnderTest,
  op: UnaryOp,
  spec: RunSpec,
): Promise<RunResult> {
  const channels = Array.from({ length: spec.connections }, () => system.channel(op.address));
  let stopped = false;
  try {
    await Promise.all(channels.map((c) => connect(c, 30_000)));
    const histogram = newHistogram();
    let ops = 0;
    let errors = 0;
    const errorSamples: string[] = [];
    let measuring = false;
    let nextKey = 0;

    const cpuOfServers = () =>
      system.pids.map((pid) => {
        try {
          return cpuSeconds(pid, spec.ticksPerSecond);
        } catch (err) {
          throw new Error(
            `${system.name}: cannot read the CPU time of server process ${pid}; did it exit? ` +
              `(${err instanceof Error ? err.message : err})`,
          );
        }
      });
    const cpuOfClient = () => cpuSeconds(Deno.pid, spec.ticksPerSecond);

    const worker = async (k: number): Promise<void> => {
      const channel = channels[k % channels.length]!;
      while (!stopped) {
        const request = op.request(nextKey++ % spec.keys);
        const t0 = performance.now();
        let failure: string | undefined;
        try {
          failure = op.check(await callOnce(channel, op, request));
        } catch (err) {
          failure = err instanceof Error ? err.message : String(err);
        }
        const micros = Math.max(1, Math.round((performance.now() - t0) * 1000));
        // Counted if it ended inside the window: throughput is completions per second.
        if (measuring) {
          if (failure === undefined) {
            ops++;
            histogram.recordValue(micros);
          } else {
            errors++;
            if (errorSamples.length < 5) errorSamples.push(failure);
          }
        }
        // A call that fails at once (a member gone: grpc-js rejects in a microtask) would
        // make this loop spin without yielding, starving the timers that end the run.
        if (failure !== undefined) await new Promise((r) => setTimeout(r, 10));
      }
    };

    const workers = Array.from({ length: spec.inFlight }, (_, k) => worker(k));
    await new Promise((r) => setTimeout(r, spec.warmupSeconds * 1000));
    const cpu0 = cpuOfServers();
    const client0 = cpuOfClient();
    const t0 = performance.now();
    measuring = true;
    await new Promise((r) => setTimeout(r, spec.durationSeconds * 1000));
    measuring = false;
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = cpuOfServers();
    const client1 = cpuOfClient();
    stopped = true;
    await Promise.all(workers);
    return {
      ops,
      errors,
      errorSamples,
      seconds,
      histogram,
      serverCpuSeconds: cpu1.map((c, i) => c - cpu0[i]!),
      clientCpuSeconds: client1 - client0,
      loadAverage: loadAverage(),
    };
  } finally {
    stopped = true;
    for (const c of channels) c.close();
  }
}
