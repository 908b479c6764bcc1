/**
 * The snapshot directory: durable saves under etcd-style names, the newest two kept,
 * damaged files reported by path and damage, leftovers of a crash removed.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { Snapshot } from "../../src/raft/types.ts";
import { decodeSnapshotFile, SnapshotCorruptionError } from "../../src/snapshot/file.ts";
import {
  parseSnapshotFileName,
  snapshotFileName,
  SnapshotStore,
} from "../../src/snapshot/store.ts";
import { confStateOf } from "../../src/raft/types.ts";

function snap(index: number, term = 2, text = `state at ${index}`): Snapshot {
  return {
    meta: { index, term, conf: confStateOf([1, 2, 3]) },
    data: new TextEncoder().encode(text),
  };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "raftkv-snapstore-" });
  try {
    await fn(join(root, "snap"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

Deno.test("file names are etcd's %016x-%016x.snap, term then index, and parse back", () => {
  assert.equal(snapshotFileName(3, 0x1f4), "0000000000000003-00000000000001f4.snap");
  assert.deepEqual(parseSnapshotFileName("0000000000000003-00000000000001f4.snap"), {
    term: 3,
    index: 500,
  });
  assert.equal(parseSnapshotFileName("3-1f4.snap"), undefined);
  assert.equal(parseSnapshotFileName("0000000000000003-00000000000001f4.snap.tmp"), undefined);
});

Deno.test("a saved snapshot loads back whole, from a 0700 directory and a 0600 file", async () => {
  await withDir(async (dir) => {
    const store = await SnapshotStore.open(dir);
    const path = await store.save(snap(100));
    assert.equal(path, join(dir, snapshotFileName(2, 100)));
    assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const loaded = await store.loadNewest();
    assert.deepEqual(loaded.snapshot, snap(100));
    assert.equal(loaded.path, path);
    assert.deepEqual(loaded.damaged, []);
  });
});

Deno.test("an empty directory has no snapshot, and nothing damaged", async () => {
  await withDir(async (dir) => {
    const loaded = await (await SnapshotStore.open(dir)).loadNewest();
    assert.equal(loaded.snapshot, undefined);
    assert.deepEqual(loaded.damaged, []);
  });
});

Deno.test("only the newest two snapshots are kept once a newer one is durable", async () => {
  await withDir(async (dir) => {
    const store = await SnapshotStore.open(dir);
    for (const i of [100, 200, 300, 400]) await store.save(snap(i, i === 400 ? 3 : 2));
    assert.deepEqual(await names(dir), [
      snapshotFileName(2, 300),
      snapshotFileName(3, 400),
    ]);
    assert.deepEqual((await store.list()).map((f) => f.index), [400, 300]);
  });
});

Deno.test("a damaged newest snapshot is reported by path and damage; the older one loads", async () => {
  await withDir(async (dir) => {
    const store = await SnapshotStore.open(dir);
    await store.save(snap(100));
    const newest = await store.save(snap(200));
    const bytes = await Deno.readFile(newest);
    bytes[bytes.length - 10]! ^= 0x01; // one flipped bit in the state
    await Deno.writeFile(newest, bytes);
    const loaded = await store.loadNewest();
    assert.equal(loaded.snapshot?.meta.index, 100);
    assert.equal(loaded.damaged.length, 1);
    assert.equal(loaded.damaged[0]!.path, newest);
    assert.ok(loaded.damaged[0]!.error instanceof SnapshotCorruptionError);
    assert.match(loaded.damaged[0]!.error.message, /checksum mismatch/);
    assert.ok(loaded.damaged[0]!.error.message.includes(newest));
    // Once set aside, it no longer counts, and stays on disk as evidence.
    await store.markBroken(newest);
    assert.deepEqual((await store.list()).map((f) => f.index), [100]);
    assert.ok((await names(dir)).includes(`${snapshotFileName(2, 200)}.broken`));
  });
});

Deno.test("a truncated snapshot is damage, as is every snapshot being damaged", async () => {
  await withDir(async (dir) => {
    const store = await SnapshotStore.open(dir);
    const path = await store.save(snap(100));
    const bytes = await Deno.readFile(path);
    await Deno.writeFile(path, bytes.subarray(0, bytes.length - 3));
    const loaded = await store.loadNewest();
    assert.equal(loaded.snapshot, undefined);
    assert.equal(loaded.damaged.length, 1);
    assert.match(loaded.damaged[0]!.error.message, /checksum mismatch|truncated/);
  });
});

Deno.test("a file whose name disagrees with its header is damage", async () => {
  await withDir(async (dir) => {
    const store = await SnapshotStore.open(dir);
    const path = await store.save(snap(100));
    const renamed = join(dir, snapshotFileName(2, 150));
    await Deno.rename(path, renamed);
    const loaded = await store.loadNewest();
    assert.equal(loaded.snapshot, undefined);
    assert.match(
      loaded.damaged[0]!.error.message,
      /header says index 100 term 2, its name index 150 term 2/,
    );
  });
});

Deno.test("a save a crash interrupted (a .tmp file) is removed on open and never loaded", async () => {
  await withDir(async (dir) => {
    const store = await SnapshotStore.open(dir);
    await store.save(snap(100));
    const tmp = join(dir, `${snapshotFileName(2, 200)}.tmp`);
    await Deno.writeFile(tmp, new Uint8Array([1, 2, 3]));
    const reopened = await SnapshotStore.open(dir);
    assert.deepEqual(await names(dir), [snapshotFileName(2, 100)]);
    assert.equal((await reopened.loadNewest()).snapshot?.meta.index, 100);
  });
});

Deno.test("every save is fsynced, file and directory, before it resolves", async () => {
  await withDir(async (dir) => {
    const synced: string[] = [];
    const store = await SnapshotStore.open(dir, {
      sync: (f, path) => {
        synced.push(path);
        return f.sync();
      },
    });
    synced.length = 0;
    const path = await store.save(snap(100));
    assert.deepEqual(synced, [`${path}.tmp`, dir]);
  });
});

Deno.test("two saves at once are refused: one snapshot at a time", async () => {
  await withDir(async (dir) => {
    const store = await SnapshotStore.open(dir);
    const first = store.save(snap(100));
    await assert.rejects(() => store.save(snap(200)), /another save is under way/);
    await first;
  });
});

Deno.test("a snapshot file is read back as its bytes for sending, checked; a gone or damaged one is refused", async () => {
  await withDir(async (dir) => {
    const store = await SnapshotStore.open(dir);
    const path = await store.save(snap(100, 3));
    assert.deepEqual(await store.readFile(3, 100), await Deno.readFile(path));
    assert.deepEqual(decodeSnapshotFile(await store.readFile(3, 100), path), snap(100, 3));
    // Pruned (or never taken): the sender is told which file and why.
    await assert.rejects(
      () => store.readFile(3, 200),
      (err: Error) =>
        err instanceof SnapshotCorruptionError &&
        err.message.includes(join(dir, snapshotFileName(3, 200))) &&
        /vanished/.test(err.message),
    );
    const bytes = await Deno.readFile(path);
    bytes[bytes.length - 10]! ^= 0x01;
    await Deno.writeFile(path, bytes);
    await assert.rejects(
      () => store.readFile(3, 100),
      (err: Error) =>
        err instanceof SnapshotCorruptionError && /checksum mismatch/.test(err.message),
    );
  });
});
