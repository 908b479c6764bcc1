/**
 * How often a node fsyncs its WAL (issue 11, etcd's MustSync): a write costs one
 * fsync per node, for its entry, and none for the hard state that only moves the
 * commit index; a clean stop writes that commit index, so a restart applies every
 * write at once. One in-process node on 127.0.0.1 whose WAL file operations are
 * counted.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { encodeCommand } from "../../src/kv/command.ts";
import { SILENT_LOGGER } from "../../src/raft/logger.ts";
import { RaftKvNode } from "../../src/server/node.ts";
import { WAL_DIR } from "../../src/server/data_dir.ts";
import { Wal, type WalIo } from "../../src/wal/wal.ts";
import { waitFor } from "../e2e/_harness.ts";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

function put(key: string): Uint8Array {
  return encodeCommand({
    sessionId: 0n,
    sequence: 0n,
    timeMs: BigInt(Date.now()),
    op: { case: "put", value: { key, value: new TextEncoder().encode(key), lease: 0n } },
  });
}

Deno.test("a write costs one fsync of the WAL, none for moving the commit index; a clean stop keeps the commit index", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-sync-" });
  const peers = new Map([[1, { host: "127.0.0.1", port: freePort() }]]);
  let segmentSyncs = 0;
  const walIo: Partial<WalIo> = {
    sync(file: Deno.FsFile, path: string) {
      if (path.endsWith(".wal")) segmentSyncs++;
      return file.sync();
    },
  };
  const start = () =>
    RaftKvNode.start({
      id: 1,
      clusterId: "sync",
      peers,
      dataDir: join(dir, "node1"),
      heartbeatMs: 50,
      electionMs: 500,
      logger: SILENT_LOGGER,
      random: () => 0,
      observer: { walIo },
    });
  let node = await start();
  try {
    await waitFor("node 1 leading", () => node.status().role === "leader");
    await waitFor("its first entry applied", () => node.status().kvApplied >= 1);
    const before = segmentSyncs;
    let last = 0;
    for (let i = 0; i < 5; i++) last = (await node.propose(put(`k${i}`))).index;
    assert.equal(segmentSyncs - before, 5, "one fsync per write, one write at a time");
    assert.equal(node.status().commit, last);

    // The commit index of the last write was never synced on its own (the WAL
    // holds the one before); the clean stop writes it.
    await node.stop();
    const { wal, recovery } = await Wal.open(join(dir, "node1", WAL_DIR));
    await wal.close();
    assert.equal(recovery.hardState.commit, last, "the commit index on disk after a clean stop");
    node = await start();
    await waitFor("every write applied again", () => node.status().kvApplied >= last);
    assert.equal(new TextDecoder().decode(node.kv.get("k4")), "k4");
  } finally {
    await node.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
