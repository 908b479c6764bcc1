/**
 * `raftkv_grpc_fast_lane_calls_total` counts the unary gRPC calls the server's fast
 * lane (src/server/unary_fast_lane.ts) takes, and only those. The node is wired as
 * main.ts wires it: its metrics attach late (src/server/late_metrics.ts) and come
 * with the HTTP port (src/http/start.ts), so a Put served before they attach must be
 * in the first scrape. Then a binary Put moves the counter; a grpc+json Put (which
 * the lane leaves to Connect, and which is served: the call counter moves) and a
 * Status call of another service do not.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterService } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { KVService } from "../../src/gen/raftkv/v1/kv_pb.ts";
import { startHttpPort } from "../../src/http/start.ts";
import { NodeMetrics } from "../../src/metrics/mod.ts";
import type { Logger } from "../../src/raft/logger.ts";
import { LateMetrics } from "../../src/server/late_metrics.ts";
import { RaftKvNode } from "../../src/server/node.ts";
import { serve } from "../../src/server/server.ts";
import { freePort, utf8, waitFor } from "../e2e/_harness.ts";
import { scrape } from "./_prom.ts";

const SILENT: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
const LANE = "raftkv_grpc_fast_lane_calls_total";
const PUTS = "raftkv_grpc_requests_total";
const PUT_OK = { service: KVService.typeName, method: "Put", code: "ok" };

Deno.test("the fast lane's calls are counted, those before the metrics attach included, and no call Connect serves", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-lane-metric-" });
  const port = freePort();
  const late = new LateMetrics();
  const node = await RaftKvNode.start({
    id: 1,
    clusterId: "lane-metric",
    peers: new Map([[1, { host: "127.0.0.1", port }]]),
    dataDir: join(dir, "node1"),
    heartbeatMs: 50,
    electionMs: 300,
    logger: SILENT,
    random: () => 0.5,
    observer: late.observer,
  });
  const server = await serve(node, "127.0.0.1", port, undefined, undefined, [late.interceptor]);
  const baseUrl = `http://127.0.0.1:${server.port}`;
  const binary = createClient(KVService, createGrpcTransport({ baseUrl }));
  const json = createClient(KVService, createGrpcTransport({ baseUrl, useBinaryFormat: false }));
  const cluster = createClient(ClusterService, createGrpcTransport({ baseUrl }));
  let http;
  try {
    await waitFor("the node leads", () => node.status().role === "leader");
    // Before the metrics exist: one Put on the lane.
    await binary.put({ key: "early", value: utf8("1") });
    assert.equal(late.attached, false);

    const metrics = new NodeMetrics();
    late.attach(metrics.observer, metrics.interceptors, metrics.grpc.record);
    const started = await startHttpPort(
      node,
      { host: "127.0.0.1", port: 0 },
      metrics,
      SILENT,
      server,
      false,
    );
    assert.ok(started !== undefined && started !== "failed", "the HTTP port listens");
    http = started;
    const url = `http://127.0.0.1:${http.port}`;

    const first = await scrape(url);
    assert.equal(first.family(LANE)?.type, "counter");
    assert.equal(first.value(LANE), 1, "the Put served before the metrics attached counts");
    assert.equal(first.value(PUTS, PUT_OK), 1, "and the call counter agrees");

    await binary.put({ key: "binary", value: utf8("2") });
    const afterBinary = await scrape(url);
    assert.equal(afterBinary.value(LANE), 2, "a binary unary Put takes the lane");

    await json.put({ key: "json", value: utf8("3") });
    await cluster.status({});
    const afterConnect = await scrape(url);
    assert.equal(afterConnect.value(PUTS, PUT_OK), 3, "the grpc+json Put was served");
    assert.equal(
      afterConnect.value(LANE),
      2,
      "neither a grpc+json Put nor a ClusterService call takes the lane",
    );
    assert.equal(server.fastLaneCalls, 2, "the counter says what the lane counted");
  } finally {
    await http?.close();
    await node.stop();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
