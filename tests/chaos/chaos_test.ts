/**
 * The bounded chaos run of CI: a few fixed seeds against real clusters (5 and 3
 * nodes) with every fault kind, each of which must PASS; and proof that the verdict
 * can fail: a deliberately broken history, and a real run with a client that fakes
 * stale reads, must both come out FAIL with a failing window and a timeline.
 *
 * Environment: `CHAOS_SECONDS=N` changes the length of each seeded run (default 40).
 *
 * @module
 */

import assert from "node:assert/strict";
import { formatSummary, judge, runChaos } from "./chaos.ts";
import type { HistoryOp } from "./clients.ts";

/** The seeded runs: about 40 s of faults each, plus ~10 s to start and to check. */
const RUNS = [
  { seed: 1, nodes: 5 },
  { seed: 2, nodes: 3 },
  { seed: 3, nodes: 5 },
] as const;

const SECONDS = Number(Deno.env.get("CHAOS_SECONDS") ?? 40);

Deno.test("chaos: seeded runs with every fault kind are linearizable and converge", async (t) => {
  for (const run of RUNS) {
    await t.step(`seed ${run.seed}, ${run.nodes} nodes, ${SECONDS} s of faults`, async () => {
      const outDir = await Deno.makeTempDir({ prefix: "raftkv_chaos_ci_" });
      const result = await runChaos({ ...run, durationMs: SECONDS * 1000, outDir });
      console.log(result.summary);
      // Snapshots every 100 entries (the chaos default): a run that committed more
      // than twice that many writes has taken some, under faults.
      const writes = result.history.filter((op) => op.kind !== "get" && op.outcome === "ok");
      if (writes.length > 200) {
        assert.ok(
          result.snapshots.taken > 0,
          `${writes.length} writes acknowledged but no node logged "took a snapshot"`,
        );
      }
      if (result.verdict.pass) {
        await Deno.remove(outDir, { recursive: true });
      } else {
        assert.fail(
          `chaos run FAILED (artifacts kept in ${outDir}):\n  ${
            result.verdict.reasons.join("\n  ")
          }\n` +
            `replay: ${result.replay}`,
        );
      }
    });
  }
});

/** A history with a stale read: k was "a", then "b" (acknowledged), then a read saw "a". */
function staleHistory(): HistoryOp[] {
  return [
    {
      id: 1,
      client: 1,
      key: "k",
      kind: "put",
      input: { value: "a" },
      invoke: 0,
      complete: 10,
      outcome: "ok",
      output: { index: 2 },
    },
    {
      id: 2,
      client: 2,
      key: "k",
      kind: "put",
      input: { value: "b" },
      invoke: 20,
      complete: 30,
      outcome: "ok",
      output: { index: 3 },
    },
    // Unrelated and indeterminate operations around it.
    {
      id: 3,
      client: 3,
      key: "k",
      kind: "cas",
      input: { expected: "x", value: "c" },
      invoke: 5,
      outcome: "unknown",
      error: "Unavailable",
    },
    {
      id: 4,
      client: 3,
      key: "j",
      kind: "put",
      input: { value: "z" },
      invoke: 1,
      complete: 2,
      outcome: "ok",
      output: {},
    },
    {
      id: 5,
      client: 1,
      key: "k",
      kind: "get",
      invoke: 40,
      complete: 50,
      outcome: "ok",
      output: { found: true, value: "a" },
    },
    {
      id: 6,
      client: "final-n1",
      key: "k",
      kind: "get",
      invoke: 60,
      complete: 70,
      outcome: "ok",
      output: { found: true, value: "b" },
    },
  ];
}

Deno.test("the verdict: a stale read is FAIL, with its failing window and a timeline file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv_chaos_verdict_" });
  try {
    const verdict = await judge(staleHistory(), [], dir, "broken on purpose");
    assert.equal(verdict.pass, false);
    assert.deepEqual(verdict.reasons, ["key k: NOT linearizable"]);
    const k = verdict.check.perKey.find((r) => r.key === "k")!;
    assert.equal(k.ok, false);
    const core = k.failure?.core ?? [];
    assert.ok(
      core.includes(2) && core.includes(5),
      `core ${core} names the write and the stale read`,
    );
    assert.equal(verdict.check.perKey.find((r) => r.key === "j")?.ok, true);
    assert.equal(verdict.windows.length, 1);
    assert.match(verdict.windows[0]!, /smallest failing window/);
    assert.match(verdict.windows[0]!, /\* #5 get k → a/);
    assert.deepEqual(verdict.timelines, [`${dir}/timeline-k.html`]);
    const html = await Deno.readTextFile(`${dir}/timeline-k.html`);
    assert.match(html, /NOT linearizable/);
    assert.match(html, /get k → a/);

    const summary = formatSummary(
      { nodes: 3, durationMs: 5_000, seed: 42 },
      staleHistory(),
      verdict,
      {
        wallMs: 6_000,
        faultPhaseMs: 5_000,
        events: [],
        nemesis: undefined,
        leaderships: ["t1:n1"],
        clients: [],
        convergences: [],
        cpu: "n/a",
        snapshots: { taken: 0, sent: 0, sendFailed: 0, installed: 0 },
      },
      dir,
      "deno task chaos --seed 42 --seconds 5 --nodes 3",
    );
    assert.match(summary, /verdict: FAIL/);
    assert.match(summary, /k +NOT LINEARIZABLE/);
    assert.match(summary, /replay: deno task chaos --seed 42 --seconds 5 --nodes 3/);
    assert.match(summary, /not deterministic/);

    // Problems found outside the history fail a linearizable history too.
    const ok = await judge(
      staleHistory().filter((op) => op.id !== 5),
      ["node 2 crashed"],
      dir,
      "t",
    );
    assert.equal(ok.check.ok, true);
    assert.equal(ok.pass, false);
    assert.deepEqual(ok.reasons, ["node 2 crashed"]);
    assert.deepEqual(ok.timelines, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the verdict: a Range that sees half of a Txn is FAIL, with a window and a timeline", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv_chaos_verdict_" });
  try {
    const history: HistoryOp[] = [
      {
        id: 1,
        client: 1,
        key: "t*",
        kind: "txn",
        input: {
          compares: [],
          success: [{ op: "put", key: "t0", value: "a" }, { op: "put", key: "t1", value: "a" }],
          failure: [],
        },
        invoke: 0,
        complete: 10,
        outcome: "ok",
        output: { succeeded: true, gets: [], index: 3 },
      },
      {
        id: 2,
        client: 2,
        key: "t*",
        kind: "range",
        input: { keys: ["t0", "t1"] },
        invoke: 20,
        complete: 30,
        outcome: "ok",
        output: { kvs: [["t0", "a"]] },
      },
    ];
    const verdict = await judge(history, [], dir, "torn on purpose");
    assert.equal(verdict.pass, false);
    assert.deepEqual(verdict.reasons, ["key t*: NOT linearizable"]);
    // The range alone: half of a transaction is never a state, whenever it happened.
    assert.deepEqual(verdict.check.perKey[0]?.failure?.core, [2]);
    assert.match(verdict.windows[0]!, /\* #2 range t\* → \{t0=a\}/);
    const html = await Deno.readTextFile(verdict.timelines[0]!);
    assert.match(html, /txn \{t0=a, t1=a\} ✓/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chaos: a client that fakes stale reads makes a real run FAIL", async () => {
  const outDir = await Deno.makeTempDir({ prefix: "raftkv_chaos_stale_" });
  try {
    const result = await runChaos({
      nodes: 3,
      durationMs: 6_000,
      seed: 7,
      faults: [],
      finalRestart: false,
      // Every read of client 1 that can be faked is: on a loaded machine a 6 s run
      // makes few calls. The faked reads are single-key Gets: every call goes to one
      // key, so that client 1 soon sees it change and has a stale value to report.
      injectStaleReads: 1,
      txnKeys: 0,
      keys: 1,
      outDir,
    });
    console.log(result.summary);
    assert.equal(result.verdict.pass, false, "the faked stale reads must be caught");
    const failing = result.verdict.check.perKey.filter((k) => k.ok === false);
    assert.ok(failing.length > 0);
    for (const k of failing) {
      const core = new Set(k.failure?.core ?? []);
      const faked = result.history.filter((op) => core.has(op.id) && op.error?.startsWith("FAKED"));
      assert.ok(faked.length > 0, `the core of ${k.key} holds a faked read`);
      await Deno.stat(`${outDir}/timeline-${k.key}.html`);
    }
    // Nothing else went wrong: only linearizability is violated.
    assert.ok(
      result.verdict.reasons.every((r) => / NOT linearizable$/.test(r)),
      result.verdict.reasons.join("\n"),
    );
    assert.match(result.summary, /verdict: FAIL/);
    assert.match(result.summary, /replay: deno task chaos --seed 7 --seconds 6 --nodes 3/);
  } finally {
    await Deno.remove(outDir, { recursive: true });
  }
});
