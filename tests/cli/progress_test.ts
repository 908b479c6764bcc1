/**
 * The progress line of long tasks: rewritten in place on a terminal, nothing at
 * all elsewhere (CI, pipes).
 *
 * @module
 */

import assert from "node:assert/strict";
import { formatSeconds, type ProgressSink, terminalProgress } from "../../src/cli/progress.ts";

function sink(terminal: boolean): ProgressSink & { text: () => string } {
  const chunks: Uint8Array[] = [];
  return {
    isTerminal: () => terminal,
    writeSync: (b) => {
      chunks.push(b.slice());
      return b.length;
    },
    text: () => chunks.map((c) => new TextDecoder().decode(c)).join(""),
  };
}

Deno.test("on a terminal, each update replaces the line and clear erases it", () => {
  const s = sink(true);
  const p = terminalProgress(s);
  assert.equal(p.live, true);
  p.update("10 ops");
  p.update("20 ops");
  p.clear();
  assert.equal(s.text(), "\r\x1b[2K10 ops\r\x1b[2K20 ops\r\x1b[2K");
});

Deno.test("anywhere else (CI, a pipe) progress writes nothing", () => {
  const s = sink(false);
  const p = terminalProgress(s);
  assert.equal(p.live, false);
  p.update("10 ops");
  p.clear();
  assert.equal(s.text(), "");
});

Deno.test("durations read as seconds, then minutes and seconds", () => {
  assert.equal(formatSeconds(4_400), "4 s");
  assert.equal(formatSeconds(245_000), "4 min 5 s");
  assert.equal(formatSeconds(-5), "0 s");
});
