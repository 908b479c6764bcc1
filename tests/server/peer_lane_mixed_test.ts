/**
 * A rolling upgrade, halfway: three nodes in one cluster, each with another half
 * of the peer fast path on. Node 1 writes its Stream calls on raw HTTP/2 streams
 * (raw_stream_call.ts) and receives through Connect alone (no stream fast lane);
 * node 2 sends through Connect's client and receives on the lane; node 3 does
 * both the new way. Leadership moves to each node in turn, so that every pair
 * talks both ways (appends one way, acknowledgements the other), and each
 * leader's writes must reach and be applied alike by all three. The lane must
 * have served the Stream calls of nodes 2 and 3, and none of node 1's.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KVService } from "../../src/gen/raftkv/v1/kv_pb.ts";
import type { Logger } from "../../src/raft/logger.ts";
import { RaftKvNode } from "../../src/server/node.ts";
import { type GrpcServer, serve } from "../../src/server/server.ts";
import { DEFAULT_HTTP2_LIMITS } from "../../src/http2/limits.ts";
import { freePort, waitFor } from "../e2e/_harness.ts";

const SILENT: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

/** Which halves each node runs: the raw sender, the receiving lane. */
const HALVES = new Map([
  [1, { rawPeerStream: true, peerLane: false }],
  [2, { rawPeerStream: false, peerLane: true }],
  [3, { rawPeerStream: true, peerLane: true }],
]);

Deno.test("nodes with and without each half of the peer fast path replicate to one another, whoever leads", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-peerlane-mixed-" });
  const peers = new Map([1, 2, 3].map((id) => [id, { host: "127.0.0.1", port: freePort() }]));
  const running: { id: number; node: RaftKvNode; server: GrpcServer }[] = [];
  try {
    for (const [id, halves] of HALVES) {
      const node = await RaftKvNode.start({
        id,
        clusterId: "mixed",
        peers,
        dataDir: join(dir, String(id)),
        heartbeatMs: 50,
        electionMs: 500,
        logger: SILENT,
        // Different per node, so that their election timeouts differ.
        random: () => id / 4,
        rawPeerStream: halves.rawPeerStream,
      });
      const server = await serve(
        node,
        "127.0.0.1",
        peers.get(id)!.port,
        DEFAULT_HTTP2_LIMITS,
        undefined,
        [],
        { peerLane: halves.peerLane },
      );
      running.push({ id, node, server });
    }
    const byId = (id: number) => running.find((r) => r.id === id)!;
    const leaderOf = () => running.find((r) => r.node.status().role === "leader");
    await waitFor("a leader", () => leaderOf());
    for (const target of [1, 2, 3]) {
      const leader = leaderOf() ?? await waitFor("a leader", () => leaderOf());
      if (leader.id !== target) await leader.node.transferLeadership(target);
      await waitFor(`node ${target} leads`, () => leaderOf()?.id === target);
      const kv = createClient(
        KVService,
        createGrpcTransport({ baseUrl: `http://127.0.0.1:${peers.get(target)!.port}` }),
      );
      for (let k = 0; k < 5; k++) {
        await kv.put({ key: `led-by-${target}/${k}`, value: new Uint8Array([target, k]) });
      }
      const commit = byId(target).node.status().commit;
      await waitFor(
        `every node applies node ${target}'s writes`,
        () => running.every((r) => r.node.status().kvApplied >= commit),
      );
      // Equal fingerprints at one applied index: the same entries, in the same order.
      await waitFor("the three applied the same", () => {
        const applied = running.map((r) => r.node.status().kvApplied);
        return applied.every((a) => a === applied[0]) &&
          running.every((r) =>
            r.node.fingerprints().state === running[0]!.node.fingerprints().state
          );
      });
    }
    for (const r of running) {
      const got = r.node.kv.range({ prefix: "led-by-" });
      assert.equal(got.kvs.length, 15, `node ${r.id} holds every leader's writes`);
    }
    assert.equal(byId(1).server.peerLaneCalls, 0, "node 1 has no lane");
    assert.ok(byId(2).server.peerLaneCalls > 0, "node 2's lane served Stream calls");
    assert.ok(byId(3).server.peerLaneCalls > 0, "node 3's lane served Stream calls");
  } finally {
    for (const r of running) {
      await r.node.stop();
      await r.server.close();
    }
    await Deno.remove(dir, { recursive: true });
  }
});
