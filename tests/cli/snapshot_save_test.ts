/**
 * `deno task client snapshot save FILE`: the backup lands in FILE only whole and
 * verified, from the first endpoint that serves one; a path that cannot be written
 * is a usage error said at once; a damaged or short stream leaves no FILE and no
 * `.part`. The endpoints are the real ClusterService (cluster_service.ts) in memory,
 * in front of a fake node whose backup the test chooses.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  createRouterTransport,
  type ServiceImpl,
} from "@connectrpc/connect";
import { type EndpointClients, EXIT, runCommand } from "../../src/cli/commands.ts";
import { parseClientArgs } from "../../src/cli/main.ts";
import { ClusterService, SnapshotSaveResponseSchema } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { KVService } from "../../src/gen/raftkv/v1/kv_pb.ts";
import type { Snapshot } from "../../src/raft/types.ts";
import { decodeSnapshotFile, encodeSnapshotFile } from "../../src/snapshot/file.ts";
import { clusterService } from "../../src/server/cluster_service.ts";
import { NodeError } from "../../src/server/node.ts";
import { confStateOf } from "../../src/raft/types.ts";

function snapshotOf(dataBytes: number): Snapshot {
  const data = new Uint8Array(dataBytes).map((_, i) => (i * 7 + 1) & 0xff);
  return { meta: { index: 1234, term: 5, conf: confStateOf([1, 2, 3]) }, data };
}

type Endpoint = Partial<ServiceImpl<typeof ClusterService>>;

/** The real ClusterService of a node whose backup is `backup`. */
function node(backup: () => Promise<Snapshot>): Endpoint {
  const impl = clusterService({
    status: () => {
      throw new Error("not used");
    },
    fingerprints: () => ({ state: "", chain: "" }),
    bootstrap: [],
    backupSnapshot: backup,
    membership: () => {
      throw new Error("not used");
    },
    changeMembership: () => Promise.reject(new Error("not used")),
    transferLeadership: () => Promise.reject(new Error("not used")),
  });
  return { snapshotSave: impl.snapshotSave };
}

/** An endpoint that answers every call UNAVAILABLE, as a node that is shutting down. */
const unavailable: Endpoint = {
  // deno-lint-ignore require-yield
  async *snapshotSave() {
    throw new ConnectError("node 1 is shutting down", Code.Unavailable);
  },
};

/** Runs `snapshot save FILE` against endpoints a, b, ... served by `impls`. */
async function save(file: string, ...impls: Endpoint[]) {
  const endpoints = impls.map((_, k) => `127.0.0.1:${7001 + k}`);
  const clients = (endpoint: string): EndpointClients => {
    const impl = impls[endpoints.indexOf(endpoint)]!;
    const transport = createRouterTransport((r) => r.service(ClusterService, impl));
    return {
      kv: createClient(KVService, transport),
      cluster: createClient(ClusterService, transport),
    };
  };
  return await runCommand({ name: "snapshot_save", file }, {
    endpoints,
    timeoutMs: 10_000,
    clients,
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("snapshot save writes the node's snapshot to FILE, verified, in chunks of at most 1 MiB", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "backup.snap");
    const snapshot = snapshotOf(2_300_000);
    const sizes: number[] = [];
    const real = node(() => Promise.resolve(snapshot));
    const counting: Endpoint = {
      async *snapshotSave(req, ctx) {
        for await (const r of real.snapshotSave!(req, ctx)) {
          sizes.push(r.chunk?.length ?? 0);
          yield r;
        }
      },
    };
    const out = await save(file, counting);
    const size = encodeSnapshotFile(snapshot).length;
    assert.deepEqual(out, {
      stdout:
        `Saved snapshot at index 1234, term 5 (${size} bytes) from 127.0.0.1:7001 to ${file}\n`,
      stderr: "",
      exitCode: EXIT.OK,
    });
    assert.deepEqual(sizes, [1048576, 1048576, size - 2 * 1048576]);
    assert.deepEqual(decodeSnapshotFile(await Deno.readFile(file), file), snapshot);
    assert.equal(await exists(`${file}.part`), false);
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("snapshot save goes on to the next endpoint when one is unavailable", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "b.snap");
    const out = await save(file, unavailable, node(() => Promise.resolve(snapshotOf(10))));
    assert.equal(out.exitCode, EXIT.OK, out.stderr);
    assert.match(out.stdout, /from 127\.0\.0\.1:7002 to /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a FILE that cannot be written is a usage error, said before any transfer", async () => {
  const dir = await Deno.makeTempDir();
  let asked = 0;
  const counted = node(() => {
    asked++;
    return Promise.resolve(snapshotOf(10));
  });
  try {
    const missing = join(dir, "no-such-dir", "b.snap");
    const a = await save(missing, counted);
    assert.equal(a.exitCode, EXIT.USAGE);
    assert.equal(
      a.stderr,
      `error: Cannot save snapshot to ${missing}: cannot create ${missing}.part: directory ` +
        `${join(dir, "no-such-dir")} does not exist\n`,
    );
    const b = await save(dir, counted);
    assert.equal(b.exitCode, EXIT.USAGE);
    assert.equal(b.stderr, `error: Cannot save snapshot to ${dir}: it is a directory\n`);
    assert.equal(asked, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a damaged or short stream leaves no FILE and no .part, and says why", async () => {
  const dir = await Deno.makeTempDir();
  const file = join(dir, "b.snap");
  const bytes = encodeSnapshotFile(snapshotOf(5000));
  /** An endpoint that streams `chunks` after a first response announcing the right file. */
  const streaming = (chunks: Uint8Array[]): Endpoint => ({
    async *snapshotSave() {
      yield create(SnapshotSaveResponseSchema, {
        index: 1234n,
        term: 5n,
        size: BigInt(bytes.length),
        chunk: chunks[0]!,
      });
      for (const c of chunks.slice(1)) yield create(SnapshotSaveResponseSchema, { chunk: c });
    },
  });
  try {
    const flipped = bytes.slice();
    flipped[3000]! ^= 1;
    const a = await save(file, streaming([flipped.subarray(0, 2000), flipped.subarray(2000)]));
    assert.equal(a.exitCode, EXIT.FAILED);
    assert.match(
      a.stderr,
      /^error: the snapshot from 127\.0\.0\.1:7001 does not check out: Cannot read snapshot .*b\.snap\.part: checksum mismatch/,
    );
    const b = await save(file, streaming([bytes.subarray(0, 2000)]));
    assert.equal(b.exitCode, EXIT.FAILED);
    assert.match(b.stderr, /the stream ended after 2000 of the \d+ bytes announced/);
    const c = await save(file, streaming([bytes, new Uint8Array(1)]));
    assert.equal(c.exitCode, EXIT.FAILED);
    assert.match(c.stderr, /the node sent more than the \d+ bytes it announced/);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a node that has applied nothing yet says so", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = await save(
      join(dir, "b.snap"),
      node(() => Promise.reject(new NodeError("unavailable", "node 1 has applied nothing yet"))),
    );
    assert.equal(out.exitCode, EXIT.FAILED);
    assert.match(out.stderr, /127\.0\.0\.1:7001: unavailable: node 1 has applied nothing yet/);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("snapshot save FILE parses; anything else after snapshot is a usage error", () => {
  assert.deepEqual(parseClientArgs(["snapshot", "save", "x.snap"], {}).command, {
    name: "snapshot_save",
    file: "x.snap",
  });
  assert.throws(
    () => parseClientArgs(["snapshot", "load", "x"], {}),
    /unknown subcommand "load" \(expected snapshot save FILE\)/,
  );
  assert.throws(
    () => parseClientArgs(["snapshot", "save"], {}),
    /expected 2 arguments \(snapshot save FILE\), got 1/,
  );
  assert.throws(() => parseClientArgs(["snapshot", "save", ""], {}), /FILE must not be empty/);
});
