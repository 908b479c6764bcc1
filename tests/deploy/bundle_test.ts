/**
 * The single-file build: `deno task bundle`'s bundles, built into a temp dir with
 * the task's own flags, run as the image runs them (the Dockerfile's CMD and
 * HEALTHCHECK, with `/app` and `/var/lib/raftkv` moved to temp dirs and the port
 * to an ephemeral one): a node serves, takes a Put and a Get, reports healthy and
 * exits 0 on SIGTERM; nodes dial their peers by host name, as in Compose and
 * Kubernetes; the health check fails for a node without a leader and a closed port.
 *
 * @module
 */

import * as assert from "node:assert/strict";
import { Role } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { EndpointClients, freePort, text, utf8, waitFor } from "../e2e/_harness.ts";
import { buildBundles, dockerImage, killAndWait, type Logged, spawnLogged } from "./_deploy.ts";

/** The image's paths, and where they are in this test. */
interface Place {
  /** Holds the bundles (the image's /app). */
  app: string;
  /** The node's data dir (the image's /var/lib/raftkv). */
  data: string;
}

/** The Dockerfile's CMD with its paths moved to `place`. */
function nodeArgv(place: Place): string[] {
  const { cmd } = dockerImage();
  return ["deno", "run", ...cmd.denoFlags, cmd.entry, ...cmd.args].map((a) =>
    a.replaceAll("/var/lib/raftkv", place.data).replace(/^\/app\//, `${place.app}/`)
  );
}

/** Starts a node from the bundle with the image's command and environment, plus `env`. */
function startNode(place: Place, env: Record<string, string>): Logged {
  const image = dockerImage();
  return spawnLogged(nodeArgv(place), {
    ...image.env,
    RAFTKV_HEARTBEAT_MS: "50",
    RAFTKV_ELECTION_MS: "300",
    ...env,
  });
}

/** Runs the image's HEALTHCHECK command against 127.0.0.1:`port`. */
async function healthcheck(app: string, port: number): Promise<{ code: number; out: string }> {
  const { healthcheck } = dockerImage();
  const [exe, ...args] = healthcheck.argv.map((a) =>
    a.replace(/^\/app\//, `${app}/`).replace(/127\.0\.0\.1:7001$/, `127.0.0.1:${port}`)
  );
  assert.equal(exe, "deno");
  assert.ok(args.includes(`--allow-net=127.0.0.1:${port}`), args.join(" "));
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  return {
    code: out.code,
    out: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr),
  };
}

/** Polls until the node's Status answers and `ok` holds for it. */
function waitStatus(
  c: EndpointClients,
  p: Logged,
  what: string,
  ok: (s: Awaited<ReturnType<EndpointClients["cluster"]["status"]>>) => boolean,
) {
  return waitFor(what, async () => {
    const exited = await Promise.race([p.done, Promise.resolve(undefined)]);
    if (exited !== undefined) {
      throw new Error(`the node exited (${exited.code}):\n${p.lines.join("\n")}`);
    }
    const s = await c.cluster.status({}, { timeoutMs: 1_000 });
    return ok(s) ? s : false;
  });
}

Deno.test("deno task bundle: nodes run from the single file as the image runs them", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "raftkv_bundle_" });
  const app = `${root}/app`;
  await Deno.mkdir(app);
  const running: Logged[] = [];
  const clients: EndpointClients[] = [];
  const connect = (port: number) => {
    const c = new EndpointClients(`127.0.0.1:${port}`);
    clients.push(c);
    return c;
  };
  try {
    const built = await buildBundles(app);
    assert.deepEqual([...built.keys()].sort(), ["healthcheck.js", "raftkv-node.js"]);

    await t.step(
      "one node: it leads, takes a Put and a Get, is healthy, exits 0 on SIGTERM",
      async () => {
        const port = freePort();
        const place = { app, data: `${root}/one` };
        const p = startNode(place, { RAFTKV_LISTEN: `127.0.0.1:${port}` });
        running.push(p);
        const c = connect(port);
        try {
          await waitStatus(c, p, "the node to lead", (s) => s.role === Role.LEADER);
          const put = await c.kv.put({ key: "greeting", value: utf8("hello") }, {
            timeoutMs: 5_000,
          });
          assert.ok(put.index > 0n);
          const got = await c.kv.get({ key: "greeting" }, { timeoutMs: 5_000 });
          assert.equal(got.found, true);
          assert.equal(text(got.value), "hello");

          const h = await healthcheck(app, port);
          assert.equal(h.code, 0, h.out);
          assert.match(h.out, /^healthy: /m);
          console.log(`health check of a serving node: ${h.out.trim()}`);
        } catch (err) {
          console.error(p.lines.join("\n"));
          throw err;
        } finally {
          await c.close();
        }
        p.child.kill("SIGTERM");
        const status = await p.done;
        assert.equal(status.code, 0, `exit code on SIGTERM; output:\n${p.lines.join("\n")}`);
        assert.ok(p.lines.some((l) => /shutting down.*SIGTERM/.test(l)), p.lines.join("\n"));
        // What the node wrote is its data dir's: the write-ahead log, its snapshots, its
        // identity and the lock file.
        const entries = [...Deno.readDirSync(place.data)].map((e) => e.name).sort();
        assert.deepEqual(entries, ["LOCK", "identity.json", "snap", "wal"]);
      },
    );

    await t.step(
      "the health check fails for a node without a leader, and a closed port",
      async () => {
        const port = freePort();
        const gone = [freePort(), freePort()];
        const p = startNode({ app, data: `${root}/alone` }, {
          RAFTKV_LISTEN: `127.0.0.1:${port}`,
          RAFTKV_PEERS: [port, ...gone].map((x, i) => `${i + 1}=127.0.0.1:${x}`).join(","),
        });
        running.push(p);
        const c = connect(port);
        try {
          await waitStatus(c, p, "the node to answer", () => true);
          const h = await healthcheck(app, port);
          assert.equal(h.code, 1, h.out);
          assert.match(h.out, /^unhealthy: .*(NOT_SERVING|knows no leader)/m);
        } finally {
          await c.close();
          await killAndWait(p, "SIGTERM");
        }
        const closed = await healthcheck(app, gone[0]!);
        assert.equal(closed.code, 1, closed.out);
        assert.match(closed.out, /^unhealthy: /m);
      },
    );

    await t.step(
      "three nodes dial each other by host name, as in Compose and Kubernetes",
      async () => {
        const ports = [freePort(), freePort(), freePort()];
        const peers = ports.map((port, i) => `${i + 1}=localhost:${port}`).join(",");
        const nodes = ports.map((port, i) =>
          startNode({ app, data: `${root}/n${i + 1}` }, {
            RAFTKV_ID: String(i + 1),
            RAFTKV_LISTEN: `127.0.0.1:${port}`,
            RAFTKV_PEERS: peers,
          })
        );
        running.push(...nodes);
        const cs = ports.map(connect);
        try {
          const leader = await waitFor("the three nodes to agree on a leader", async () => {
            const all = await Promise.all(
              cs.map((c) => c.cluster.status({}, { timeoutMs: 1_000 })),
            );
            const lead = all[0]!.leaderId;
            return lead !== 0n && all.every((s) => s.leaderId === lead && s.term === all[0]!.term)
              ? Number(lead)
              : false;
          });
          const follower = [1, 2, 3].find((id) => id !== leader)!;
          await cs[follower - 1]!.kv.put({ key: "k", value: utf8("v") }, { timeoutMs: 5_000 });
          const other = [1, 2, 3].find((id) => id !== leader && id !== follower)!;
          const got = await cs[other - 1]!.kv.get({ key: "k" }, { timeoutMs: 5_000 });
          assert.equal(text(got.value), "v");
        } catch (err) {
          nodes.forEach((p, i) => console.error(`--- node ${i + 1}\n${p.lines.join("\n")}`));
          throw err;
        } finally {
          await Promise.all(cs.map((c) => c.close()));
        }
        for (const p of nodes) p.child.kill("SIGTERM");
        const codes = (await Promise.all(nodes.map((p) => p.done))).map((s) => s.code);
        assert.deepEqual(codes, [0, 0, 0]);
      },
    );
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(running.map((p) => killAndWait(p)));
    await Deno.remove(root, { recursive: true });
  }
});
