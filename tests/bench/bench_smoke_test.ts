/**
 * The bench's short form (issue 11): `deno task bench --against etcd` with runs of a
 * second at one number of operations in flight starts both clusters, measures puts
 * and gets on each, prints the table and writes the JSON file, with figures that are
 * numbers above zero. It proves the instrument works; it asserts nothing about speed.
 * And the two ways it refuses to run: etcd missing (how to install it, exit 1), a
 * flag it cannot parse (exit 2).
 *
 * @module
 */

import assert from "node:assert/strict";
import { portsInUse } from "../../scripts/cluster.ts";
import { freeBase, runScript } from "./_scripts.ts";
import { TABLE_HEADER } from "../../scripts/bench/report.ts";

function bench(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return runScript(["-A", "scripts/bench.ts", ...args]);
}

Deno.test("bench --against etcd, short form: a table and a JSON file of every run, figures above 0", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-bench-test-" });
  try {
    const json = `${dir}/runs.json`;
    const r = await bench([
      "--against=etcd",
      `--base-port=${freeBase([0, 1, 2, 1000, 1001, 1002])}`,
      `--etcd-base-port=${freeBase([0, 1, 2, 10, 11, 12])}`,
      "--in-flight=4",
      "--duration=1",
      "--warmup=0.2",
      "--keys=20",
      `--json=${json}`,
    ]);
    const transcript = `exit ${r.code}\nstdout:\n${r.out}\nstderr:\n${r.err}`;
    assert.equal(r.code, 0, transcript);

    // The table: a header, then per cell raftkv, etcd and their ratio, every figure > 0.
    const lines = r.out.split("\n");
    const header = lines.findIndex((l) => l.startsWith("| op "));
    assert.ok(header >= 0, transcript);
    assert.deepEqual(lines[header]!.split("|").slice(1, -1).map((c) => c.trim()), [
      ...TABLE_HEADER,
    ]);
    const rows = lines.slice(header + 2).filter((l) => l.startsWith("|"))
      .map((l) => l.split("|").slice(1, -1).map((c) => c.trim()));
    assert.deepEqual(
      rows.map((row) => row.slice(0, 3).join(" ")),
      [
        "put 4 raftkv",
        "put 4 etcd",
        "put 4 raftkv/etcd",
        "get 4 raftkv",
        "get 4 etcd",
        "get 4 raftkv/etcd",
      ],
      transcript,
    );
    for (const row of rows) {
      for (const figure of row.slice(3, 8)) {
        assert.ok(Number(figure.replaceAll(",", "")) > 0, `"${figure}" in ${row.join(" | ")}`);
      }
      if (!row[2]!.includes("/")) assert.equal(row[8], "0", `errors in ${row.join(" | ")}`);
    }
    assert.match(r.out, /load average [\d.]+ [\d.]+ [\d.]+ at the start/);
    assert.match(r.out, new RegExp(`every run: ${json}`));

    // The JSON file: two runs per cell (raftkv then etcd, default 2 rounds against etcd).
    const saved = JSON.parse(await Deno.readTextFile(json));
    assert.deepEqual(
      saved.systems.map((s: { name: string }) => s.name),
      ["raftkv", "etcd"],
    );
    assert.deepEqual(
      saved.runs.map((run: { op: string; system: string; round: number }) =>
        `${run.op} ${run.system} ${run.round}`
      ),
      [
        "put raftkv 1",
        "put etcd 1",
        "put raftkv 2",
        "put etcd 2",
        "get raftkv 1",
        "get etcd 1",
        "get raftkv 2",
        "get etcd 2",
      ],
    );
    for (const run of saved.runs) {
      const what = JSON.stringify({ ...run, histogramMicrosBase64: undefined });
      assert.equal(run.inFlight, 4, what);
      assert.equal(run.errors, 0, what);
      for (
        const v of [
          run.ops,
          run.seconds,
          run.opsPerSecond,
          run.latencyMs.p50,
          run.latencyMs.p99,
          run.latencyMs.p999,
          run.serverCpuSeconds,
          run.cpuSecondsPer1kOps,
        ]
      ) {
        assert.ok(typeof v === "number" && v > 0, what);
      }
      assert.equal(run.serverCpuSecondsPerProcess.length, 3, what);
      assert.ok(run.histogramMicrosBase64.length > 0, what);
    }
    assert.equal(saved.summaries.length, 4);
    assert.ok(typeof saved.finishedAt === "string", "finished");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bench --against etcd without etcd: says how to install it and exits 1", async () => {
  const r = await bench(["--against", "etcd", "--etcd", "/nonexistent/etcd"]);
  assert.equal(r.code, 1, `stdout:\n${r.out}\nstderr:\n${r.err}`);
  assert.match(r.err, /no file at \/nonexistent\/etcd/);
  assert.match(r.err, /apt-get install etcd-server/);
  assert.equal(r.out, "");
});

Deno.test("bench with a flag it cannot parse: names it and exits 2", async () => {
  // --ops once took a count; it now takes operations, and says so.
  const r = await bench(["--ops", "600"]);
  assert.equal(r.code, 2, `stdout:\n${r.out}\nstderr:\n${r.err}`);
  assert.match(r.err, /^error: Cannot parse --ops: it takes operations .* --duration/);
});

Deno.test("bench with an etcd that will not start: one error line with its log, exit 1, nothing left running", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-bench-test-" });
  try {
    const fake = `${dir}/etcd`;
    await Deno.writeTextFile(
      fake,
      '#!/bin/sh\n[ "$1" = --version ] && { echo "etcd Version: 0.0.0-fake"; exit 0; }\n' +
        'echo "fake etcd: will not start" >&2\nexit 3\n',
    );
    await Deno.chmod(fake, 0o755);
    const raftkvBase = freeBase([0, 1000]);
    const r = await bench([
      "--against=etcd",
      `--etcd=${fake}`,
      "--nodes=1", // the raftkv cluster started beside it is up sooner
      `--base-port=${raftkvBase}`,
      `--etcd-base-port=${freeBase([0, 10])}`,
    ]);
    assert.equal(r.code, 1, `stdout:\n${r.out}\nstderr:\n${r.err}`);
    assert.match(r.err, /^error: etcd did not elect a leader: process \d+ exited with code 3/);
    assert.match(r.err, /fake etcd: will not start/);
    // The raftkv node started beside it is gone: its ports are free again.
    assert.deepEqual(portsInUse([raftkvBase, raftkvBase + 1000]), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
