/**
 * The client library runs on Node: bundled into one ES module, `examples/client_node/
 * example.mjs` puts, ranges and takes a lock on a real node under Node's own runtime.
 *
 * @module
 */

import assert from "node:assert/strict";
import { REPO_ROOT, text, withCluster } from "../e2e/_harness.ts";

Deno.test("the client library bundled for Node puts, ranges and locks", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-node-client-" });
  try {
    const bundle = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "--quiet",
        "--frozen",
        "-o",
        `${dir}/raftkv-client.mjs`,
        "src/client/mod.ts",
      ],
      cwd: REPO_ROOT,
      stderr: "piped",
    }).output();
    assert.equal(bundle.code, 0, text(bundle.stderr));
    await Deno.copyFile(`${REPO_ROOT}/examples/client_node/example.mjs`, `${dir}/example.mjs`);
    await withCluster({ nodes: 1 }, async (c) => {
      await c.leader();
      const out = await new Deno.Command("node", {
        args: [`${dir}/example.mjs`, c.endpoint(1)],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, text(out.stderr));
      const result = JSON.parse(text(out.stdout));
      assert.deepEqual(result.keys, ["from-node/greeting"]);
      assert.equal(result.value, "hello");
      assert.match(result.locked, /^locks\/from-node\/\d{20}$/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
