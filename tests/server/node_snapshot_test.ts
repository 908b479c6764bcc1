/**
 * The node runtime's side of a snapshot from the leader (§7): a `snap` message
 * stepped into a follower's core comes back in a Ready, and the node makes the file
 * durable, starts its WAL over after it, restores the key-value state and the applied
 * chain, applies the entries after it, and restarts from it. One in-process node;
 * its peers never answer (the leader here is the test, stepping messages in).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { AppliedChain } from "../../src/kv/applied_chain.ts";
import { encodeCommand } from "../../src/kv/command.ts";
import { encodeKvState } from "../../src/kv/state_codec.ts";
import { KvStore } from "../../src/kv/store.ts";
import { SILENT_LOGGER } from "../../src/raft/logger.ts";
import { type Entry, message, type Snapshot } from "../../src/raft/types.ts";
import { RaftKvNode } from "../../src/server/node.ts";
import { waitFor } from "../e2e/_harness.ts";
import { confStateOf } from "../../src/raft/types.ts";

const PEERS = new Map([1, 2, 3].map((id) => [id, { host: "127.0.0.1", port: 1 }]));
const TERM = 5;

function start(dataDir: string): Promise<RaftKvNode> {
  return RaftKvNode.start({
    id: 1,
    clusterId: "c",
    peers: PEERS,
    dataDir,
    // Long timeouts: node 1 stays a follower of the test for the whole story.
    heartbeatMs: 1000,
    electionMs: 60_000,
    logger: SILENT_LOGGER,
    random: () => 0.5,
  });
}

/** The leader's side: a store and chain that applied `entries`. */
function leaderState(entries: readonly Entry[]): { store: KvStore; chain: AppliedChain } {
  const store = new KvStore();
  const chain = new AppliedChain();
  for (const e of entries) {
    store.apply(e.index, e.data);
    chain.add(e);
  }
  return { store, chain };
}

function put(index: number, key: string, value: string): Entry {
  const data = encodeCommand({
    op: { case: "put", value: { key, value: new TextEncoder().encode(value) } },
  });
  return { index, term: TERM, type: "normal", data };
}

Deno.test("a follower installs the leader's snapshot, applies what follows, and restarts from it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv_node_snapshot_" });
  let node: RaftKvNode | undefined;
  try {
    node = await start(dir);
    const log: Entry[] = [];
    for (let i = 1; i <= 100; i++) log.push(put(i, `k${i % 17}`, `v${i}`));
    const leader = leaderState(log);
    const snapshot: Snapshot = {
      meta: { index: 100, term: TERM, conf: confStateOf([1, 2, 3]) },
      data: encodeKvState({
        store: leader.store.exportState(),
        appliedTerm: TERM,
        ...leader.chain.image(),
      }),
    };
    node.receive([message({ type: "snap", from: 2, to: 1, term: TERM, snapshot })]);
    const n1 = node;
    await waitFor("the snapshot to be installed", () => n1.status().kvApplied === 100);
    assert.equal(node.status().snapshotIndex, 100);
    assert.equal(node.status().firstIndex, 101);
    assert.deepEqual(node.fingerprints(), {
      state: leader.store.digest(),
      chain: leader.chain.hex(),
    });
    const snaps = [...Deno.readDirSync(join(dir, "snap"))].map((e) => e.name);
    assert.deepEqual(snaps, ["0000000000000005-0000000000000064.snap"]);
    const segments = [...Deno.readDirSync(join(dir, "wal"))].map((e) => e.name).sort();
    assert.equal(segments.length, 1, `the WAL did not start over: ${segments}`);
    assert.match(segments[0]!, /-0000000000000065\.wal$/);

    // The entries after the snapshot follow it.
    const more = [put(101, "k1", "after"), put(102, "new", "key")];
    node.receive([message({
      type: "app",
      from: 2,
      to: 1,
      term: TERM,
      index: 100,
      logTerm: TERM,
      entries: more,
      commit: 102,
    })]);
    for (const e of more) {
      leader.store.apply(e.index, e.data);
      leader.chain.add(e);
    }
    await waitFor("entries 101 and 102 to be applied", () => n1.status().kvApplied === 102);
    const fingerprints = { state: leader.store.digest(), chain: leader.chain.hex() };
    assert.deepEqual(node.fingerprints(), fingerprints);
    assert.deepEqual(node.kv.get("k1"), new TextEncoder().encode("after"));

    // A restart rebuilds the same state. A clean stop snapshots what was applied
    // since the installed snapshot, so it starts from 102 (a start from a snapshot plus
    // the WAL after it: tests/server/restore_test.ts, tests/e2e/snapshot_damage_test.ts).
    await node.stop();
    const stopSnaps = [...Deno.readDirSync(join(dir, "snap"))].map((e) => e.name).sort();
    assert.deepEqual(stopSnaps, [
      "0000000000000005-0000000000000064.snap",
      "0000000000000005-0000000000000066.snap",
    ]);
    node = await start(dir);
    const n2 = node;
    await waitFor("the restarted node to apply 102", () => n2.status().kvApplied === 102);
    assert.equal(node.status().snapshotIndex, 102);
    assert.deepEqual(node.fingerprints(), fingerprints);
  } finally {
    await node?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
