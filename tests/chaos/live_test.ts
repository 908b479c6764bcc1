/**
 * The live chaos mode (live.ts) against a cluster it did not start: the operator
 * restarts a follower while the checked workload runs, and the run must say PASS,
 * leave no key of its own behind and leave every other key alone; and a run whose
 * prefix is already taken must refuse to start, touching nothing.
 *
 * @module
 */

import assert from "node:assert/strict";
import { text, utf8, waitFor, withCluster } from "../e2e/_harness.ts";
import { runLive } from "./live.ts";

Deno.test("chaos live: a run across a follower's restart is linearizable and cleans up after itself", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const leader = await c.leader();
    // Somebody else's data, which the run must not touch.
    await c.kv(leader).put({ key: "app/config", value: utf8("v1") }, { timeoutMs: 5_000 });
    const follower = c.ids.find((id) => id !== leader)!;
    const outDir = await Deno.makeTempDir({ prefix: "raftkv_chaos_live_test_" });
    const stop = new AbortController();
    // The operator's own action during the run: restart a follower once the run
    // has written something.
    const operator = (async () => {
      await waitFor("the live run's first write", async () => {
        for await (const _ of Deno.readDir(outDir)) return true;
        return false;
      }, { timeoutMs: 60_000, intervalMs: 200 });
      await c.kill(follower, "SIGTERM");
      await c.restart(follower);
    })().catch((err) => {
      stop.abort();
      throw err;
    });
    const result = await runLive({
      endpoints: c.ids.map((id) => c.endpoint(id)),
      durationMs: 8_000,
      seed: 7,
      outDir,
      signal: stop.signal,
    });
    await operator;
    console.log(result.summary);
    assert.ok(result.verdict.pass, `live run FAILED:\n  ${result.verdict.reasons.join("\n  ")}`);
    const acked = result.history.filter((op) => op.kind !== "get" && op.outcome === "ok");
    assert.ok(acked.length > 0, "the run acknowledged no write at all");
    assert.ok(result.keys.every((k) => k.startsWith(result.prefix)));
    // Every key of the run is gone, on every node (linearizable reads).
    for (const id of c.ids) {
      for (const key of result.keys) {
        const res = await c.kv(id).get({ key }, { timeoutMs: 5_000 });
        assert.equal(res.found, false, `node ${id} still has ${key}`);
      }
      const other = await c.kv(id).get({ key: "app/config" }, { timeoutMs: 5_000 });
      assert.equal(text(other.value), "v1", `node ${id} lost a key outside the prefix`);
    }
    await Deno.remove(outDir, { recursive: true });
  });
});

Deno.test("chaos live: a run whose prefix already holds a key refuses to start and writes nothing", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const leader = await c.leader();
    await c.kv(leader).put({ key: "taken/k1", value: utf8("mine") }, { timeoutMs: 5_000 });
    const outDir = await Deno.makeTempDir({ prefix: "raftkv_chaos_live_test_" });
    await assert.rejects(
      runLive({
        endpoints: c.ids.map((id) => c.endpoint(id)),
        durationMs: 1_000,
        seed: 1,
        prefix: "taken/",
        outDir,
      }),
      /Cannot run a live check under prefix "taken\/": key taken\/k1 already exists/,
    );
    for (const key of ["taken/k0", "taken/k2"]) {
      const res = await c.kv(leader).get({ key }, { timeoutMs: 5_000 });
      assert.equal(res.found, false, `${key} was written by a run that refused to start`);
    }
    const mine = await c.kv(leader).get({ key: "taken/k1" }, { timeoutMs: 5_000 });
    assert.equal(text(mine.value), "mine");
    await Deno.remove(outDir, { recursive: true });
  });
});
