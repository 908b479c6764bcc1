/**
 * The only voter of its cluster has no one to ask for a vote and no one to split
 * one with: it campaigns as it boots (src/server/election_tick_advance.ts,
 * `bootCampaignPlan`), at a fresh start and at a restart, instead of sitting out an
 * election timeout first. The node runs with the longest election timeout there
 * is (10 minutes): its log must show the campaign at tick 0, started by the boot
 * and not by the election clock (the first pre-election follows that line), and it
 * must then serve a write.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Cluster, putWithRetry, withCluster } from "./_harness.ts";

const AT_ONCE = "the only voter: campaigning at once";

/** Checks the lines of node 1's latest start: it campaigned at tick 0, and that won. */
function assertCampaignedAtOnce(c: Cluster): void {
  const all = c.log(1).lines;
  const start = all.findLastIndex((l) => l.startsWith("--- e2e harness: starting node 1"));
  const lines = all.slice(start);
  const campaign = lines.findIndex((l) => l.includes(AT_ONCE));
  assert.ok(campaign >= 0, `no "${AT_ONCE}" line:\n${lines.join("\n")}`);
  assert.match(lines[campaign]!, /ticksSinceStart=0\b/, "it campaigned before the first tick");
  const preElection = lines.findIndex((l) => l.includes("starting pre-election"));
  assert.ok(
    preElection > campaign,
    `the first pre-election is the boot's campaign, not the clock's:\n${lines.join("\n")}`,
  );
  assert.ok(
    lines.findIndex((l) => l.includes("became leader")) > preElection,
    `it became leader after that campaign:\n${lines.join("\n")}`,
  );
}

Deno.test("a one-node cluster campaigns as it boots and serves writes, at its first start and at a restart", async () => {
  await withCluster({ nodes: 1, heartbeatMs: 200, electionMs: 600_000 }, async (c) => {
    await putWithRetry(c, "first", "1");
    assertCampaignedAtOnce(c);

    await c.kill(1, "SIGTERM");
    await c.restart(1);
    await putWithRetry(c, "second", "2");
    assertCampaignedAtOnce(c);
  });
});
