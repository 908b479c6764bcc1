/**
 * Hostile disks: a full one, and a damaged write-ahead log.
 *
 * **A full disk.** The node's data dir is put on a 1 MiB tmpfs and written to until
 * the disk is full. A WAL write that fails leaves the end of the log unknown (part
 * of the records may be on disk; after a failed fsync the kernel may have dropped
 * pages it reported written), so the node does not go on writing: the write that
 * hit the full disk, and every call after it, are answered UNAVAILABLE naming the
 * problem ("No space left on device"), the node logs it and exits 1 (src/server/
 * node.ts keeps answering for FAIL_GRACE_MS before it reports the failure, so that
 * callers get the reason instead of a dropped connection). Nothing acknowledged is
 * lost: once there is room again, the node restarts on the same directory, cuts the
 * torn tail, and every acknowledged write reads back. A node asked to start on a
 * disk with no room at all refuses with one clear line. Mounting needs root (or
 * CAP_SYS_ADMIN), which CI has; the WAL's own unit test (tests/wal/wal_test.ts, ENOSPC
 * injected through WalIo) covers the WAL side on any machine.
 *
 * **A damaged WAL, end to end.** tests/wal/damage_property_test.ts checks the WAL
 * alone on 200 seeded damages. Here, 20 seeded damages (truncation, a flipped byte,
 * a zeroed run, garbage appended) are applied to a stopped node's WAL, and the node
 * is started on each: it either refuses (exit 1, one `error:` line naming the
 * segment file and the offset, the file left as it was) or serves, and then what it
 * serves is exactly a prefix of the acknowledged writes. A truncation or appended
 * garbage is always a torn tail, so those must recover. Seeded: replay with
 * `RAFTKV_DISK_SEED=<seed>`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { Role } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { randomInt, seededRandom } from "../../src/raft/rand.ts";
import {
  EndpointClients,
  freePort,
  lastWalSegment,
  runNodeToExit,
  type SpawnedProcess,
  spawnNode,
  text,
  utf8,
  waitFor,
  withCluster,
} from "./_harness.ts";

// -----------------------------------------------------------------------------
// A node process on a given data dir, outside the cluster harness.

interface Solo {
  readonly port: number;
  readonly proc: SpawnedProcess;
  readonly lines: string[];
  readonly client: EndpointClients;
  exit: Deno.CommandStatus | undefined;
}

/**
 * Starts a one-node cluster on `dataDir`. A data dir remembers its members, this
 * node's address included, so a restart on the same dir passes the same `port`.
 */
function startSolo(dataDir: string, port = freePort()): Solo {
  const lines: string[] = [];
  const proc = spawnNode([
    "--id",
    "1",
    "--listen",
    `127.0.0.1:${port}`,
    "--data-dir",
    dataDir,
    "--heartbeat-ms",
    "50",
    "--election-ms",
    "500",
  ], (l) => lines.push(l));
  const solo: Solo = {
    port,
    proc,
    lines,
    client: new EndpointClients(`127.0.0.1:${port}`),
    exit: undefined,
  };
  void proc.done.then((s) => solo.exit = s);
  return solo;
}

/** Waits until the node leads (a one-node cluster elects itself), or it exits ("exited"). */
async function leadsOrExits(s: Solo): Promise<"leader" | "exited"> {
  return await waitFor("the node to lead or exit", async () => {
    if (s.exit !== undefined) return "exited" as const;
    const st = await s.client.cluster.status({}, { timeoutMs: 1_000 });
    return st.role === Role.LEADER ? "leader" as const : false;
  });
}

async function stopSolo(s: Solo): Promise<Deno.CommandStatus> {
  await s.client.close();
  if (s.exit === undefined) {
    try {
      s.proc.child.kill("SIGTERM");
    } catch {
      // Exited meanwhile.
    }
  }
  return await s.proc.done;
}

// -----------------------------------------------------------------------------
// A full disk.

async function run(cmd: string, ...args: string[]): Promise<{ ok: boolean; err: string }> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
    return { ok: out.success, err: new TextDecoder().decode(out.stderr).trim() };
  } catch (err) {
    return { ok: false, err: (err as Error).message };
  }
}

Deno.test({
  name:
    "a full disk: writes fail with UNAVAILABLE naming it, the node stops cleanly, nothing acknowledged is lost",
  fn: async () => {
    const mnt = await Deno.makeTempDir({ prefix: "raftkv_full_disk_" });
    const m = await run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt);
    assert.ok(m.ok, `this test mounts a 1 MiB tmpfs and needs root (CI runs as root): ${m.err}`);
    const solos: Solo[] = [];
    try {
      const dataDir = `${mnt}/node`;
      const node = startSolo(dataDir);
      solos.push(node);
      assert.equal(await leadsOrExits(node), "leader", node.lines.join("\n"));

      // Fill the disk: 8000-byte values until a write fails.
      const acked = new Map<string, Uint8Array>();
      let failure: unknown;
      for (let i = 0; i < 400 && failure === undefined; i++) {
        const key = `k${i}`;
        const value = new Uint8Array(8000).fill(i % 251);
        try {
          await node.client.kv.put({ key, value }, { timeoutMs: 10_000 });
          acked.set(key, value);
        } catch (err) {
          failure = err;
        }
      }
      assert.ok(failure !== undefined, "1 MiB took 400 writes of 8000 bytes");
      assert.ok(acked.size > 50, `only ${acked.size} writes fit`);
      assert.ok(failure instanceof ConnectError, String(failure));
      assert.equal(failure.code, Code.Unavailable, failure.message);
      assert.match(failure.message, /No space left on device/);

      // It stops with a clear message, and logs what happened.
      const exit = await waitFor("the node to exit", () => node.exit, { timeoutMs: 20_000 });
      assert.equal(exit.code, 1);
      const out = node.lines.join("\n");
      assert.match(
        out,
        /ERROR .*wal: write failed; refusing further saves .*No space left on device/,
      );
      assert.match(
        out,
        /^error: Cannot save to WAL segment \S+ at offset \d+: No space left on device/m,
      );
      assert.doesNotMatch(out, /^\s+at /m, "stack trace");

      // Asked to start on the full disk with a fresh data dir: refused in one line.
      const res = await runNodeToExit([
        "--listen",
        `127.0.0.1:${freePort()}`,
        "--data-dir",
        `${mnt}/fresh`,
      ]);
      assert.equal(res.code, 1, res.output);
      assert.match(
        res.output,
        new RegExp(`^error: Cannot use data dir ${mnt}/fresh: No space left on device`, "m"),
      );
      assert.doesNotMatch(res.output, /^\s+at /m, "stack trace");

      // Room again: the same directory recovers every acknowledged write.
      assert.ok((await run("mount", "-o", "remount,size=8m", mnt)).ok);
      const again = startSolo(dataDir, node.port);
      solos.push(again);
      assert.equal(await leadsOrExits(again), "leader", again.lines.join("\n"));
      for (const [key, value] of acked) {
        const got = await again.client.kv.get({ key }, { timeoutMs: 10_000 });
        assert.ok(got.found, `acknowledged ${key} is lost`);
        assert.deepEqual(new Uint8Array(got.value), value, `acknowledged ${key} reads back wrong`);
      }
      await again.client.kv.put({ key: "after", value: utf8("room again") }, { timeoutMs: 10_000 });
      assert.equal((await stopSolo(again)).code, 0);
    } finally {
      await Promise.all(solos.map(stopSolo));
      await run("umount", mnt);
      await Deno.remove(mnt, { recursive: true });
    }
  },
});

// -----------------------------------------------------------------------------
// A damaged WAL, end to end.

const TRIALS = 20;
const KEYS = 30;
const PARALLEL = 5;

type Damage = { what: string; bytes: Uint8Array; mustRecover: boolean };

function damage(random: () => number, pristine: Uint8Array): Damage {
  const bytes = pristine.slice();
  const at = randomInt(random, 0, bytes.length);
  switch (randomInt(random, 0, 4)) {
    case 0:
      return { what: `truncate to ${at}`, bytes: bytes.subarray(0, at), mustRecover: true };
    case 1:
      bytes[at]! ^= randomInt(random, 1, 256);
      return { what: `flip byte ${at}`, bytes, mustRecover: false };
    case 2: {
      const len = randomInt(random, 1, 64);
      bytes.fill(0, at, at + len);
      return { what: `zero ${len} bytes at ${at}`, bytes, mustRecover: false };
    }
    default: {
      const junk = new Uint8Array(randomInt(random, 1, 100)).map(() => randomInt(random, 0, 256));
      const out = new Uint8Array(bytes.length + junk.length);
      out.set(bytes);
      out.set(junk, bytes.length);
      return { what: `append ${junk.length} random bytes`, bytes: out, mustRecover: true };
    }
  }
}

Deno.test("a damaged WAL (20 seeded damages): the node recovers a prefix of the acknowledged writes, or refuses naming the damage", async () => {
  const seedText = Deno.env.get("RAFTKV_DISK_SEED");
  const seed = seedText !== undefined ? Number(seedText) : Math.floor(Math.random() * 2 ** 31);
  const random = seededRandom(seed);
  await withCluster({ nodes: 1 }, async (c) => {
    await c.leader();
    const values: string[] = [];
    for (let i = 0; i < KEYS; i++) {
      values.push(`value ${i} `.repeat(1 + (i % 7)));
      await c.kv(1).put({ key: `k${i}`, value: utf8(values[i]!) }, { timeoutMs: 10_000 });
    }
    assert.equal((await c.stop(1)).code, 0);
    const segment = await lastWalSegment(c.walDir(1));
    const name = basename(segment);
    const pristine = await Deno.readFile(segment);
    const damages = Array.from({ length: TRIALS }, () => damage(random, pristine));
    const outcomes = { recovered: 0, refused: 0 };

    const trial = async (t: number): Promise<void> => {
      const d = damages[t]!;
      const what = `trial ${t} (${d.what}; seed ${seed}, replay with RAFTKV_DISK_SEED=${seed})`;
      const dir = join(c.rootDir, `trial${t}`);
      await Deno.mkdir(join(dir, "wal"), { recursive: true });
      await Deno.writeFile(join(dir, "wal", name), d.bytes);
      const s = startSolo(dir);
      let refused = false;
      let exit: Deno.CommandStatus;
      try {
        if (await leadsOrExits(s) === "exited") {
          refused = true;
          const out = s.lines.join("\n");
          assert.ok(!d.mustRecover, `${what}: refused a torn tail:\n${out}`);
          assert.equal(s.exit?.code, 1, `${what}:\n${out}`);
          assert.match(
            out,
            new RegExp(`^error: Cannot open WAL segment ${name}: .* at offset \\d+`, "m"),
            what,
          );
          assert.doesNotMatch(out, /^\s+at /m, `${what}: stack trace`);
          assert.deepEqual(
            await Deno.readFile(join(dir, "wal", name)),
            d.bytes,
            `${what}: file changed`,
          );
          outcomes.refused++;
          return;
        }
        // It serves: exactly k0..k(m-1), with their values, for some m.
        const present: boolean[] = [];
        for (let i = 0; i < KEYS; i++) {
          const got = await s.client.kv.get({ key: `k${i}` }, { timeoutMs: 10_000 });
          present.push(got.found);
          if (got.found) assert.equal(text(got.value), values[i], `${what}: k${i}`);
        }
        const m = present.indexOf(false) < 0 ? KEYS : present.indexOf(false);
        assert.ok(present.slice(m).every((p) => !p), `${what}: not a prefix: ${present.join(",")}`);
        if (d.what.startsWith("append")) assert.equal(m, KEYS, `${what}: lost writes`);
        outcomes.recovered++;
      } finally {
        exit = await stopSolo(s);
      }
      // A refusal exits 1 on its own; a node that served stops cleanly on SIGTERM.
      assert.equal(exit.code, refused ? 1 : 0, `${what}: exit code`);
    };
    for (let t = 0; t < TRIALS; t += PARALLEL) {
      await Promise.all(
        Array.from({ length: Math.min(PARALLEL, TRIALS - t) }, (_, k) => trial(t + k)),
      );
    }
    console.log(
      `WAL damage seed ${seed}: ${outcomes.recovered} recovered a prefix, ${outcomes.refused} refused`,
    );
  });
});
