/**
 * Backup and restore on real processes, as README's "Backup and restore" tells an
 * operator: `deno task client snapshot save FILE` from a running cluster, every
 * node stopped and its data dir wiped, each restored with `--restore FILE` and the
 * same flags, and every key reads back from every node; the restored cluster takes
 * new writes. A restore over a node's data is refused.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { NODE_ENV_VARS } from "../../src/server/flags.ts";
import {
  checkReads,
  REPO_ROOT,
  runNodeToExit,
  utf8,
  waitApplied,
  waitFor,
  withCluster,
} from "./_harness.ts";

/** Runs the client CLI as `deno task client` does (same permissions). */
async function client(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-env=RAFTKV_ENDPOINTS",
      "--allow-read",
      "--allow-write",
      "src/cli/main.ts",
      ...args,
    ],
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("save a backup, wipe every node, restore each from it: every key reads back", async () => {
  await withCluster(
    { nodes: 3, extraArgs: ["--snapshot-entries", "100", "--snapshot-catchup-entries", "20"] },
    async (c) => {
      const leader = await c.leader();
      const expected = new Map<string, string | undefined>();
      for (let i = 0; i < 400; i++) {
        const key = `key${i % 150}`;
        await c.kv(leader).put({ key, value: utf8(`value${i}`) }, { timeoutMs: 10_000 });
        expected.set(key, `value${i}`);
      }
      await c.kv(leader).delete({ key: "key7" });
      expected.set("key7", undefined);

      const file = join(c.rootDir, "backup.snap");
      const bad = await client([
        "--endpoints",
        c.endpoint(leader),
        "snapshot",
        "save",
        join(c.rootDir, "no", "b.snap"),
      ]);
      assert.equal(bad.code, 2);
      assert.match(
        bad.stderr,
        /^error: Cannot save snapshot to .*b\.snap: cannot create .*: directory .* does not exist\n$/,
      );
      const saved = await client(["--endpoints", c.endpoint(leader), "snapshot", "save", file]);
      assert.equal(saved.code, 0, saved.stderr);
      const m = saved.stdout.match(
        /^Saved snapshot at index (\d+), term (\d+) \((\d+) bytes\) from .* to .*backup\.snap\n$/,
      );
      assert.ok(m, saved.stdout);
      const index = BigInt(m[1]!);

      // Every disk lost.
      await Promise.all(c.ids.map((id) => c.stop(id)));
      for (const id of c.ids) await Deno.remove(c.dataDir(id), { recursive: true });

      for (const id of c.ids) c.spawn(id, ["--restore", file]);
      await Promise.all(c.ids.map((id) => c.waitServing(id)));
      for (const id of c.ids) {
        assert.match(
          c.log(id).all(),
          new RegExp(`restored the data dir from a backup.*snapshot=\\d+/${index}`),
        );
      }
      const newLeader = await c.leader();
      for (const id of c.ids) assert.deepEqual(await checkReads(c, id, expected), []);
      // Each node started from the backup's snapshot, not from an empty log.
      for (const id of c.ids) {
        const s = await c.status(id);
        assert.ok(s.snapshotIndex >= index, `node ${id} snapshot_index ${s.snapshotIndex}`);
      }

      // The restored cluster takes writes, and its nodes agree.
      const idx = (await c.kv(newLeader).put({ key: "after", value: utf8("restore") })).index;
      for (const id of c.ids) await waitApplied(c, id, idx);
      const settled = await waitFor("every node at the same applied index", async () => {
        const all = await Promise.all(c.ids.map((id) => c.status(id)));
        if (new Set(all.map((x) => x.appliedIndex)).size !== 1) throw new Error("not yet");
        return all;
      });
      assert.equal(new Set(settled.map((x) => x.stateDigest)).size, 1, "state digests differ");

      // A restore over a node's data is refused, and the node does not start.
      await c.stop(1);
      const refused = await runNodeToExit([...c.args(1), "--restore", file]);
      assert.equal(refused.code, 1);
      assert.match(
        refused.output,
        /error: Cannot restore into data dir .*node1: it holds a node's state \(identity\.json, wal, snap\)/,
      );
      await c.restart(1);
    },
  );
});

Deno.test("a backup outside what Deno's permissions grant is refused, saying how to grant it", async () => {
  const root = await Deno.makeTempDir({ prefix: "raftkv_restore_grant_" });
  try {
    const file = join(root, "backup.snap");
    await Deno.writeFile(file, new Uint8Array(64));
    const data = join(root, "data");
    // The permissions of `deno task node`, with ./data at `data`: the backup is outside it.
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        `--allow-read=${data}`,
        `--allow-write=${data}`,
        `--allow-env=${NODE_ENV_VARS.join(",")}`,
        "src/server/main.ts",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        join(data, "n1"),
        "--restore",
        file,
      ],
      cwd: REPO_ROOT,
      env: { NO_COLOR: "1" },
      stdin: "null",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 1, stderr);
    assert.match(
      stderr,
      /error: Cannot restore from .*backup\.snap: Deno's permissions do not grant reading it \(`deno task node` reads under \.\/data only: put the file there, or run with --allow-read=\.\/data,.*backup\.snap/,
    );
    assert.equal(await Deno.stat(join(data, "n1")).catch(() => "none"), "none");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
