/**
 * A node that boots with no leader in sight campaigns soon after a quorum answers
 * (etcd's initial election tick advance, with the voters taking turns by id), so a
 * cluster started or restarted together elects without first sitting out a whole
 * election timeout; a node that boots into a cluster with a leader disrupts
 * nothing. Three in-process nodes on 127.0.0.1 with a 30 s election timeout:
 * without the early campaign, no node could campaign within the 10 s these
 * stories wait.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { LogFields, Logger } from "../../src/raft/logger.ts";
import { NONE } from "../../src/raft/types.ts";
import { RaftKvNode } from "../../src/server/node.ts";
import { bootCampaignPlan, bootCampaignTicks } from "../../src/server/election_tick_advance.ts";
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

const CAMPAIGNING = "no leader yet and a quorum is reachable: campaigning";

/** Starts and stops in-process nodes of one 3-node cluster in `dir`. */
function cluster(dir: string, random: (id: number) => () => number) {
  const peers = new Map([1, 2, 3].map((id) => [id, { host: "127.0.0.1", port: freePort() }]));
  const running = new Map<number, Running>();
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
      random: random(id),
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
  const leader = () =>
    [...running.keys()].find((id) => running.get(id)!.node.status().role === "leader");
  return { running, boot, halt, leader };
}

Deno.test("the only voter campaigns at once; with other voters it waits for a quorum; a non-voter never", () => {
  assert.equal(bootCampaignPlan(1, [1]), "now", "a one-node cluster");
  assert.equal(bootCampaignPlan(7, new Set([7])), "now", "any id, any iterable");
  assert.equal(bootCampaignPlan(1, [1, 2, 3]), "after-quorum");
  assert.equal(bootCampaignPlan(3, [2, 3]), "after-quorum", "two voters need both");
  assert.equal(bootCampaignPlan(4, [1, 2, 3]), "none", "a learner or a joining node");
  assert.equal(bootCampaignPlan(1, []), "none");
  assert.equal(bootCampaignPlan(2, [1]), "none", "another node's one-node cluster");
});

Deno.test("voters take turns by id for their first campaign at boot: one tick, then two more each", () => {
  assert.deepEqual([0, 1, 2, 3, 4].map(bootCampaignTicks), [1, 3, 5, 7, 9]);
  assert.throws(() => bootCampaignTicks(-1), RangeError);
});

Deno.test("a cluster booted together elects before its election timeout, and a node booting into it disrupts nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-boot-" });
  // Every node draws the longest randomized timeout (about 60 s): only the early
  // campaign can elect within the 10 s waited for.
  const c = cluster(dir, () => () => 0.99);
  try {
    for (const id of [1, 2, 3]) await c.boot(id);
    const lead = await waitFor("a leader", () => c.leader());
    assert.ok(c.running.get(lead)!.lines.includes(CAMPAIGNING), `leader ${lead} campaigned early`);
    const term = c.running.get(lead)!.node.status().term;

    // A follower boots again while the leader leads: it follows, and the term stays.
    const other = lead === 2 ? 3 : 2;
    await c.halt(other);
    await c.boot(other);
    await waitFor(
      `node ${other} following node ${lead}`,
      () => c.running.get(other)!.node.status().lead === lead,
    );
    // Past the five ticks the last voter would wait before campaigning.
    const ticksLater = Date.now() + 8 * HEARTBEAT_MS;
    await waitFor("a few ticks", () => Date.now() >= ticksLater);
    for (const [id, r] of c.running) {
      assert.equal(r.node.status().term, term, `node ${id}'s term`);
      assert.notEqual(r.node.status().lead, NONE, `node ${id} knows the leader`);
    }
    assert.equal(c.running.get(lead)!.node.status().role, "leader");
  } finally {
    for (const id of [...c.running.keys()]) await c.halt(id);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a restarted cluster campaigns a tick after a quorum answers when no leader is heard", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-boot-" });
  const c = cluster(dir, () => () => 0.99);
  try {
    for (const id of [1, 2, 3]) await c.boot(id);
    const first = await waitFor("a leader", () => c.leader());
    const term = c.running.get(first)!.node.status().term;

    // All three stop, then start again together from their data dirs: a full restart.
    await Promise.all([1, 2, 3].map((id) => c.halt(id)));
    await Promise.all([1, 2, 3].map((id) => c.boot(id)));
    const lead = await waitFor("a leader after the restart", () => c.leader());
    const status = c.running.get(lead)!.node.status();
    assert.ok(status.term > term, `a new term (${status.term} after ${term})`);
    assert.ok(c.running.get(lead)!.lines.includes(CAMPAIGNING), `leader ${lead} campaigned early`);
    await waitFor(
      "every node following it",
      () => [...c.running.values()].every((r) => r.node.status().lead === lead),
    );
  } finally {
    for (const id of [...c.running.keys()]) await c.halt(id);
    await Deno.remove(dir, { recursive: true });
  }
});
