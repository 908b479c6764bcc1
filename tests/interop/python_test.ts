/**
 * Interop with Python: a grpcio client (`client.py`, on Debian's python3-grpcio and
 * python3-protobuf) built from code that `buf.gen.python.yaml` generates at test time
 * (Debian's protoc and grpc_python_plugin) runs against a real 3-node cluster: Status of
 * every node, Put, Get, CompareAndSwap, Delete, and Puts while the leader is killed.
 *
 * The script prints one JSON line per step. When it prints `kill_leader` this test kills
 * that node and writes `killed` to the script's stdin; nothing waits on a fixed sleep.
 * Without python3-grpcio (or protoc, grpc_python_plugin) the test fails and says what to
 * install; `.ci/run` installs them.
 *
 * @module
 */

import assert from "node:assert/strict";
import { withCluster } from "../e2e/_harness.ts";
import {
  generatePython,
  LineProcess,
  PYTHON,
  pythonEnv,
  requirePythonGrpc,
  run,
} from "./_python.ts";

/** One line of `client.py`'s output. */
interface Step {
  step: string;
  ok: boolean;
  [field: string]: unknown;
}

function parseStep(line: string): Step {
  try {
    const v = JSON.parse(line);
    if (typeof v?.step === "string" && typeof v?.ok === "boolean") return v as Step;
  } catch {
    // Reported below.
  }
  throw new Error(`client.py printed a line that is not a step: ${line}`);
}

/** Per-call deadline of the script, seconds. */
const DEADLINE_S = 3;
/** The script's run, at most; it is killed (a hang) after this. */
const SCRIPT_TIMEOUT_MS = 180_000;

Deno.test("Python grpcio client: status, put, get, cas, delete, and calls while the leader is killed", async () => {
  const versions = await requirePythonGrpc();
  const tmp = await Deno.makeTempDir({ prefix: "raftkv_interop_py_" });
  try {
    const gen = await generatePython(tmp);
    await withCluster({ nodes: 3 }, async (c) => {
      await c.leader(); // elected before the script starts (it also waits for one)
      const endpoints = c.ids.map((id) => c.endpoint(id));
      const py = new LineProcess(
        PYTHON,
        [
          "tests/interop/client.py",
          "--gen",
          gen,
          "--endpoints",
          endpoints.join(","),
          "--deadline",
          String(DEADLINE_S),
        ],
        pythonEnv(),
        SCRIPT_TIMEOUT_MS,
      );
      const steps: Step[] = [];
      let killed: number | undefined;
      let out;
      try {
        for (let line = await py.nextLine(); line !== undefined; line = await py.nextLine()) {
          const step = parseStep(line);
          steps.push(step);
          if (step.step === "kill_leader") {
            const id = Number(step.id);
            assert.equal(step.endpoint, c.endpoint(id), `kill_leader names node ${id}`);
            await c.kill(id, "SIGKILL");
            killed = id;
            await py.writeLine("killed");
          }
        }
        out = await py.finish();
      } finally {
        await py.close();
      }
      const transcript = `client.py (exit ${out.code}${py.timedOut ? ", killed: hung" : ""})\n` +
        `stdout:\n${out.stdout}\nstderr:\n${out.stderr}`;
      assert.ok(!py.timedOut, `client.py hung\n${transcript}`);

      const all = (name: string) => steps.filter((s) => s.step === name);
      const one = (name: string): Step => {
        const found = all(name);
        assert.equal(found.length, 1, `one "${name}" step\n${transcript}`);
        return found[0]!;
      };
      const notOk = steps.filter((s) => !s.ok).map((s) => s.step);
      assert.deepEqual(notOk, [], `steps not ok\n${transcript}`);
      assert.equal(out.code, 0, transcript);

      // Status from every node, one leader among them.
      const statuses = all("status");
      assert.deepEqual(statuses.map((s) => s.endpoint).sort(), [...endpoints].sort(), transcript);
      assert.deepEqual(statuses.map((s) => Number(s.id)).sort(), [...c.ids], transcript);
      assert.equal(statuses.filter((s) => s.role === "ROLE_LEADER").length, 1, transcript);

      assert.ok(Number(one("put").index) > 0, transcript);
      assert.deepEqual(all("get").map((s) => s.value), ["hello", "hello", "hello"], transcript);
      assert.equal(one("cas_swap").succeeded, true, transcript);
      assert.equal(one("cas_swap").value, "bonjour", transcript);
      assert.equal(one("cas_stale").succeeded, false, transcript);
      assert.equal(one("cas_stale").value, "bonjour", transcript);
      assert.equal(one("cas_create").ok, true, transcript);
      assert.equal(one("delete").deleted, true, transcript);
      assert.equal(one("delete").deleted_again, false, transcript);
      assert.equal(one("range").ok, true, transcript);
      assert.equal(one("txn").ok, true, transcript);
      assert.equal((one("watch").events as unknown[]).length, 5, transcript);
      assert.equal(one("empty_key").code, "INVALID_ARGUMENT", transcript);

      // The leader kill: the node the script named was killed, every call ended OK,
      // UNAVAILABLE or DEADLINE_EXCEEDED within its deadline, some were in flight.
      assert.equal(killed, Number(one("kill_leader").id), transcript);
      const k = one("leader_kill");
      assert.equal(k.killed, killed, transcript);
      assert.ok(Number(k.in_flight_at_kill) > 0, transcript);
      assert.ok(Number(k.longest_call_s) <= DEADLINE_S + 1, transcript);
      assert.ok(Number(k.acked_after_kill) > 0, transcript);
      for (const perNode of Object.values(k.codes as Record<string, Record<string, number>>)) {
        for (const code of Object.keys(perNode)) {
          assert.ok(["OK", "UNAVAILABLE", "DEADLINE_EXCEEDED"].includes(code), transcript);
        }
      }
      assert.equal(one("leader_kill_readback").ok, true, transcript);
      const newLeader = Number(one("new_leader").id);
      assert.notEqual(newLeader, killed);
      assert.equal(await c.leader(), newLeader, "the harness sees the leader the script saw");
      assert.equal(one("done").ok, true, transcript);

      console.log(
        `python ${PYTHON} (${versions}): ${steps.length} steps ok; leader ${killed} killed, ` +
          `${k.calls} Puts, codes ${JSON.stringify(k.codes)}, ${k.in_flight_at_kill} in flight ` +
          `at the kill, longest ${k.longest_call_s} s; new leader ${newLeader}`,
      );
    });
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});

Deno.test("client.py without grpcio exits 3 and says what to install", async () => {
  // -S: no site-packages, so no grpc even on a machine that has python3-grpcio.
  const res = await run(PYTHON, [
    "-S",
    "tests/interop/client.py",
    "--gen",
    "build/python",
    "--endpoints",
    "127.0.0.1:1",
  ]).catch((err) => {
    throw new Error(`cannot run ${PYTHON}: ${err}; install python3 (apt-get install python3)`);
  });
  assert.equal(res.code, 3, `${res.stdout}${res.stderr}`);
  const step = parseStep(res.stdout.trim().split("\n")[0]!);
  assert.equal(step.step, "import");
  assert.equal(step.ok, false);
  assert.match(String(step.hint), /apt-get install python3-grpcio/);
});
