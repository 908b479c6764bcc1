/**
 * The event-loop delay behind prom-client's `nodejs_eventloop_lag_{min,max,mean,
 * stddev,p50,p90,p99}_seconds`, sampled in JavaScript into a small histogram of
 * fixed size, instead of by `perf_hooks.monitorEventLoopDelay`.
 *
 * Why: Deno 2.9.3 implements `monitorEventLoopDelay` with a Rust HDR histogram of
 * five significant figures (`hdrhistogram::Histogram::<u64>::new(5)` in its
 * tokio_eld crate) that resizes itself to the largest delay it has recorded:
 * 131,072 eight-byte counters per doubling of the range, every one written when
 * the array grows. A node's first GC pauses and snapshots make delays of tens to
 * hundreds of milliseconds, so the array grew to an 8 to 16 MiB allocation, 9 MB
 * of it resident, on every node, for seven numbers per scrape (measured in one
 * node's /proc/PID/smaps; a gdb breakpoint on `mremap` caught its growth to 16 MiB
 * and its contents were counters of 1 to 5 in a sea of zeros). prom-client uses
 * `monitorEventLoopDelay` whenever `perf_hooks` has it, with no option to turn it
 * off, so {@link withoutNativeLoopDelay} hides it while prom-client's default
 * metrics are set up, and {@link registerEventLoopLag} serves the same gauges from
 * {@link LoopDelayHistogram}: an HDR histogram of fixed size (hdr-histogram-js, as
 * the bench's latencies; two significant digits over 1 ns to an hour, 19 KiB)
 * for the percentiles, and exact min, max, mean and standard deviation.
 *
 * The sampler is a timer every {@link LOOP_DELAY_RESOLUTION_MS} (prom-client's
 * default `eventLoopMonitoringPrecision`, which the node used): each firing records
 * how late it came, as Node's `monitorEventLoopDelay` does. One sampler serves the
 * process (the event loop is the process's); it is unref'd, so it never keeps a
 * process alive. Like prom-client, a scrape reads the delays recorded since the
 * previous scrape and starts a new window.
 *
 * @module
 */

import perfHooks from "node:perf_hooks";
import * as hdr from "hdr-histogram-js";
import { Gauge, type Registry } from "prom-client";

/** How often the event loop's delay is sampled (ms): prom-client's default precision. */
export const LOOP_DELAY_RESOLUTION_MS = 10;

/** Delays are recorded in nanoseconds (HDR histograms count integers), up to an hour. */
const NS_PER_MS = 1_000_000;
const LONGEST_NS = 3_600_000 * NS_PER_MS;

/**
 * Delays (ms): percentiles from an HDR histogram that never resizes (two significant
 * digits: within 1% of the true value), min, max, mean and standard deviation exact.
 */
export class LoopDelayHistogram {
  readonly #hdr = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: LONGEST_NS,
    numberOfSignificantValueDigits: 2,
    autoResize: false,
    useWebAssembly: false,
  });
  #count = 0;
  #sum = 0;
  #sumOfSquares = 0;
  #min = Infinity;
  #max = 0;

  /** Delays recorded since the last reset. */
  get count(): number {
    return this.#count;
  }

  /** Records one delay of `ms` milliseconds (negative counts as 0; over an hour, as an hour). */
  record(ms: number): void {
    const v = ms > 0 ? ms : 0;
    this.#hdr.recordValue(Math.min(Math.round(v * NS_PER_MS), LONGEST_NS));
    this.#count++;
    this.#sum += v;
    this.#sumOfSquares += v * v;
    if (v < this.#min) this.#min = v;
    if (v > this.#max) this.#max = v;
  }

  /** The smallest delay recorded (0 when none). */
  get min(): number {
    return this.#count === 0 ? 0 : this.#min;
  }

  /** The largest delay recorded (0 when none). */
  get max(): number {
    return this.#max;
  }

  /** The mean delay (0 when none). */
  get mean(): number {
    return this.#count === 0 ? 0 : this.#sum / this.#count;
  }

  /** The population standard deviation of the delays (0 when none). */
  get stddev(): number {
    if (this.#count === 0) return 0;
    const mean = this.#sum / this.#count;
    return Math.sqrt(Math.max(0, this.#sumOfSquares / this.#count - mean * mean));
  }

  /**
   * The delay at or below which `p` percent of the recorded delays lie (`p` in
   * (0, 100]), within 1%, and never outside [min, max]; 0 when none is recorded.
   */
  percentile(p: number): number {
    if (!(p > 0 && p <= 100)) {
      throw new RangeError(`Cannot take percentile ${p}: it must be in (0, 100]`);
    }
    if (this.#count === 0) return 0;
    const ms = this.#hdr.getValueAtPercentile(p) / NS_PER_MS;
    return Math.min(this.#max, Math.max(this.#min, ms));
  }

  /** Forgets every recorded delay. */
  reset(): void {
    this.#hdr.reset();
    this.#count = 0;
    this.#sum = 0;
    this.#sumOfSquares = 0;
    this.#min = Infinity;
    this.#max = 0;
  }
}

/** The process's sampler, started by the first {@link registerEventLoopLag}. */
let sampled: LoopDelayHistogram | undefined;

/** The process-wide histogram the sampler records into, starting the sampler once. */
function processLoopDelay(): LoopDelayHistogram {
  if (sampled !== undefined) return sampled;
  const histogram = new LoopDelayHistogram();
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    histogram.record(now - last - LOOP_DELAY_RESOLUTION_MS);
    last = now;
  }, LOOP_DELAY_RESOLUTION_MS);
  Deno.unrefTimer(timer);
  sampled = histogram;
  return histogram;
}

/**
 * Runs `setUp` (prom-client's `collectDefaultMetrics`) with
 * `perf_hooks.monitorEventLoopDelay` hidden, so that prom-client does not start
 * Deno's native histogram (see the module doc); prom-client then registers its
 * `nodejs_eventloop_lag_*` gauges without values but for `nodejs_eventloop_lag_seconds`,
 * and {@link registerEventLoopLag} replaces the others.
 */
export function withoutNativeLoopDelay<T>(setUp: () => T): T {
  const hooks = perfHooks as { monitorEventLoopDelay?: unknown };
  const native = hooks.monitorEventLoopDelay;
  hooks.monitorEventLoopDelay = undefined;
  try {
    return setUp();
  } finally {
    hooks.monitorEventLoopDelay = native;
  }
}

/** prom-client's event-loop delay gauges: name suffix, help, and what each reads. */
const GAUGES: readonly [string, string, (h: LoopDelayHistogram) => number][] = [
  ["min", "The minimum recorded event loop delay.", (h) => h.min],
  ["max", "The maximum recorded event loop delay.", (h) => h.max],
  ["mean", "The mean of the recorded event loop delays.", (h) => h.mean],
  ["stddev", "The standard deviation of the recorded event loop delays.", (h) => h.stddev],
  ["p50", "The 50th percentile of the recorded event loop delays.", (h) => h.percentile(50)],
  ["p90", "The 90th percentile of the recorded event loop delays.", (h) => h.percentile(90)],
  ["p99", "The 99th percentile of the recorded event loop delays.", (h) => h.percentile(99)],
];

/**
 * Serves `${prefix}nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds`
 * in `registry` from the process's sampler, in place of prom-client's (removed
 * first if present): the same names, help and meaning, over the delays recorded
 * since the previous scrape.
 */
export function registerEventLoopLag(registry: Registry, prefix: string): void {
  const histogram = processLoopDelay();
  // The window's values, read by the first gauge's collect and set by each: a
  // registry collects its metrics one by one in the order they were registered.
  let window: number[] = GAUGES.map(() => 0);
  GAUGES.forEach(([suffix, help], i) => {
    const name = `${prefix}nodejs_eventloop_lag_${suffix}_seconds`;
    registry.removeSingleMetric(name);
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        if (i === 0) {
          window = GAUGES.map(([, , read]) => read(histogram) / 1000);
          histogram.reset();
        }
        this.set(window[i]!);
      },
    });
  });
}
