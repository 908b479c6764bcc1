/**
 * The Docker health check probes a TLS node with `--tls`, with no certificate of
 * its own and no CA file (Health is open, and it probes its own node); without
 * `--tls` it reports the node unhealthy rather than hanging.
 *
 * @module
 */

import assert from "node:assert/strict";
import { REPO_ROOT, withCluster } from "../e2e/_harness.ts";
import { tlsCluster } from "./_tls_cluster.ts";

async function healthcheck(args: string[], endpoint: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", `--allow-net=${endpoint}`, "deploy/healthcheck.ts", ...args, endpoint],
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
}

Deno.test("healthcheck --tls: a TLS node with client certificates is healthy; plaintext says unhealthy", async () => {
  const tls = await tlsCluster(1);
  try {
    await withCluster(tls.options, async (c) => {
      await c.leader();
      const ok = await healthcheck(["--tls"], c.endpoint(1));
      assert.equal(ok.code, 0, ok.stdout);
      assert.match(ok.stdout, /^healthy: .*SERVING \(grpc\.health\.v1\.Health\)/);
      const plain = await healthcheck([], c.endpoint(1));
      assert.equal(plain.code, 1, plain.stdout);
      assert.match(plain.stdout, /^unhealthy: /);
    });
  } finally {
    await tls.pki.cleanup();
  }
});
