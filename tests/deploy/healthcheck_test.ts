/**
 * `deploy/healthcheck.ts` against gRPC servers that answer what a node can
 * answer: `grpc.health.v1.Health/Check` SERVING or NOT_SERVING, or no health
 * service at all (the ClusterService/Status fallback, with and without a known
 * leader); and, as a process, against a closed port and a serving server, with
 * its exit codes. Live nodes are in `bundle_test.ts`.
 *
 * @module
 */

import * as assert from "node:assert/strict";
import * as http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { ClusterService, Role, StatusResponseSchema } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { Health } from "../../src/gen/health/v1/health_pb.ts";
import { checkHealth, ServingStatus } from "../../deploy/healthcheck.ts";
import { freePort, listenH2, REPO_ROOT } from "../e2e/_harness.ts";

interface FakeServer {
  readonly address: string;
  close(): Promise<void>;
}

/** A gRPC server on 127.0.0.1 with the given routes. */
async function fakeServer(routes: (r: ConnectRouter) => void): Promise<FakeServer> {
  const server = http2.createServer({}, connectNodeAdapter({ routes }));
  const listening = await listenH2(server);
  return {
    address: `127.0.0.1:${listening.port}`,
    close: listening.close,
  };
}

/** A server whose health service answers `status`. */
function healthServer(status: ServingStatus): Promise<FakeServer> {
  return fakeServer((r) => {
    r.service(Health, {
      check: (req) => {
        assert.equal(req.service, "");
        return { status };
      },
    });
  });
}

/** A server without a health service, whose Status names `leaderId`. */
function statusServer(leaderId: bigint): Promise<FakeServer> {
  return fakeServer((r) => {
    r.service(ClusterService, {
      status: () =>
        create(StatusResponseSchema, {
          id: 2n,
          role: leaderId === 2n ? Role.LEADER : Role.FOLLOWER,
          term: 7n,
          leaderId,
        }),
    });
  });
}

async function withServer(
  start: () => Promise<FakeServer>,
  fn: (address: string) => Promise<void>,
): Promise<void> {
  const s = await start();
  try {
    await fn(s.address);
  } finally {
    await s.close();
  }
}

/** Runs the script as Docker would: `deno run --allow-net=ADDR deploy/healthcheck.ts ADDR`. */
async function runScript(...args: string[]): Promise<{ code: number; out: string }> {
  const addr = args[0] ?? "127.0.0.1:7001";
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", `--allow-net=${addr}`, "deploy/healthcheck.ts", ...args],
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, out: text };
}

Deno.test("health service SERVING: healthy", async () => {
  await withServer(() => healthServer(ServingStatus.SERVING), async (address) => {
    const r = await checkHealth(address);
    assert.deepEqual(r, {
      healthy: true,
      via: "grpc.health.v1.Health",
      detail: `${address}: SERVING`,
    });
  });
});

Deno.test("health service NOT_SERVING: unhealthy, no fallback", async () => {
  await withServer(() => healthServer(ServingStatus.NOT_SERVING), async (address) => {
    const r = await checkHealth(address);
    assert.equal(r.healthy, false);
    assert.equal(r.via, "grpc.health.v1.Health");
    assert.match(r.detail, /NOT_SERVING/);
  });
});

Deno.test("no health service: falls back to Status, healthy when a leader is known", async () => {
  await withServer(() => statusServer(3n), async (address) => {
    const r = await checkHealth(address);
    assert.equal(r.healthy, true, r.detail);
    assert.equal(r.via, "raftkv.v1.ClusterService");
    assert.match(r.detail, /knows leader 3/);
  });
  await withServer(() => statusServer(0n), async (address) => {
    const r = await checkHealth(address);
    assert.equal(r.healthy, false, r.detail);
    assert.equal(r.via, "raftkv.v1.ClusterService");
    assert.match(r.detail, /knows no leader/);
  });
});

Deno.test("a server that answers neither: unhealthy", async () => {
  await withServer(() => fakeServer(() => {}), async (address) => {
    const r = await checkHealth(address);
    assert.equal(r.healthy, false);
    assert.equal(r.via, "none");
    assert.match(r.detail, /Unimplemented/);
  });
});

Deno.test("the script exits 0 when SERVING, 1 on a closed port, 2 on bad usage", async () => {
  await withServer(() => healthServer(ServingStatus.SERVING), async (address) => {
    const r = await runScript(address);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^healthy: .*SERVING/m);
  });
  const closed = `127.0.0.1:${freePort()}`;
  const r = await runScript(closed);
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /^unhealthy: .*(ECONNREFUSED|Unavailable)/m);
  assert.equal((await runScript(closed, "extra")).code, 2);
  assert.equal((await runScript("--help")).code, 0);
});
