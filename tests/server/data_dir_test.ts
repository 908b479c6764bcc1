/**
 * The data dir (src/server/data_dir.ts): bootstrapped once with the identity of
 * the member it holds, refused to flags that disagree, refused when its WAL is gone,
 * upgraded in place when it predates identity files, and durable and private.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { NodeId } from "../../src/raft/types.ts";
import {
  DataDirError,
  type DataDirIdentity,
  decodeIdentity,
  encodeIdentity,
  IDENTITY_FILE,
  openDataDir,
  type OpenedDataDir,
  readIdentity,
} from "../../src/server/data_dir.ts";
import type { PeerAddress } from "../../src/server/transport.ts";
import { Wal } from "../../src/wal/mod.ts";
import type { Snapshot } from "../../src/raft/types.ts";
import { SnapshotStore } from "../../src/snapshot/store.ts";
import { entries, RecordingLogger, SimDisk, withTempDir } from "../wal/_helpers.ts";
import { confStateOf } from "../../src/raft/types.ts";

function identity(
  nodeId: NodeId,
  peers: Record<number, number>,
  clusterId = "raftkv",
): DataDirIdentity {
  const map = new Map<NodeId, PeerAddress>(
    Object.entries(peers).map(([id, port]) => [Number(id), { host: "127.0.0.1", port }]),
  );
  return { nodeId, clusterId, peers: map };
}

const THREE = identity(1, { 1: 7001, 2: 7002, 3: 7003 });

async function open(
  dir: string,
  id: DataDirIdentity,
  log = new RecordingLogger(),
  io?: SimDisk,
): Promise<OpenedDataDir> {
  return await openDataDir({ dir, identity: id, logger: log, io });
}

async function close(d: OpenedDataDir): Promise<void> {
  await d.wal.close();
  d.lock.close();
}

/** Opens `dir` expecting a DataDirError; checks that nothing in it changed. */
async function refused(dir: string, id: DataDirIdentity): Promise<string> {
  const before = await snapshot(dir);
  const err = await open(dir, id).then(
    (d) => close(d).then(() => assert.fail("the data dir was opened")),
    (e: unknown) => e,
  );
  assert.ok(err instanceof DataDirError, `not a DataDirError: ${err}`);
  assert.deepStrictEqual(await snapshot(dir), before, "a refused open changed the data dir");
  return err.message;
}

/** Every file under `dir` (LOCK aside) with its bytes, keyed by relative path. */
async function snapshot(dir: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  const walk = async (sub: string) => {
    const at = join(dir, sub);
    let listing: Deno.DirEntry[];
    try {
      listing = await Array.fromAsync(Deno.readDir(at));
    } catch {
      return;
    }
    for (const e of listing) {
      const name = sub === "" ? e.name : `${sub}/${e.name}`;
      if (e.isDirectory) await walk(name);
      else if (name !== "LOCK") out.set(name, await Deno.readFile(join(dir, name)));
    }
  };
  await walk("");
  return out;
}

Deno.test("a new data dir is bootstrapped: its WAL, and an identity.json naming the node, the cluster and its members", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "data", "node1");
    const log = new RecordingLogger();
    const d = await open(dir, THREE, log);
    assert.deepStrictEqual(d.recovery.entries, []);
    await d.wal.save({ term: 1, vote: 1, commit: 0 }, entries(1, 2, 1));
    await close(d);
    assert.deepStrictEqual(log.at("info"), ["wal: created", "bootstrapped a new data dir"]);
    assert.deepStrictEqual(await readIdentity(dir), THREE);
    assert.deepStrictEqual(JSON.parse(await Deno.readTextFile(join(dir, IDENTITY_FILE))), {
      format: "raftkv data dir",
      version: 1,
      nodeId: 1,
      clusterId: "raftkv",
      peers: [
        { id: 1, host: "127.0.0.1", port: 7001 },
        { id: 2, host: "127.0.0.1", port: 7002 },
        { id: 3, host: "127.0.0.1", port: 7003 },
      ],
    });
    const again = await open(dir, THREE);
    assert.deepStrictEqual(again.recovery.entries, entries(1, 2, 1));
    await close(again);
  });
});

Deno.test("a data dir refuses flags for one member alone (the fork of issue 16), saying what it holds and what to start it with", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "node1");
    await close(await open(dir, THREE));
    const message = await refused(dir, identity(1, { 1: 7001 }));
    assert.equal(
      message,
      `Cannot use data dir ${dir}: it holds node 1 of cluster "raftkv" with members ` +
        `1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003, but the flags say node 1 of ` +
        `cluster "raftkv" with members 1=127.0.0.1:7001 (another member set). --peers only ` +
        `bootstraps an empty data dir: start this one with --id 1 --cluster-id raftkv --peers ` +
        `1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003, or give a new node an empty --data-dir`,
    );
  });
});

Deno.test("a data dir refuses another cluster id, another node id, another address of a member", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "node1");
    await close(await open(dir, THREE));
    const cluster = await refused(dir, { ...THREE, clusterId: "other cluster" });
    assert.match(
      cluster,
      /but the flags say node 1 of cluster "other cluster" .*\(another cluster id\)/,
    );
    assert.match(cluster, / start this one with --id 1 --cluster-id raftkv --peers /);
    const node = await refused(dir, { ...THREE, nodeId: 2 });
    assert.match(node, /it holds node 1 of .* but the flags say node 2 of .*\(another node id\)/);
    const moved = await refused(dir, identity(1, { 1: 7001, 2: 7002, 3: 7999 }));
    assert.match(moved, /3=127\.0\.0\.1:7999 \(another member set\)/);
    const self = await refused(dir, identity(1, { 1: 7555, 2: 7002, 3: 7003 }));
    assert.match(
      self,
      / start this one with --id 1 --listen 127\.0\.0\.1:7001 --cluster-id raftkv /,
    );
    const all = await refused(dir, identity(4, { 4: 7004 }, "x"));
    assert.match(all, /\(another node id, another cluster id, another member set\)/);
  });
});

Deno.test("a data dir whose WAL vanished is refused as damage, not started as a new node", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "node1");
    const d = await open(dir, THREE);
    await d.wal.save({ term: 7, vote: 2, commit: 0 }, []);
    await close(d);
    await Deno.remove(join(dir, "wal"), { recursive: true });
    const message = await refused(dir, THREE);
    assert.match(
      message,
      new RegExp(
        `^Cannot use data dir ${dir}: its write-ahead log ${dir}/wal is missing, but its ` +
          `identity\\.json says it holds node 1 of cluster "raftkv" with members .*\\. The node's ` +
          `term, vote and log are gone`,
      ),
    );
    assert.match(
      message,
      /Restore the WAL from a backup, or replace the disk as deploy\/README\.md says/,
    );
    assert.equal(await Wal.exists(join(dir, "wal")), false, "a new WAL was made");
  });
});

Deno.test("a data dir made before identity files (a WAL, no identity.json) takes the identity from the flags once, with a warning", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "old");
    const wal = await Wal.create(join(dir, "wal"));
    await wal.save({ term: 3, vote: 1, commit: 1 }, entries(1, 1, 3));
    await wal.close();
    const log = new RecordingLogger();
    const d = await open(dir, THREE, log);
    assert.deepStrictEqual(d.recovery.entries, entries(1, 1, 3));
    await close(d);
    assert.equal(log.at("warn").length, 1);
    assert.match(log.at("warn")[0]!, /has a write-ahead log but no identity\.json/);
    assert.deepStrictEqual(await readIdentity(dir), THREE);
    // From then on it is held to it.
    await refused(dir, identity(1, { 1: 7001 }));
  });
});

Deno.test("a damaged WAL in an old data dir is refused before any identity is written", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "old");
    await Deno.mkdir(join(dir, "wal"), { recursive: true });
    await assert.rejects(open(dir, THREE), /holds no segment files/);
    assert.equal(await readIdentity(dir), undefined);
  });
});

Deno.test("a damaged identity.json is refused, naming the file and what is wrong", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "node1");
    await close(await open(dir, THREE));
    const path = join(dir, IDENTITY_FILE);
    for (
      const [bytes, why] of [
        ["{ not json", /is damaged \(not JSON/],
        [
          '{"format":"raftkv data dir","version":1}',
          /is damaged \("nodeId" is not a positive integer\)/,
        ],
        [
          '{"format":"raftkv data dir","version":1,"nodeId":4,"clusterId":"c","peers":[{"id":1,"host":"h","port":1}]}',
          /is damaged \(node 4 is not among its members\)/,
        ],
      ] as const
    ) {
      await Deno.writeTextFile(path, bytes);
      const message = await refused(dir, THREE);
      assert.match(message, new RegExp(`^Cannot use data dir ${dir}: its identity file ${path} `));
      assert.match(message, why);
    }
  });
});

Deno.test("the identity round-trips through its file format, IPv6 hosts and all", () => {
  const id: DataDirIdentity = {
    nodeId: 2,
    clusterId: 'prod "east"',
    peers: new Map([[2, { host: "::1", port: 7002 }], [1, { host: "node1.example", port: 7001 }]]),
  };
  const back = decodeIdentity(encodeIdentity(id));
  assert.deepStrictEqual(back, id);
});

Deno.test("one process per data dir: a second open while the first holds the lock is refused", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "node1");
    const first = await open(dir, THREE);
    try {
      const err = await open(dir, THREE).then(
        (d) => close(d).then(() => assert.fail("opened twice")),
        (e: unknown) => e,
      );
      assert.ok(err instanceof DataDirError);
      assert.equal(err.message, `Cannot use data dir ${dir}: another process holds its lock`);
    } finally {
      await close(first);
    }
  });
});

Deno.test("a bootstrapped data dir survives a power loss right after its first save: the data dir, the directories above it, its identity and its WAL", async () => {
  await withTempDir(async (root) => {
    const disk = await SimDisk.over(root);
    const dir = join(root, "var", "lib", "raftkv");
    const d = await open(dir, THREE, new RecordingLogger(), disk);
    await d.wal.save({ term: 4, vote: 3, commit: 0 }, entries(1, 1, 4));
    await close(d);
    await disk.powerLoss();
    assert.deepStrictEqual(await readIdentity(dir), THREE);
    const again = await open(dir, THREE);
    assert.deepStrictEqual(again.recovery.hardState, { term: 4, vote: 3, commit: 0 });
    assert.deepStrictEqual(again.recovery.entries, entries(1, 1, 4));
    await close(again);
  });
});

Deno.test("a data dir's files are private: the directories the node creates 0700, LOCK and identity.json 0600", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "new", "node1");
    await close(await open(dir, THREE));
    const mode = async (path: string) => ((await Deno.stat(path)).mode! & 0o777).toString(8);
    assert.equal(await mode(join(root, "new")), "700");
    assert.equal(await mode(dir), "700");
    assert.equal(await mode(join(dir, "wal")), "700");
    assert.equal(await mode(join(dir, "LOCK")), "600");
    assert.equal(await mode(join(dir, IDENTITY_FILE)), "600");
  });
});

Deno.test("a leftover identity.json.tmp (a crash while writing it) is removed; the identity stands", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "node1");
    await close(await open(dir, THREE));
    await Deno.writeTextFile(join(dir, `${IDENTITY_FILE}.tmp`), "{ half");
    await close(await open(dir, THREE));
    await assert.rejects(Deno.stat(join(dir, `${IDENTITY_FILE}.tmp`)), Deno.errors.NotFound);
  });
});

// ---- snapshots ------------------------------------------------------------------------------------

function snap(index: number): Snapshot {
  return {
    meta: { index, term: 1, conf: confStateOf([1, 2, 3]) },
    data: new TextEncoder().encode(`state at ${index}`),
  };
}

/** A data dir whose WAL holds entries 1..30 (small segments, the first `releaseBefore` released). */
async function dataDirWithLog(dir: string, releaseBefore = 0): Promise<void> {
  await close(await open(dir, THREE));
  const { wal } = await Wal.open(join(dir, "wal"), { segmentBytes: 300 });
  await wal.save({ term: 1, vote: 1, commit: 30 }, entries(1, 30, 1));
  for (let i = 31; i <= 40; i++) await wal.save(undefined, entries(i, i, 1));
  if (releaseBefore > 0) await wal.releaseBefore(releaseBefore);
  await wal.close();
}

async function flipLastByte(path: string): Promise<void> {
  const bytes = await Deno.readFile(path);
  bytes[bytes.length - 1]! ^= 0x10;
  await Deno.writeFile(path, bytes);
}

Deno.test("the newest valid snapshot is loaded and the WAL opened after it", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "n1");
    await dataDirWithLog(dir, 33);
    const store = await SnapshotStore.open(join(dir, "snap"));
    await store.save(snap(20));
    await store.save(snap(35));
    const d = await open(dir, THREE);
    assert.equal(d.snapshot?.meta.index, 35);
    assert.ok(d.recovery.firstIndex <= 33 && d.recovery.firstIndex > 1);
    assert.equal(d.recovery.entries.at(-1)?.index, 40);
    await close(d);
  });
});

Deno.test("a damaged newest snapshot falls back to an older one when the WAL covers the gap", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "n1");
    await dataDirWithLog(dir); // nothing released: the WAL holds 1..40
    const store = await SnapshotStore.open(join(dir, "snap"));
    await store.save(snap(20));
    const newest = await store.save(snap(35));
    await flipLastByte(newest);
    const log = new RecordingLogger();
    const d = await open(dir, THREE, log);
    assert.equal(d.snapshot?.meta.index, 20);
    assert.equal(d.recovery.firstIndex, 1);
    const warning = log.lines.find((l) => l.msg.startsWith("a snapshot is damaged"));
    assert.ok(warning, "no warning about the damaged snapshot");
    assert.equal(warning.fields?.file, newest);
    assert.match(String(warning.fields?.damage), /checksum mismatch/);
    assert.ok((await Deno.stat(`${newest}.broken`)).isFile, "the damaged file was not set aside");
    await close(d);
  });
});

Deno.test("a damaged newest snapshot with the WAL released past the older one is refused, naming the file", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "n1");
    await dataDirWithLog(dir, 33);
    const store = await SnapshotStore.open(join(dir, "snap"));
    await store.save(snap(20));
    const newest = await store.save(snap(35));
    await flipLastByte(newest);
    const message = await refused(dir, THREE);
    assert.ok(message.includes(newest), message);
    assert.match(message, /checksum mismatch/);
    assert.match(
      message,
      /the older snapshot 0000000000000001-0000000000000014\.snap is at index 20/,
    );
    assert.match(message, /the WAL does not hold every entry after it/);
  });
});

Deno.test("a damaged only snapshot with the WAL released is refused: no snapshot covers the start", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "n1");
    await dataDirWithLog(dir, 33);
    const store = await SnapshotStore.open(join(dir, "snap"));
    const only = await store.save(snap(35));
    const bytes = await Deno.readFile(only);
    await Deno.writeFile(only, bytes.subarray(0, bytes.length - 5)); // truncated
    const message = await refused(dir, THREE);
    assert.ok(message.includes(only), message);
    assert.match(message, /no older snapshot is valid/);
  });
});

Deno.test("a data dir that joined a running cluster records it, and later starts may name other peers", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "node4");
    const joining: DataDirIdentity = {
      ...identity(4, { 1: 7001, 2: 7002, 3: 7003, 4: 7004 }),
      joined: true,
    };
    const first = await open(dir, joining);
    assert.equal(first.identity.joined, true);
    await close(first);
    const held = await readIdentity(dir);
    assert.equal(held?.joined, true);
    // The cluster grew meanwhile: a restart with a longer --peers (and no --join) is fine,
    // and the data dir still says how it began.
    const again = await open(dir, identity(4, { 1: 7001, 2: 7002, 3: 7003, 4: 7004, 5: 7005 }));
    assert.equal(again.identity.joined, true);
    await close(again);
    // Still one node id and one cluster.
    assert.match(await refused(dir, { ...joining, nodeId: 5 }), /another node id/);
  });
});

Deno.test("a joined identity keeps its bootstrap voters through the file; a bootstrapped one is written as before", () => {
  const joined: DataDirIdentity = {
    ...identity(4, { 1: 7001, 4: 7004 }),
    joined: true,
    bootstrap: [1, 2, 3],
  };
  assert.deepStrictEqual(decodeIdentity(encodeIdentity(joined)), joined);
  const text = new TextDecoder().decode(encodeIdentity(THREE));
  assert.ok(!text.includes("joined") && !text.includes("bootstrap"), text);
  const bad = new TextEncoder().encode(
    text.replace('"clusterId"', '"bootstrap": [0], "clusterId"'),
  );
  assert.throws(() => decodeIdentity(bad), /"bootstrap" is not a non-empty list of node ids/);
});
