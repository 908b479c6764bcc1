/**
 * Peers refuse a node that believes in another membership or another cluster
 * (issue 16), on real processes: a follower is restarted, on a fresh data dir (an
 * operator who wiped a disk), first with the wrong `--peers`, then with the wrong
 * `--cluster-id`. The others refuse its messages and it refuses theirs; it takes no
 * entry and wins no election; the cluster goes on writing; and each side logs the
 * refusal once per cause, as "refused", not once per message. Restarted right, the
 * node is accepted again and catches up with the same state as the others.
 *
 * @module
 */

import assert from "node:assert/strict";
import { checkAgreement } from "../../src/cli/commands.ts";
import { Role } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import {
  type Cluster,
  putWithRetry,
  type SpawnedProcess,
  spawnNode,
  waitApplied,
  waitFor,
  withCluster,
} from "./_harness.ts";

/** `args` with the value of each flag in `changes` replaced. */
function withFlags(args: readonly string[], changes: Record<string, string>): string[] {
  const out = [...args];
  for (const [flag, value] of Object.entries(changes)) {
    const at = out.indexOf(flag);
    assert.ok(at >= 0 && at + 1 < out.length, `no ${flag} in ${args.join(" ")}`);
    out[at + 1] = value;
  }
  return out;
}

/** The `--peers` entries of node `id`'s arguments, by id. */
function peerEntries(c: Cluster, id: number): Map<number, string> {
  const args = c.args(id);
  const peers = args[args.indexOf("--peers") + 1]!;
  return new Map(peers.split(",").map((e) => [Number(e.split("=")[0]), e] as [number, string]));
}

function assertIncludes(line: string, part: string): void {
  assert.ok(line.includes(part), `expected ${JSON.stringify(part)} in\n${line}`);
}

/** Lines of `lines` that log a refusal by `peer`. */
function refusals(lines: readonly string[], peer: number): string[] {
  return lines.filter((l) =>
    l.includes("peer refused our messages") && l.includes(` peer=${peer} `)
  );
}

/** Runs node `id` with `args` as an impostor on its port; returns its process and log. */
async function impostor(
  id: number,
  args: string[],
): Promise<{ proc: SpawnedProcess; lines: string[] }> {
  const lines: string[] = [];
  const proc = spawnNode(args, (l) => lines.push(l));
  await waitFor(`the impostor node ${id} to listen`, () => {
    if (lines.some((l) => l.includes(" listening "))) return true;
    throw new Error(lines.slice(-5).join("\n"));
  });
  return { proc, lines };
}

async function stopImpostor(p: { proc: SpawnedProcess }): Promise<void> {
  try {
    p.proc.child.kill("SIGTERM");
  } catch {
    // Already exited.
  }
  await p.proc.done;
}

Deno.test("a node with another membership or cluster id is refused by its peers, and refuses them, logged once per cause", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const lead = await c.leader();
    const f = c.ids.find((id) => id !== lead)!;
    await putWithRetry(c, "before", "1");
    await c.stop(f);
    const leaderLog = c.log(lead).lines;

    // 1. Node f, wiped, started again believing the cluster is itself and the leader.
    const entries = peerEntries(c, f);
    const twoPeers = [Math.min(f, lead), Math.max(f, lead)].map((id) => entries.get(id)!).join(",");
    const fresh = await Deno.makeTempDir({ dir: c.rootDir, prefix: "wiped_" });
    const wrong = await impostor(
      f,
      withFlags(c.args(f), { "--peers": twoPeers, "--data-dir": fresh }),
    );
    const ours = `{${[...c.ids].sort().join(",")}}`;
    const theirs = `{${[Math.min(f, lead), Math.max(f, lead)].join(",")}}`;
    try {
      // The cluster keeps writing; every append to f is refused.
      for (let i = 0; i < 20; i++) await putWithRetry(c, `during-${i}`, String(i));
      await waitFor(
        "the leader to log that node f refused it",
        () => refusals(leaderLog, f).length > 0,
      );
      await waitFor(
        "node f to log that the leader refused it",
        () => refusals(wrong.lines, lead).length > 0,
      );
      const s = await c.status(f);
      assert.notEqual(s.role, Role.LEADER, "node f, refused by its only peer, cannot win");
      assert.equal(s.appliedIndex, 0n, "node f took no entry from a leader it refuses");
    } finally {
      await stopImpostor(wrong);
    }
    // Once per cause, not once per refused batch (there were 20 writes and a
    // heartbeat every 50 ms).
    const fromLeader = refusals(leaderLog, f);
    assert.equal(fromLeader.length, 1, fromLeader.join("\n"));
    assertIncludes(
      fromLeader[0]!,
      `FailedPrecondition: Cannot accept messages from node ${lead}: it believes the members ` +
        `are ${ours}, node ${f} believes they are ${theirs}`,
    );
    const fromF = refusals(wrong.lines, lead);
    assert.equal(fromF.length, 1, fromF.join("\n"));
    assertIncludes(
      fromF[0]!,
      `Cannot accept messages from node ${f}: it believes the members are ${theirs}, node ` +
        `${lead} believes they are ${ours}`,
    );

    // 2. Started again with the right members but another cluster id (on another
    // empty dir: the first one now remembers the impostor's cluster and refuses).
    const fresh2 = await Deno.makeTempDir({ dir: c.rootDir, prefix: "wiped_" });
    const other = await impostor(
      f,
      withFlags(c.args(f), { "--cluster-id": "another-cluster", "--data-dir": fresh2 }),
    );
    try {
      await putWithRetry(c, "during-other", "x");
      await waitFor(
        "the leader to log the cluster id refusal",
        () => refusals(leaderLog, f).length === 2,
      );
    } finally {
      await stopImpostor(other);
    }
    const second = refusals(leaderLog, f);
    assert.equal(second.length, 2, second.join("\n"));
    assert.match(second[1]!, /cluster id \\"raftkv-e2e\\" does not match this node's/);

    // 3. Started right, on its own data dir: heard again, it catches up, and every
    // node holds the same state at the same index.
    await c.restart(f);
    const last = await putWithRetry(c, "after", "2");
    await waitApplied(c, f, last);
    const statuses = await waitFor("every node to apply the same index", async () => {
      const all = await Promise.all(
        c.ids.map(async (id) => ({ endpoint: c.endpoint(id), status: await c.status(id) })),
      );
      const applied = new Set(all.map((s) => s.status.appliedIndex));
      if (applied.size !== 1) throw new Error(`applied: ${[...applied].join(", ")}`);
      return all;
    });
    assert.deepEqual(checkAgreement(statuses), []);
    // The leader's last word on node f is that it is heard again (between the
    // impostor and the restart it was down for a moment: "reachable again").
    // The peer stream reports a call's outcome when the call ends (calls rotate every
    // 2 s), so the line may come a moment after node f is caught up: wait for it.
    const lastAboutF = () =>
      leaderLog.filter((l) =>
        / peer=\d+/.test(l) && l.includes(` peer=${f}`) &&
        /(peer refused|cannot reach|again)/.test(l)
      ).at(-1) ?? "";
    await waitFor(
      "the leader to log that node f is heard again",
      () => /peer (reachable|accepted our messages) again/.test(lastAboutF()),
    );
  });
});
