/**
 * How long the node waits on its disk and on itself: WAL fsyncs and saves (etcd's
 * `etcd_disk_wal_fsync_duration_seconds` and `..._backend_commit_...`), and one
 * pass of the Ready loop (persist, send, apply: the time a write spends in the
 * node outside the network).
 *
 * @module
 */

import { Histogram, type Registry } from "prom-client";
import type { WalIo } from "../wal/mod.ts";
import { DENO_WAL_IO } from "../wal/mod.ts";
import { DISK_BUCKETS } from "./buckets.ts";
import { PREFIX } from "./registry.ts";

/** The disk and loop histograms of one node. */
export class DiskMetrics {
  readonly fsync: Histogram;
  readonly walSave: Histogram;
  readonly readyLoop: Histogram;
  /** The WAL's file operations with every fsync timed (passed to the WAL through the node). */
  readonly walIo: Partial<WalIo>;

  constructor(registry: Registry) {
    const registers = [registry];
    const buckets = [...DISK_BUCKETS];
    this.fsync = new Histogram({
      name: `${PREFIX}wal_fsync_duration_seconds`,
      help: "fsync of a WAL segment file or directory (the data dir's too)",
      buckets,
      registers,
    });
    this.walSave = new Histogram({
      name: `${PREFIX}wal_save_duration_seconds`,
      help: "One WAL save: a Ready's entries and hard state written and fsynced",
      buckets,
      registers,
    });
    this.readyLoop = new Histogram({
      name: `${PREFIX}ready_loop_duration_seconds`,
      help: "Handling one Ready: send, persist, apply committed entries, advance",
      buckets,
      registers,
    });
    const fsync = this.fsync;
    this.walIo = {
      async sync(file: Deno.FsFile, path: string): Promise<void> {
        const end = fsync.startTimer();
        try {
          await DENO_WAL_IO.sync(file, path);
        } finally {
          end();
        }
      },
    };
  }
}
