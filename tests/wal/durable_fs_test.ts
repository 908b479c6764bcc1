/**
 * The durable file-system steps (src/wal/durable_fs.ts): directories created with
 * their parents fsynced, files replaced atomically, and what happens when Deno's
 * permissions cover a directory but not the ones above it.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { mkdirDurable, writeFileAtomic } from "../../src/wal/mod.ts";
import { FaultyIo, withTempDir } from "./_helpers.ts";

Deno.test("mkdirDurable creates the missing directories, 0700, and fsyncs the parent of each", async () => {
  await withTempDir(async (root) => {
    const io = new FaultyIo();
    const dir = join(root, "a", "b", "c");
    const made = await mkdirDurable(dir, io.sync.bind(io));
    assert.deepStrictEqual(made, {
      created: [join(root, "a"), join(root, "a", "b"), dir],
      unsynced: [],
    });
    assert.deepStrictEqual(io.synced, [root, join(root, "a"), join(root, "a", "b")]);
    assert.equal((await Deno.stat(join(root, "a"))).mode! & 0o777, 0o700);
    // An existing directory is left alone, and nothing is fsynced for it.
    assert.deepStrictEqual(await mkdirDurable(dir, io.sync.bind(io)), {
      created: [],
      unsynced: [],
    });
    assert.equal(io.synced.length, 3);
  });
});

Deno.test("mkdirDurable on a file, or under one, throws the OS error with its code", async () => {
  await withTempDir(async (root) => {
    const file = join(root, "f");
    await Deno.writeTextFile(file, "x");
    await assert.rejects(mkdirDurable(file), (e: Error & { code?: string }) => e.code === "EEXIST");
    await assert.rejects(
      mkdirDurable(join(file, "d")),
      (e: Error & { code?: string }) => e.code === "ENOTDIR",
    );
  });
});

Deno.test("writeFileAtomic replaces a file whole, 0600, fsyncing the file and then its directory", async () => {
  await withTempDir(async (root) => {
    const io = new FaultyIo();
    const path = join(root, "identity.json");
    await writeFileAtomic(path, new TextEncoder().encode("one"), io.sync.bind(io));
    await writeFileAtomic(path, new TextEncoder().encode("two"), io.sync.bind(io));
    assert.equal(await Deno.readTextFile(path), "two");
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.deepStrictEqual(io.synced, [`${path}.tmp`, root, `${path}.tmp`, root]);
    assert.deepStrictEqual([...Deno.readDirSync(root)].map((e) => e.name), ["identity.json"]);
  });
});

/*
 * `deno task node` grants `./data` only: the directory above a data dir it creates
 * cannot be opened (to fsync it) nor, when several levels are missing, created on
 * its own. mkdirDurable then creates the whole path at once, as `mkdir -p` does,
 * and reports the parent it could not fsync (the node logs a warning).
 */
Deno.test("mkdirDurable under Deno permissions that cover only the new directory creates it and reports the parents it could not fsync", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "x", "y", "data");
    const script = `
      import { mkdirDurable } from ${
      JSON.stringify(new URL("../../src/wal/mod.ts", import.meta.url).href)
    };
      console.log(JSON.stringify(await mkdirDurable(${JSON.stringify(dir)})));
    `;
    const out = await new Deno.Command(Deno.execPath(), {
      args: [`--allow-read=${dir}`, `--allow-write=${dir}`, "--no-lock", "-"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const w = out.stdin.getWriter();
    await w.write(new TextEncoder().encode(script));
    await w.close();
    const res = await out.output();
    const stderr = new TextDecoder().decode(res.stderr);
    assert.ok(res.success, stderr);
    const made = JSON.parse(new TextDecoder().decode(res.stdout));
    assert.deepStrictEqual(made, { created: [dir], unsynced: [join(root, "x", "y")] });
    assert.ok((await Deno.stat(dir)).isDirectory);
  });
});
