/**
 * What the bench prints and saves: one summary per cell (operation × in flight)
 * and system, merging that cell's runs (their histograms added, their operations,
 * seconds and CPU summed), the table of those summaries with the raftkv/etcd ratio,
 * and the JSON record of every run.
 *
 * @module
 */

import * as hdr from "hdr-histogram-js";
import { newHistogram, type RunResult } from "./load.ts";
import type { Op } from "./system.ts";

/** One run of one system in one cell. */
export interface Run extends RunResult {
  system: string;
  op: Op;
  inFlight: number;
  connections: number;
  /** 1-based: the round of the cell this run belongs to. */
  round: number;
}

/** A cell's runs of one system, merged. */
export interface Summary {
  system: string;
  op: Op;
  inFlight: number;
  runs: number;
  ops: number;
  errors: number;
  seconds: number;
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  /** Server CPU-seconds (all members, user + system) per 1,000 operations. */
  cpuSecondsPer1kOps: number;
}

/** Merges the runs of each (system, op, in flight), in the order the cells first appear. */
export function summarize(runs: readonly Run[]): Summary[] {
  const groups = new Map<string, Run[]>();
  for (const r of runs) {
    const k = `${r.system}\u0000${r.op}\u0000${r.inFlight}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  return [...groups.values()].map((rs) => {
    const h = newHistogram();
    for (const r of rs) h.add(r.histogram);
    const sum = (f: (r: Run) => number) => rs.reduce((a, r) => a + f(r), 0);
    const ops = sum((r) => r.ops);
    const seconds = sum((r) => r.seconds);
    const cpu = sum((r) => r.serverCpuSeconds.reduce((a, b) => a + b, 0));
    const first = rs[0]!;
    return {
      system: first.system,
      op: first.op,
      inFlight: first.inFlight,
      runs: rs.length,
      ops,
      errors: sum((r) => r.errors),
      seconds,
      opsPerSecond: ops / seconds,
      p50Ms: ops === 0 ? NaN : h.getValueAtPercentile(50) / 1000,
      p99Ms: ops === 0 ? NaN : h.getValueAtPercentile(99) / 1000,
      p999Ms: ops === 0 ? NaN : h.getValueAtPercentile(99.9) / 1000,
      cpuSecondsPer1kOps: ops === 0 ? NaN : (cpu / ops) * 1000,
    };
  });
}

/** `x` with three significant digits (at least), thousands separated: 1,958; 46.0; 0.320. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return "-";
  const digits = Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : Math.abs(x) >= 1 ? 2 : 3;
  return x.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** The table's header cells. */
export const TABLE_HEADER = [
  "op",
  "in flight",
  "system",
  "ops/s",
  "p50 ms",
  "p99 ms",
  "p99.9 ms",
  "CPU s/1k ops",
  "errors",
] as const;

/**
 * The table as Markdown: per cell a row for each system, and with two systems a
 * `raftkv/etcd` row of ratios (above 1 is better for raftkv in ops/s, worse in
 * latency and CPU).
 */
export function table(summaries: readonly Summary[], systems: readonly string[]): string {
  const rows: string[][] = [];
  const cells = [...new Set(summaries.map((s) => `${s.op}\u0000${s.inFlight}`))];
  for (const cell of cells) {
    const [op, inFlight] = cell.split("\u0000");
    const bySystem = systems.map((name) =>
      summaries.find((s) => s.system === name && `${s.op}\u0000${s.inFlight}` === cell)
    );
    for (const s of bySystem) {
      if (s === undefined) continue;
      rows.push([
        s.op,
        String(s.inFlight),
        s.system,
        fmt(s.opsPerSecond),
        fmt(s.p50Ms),
        fmt(s.p99Ms),
        fmt(s.p999Ms),
        fmt(s.cpuSecondsPer1kOps),
        String(s.errors),
      ]);
    }
    const [a, b] = bySystem;
    if (systems.length === 2 && a !== undefined && b !== undefined) {
      const r = (x: number, y: number) => (y === 0 ? "-" : (x / y).toFixed(2));
      rows.push([
        op!,
        inFlight!,
        `${a.system}/${b.system}`,
        r(a.opsPerSecond, b.opsPerSecond),
        r(a.p50Ms, b.p50Ms),
        r(a.p99Ms, b.p99Ms),
        r(a.p999Ms, b.p999Ms),
        r(a.cpuSecondsPer1kOps, b.cpuSecondsPer1kOps),
        "",
      ]);
    }
  }
  const all = [[...TABLE_HEADER], ...rows];
  const widths = TABLE_HEADER.map((_, c) => Math.max(...all.map((r) => r[c]!.length)));
  const leftAligned = (c: number) => c === 0 || c === 2;
  const line = (r: string[]) =>
    `| ${
      r.map((v, c) => (leftAligned(c) ? v.padEnd(widths[c]!) : v.padStart(widths[c]!))).join(" | ")
    } |`;
  const rule = `|${
    widths.map((w, c) => (leftAligned(c) ? `:${"-".repeat(w + 1)}` : `${"-".repeat(w + 1)}:`))
      .join("|")
  }|`;
  return [line(all[0]!), rule, ...rows.map(line)].join("\n");
}

/** A run as JSON: figures in ms, and its histogram (HdrHistogram's compressed base64, µs). */
export function runJson(r: Run): Record<string, unknown> {
  const h = r.histogram;
  const ms = (p: number) => (r.ops === 0 ? null : h.getValueAtPercentile(p) / 1000);
  const cpu = r.serverCpuSeconds.reduce((a, b) => a + b, 0);
  return {
    system: r.system,
    op: r.op,
    inFlight: r.inFlight,
    connections: r.connections,
    round: r.round,
    seconds: r.seconds,
    ops: r.ops,
    errors: r.errors,
    errorSamples: r.errorSamples,
    opsPerSecond: r.ops / r.seconds,
    latencyMs: {
      p50: ms(50),
      p90: ms(90),
      p99: ms(99),
      p999: ms(99.9),
      max: r.ops === 0 ? null : h.maxValue / 1000,
      mean: r.ops === 0 ? null : h.mean / 1000,
    },
    serverCpuSeconds: cpu,
    serverCpuSecondsPerProcess: r.serverCpuSeconds,
    cpuSecondsPer1kOps: r.ops === 0 ? null : (cpu / r.ops) * 1000,
    clientCpuSeconds: r.clientCpuSeconds,
    loadAverage: r.loadAverage,
    histogramMicrosBase64: hdr.encodeIntoCompressedBase64(h),
  };
}
