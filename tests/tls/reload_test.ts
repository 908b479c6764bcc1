/**
 * The reloader: SIGHUP reloads at once (here with polling set to an hour, so only
 * the signal can have done it); a reload that keeps failing the same way is logged
 * once, and its recovery once.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Logger } from "../../src/raft/logger.ts";
import { type Reloadable, Reloader } from "../../src/tls/reload.ts";
import { waitFor } from "../e2e/_harness.ts";

function recordingLogger(lines: string[]): Logger {
  const push = (level: string) => (msg: string) => lines.push(`${level} ${msg}`);
  return { debug: push("debug"), info: push("info"), warn: push("warn"), error: push("error") };
}

Deno.test("SIGHUP reloads at once; a failure repeated is logged once, its recovery once", async () => {
  const lines: string[] = [];
  let calls = 0;
  let outcome: "changed" | "same" | "broken" = "changed";
  const item: Reloadable = {
    name: "test files",
    reload: () => {
      calls++;
      if (outcome === "broken") return Promise.reject(new Error("half-written"));
      return Promise.resolve(outcome === "changed");
    },
    describe: () => ({}),
  };
  const reloader = new Reloader([item], recordingLogger(lines));
  reloader.start(3_600_000, true);
  try {
    Deno.kill(Deno.pid, "SIGHUP");
    await waitFor("a reload on SIGHUP", () => calls >= 1);
    assert.deepEqual(lines, ["info reloaded test files"]);

    outcome = "broken";
    await reloader.reloadNow("poll");
    await reloader.reloadNow("poll");
    outcome = "same";
    await reloader.reloadNow("poll");
    await reloader.reloadNow("poll");
    assert.deepEqual(lines, [
      "info reloaded test files",
      "warn cannot reload test files: keeping the ones in use",
      "info test files readable again, unchanged",
    ]);
  } finally {
    await reloader.stop();
  }
});
