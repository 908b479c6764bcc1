/**
 * `deno task test` runs every test under tests/, and `deno task test PATH` runs
 * only PATH (scripts/test.ts), where the plain task used to run everything and
 * then PATH too.
 *
 * @module
 */

import assert from "node:assert/strict";
import { denoTestArgs } from "../../scripts/test.ts";

const only = (...existing: string[]) => (p: string) => existing.includes(p);

Deno.test("denoTestArgs: tests/ without a path, the paths alone with one", () => {
  assert.deepEqual(denoTestArgs([], only()), ["test", "-A", "tests/"]);
  assert.deepEqual(denoTestArgs(["tests/cli"], only("tests/cli")), ["test", "-A", "tests/cli"]);
  assert.deepEqual(
    denoTestArgs(["tests/raft", "--filter", "PreVote"], only("tests/raft")),
    ["test", "-A", "tests/raft", "--filter", "PreVote"],
  );
  // Flags alone (their values name no file): over tests/.
  assert.deepEqual(
    denoTestArgs(["--filter", "status"], only("tests/cli")),
    ["test", "-A", "--filter", "status", "tests/"],
  );
});

Deno.test("deno task test PATH runs only the tests in PATH", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "test", "tests/cli/table_test.ts"],
    cwd: new URL("../../", import.meta.url),
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, stdout);
  assert.deepEqual(
    stdout.split("\n").filter((l) => l.startsWith("running ")).map((l) => l.replace(/\d+/, "N")),
    ["running N tests from ./tests/cli/table_test.ts"],
  );
  assert.match(stdout, /^ok \| \d+ passed.* \| 0 failed/m);
});
