/**
 * Snapshots and log compaction (Raft §7): taken by this node, installed from the
 * leader, and compactions of the log behind the ones taken.
 *
 * @module
 */

import { Counter, type Registry } from "prom-client";
import { PREFIX } from "./registry.ts";

/** What the snapshot counter reads at scrape time. */
export interface SnapshotSource {
  status(): { snapshotsTaken: number };
}

/** The snapshot metrics of one node. */
export class SnapshotMetrics {
  readonly installed: Counter;
  readonly compactions: Counter;
  #source: SnapshotSource | undefined;

  constructor(registry: Registry) {
    const registers = [registry];
    const read = () => this.#source?.status().snapshotsTaken ?? 0;
    let seen = 0;
    new Counter({
      name: `${PREFIX}snapshots_taken_total`,
      help: "Snapshots of the key-value state this node wrote (every --snapshot-entries)",
      registers,
      collect() {
        // The snapshotter counts; the counter follows it by the difference.
        const now = read();
        if (now > seen) this.inc(now - seen);
        seen = Math.max(seen, now);
      },
    });
    this.installed = new Counter({
      name: `${PREFIX}snapshots_installed_total`,
      help: "Snapshots received from the leader and installed (this node was too far behind)",
      registers,
    });
    this.compactions = new Counter({
      name: `${PREFIX}log_compactions_total`,
      help: "Compactions of the log behind a snapshot this node took",
      registers,
    });
  }

  /** Reads the snapshots taken from `source` at each scrape from now on. */
  attach(source: SnapshotSource): void {
    this.#source = source;
  }
}
