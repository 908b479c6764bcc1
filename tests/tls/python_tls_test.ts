/**
 * Python's grpcio speaks raftkv's mutual TLS: `tests/interop/client.py` with
 * `--cacert --cert --key` against a 3-node TLS cluster (client certificates
 * required) runs its status, put, get, cas and delete steps; without a
 * certificate its first call is refused UNAUTHENTICATED.
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
} from "../interop/_python.ts";
import { tlsCluster } from "./_tls_cluster.ts";

async function runClient(
  args: string[],
): Promise<{ code: number; lines: Record<string, unknown>[]; text: string }> {
  const py = new LineProcess(PYTHON, ["tests/interop/client.py", ...args], pythonEnv(), 120_000);
  const lines: Record<string, unknown>[] = [];
  try {
    for (let line = await py.nextLine(); line !== undefined; line = await py.nextLine()) {
      lines.push(JSON.parse(line));
    }
    const out = await py.finish();
    assert.ok(!py.timedOut, "client.py hung");
    return { code: out.code, lines, text: `${out.stdout}\n${out.stderr}` };
  } finally {
    await py.close();
  }
}

Deno.test("Python grpcio over mutual TLS: every step ok; without a certificate, UNAUTHENTICATED", async () => {
  await requirePythonGrpc();
  const tmp = await Deno.makeTempDir({ prefix: "raftkv_interop_py_tls_" });
  const tls = await tlsCluster(3);
  try {
    const gen = await generatePython(tmp);
    await withCluster(tls.options, async (c) => {
      await c.leader();
      const endpoints = c.ids.map((id) => c.endpoint(id)).join(",");
      const base = [
        "--gen",
        gen,
        "--endpoints",
        endpoints,
        "--no-kill",
        "--cacert",
        tls.pki.ca.cert,
      ];

      const ok = await runClient([...base, "--cert", tls.ops.cert, "--key", tls.ops.key]);
      const notOk = ok.lines.filter((l) => l.ok !== true).map((l) => l.step);
      assert.deepEqual(notOk, [], ok.text);
      assert.equal(ok.code, 0, ok.text);
      for (const step of ["status", "put", "get", "cas_swap", "delete", "done"]) {
        assert.ok(ok.lines.some((l) => l.step === step), `no ${step} step\n${ok.text}`);
      }

      // A short budget: the script retries its first call until the budget runs out.
      const anon = await runClient([...base, "--budget", "5"]);
      assert.notEqual(anon.code, 0, anon.text);
      assert.match(anon.text, /UNAUTHENTICATED/, anon.text);
    });
  } finally {
    await tls.pki.cleanup();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});
