/**
 * The CLI over TLS, against one node with client certificates and a policy:
 * --cacert/--cert/--key (or RAFTKV_CACERT/CERT/KEY) write and read; plaintext to
 * the TLS port fails with a hint to pass --cacert; no certificate and a key outside
 * the client's prefix fail with the node's reason; all with exit code 3.
 *
 * @module
 */

import assert from "node:assert/strict";
import { REPO_ROOT, withCluster } from "../e2e/_harness.ts";
import { taskCommand } from "../deploy/_deploy.ts";
import { tlsCluster } from "./_tls_cluster.ts";

/** Runs `deno task client ARGS` with the task's permissions and `env`. */
async function client(args: string[], env: Record<string, string> = {}) {
  const task = taskCommand("client"); // deno run --allow-... src/cli/main.ts
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...task.slice(1), ...args],
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("CLI over TLS: flags or variables work; plaintext, no certificate, a foreign key are refused", async () => {
  const tls = await tlsCluster(
    1,
    `rules:\n  - identity: ops\n    admin: true\n  - identity: alice\n    read: ["app/"]\n    write: ["app/"]\n`,
  );
  try {
    const alice = await tls.pki.ca.client("alice", { file: "alice" });
    await withCluster(tls.options, async (c) => {
      await c.leader();
      const ep = ["--endpoints", c.endpoint(1), "--timeout-ms", "10000"];
      const ca = ["--cacert", tls.pki.ca.cert];
      const mine = [...ca, "--cert", alice.cert, "--key", alice.key];

      const put = await client([...ep, ...mine, "put", "app/k", "v1"]);
      assert.equal(put.code, 0, put.stderr);
      assert.match(put.stdout, /^OK \(index \d+\)/);

      const get = await client([...ep, "get", "app/k"], {
        RAFTKV_CACERT: tls.pki.ca.cert,
        RAFTKV_CERT: alice.cert,
        RAFTKV_KEY: alice.key,
      });
      assert.equal(get.code, 0, get.stderr);
      assert.equal(get.stdout, "v1\n");

      // The API commands (range, watch, txn, lease, lock) take the same TLS options.
      const range = await client([...ep, ...mine, "range", "--prefix", "app/"]);
      assert.equal(range.code, 0, range.stderr);
      assert.match(range.stdout, /app\/k/);

      const plain = await client([...ep, "--timeout-ms", "3000", "get", "app/k"]);
      assert.equal(plain.code, 3, plain.stderr);
      assert.match(plain.stderr, /hint: if the nodes serve TLS, pass --cacert/);

      const anon = await client([...ep, ...ca, "get", "app/k"]);
      assert.equal(anon.code, 3, anon.stderr);
      assert.match(anon.stderr, /unauthenticated: .*presented no client certificate/);

      const outside = await client([...ep, ...mine, "put", "etc/k", "v"]);
      assert.equal(outside.code, 3, outside.stderr);
      assert.match(
        outside.stderr,
        /permission_denied: .*client "alice" may not write key "etc\/k"/,
      );

      const lone = await client([...ep, "--cert", alice.cert, "get", "app/k"]);
      assert.equal(lone.code, 2, lone.stderr);
      assert.match(lone.stderr, /Cannot use --cert without --key/);
    });
  } finally {
    await tls.pki.cleanup();
  }
});
