/**
 * The CLI's API commands against real nodes: range, txn, watch and lease print what
 * they should; `lock NAME -- COMMAND` runs the command while holding the lock, and a
 * second `lock` waits until the first holder is killed with kill -9 (its lease then
 * expires), never running both commands at once.
 *
 * @module
 */

import assert from "node:assert/strict";
import { RaftKvClient } from "../../src/client/client.ts";
import { REPO_ROOT, text, utf8, waitFor, withCluster } from "../e2e/_harness.ts";

const CLI = [
  "run",
  "--allow-net",
  "--allow-env",
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "src/cli/main.ts",
];

/** The command line of `lock` on locks/cli (a 3 s lease) running the shell `script`. */
function lockRunning(script: string): string[] {
  return ["lock", "locks/cli", "--ttl", "3", "--", "sh", "-c", script];
}

async function cli(endpoints: string, ...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...CLI, "--endpoints", endpoints, ...args],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("range, txn, watch and lease from the CLI", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    await c.leader();
    const endpoints = c.ids.map((id) => c.endpoint(id)).join(",");
    const first = await c.kv(1).put({ key: "cfg/a", value: utf8("1") }, { timeoutMs: 10_000 });
    await c.kv(1).put({ key: "cfg/b", value: utf8("2") }, { timeoutMs: 10_000 });
    await c.kv(1).put({ key: "other", value: utf8("x") }, { timeoutMs: 10_000 });

    const range = await cli(endpoints, "range", "--prefix", "cfg/");
    assert.equal(range.stdout, "cfg/a\t1\ncfg/b\t2\n", range.stderr);
    assert.equal((await cli(endpoints, "range", "--count-only")).stdout, "3\n");

    const txn = await cli(
      endpoints,
      "txn",
      JSON.stringify({
        compares: [{ key: "cfg/a", valueEquals: btoa("1") }],
        success: [{ put: { key: "cfg/a", value: btoa("10") } }],
        failure: [{ get: { key: "cfg/a" } }],
      }),
    );
    assert.equal(txn.code, 0, txn.stderr);
    assert.match(txn.stdout, /"succeeded":true/);
    const again = await cli(
      endpoints,
      "txn",
      JSON.stringify({ compares: [{ key: "cfg/a", valueEquals: btoa("1") }] }),
    );
    assert.equal(again.code, 1, "the failure branch ran: exit 1");

    const watch = await cli(
      endpoints,
      "watch",
      "cfg/a",
      "--from",
      String(first.index),
      "--count",
      "2",
    );
    assert.equal(watch.code, 0, watch.stderr);
    assert.match(watch.stdout, new RegExp(`^${first.index} PUT cfg/a 1\n\\d+ PUT cfg/a 10\n$`));

    const grant = await cli(endpoints, "lease", "grant", "30");
    const id = /lease (\d+) granted/.exec(grant.stdout)?.[1];
    assert.ok(id !== undefined, grant.stdout + grant.stderr);
    assert.match((await cli(endpoints, "lease", "ttl", id, "--keys")).stdout, /of 30s, keys: $/m);
    assert.equal((await cli(endpoints, "lease", "revoke", id)).code, 0);
    const gone = await cli(endpoints, "lease", "ttl", id);
    assert.equal(gone.code, 3);
    assert.match(gone.stderr, /error: not_found: lease \d+ not found/);
    const bad = await cli(endpoints, "range", "b", "a");
    assert.equal(bad.code, 3);
    assert.match(bad.stderr, /error: invalid_argument: .*must sort after/);
    assert.equal((await cli(endpoints, "lock")).code, 2, "usage");
  });
});

Deno.test("lock NAME -- COMMAND: the next holder runs only after the first is killed", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    await c.leader();
    const endpoints = c.ids.map((id) => c.endpoint(id)).join(",");
    const dir = await Deno.makeTempDir({ prefix: "raftkv-lock-" });
    const pidFile = `${dir}/holder.pid`;
    const log = `${dir}/log`;
    let sleeperPid: number | undefined;
    try {
      const holder = new Deno.Command(Deno.execPath(), {
        args: [
          ...CLI,
          "--endpoints",
          endpoints,
          ...lockRunning(`echo $$ > ${pidFile}; echo first >> ${log}; exec sleep 120`),
        ],
        cwd: REPO_ROOT,
        stdout: "null",
        stderr: "null",
      }).spawn();
      sleeperPid = Number(
        await waitFor("the first holder's command to run", async () => {
          const t = await Deno.readTextFile(pidFile).catch(() => "");
          return t.trim() === "" ? undefined : t.trim();
        }),
      );
      const waiting = cli(endpoints, ...lockRunning(`echo second >> ${log}`));
      // Wait until the second contender has queued (its key is under the lock's
      // prefix, behind the holder's); it must not run while the holder lives.
      const queue = new RaftKvClient({ endpoints: endpoints.split(",") });
      try {
        await waitFor("the second contender to queue behind the holder", async () => {
          const r = await queue.range({ prefix: "locks/cli/", countOnly: true });
          return r.count >= 2n;
        }, { timeoutMs: 30_000, intervalMs: 100 });
      } finally {
        queue.close();
      }
      assert.equal(await Deno.readTextFile(log), "first\n", "not two holders at once");
      holder.kill("SIGKILL"); // the holder dies; its command keeps running orphaned
      await holder.status;
      Deno.kill(sleeperPid, "SIGKILL");
      sleeperPid = undefined;
      const second = await waiting;
      assert.equal(second.code, 0, second.stderr);
      assert.equal(await Deno.readTextFile(log), "first\nsecond\n");
    } finally {
      if (sleeperPid !== undefined) {
        try {
          Deno.kill(sleeperPid, "SIGKILL");
        } catch {
          // gone
        }
      }
      await Deno.remove(dir, { recursive: true });
    }
  });
});
