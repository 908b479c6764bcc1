/**
 * A data dir remembers the cluster member it holds (issue 16). The fork the issue
 * met: node 1 of a three-node cluster, killed and started again as the README's
 * quick start would (`--id 1`, no `--peers`: a cluster of one), elected itself on
 * the three-node log and took writes the others never saw. Now it refuses, with a
 * message saying what its data dir holds and how to start it; so do another
 * cluster id, another node id, and a data dir whose WAL was removed. A refusal
 * changes nothing: started right, node 1 rejoins with every write.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  checkReads,
  type Cluster,
  putWithRetry,
  runNodeToExit,
  waitApplied,
  withCluster,
} from "./_harness.ts";

/** `args` with flag `--name`'s value replaced by `value`, or the flag dropped (undefined). */
function withFlag(args: readonly string[], name: string, value: string | undefined): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === `--${name}`) {
      if (value !== undefined) out.push(args[i]!, value);
      i++;
    } else {
      out.push(args[i]!);
    }
  }
  return out;
}

function flag(args: readonly string[], name: string): string {
  return args[args.indexOf(`--${name}`) + 1]!;
}

/** Every file of `dir` with its bytes. */
async function readFiles(dir: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) out.set(e.name, await Deno.readFile(join(dir, e.name)));
  return out;
}

/** Runs node 1 with `args`, expecting a refusal: exit 1, one error line, no listening, no stack. */
async function expectRefusal(c: Cluster, args: readonly string[], what: string): Promise<string> {
  const before = await readFiles(join(c.dataDir(1), "wal"));
  const res = await runNodeToExit(args);
  assert.equal(res.code, 1, `${what}: exit code ${res.code}; output:\n${res.output}`);
  assert.match(res.output, new RegExp(`^error: Cannot use data dir ${c.dataDir(1)}: `, "m"), what);
  assert.doesNotMatch(res.output, /^\s+at /m, `${what}: stack trace:\n${res.output}`);
  assert.doesNotMatch(res.output, /listening/, `${what}: the node started listening`);
  assert.deepEqual(await readFiles(join(c.dataDir(1), "wal")), before, `${what}: WAL changed`);
  return res.output;
}

Deno.test("a data dir refuses flags that disagree with the member it holds, and a missing WAL", async (t) => {
  await withCluster({ nodes: 3 }, async (c) => {
    const expected = new Map<string, string>();
    for (let i = 0; i < 10; i++) {
      await putWithRetry(c, `k${i}`, `v${i}`);
      expected.set(`k${i}`, `v${i}`);
    }
    const args = c.args(1);
    const peers = flag(args, "peers");
    assert.equal(peers.split(",").length, 3);
    // Node 1 goes down while the others go on, as in the issue.
    assert.equal((await c.stop(1)).code, 0);
    await c.leader([2, 3]);
    const last = await putWithRetry(c, "while-1-is-down", "yes");
    expected.set("while-1-is-down", "yes");

    await t.step(
      "node 1 started alone (--id 1, no --peers: a one-node cluster) refuses",
      async () => {
        const out = await expectRefusal(c, withFlag(args, "peers", undefined), "alone");
        const self = peers.split(",")[0]!;
        assert.ok(
          out.includes(
            `it holds node 1 of cluster "raftkv-e2e" with members ${peers}, but the flags say ` +
              `node 1 of cluster "raftkv-e2e" with members ${self} (another member set)`,
          ),
          out,
        );
        assert.ok(
          out.includes(`start this one with --id 1 --cluster-id raftkv-e2e --peers ${peers},`),
          out,
        );
      },
    );

    await t.step("another --cluster-id refuses", async () => {
      const out = await expectRefusal(c, withFlag(args, "cluster-id", "another"), "cluster id");
      assert.match(out, /but the flags say node 1 of cluster "another" .*\(another cluster id\)/);
    });

    await t.step("another --id (node 2's flags on node 1's data dir) refuses", async () => {
      const out = await expectRefusal(
        c,
        withFlag(c.args(2), "data-dir", c.dataDir(1)),
        "node id",
      );
      assert.match(out, /it holds node 1 of .* but the flags say node 2 of .*\(another node id\)/);
    });

    await t.step("started with its own flags, node 1 rejoins with every write", async () => {
      await c.restart(1);
      await waitApplied(c, 1, last);
      assert.deepEqual(await checkReads(c, 1, expected), []);
      assert.equal((await c.stop(1)).code, 0);
    });

    await t.step("with its wal/ removed (identity.json still there) it refuses", async () => {
      await Deno.remove(c.walDir(1), { recursive: true });
      const res = await runNodeToExit(args);
      assert.equal(res.code, 1, res.output);
      assert.match(
        res.output,
        new RegExp(
          `^error: Cannot use data dir ${c.dataDir(1)}: its write-ahead log ${
            c.walDir(1)
          } is missing, but its identity\\.json says it holds node 1 `,
          "m",
        ),
      );
      assert.doesNotMatch(res.output, /^\s+at /m, res.output);
      assert.doesNotMatch(res.output, /listening/);
      const left = [...Deno.readDirSync(c.dataDir(1))].map((e) => e.name).sort();
      // snap/ is from the node's earlier runs; no wal/ came back.
      assert.deepEqual(left, ["LOCK", "identity.json", "snap"], "the refusal made a new WAL");
    });
  });
});
