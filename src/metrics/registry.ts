/**
 * The Prometheus registry of one node, with prom-client's process metrics
 * (CPU, heap, event-loop lag, GC) under the `raftkv_` prefix, so one scrape gives
 * the process's health beside Raft's.
 *
 * prom-client reads resident memory, virtual memory and open files from
 * /proc/self, which `deno task node` does not grant (it reads ./data only): they
 * would read 0. Those are removed, and resident memory is exported from
 * `process.memoryUsage()` instead, which needs no permission.
 *
 * The event-loop delay percentiles are sampled by event_loop_lag.ts rather than
 * by Deno's `monitorEventLoopDelay`, whose histogram held 8 to 16 MiB per node.
 *
 * @module
 */

import process from "node:process";
import { collectDefaultMetrics, Gauge, Registry } from "prom-client";
import {
  LOOP_DELAY_RESOLUTION_MS,
  registerEventLoopLag,
  withoutNativeLoopDelay,
} from "./event_loop_lag.ts";

/** Every metric name starts with this (Prometheus: one prefix per application). */
export const PREFIX = "raftkv_";

/** prom-client's metrics that read /proc/self (see the module doc). */
const PROC_METRICS = [
  "process_resident_memory_bytes",
  "process_virtual_memory_bytes",
  "process_heap_bytes",
  "process_open_fds",
  "process_max_fds",
];

/** A new registry holding the process metrics (see the module doc). */
export function createRegistry(): Registry {
  const registry = new Registry();
  withoutNativeLoopDelay(() =>
    collectDefaultMetrics({
      register: registry,
      prefix: PREFIX,
      eventLoopMonitoringPrecision: LOOP_DELAY_RESOLUTION_MS,
    })
  );
  registerEventLoopLag(registry, PREFIX);
  for (const name of PROC_METRICS) registry.removeSingleMetric(`${PREFIX}${name}`);
  new Gauge({
    name: `${PREFIX}process_resident_memory_bytes`,
    help: "Resident memory size in bytes (process.memoryUsage().rss)",
    registers: [registry],
    collect() {
      this.set(process.memoryUsage().rss);
    },
  });
  return registry;
}
