/**
 * A node that boots with no leader in sight advances its election ticks once a
 * quorum answers (etcd's initial election tick advance), so a cluster started
 * together elects without first sitting out a whole election timeout; a node that
 * boots into a cluster with a leader disrupts nothing. Three in-process nodes on
 * 127.0.0.1 with a 30 s election timeout: without the advance, no node could
 * campaign within the 10 s these stories wait.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { LogFields, Logger } from "../../src/raft/logger.ts";
import { NONE } from "../../src/raft/types.ts";
import { RaftKvNode } from "../../src/server/node.ts";
import { type GrpcServer, serve } from "../../src/server/server.ts";
import { waitFor } from "../e2e/_harness.ts";

const ELECTION_MS = 30_000;
const HEARTBEAT_MS = 100;

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

function recording(lines: string[]): Logger {
  const add = (msg: string, _f?: LogFields) => void lines.push(msg);
  return { debug: () => {}, info: add, warn: () => {}, error: () => {} };
}

interface Running {
  node: RaftKvNode;
  server: GrpcServer;
  lines: string[];
}

Deno.test("a cluster booted together elects before its election timeout, and a node booting into it disrupts nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-boot-" });
  const peers = new Map([1, 2, 3].map((id) => [id, { host: "127.0.0.1", port: freePort() }]));
  const running = new Map<number, Running>();
  // Node 1 draws the shortest randomized timeout, the others the longest: one
  // campaign, no split vote, whoever answers first.
  const boot = async (id: number) => {
    const lines: string[] = [];
    const node = await RaftKvNode.start({
      id,
      clusterId: "boot",
      peers,
      dataDir: join(dir, `node${id}`),
      heartbeatMs: HEARTBEAT_MS,
      electionMs: ELECTION_MS,
      logger: recording(lines),
      random: () => (id === 1 ? 0 : 0.99),
    });
    const server = await serve(node, "127.0.0.1", peers.get(id)!.port);
    running.set(id, { node, server, lines });
  };
  const halt = async (id: number) => {
    const r = running.get(id)!;
    running.delete(id);
    await r.node.stop();
    await r.server.close();
  };
  try {
    for (const id of [1, 2, 3]) await boot(id);
    await waitFor("node 1 leading", () => running.get(1)!.node.status().role === "leader");
    assert.ok(
      running.get(1)!.lines.includes(
        "no leader yet and a quorum is reachable: advancing election ticks",
      ),
    );
    const term = running.get(1)!.node.status().term;

    // Node 2 boots again while node 1 leads: it follows, and the term stays.
    await halt(2);
    await boot(2);
    await waitFor("node 2 following node 1", () => running.get(2)!.node.status().lead === 1);
    // Past the two ticks an advanced node would wait before campaigning.
    const ticksLater = Date.now() + 5 * HEARTBEAT_MS;
    await waitFor("a few ticks", () => Date.now() >= ticksLater);
    for (const [id, r] of running) {
      assert.equal(r.node.status().term, term, `node ${id}'s term`);
      assert.notEqual(r.node.status().lead, NONE, `node ${id} knows the leader`);
    }
    assert.equal(running.get(1)!.node.status().role, "leader");
  } finally {
    for (const id of [...running.keys()]) await halt(id);
    await Deno.remove(dir, { recursive: true });
  }
});
