/**
 * A new user's first screen is clean: no `deno task` prints Deno's boxed warning
 * "Ignored build scripts for packages" before doing anything. Deno prints it, on
 * the first run with an empty cache, for every package in deno.lock that has
 * npm lifecycle scripts nobody decided about. Two have them, and neither script
 * does anything Deno needs, so deno.json denies them (`allowScripts.deny`):
 *
 * - `@bufbuild/buf`'s postinstall (install.js) replaces its JavaScript launcher
 *   with a link to the platform binary, an optimisation: the launcher finds the
 *   binary in the platform package Deno installs (`deno run -A @bufbuild/buf` works).
 * - `protobufjs`'s postinstall (via @grpc/grpc-js, tests only) warns when a
 *   dependent's version range uses another scheme: a message, nothing installed.
 *
 * This test makes the decision a rule: any package in deno.lock with scripts must
 * be listed, allowed or denied, so a new dependency cannot bring the warning back
 * unnoticed. (Checked by hand too: `DENO_DIR=$(mktemp -d) deno task client --help`
 * in a fresh clone prints the help and nothing before it.)
 *
 * @module
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "../e2e/_harness.ts";

Deno.test("every npm package in deno.lock with lifecycle scripts is decided in deno.json", async () => {
  const lock = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}deno.lock`));
  const config = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}deno.json`));
  const withScripts = Object.entries(lock.npm as Record<string, { scripts?: boolean }>)
    .filter(([, p]) => p.scripts === true)
    // "@bufbuild/buf@1.75.0" -> "@bufbuild/buf"
    .map(([key]) => key.slice(0, key.lastIndexOf("@")));
  assert.ok(withScripts.length > 0, 'deno.lock marks packages with scripts ("scripts": true)');
  const decided = new Set<string>(
    [...(config.allowScripts?.deny ?? []), ...(config.allowScripts?.allow ?? [])].map((s: string) =>
      s.replace(/^npm:/, "")
    ),
  );
  for (const name of withScripts) {
    assert.ok(
      decided.has(name),
      `${name} has npm lifecycle scripts: decide in deno.json's allowScripts whether they run ` +
        `(deny them if Deno does not need them), or every first run prints a warning`,
    );
  }
});
