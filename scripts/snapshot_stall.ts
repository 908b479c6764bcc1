/**
 * Measures how long taking a snapshot stalls a node's Ready loop (issue 9): a store of
 * 100,000 keys of 256 bytes is snapshotted the way the node does it (the state
 * captured synchronously at one applied index, then encoded, checksummed and
 * written in the background by `src/server/snapshotter.ts`), while a stand-in for
 * the Ready loop applies an entry on every turn of the event loop and records the
 * longest gap between two turns. Prints the figures; asserts nothing about speed.
 *
 * deno task bench:snapshot-stall [KEYS] [VALUE_BYTES]
 *
 * @module
 */

import { AppliedChain } from "../src/kv/applied_chain.ts";
import { encodeCommand } from "../src/kv/command.ts";
import { KvStore } from "../src/kv/store.ts";
import { encodeKvState } from "../src/kv/state_codec.ts";
import { SILENT_LOGGER } from "../src/raft/logger.ts";
import { encodeSnapshotFile } from "../src/snapshot/file.ts";
import { SnapshotStore } from "../src/snapshot/store.ts";
import { Snapshotter } from "../src/server/snapshotter.ts";
import { confStateOf } from "../src/raft/types.ts";

const keys = Number(Deno.args[0] ?? 100_000);
const valueBytes = Number(Deno.args[1] ?? 256);
const dir = await Deno.makeTempDir({ prefix: "raftkv_snapshot_stall_" });

try {
  const store = new KvStore();
  const chain = new AppliedChain();
  let index = 0;
  const value = new Uint8Array(valueBytes).fill(0x61);
  const apply = (key: string) => {
    const data = encodeCommand({ op: { case: "put", value: { key, value } } });
    store.apply(++index, data);
    chain.add({ index, term: 1, data });
  };
  for (let i = 0; i < keys; i++) apply(`key-${String(i).padStart(6, "0")}`);

  const snapshots = await SnapshotStore.open(`${dir}/snap`);
  let finished = false;
  const snapshotter = new Snapshotter({
    store: snapshots,
    logger: SILENT_LOGGER,
    everyEntries: 1,
    startIndex: 0,
    onFinished: () => finished = true,
  });

  // The Ready loop's side: capture (synchronous, inside the loop) ...
  const t0 = performance.now();
  const meta = { index, term: 1, conf: confStateOf([1, 2, 3]) };
  snapshotter.start(meta, {
    store: store.exportState(),
    appliedTerm: 1,
    ...chain.image(),
  });
  const captureMs = performance.now() - t0;

  // ... then keep applying entries, one per event-loop turn, until the file is durable.
  let longestGapMs = 0;
  let turns = 0;
  let last = performance.now();
  while (!finished) {
    await new Promise((resolve) => setTimeout(resolve, 0));
    const now = performance.now();
    longestGapMs = Math.max(longestGapMs, now - last);
    last = now;
    apply(`key-${String(turns++ % keys).padStart(6, "0")}`);
  }
  const totalMs = performance.now() - t0;
  const taken = snapshotter.takeFinished()!;
  const fileBytes = (await Deno.stat(taken.path)).size;

  // For comparison: the same work done in one synchronous block (what the loop
  // would stall for without the background writer, before even the write).
  const s0 = performance.now();
  encodeSnapshotFile({
    meta,
    data: encodeKvState({ store: store.exportState(), appliedTerm: 1, ...chain.image() }),
  });
  const syncMs = performance.now() - s0;

  console.log(`state: ${keys} keys of ${valueBytes} bytes; snapshot file ${fileBytes} bytes`);
  console.log(`capture in the Ready loop (synchronous): ${captureMs.toFixed(1)} ms`);
  console.log(
    `longest gap between two Ready-loop turns while the snapshot was written: ` +
      `${longestGapMs.toFixed(1)} ms (${turns} entries applied meanwhile)`,
  );
  console.log(`longest stall: ${Math.max(captureMs, longestGapMs).toFixed(1)} ms`);
  console.log(`capture to durable file: ${totalMs.toFixed(0)} ms`);
  console.log(`for comparison, encoding in one synchronous block: ${syncMs.toFixed(0)} ms`);
} finally {
  await Deno.remove(dir, { recursive: true });
}
