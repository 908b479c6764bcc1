/**
 * `deno task node` with a data dir outside what its permissions grant (./data) is
 * a usage error, as documented: exit status 2 and one short line that says what
 * to do, not a stack trace or a paragraph.
 *
 * @module
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "./_harness.ts";

Deno.test("deno task node with a data dir outside ./data exits 2 with one line saying how to grant it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv_grant_" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "node", "--data-dir", `${dir}/node`],
      cwd: REPO_ROOT,
      env: { NO_COLOR: "1" },
      stdin: "null",
    }).output();
    // `deno task` echoes the command it runs first ("Task node deno run ..."): not the node's.
    const lines = new TextDecoder().decode(out.stderr).split("\n")
      .filter((l) => l !== "" && !l.startsWith("Task node "));
    assert.equal(out.code, 2, lines.join("\n"));
    assert.deepEqual(lines, [
      `error: Cannot use data dir ${dir}/node: Deno's permissions do not grant it (\`deno task ` +
      `node\` grants ./data only); run with --allow-read=${dir}/node --allow-write=${dir}/node ` +
      `instead (README.md, "Running a node")`,
    ]);
    // Nothing was created where it was not allowed.
    await assert.rejects(Deno.stat(`${dir}/node`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
