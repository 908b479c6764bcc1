/**
 * A node started with bad flags refuses to start: it exits non-zero with one clear
 * `error:` line on stderr that names the problem, and no stack trace.
 *
 * @module
 */

import assert from "node:assert/strict";
import { freePort, runNodeToExit } from "./_harness.ts";

/** Runs a node with `args` (and a throwaway data dir) and checks how it refuses to start. */
async function assertRefused(args: string[], wanted: RegExp): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "raftkv_e2e_flags_" });
  try {
    const res = await runNodeToExit([...args, "--data-dir", dataDir]);
    assert.notEqual(res.code, 0, `exit code 0 for ${args.join(" ")}; output:\n${res.output}`);
    assert.match(res.output, /^error: /m, `no "error:" line; output:\n${res.output}`);
    assert.match(res.output, wanted, `output does not explain the problem:\n${res.output}`);
    assert.doesNotMatch(res.output, /^\s+at /m, `stack trace in output:\n${res.output}`);
    assert.doesNotMatch(res.output, /Uncaught|uncaught/, `uncaught error:\n${res.output}`);
    // Nothing was started, so nothing was written.
    const entries = [];
    for await (const e of Deno.readDir(dataDir)) entries.push(e.name);
    assert.deepEqual(entries, [], `the node wrote to its data dir: ${entries.join(", ")}`);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
}

Deno.test("bad flags: a node refuses to start with a clear message and no stack trace", async (t) => {
  const a = `127.0.0.1:${freePort()}`;
  const b = `127.0.0.1:${freePort()}`;

  await t.step("--peers 1=x (an address without a port)", async () => {
    await assertRefused(["--id", "1", "--listen", a, "--peers", "1=x"], /--peers.*"x".*port/);
  });

  await t.step("--peers with a duplicate id", async () => {
    await assertRefused(
      ["--id", "1", "--listen", a, "--peers", `1=${a},1=${b}`],
      /--peers.*id 1 appears more than once/,
    );
  });

  await t.step("--id not in --peers", async () => {
    await assertRefused(
      ["--id", "3", "--listen", a, "--peers", `1=${a},2=${b}`],
      /--peers.*id 3 is not in it/,
    );
  });

  await t.step("an unknown flag", async () => {
    await assertRefused(["--id", "1", "--listen", a, "--bogus", "1"], /unknown flag "--bogus"/);
  });
});
