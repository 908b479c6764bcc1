import assert from "node:assert/strict";
import perfHooks from "node:perf_hooks";
import { LoopDelayHistogram } from "../../src/metrics/event_loop_lag.ts";
import { createRegistry } from "../../src/metrics/registry.ts";
import { waitFor } from "../e2e/_harness.ts";

/** A deterministic stream of delays (ms): mostly small, a few long pauses. */
function delays(n: number): number[] {
  let x = 12345;
  const next = () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
  return Array.from({ length: n }, () => {
    const r = next();
    return r < 0.9 ? r * 2 : r < 0.99 ? 5 + r * 50 : 200 + r * 3000;
  });
}

Deno.test("the loop delay histogram agrees with the sorted delays: percentiles within 1%, the rest exact", () => {
  const values = delays(20_000);
  const h = new LoopDelayHistogram();
  for (const v of values) h.record(v);
  const sorted = [...values].sort((a, b) => a - b);
  for (const p of [1, 50, 90, 99, 99.9, 100]) {
    const truth = sorted[Math.ceil((p / 100) * sorted.length) - 1]!;
    const got = h.percentile(p);
    assert.ok(
      Math.abs(got - truth) <= truth * 0.0101,
      `p${p}: ${got} against ${truth} in the sorted delays`,
    );
  }
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
  assert.equal(h.count, values.length);
  assert.equal(h.min, sorted[0]);
  assert.equal(h.max, sorted[sorted.length - 1]);
  assert.ok(Math.abs(h.mean - mean) < 1e-9, `mean ${h.mean} against ${mean}`);
  assert.ok(Math.abs(h.stddev - Math.sqrt(variance)) < 1e-6, `stddev ${h.stddev}`);
});

Deno.test("an empty or reset loop delay histogram reads 0 everywhere; a percentile out of (0, 100] is refused", () => {
  const h = new LoopDelayHistogram();
  h.record(3);
  h.record(-1); // a timer that fired early counts as no delay
  assert.equal(h.min, 0);
  h.reset();
  for (const v of [h.count, h.min, h.max, h.mean, h.stddev, h.percentile(99)]) assert.equal(v, 0);
  assert.throws(() => h.percentile(0), /must be in \(0, 100\]/);
  assert.throws(() => h.percentile(101), /must be in \(0, 100\]/);
});

Deno.test("a node's registry never starts Deno's native event-loop delay histogram (8 to 16 MiB per node)", () => {
  const hooks = perfHooks as { monitorEventLoopDelay?: unknown };
  const native = hooks.monitorEventLoopDelay;
  let started = 0;
  hooks.monitorEventLoopDelay = (...args: unknown[]) => {
    started++;
    return (native as (...a: unknown[]) => unknown)(...args);
  };
  try {
    createRegistry();
  } finally {
    hooks.monitorEventLoopDelay = native;
  }
  assert.equal(started, 0, "prom-client started monitorEventLoopDelay");
});

Deno.test("the event-loop delay gauges report a loop blocked for 60 ms, then a new window per scrape", async () => {
  const registry = createRegistry();
  const read = async () => {
    const text = await registry.metrics();
    const value = (suffix: string) =>
      Number(
        new RegExp(`^raftkv_nodejs_eventloop_lag_${suffix}_seconds (\\S+)$`, "m").exec(text)?.[1],
      );
    return { max: value("max"), p99: value("p99"), min: value("min"), mean: value("mean") };
  };
  await read(); // starts a window
  const start = performance.now();
  while (performance.now() - start < 60); // the loop is blocked: the sampler's next firing is late
  // Polls until a scrape has seen the block (the sampler fires every 10 ms; each
  // scrape starts a new window, so the largest max so far is kept).
  let largest = 0;
  const seen = await waitFor("a scrape that saw the 60 ms block", async () => {
    const next = await read();
    largest = Math.max(largest, next.max);
    return largest >= 0.04 ? { ...next, max: largest } : undefined;
  }, { timeoutMs: 10_000, intervalMs: 20 });
  assert.ok(seen.max >= 0.04, `max ${seen.max} s after a 60 ms block`);
  assert.ok(seen.min >= 0 && seen.mean >= 0 && seen.p99 >= 0);
  // Every gauge of one scrape comes from the same window: min <= mean <= max.
  const one = await read();
  assert.ok(one.min <= one.mean && one.mean <= one.max, JSON.stringify(one));
});
