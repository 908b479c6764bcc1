/**
 * Damaged snapshots and WALs on real processes: each either recovers to the same
 * state or refuses to start with a message naming the file and the damage; no node
 * runs on silently wrong state.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Cluster,
  runNodeToExit,
  utf8,
  waitApplied,
  waitFor,
  withCluster,
} from "./_harness.ts";

/** Snapshot files in node `id`'s data dir, newest (highest index) last. */
function snapFiles(c: Cluster, id: number): string[] {
  return [...Deno.readDirSync(join(c.dataDir(id), "snap"))].map((e) => e.name)
    .filter((n) => n.endsWith(".snap")).sort((a, b) =>
      a.split("-")[1]! < b.split("-")[1]! ? -1 : 1
    );
}

function walFiles(c: Cluster, id: number): string[] {
  return [...Deno.readDirSync(c.walDir(id))].map((e) => e.name).filter((n) => n.endsWith(".wal"))
    .sort();
}

/** Puts `count` values, in order, through node 1 (the only node) and returns the last index. */
async function putMany(c: Cluster, count: number, valueBytes: number, keys = 5): Promise<bigint> {
  let last = 0n;
  const value = new Uint8Array(valueBytes).fill(0x62);
  for (let i = 0; i < count; i++) {
    last = (await c.kv(1).put({ key: `key${i % keys}`, value }, { timeoutMs: 20_000 })).index;
  }
  return last;
}

/** Waits until node `id` reports a snapshot at or beyond `index`. */
async function waitSnapshot(c: Cluster, id: number, index: bigint): Promise<void> {
  await waitFor(`node ${id} to take a snapshot at ${index} or beyond`, async () => {
    const s = await c.status(id);
    if (s.snapshotIndex < index) throw new Error(`snapshot_index ${s.snapshotIndex}`);
    return true;
  });
}

/** Runs node 1 of `c` expecting it to refuse its data dir; returns its output. */
async function refusesToStart(c: Cluster): Promise<string> {
  const res = await runNodeToExit(c.args(1));
  assert.equal(res.code, 1, `exit code ${res.code}; output:\n${res.output}`);
  assert.doesNotMatch(res.output, /^\s+at /m, `stack trace:\n${res.output}`);
  assert.doesNotMatch(res.output, /listening/, `the node started listening:\n${res.output}`);
  return res.output;
}

Deno.test("a bit-flipped newest snapshot: the node falls back to the older one and the WAL after it", async () => {
  // The WAL keeps every entry (5 KB of log in a 4 MiB segment), so the older snapshot is covered.
  await withCluster(
    { nodes: 1, extraArgs: ["--snapshot-entries", "20", "--snapshot-catchup-entries", "5"] },
    async (c) => {
      await c.leader();
      const last = await putMany(c, 50, 100, 30);
      await waitSnapshot(c, 1, 40n);
      const before = await waitApplied(c, 1, last);
      // Killed: a clean stop would snapshot the applied state (index 51) as the newest.
      await c.kill(1);
      const files = snapFiles(c, 1);
      assert.equal(files.length, 2, `${files}`);
      const newest = join(c.dataDir(1), "snap", files[1]!);
      const bytes = await Deno.readFile(newest);
      bytes[Math.floor(bytes.length / 2)]! ^= 0x04;
      await Deno.writeFile(newest, bytes);

      c.spawn(1);
      await c.waitServing(1);
      const log = c.log(1).all();
      assert.match(log, /a snapshot is damaged; starting from an older one/);
      assert.ok(log.includes(newest), `the warning does not name ${newest}:\n${log}`);
      assert.match(log, /checksum mismatch/);
      assert.ok((await Deno.stat(`${newest}.broken`)).isFile);
      const after = await waitApplied(c, 1, last);
      // It started from the older snapshot (and took the newer one again on the way).
      assert.match(log, /recovered from the snapshot and the write-ahead log snapshot=20 /);
      if (after.appliedIndex === before.appliedIndex) {
        assert.equal(after.stateDigest, before.stateDigest);
        assert.equal(after.appliedChain, before.appliedChain);
      }
      const got = await c.kv(1).get({ key: "key7" });
      assert.equal(got.found, true);
    },
  );
});

Deno.test("a WAL released past the older snapshot: a truncated newest snapshot or a missing segment is refused by name", async (t) => {
  // 1 MB values fill a 4 MiB segment every 4 entries; snapshots every 50 entries
  // keeping 5 behind release the segments below the 5 entries kept.
  await withCluster(
    { nodes: 1, extraArgs: ["--snapshot-entries", "50", "--snapshot-catchup-entries", "5"] },
    async (c) => {
      await c.leader();
      const last = await putMany(c, 110, 1_000_000);
      await waitApplied(c, 1, last);
      await waitFor("a WAL segment to be released", () => {
        const wal = walFiles(c, 1);
        if (wal[0]?.startsWith("0000000000000000-")) throw new Error(`segments ${wal}`);
        return true;
      });
      const status = await c.status(1);
      // Killed: a clean stop would add a snapshot that the WAL covers.
      await c.kill(1);
      const pristine = join(c.rootDir, "pristine");
      await Deno.mkdir(pristine);
      await copyDir(c.dataDir(1), pristine);

      await t.step("a truncated newest snapshot: no older one is covered by the WAL", async () => {
        const files = snapFiles(c, 1);
        assert.equal(files.length, 2, `${files}`);
        const newest = join(c.dataDir(1), "snap", files[1]!);
        const bytes = await Deno.readFile(newest);
        await Deno.writeFile(newest, bytes.subarray(0, bytes.length - 100));
        const out = await refusesToStart(c);
        assert.ok(out.includes(`Cannot read snapshot ${newest}`), out);
        assert.match(out, /is at index \d+, and the WAL does not hold every entry after it/);
        assert.ok((await Deno.stat(newest)).isFile, "the damaged file was moved on a refusal");
      });

      await t.step("a missing WAL segment after the snapshot", async () => {
        await Deno.remove(c.dataDir(1), { recursive: true });
        await Deno.mkdir(c.dataDir(1));
        await copyDir(pristine, c.dataDir(1));
        // A segment holding entries after the snapshot, not the last one.
        const wal = walFiles(c, 1);
        assert.ok(wal.length >= 3, `${wal}`);
        const victim = wal[wal.length - 2]!;
        const firstIndex = parseInt(victim.split("-")[1]!, 16);
        assert.ok(
          BigInt(firstIndex) > status.snapshotIndex + 1n,
          `${victim}: ${status.snapshotIndex}`,
        );
        await Deno.remove(join(c.walDir(1), victim));
        const out = await refusesToStart(c);
        assert.match(out, /^error: Cannot open WAL segment [0-9a-f-]+\.wal: /m);
        assert.match(out, /segment \d+ is missing/);
      });

      await t.step(
        "a segment holding only entries the snapshot covers may go: the node starts",
        async () => {
          await Deno.remove(c.dataDir(1), { recursive: true });
          await Deno.mkdir(c.dataDir(1));
          await copyDir(pristine, c.dataDir(1));
          const wal = walFiles(c, 1);
          const second = parseInt(wal[1]!.split("-")[1]!, 16);
          assert.ok(BigInt(second) <= status.snapshotIndex + 1n, `${wal}: ${status.snapshotIndex}`);
          await Deno.remove(join(c.walDir(1), wal[0]!));
          c.spawn(1);
          await c.waitServing(1);
          await waitApplied(c, 1, last);
          await c.stop(1);
        },
      );

      await t.step("untouched, the same data dir starts and holds the same state", async () => {
        await Deno.remove(c.dataDir(1), { recursive: true });
        await Deno.mkdir(c.dataDir(1));
        await copyDir(pristine, c.dataDir(1));
        c.spawn(1);
        await c.waitServing(1);
        const again = await waitApplied(c, 1, last);
        assert.ok(again.firstIndex > 1n);
        if (again.appliedIndex === status.appliedIndex) {
          assert.equal(again.stateDigest, status.stateDigest);
          assert.equal(again.appliedChain, status.appliedChain);
        }
        await c.stop(1);
      });
    },
  );
});

Deno.test("a snapshot newer than the WAL (the leader's, saved before a crash): the node starts after it and catches up", async () => {
  await withCluster(
    { nodes: 3, extraArgs: ["--snapshot-entries", "30", "--snapshot-catchup-entries", "100"] },
    async (c) => {
      const leader = await c.leader();
      const follower = c.ids.find((id) => id !== leader)!;
      const other = c.ids.find((id) => id !== leader && id !== follower)!;
      for (let i = 0; i < 10; i++) {
        await c.kv(leader).put({ key: `k${i}`, value: utf8(`v${i}`) });
      }
      await waitApplied(c, follower, 10n);
      await c.stop(follower);
      let last = 0n;
      for (let i = 10; i < 80; i++) {
        last = (await c.kv(leader).put({ key: `k${i % 20}`, value: utf8(`v${i}`) })).index;
      }
      await waitApplied(c, other, last);
      await waitSnapshot(c, other, 60n);
      // As if the follower had received the other node's newest snapshot from the
      // leader and crashed before its WAL started over after it.
      const theirs = snapFiles(c, other);
      const file = theirs[theirs.length - 1]!;
      await Deno.copyFile(
        join(c.dataDir(other), "snap", file),
        join(c.dataDir(follower), "snap", file),
      );
      c.spawn(follower);
      await c.waitServing(follower);
      assert.match(c.log(follower).all(), /the newest snapshot is newer than the write-ahead log/);
      const next = (await c.kv(leader).put({ key: "after", value: utf8("x") })).index;
      const statuses = await Promise.all(c.ids.map((id) => waitApplied(c, id, next)));
      const settled = await waitFor("every node at one applied index", async () => {
        const s = await Promise.all(c.ids.map((id) => c.status(id)));
        if (new Set(s.map((x) => x.appliedIndex)).size !== 1) throw new Error("not yet");
        return s;
      });
      assert.ok(statuses.length === 3);
      assert.equal(new Set(settled.map((s) => s.stateDigest)).size, 1, "state digests differ");
      assert.equal(new Set(settled.map((s) => s.appliedChain)).size, 1, "applied chains differ");
    },
  );
});

async function copyDir(from: string, to: string): Promise<void> {
  for await (const e of Deno.readDir(from)) {
    const src = join(from, e.name);
    const dst = join(to, e.name);
    if (e.isDirectory) {
      await Deno.mkdir(dst);
      await copyDir(src, dst);
    } else if (e.name !== "LOCK") {
      await Deno.copyFile(src, dst);
    }
  }
}
