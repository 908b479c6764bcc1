/**
 * `deno task bench:longrun` as a user runs it, shortly: with 64 clients (once a
 * connection each, past what a node accepts from one address, and the run then
 * ended with exit code 0 and no figures) it shares 16 connections and prints every
 * figure; asked for more connections than a node accepts, it says so and exits 2.
 * It proves the instrument runs; it asserts nothing about speed or memory.
 *
 * @module
 */

import assert from "node:assert/strict";
import { freeBase, runScript } from "./_scripts.ts";

/** Runs the bench with `args` on free ports; `both` is its output, for messages. */
async function longrun(
  args: string[],
): Promise<{ code: number; out: string; err: string; both: string }> {
  const r = await runScript([
    "--allow-run",
    "--allow-read",
    "--allow-write",
    "--allow-net",
    "--allow-env",
    "--allow-sys=loadavg",
    "scripts/bench_longrun.ts",
    ...args,
    "--base-port",
    String(freeBase([0, 1, 2, 1000, 1001, 1002])),
  ]);
  return { ...r, both: `stdout:\n${r.out}\nstderr:\n${r.err}` };
}

Deno.test("bench:longrun with 64 clients shares 16 connections and prints every figure", async () => {
  const r = await longrun(["--puts", "640", "--keys", "100", "--clients", "64"]);
  const both = r.both;
  assert.equal(r.code, 0, both);
  assert.match(r.out, /640 puts of 256 B over 100 keys, 64 clients on 16 connections/, both);
  assert.match(r.out, /640 puts in [\d.]+ s/, both);
  assert.match(r.out, /after the puts: node \d: RSS \d+ MB/, both);
  assert.match(r.out, /applied them [\d.]+ s after it was started/, both);
  assert.match(r.out, /full restart: the cluster served a write/, both);
  assert.doesNotMatch(r.err, /HTTP\/2 limit hit/, both);
});

Deno.test("bench:longrun --timeline prints where each restart's time went, from the nodes' lines", async () => {
  const r = await longrun(["--puts", "100", "--keys", "10", "--restarts", "2", "--timeline"]);
  const both = r.both;
  assert.equal(r.code, 0, both);
  assert.match(
    r.out,
    /node 1: runtime up \d+, modules \d+, WAL opened \d+, restored \d+, listening \d+ ms \(CPU \d+ ms\)/,
    both,
  );
  assert.match(
    r.out,
    /cluster: quorum listening \d+, all \d+, first campaign \d+, leader \d+/,
    both,
  );
  assert.match(r.out, /restart timeline over 2 restarts/, both);
  assert.match(r.out, /spawn -> first write answered\s+\d+/, both);
  // The nodes log at info for the timeline; the bench shows only --log-level's (warn).
  assert.doesNotMatch(r.err, / INFO /, both);
});

Deno.test("bench:longrun asked for more connections than a node accepts: names it, exits 2", async () => {
  const r = await longrun(["--clients", "64", "--connections", "64"]);
  assert.equal(r.code, 2, r.both);
  assert.match(r.err, /^error: --connections 64: a node accepts at most 64 connections/);
  assert.equal(r.out, "");
});
