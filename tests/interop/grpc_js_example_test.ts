/**
 * The grpc-js example (`examples/grpc_js/put_get.ts`) runs, as its doc says, against a
 * live 3-node cluster: through a follower (which forwards to the leader) and through the
 * leader, and the value it wrote is there for another client. Against a dead endpoint it
 * exits 3 and names the gRPC status.
 *
 * @module
 */

import assert from "node:assert/strict";
import { REPO_ROOT, text, withCluster } from "../e2e/_harness.ts";

/** The command line of the example's doc (plus --check), with the endpoint and flags appended. */
async function runExample(args: string[]): Promise<{ code: number; out: string; err: string }> {
  // A clean environment: no proxy variables reach grpc-js, whatever the machine has.
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["HOME", "PATH", "DENO_DIR"]) {
    const v = Deno.env.get(name);
    if (v !== undefined) env[name] = v;
  }
  const res = await new Deno.Command(Deno.execPath(), {
    // --check: type-check the example too (`deno task check` covers src/, tests/, scripts/).
    args: ["run", "--check", "--allow-net", "--allow-env", "examples/grpc_js/put_get.ts", ...args],
    cwd: REPO_ROOT,
    clearEnv: true,
    env,
    stdin: "null",
  }).output();
  return { code: res.code, out: text(res.stdout), err: text(res.stderr) };
}

Deno.test("grpc-js example: status, put and get through a follower and the leader", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const leader = await c.leader();
    const follower = c.ids.find((id) => id !== leader)!;

    for (const [id, value] of [[follower, "via follower"], [leader, "via leader"]] as const) {
      const key = `grpc-js/${id}`;
      const r = await runExample(["--endpoint", c.endpoint(id), "--key", key, "--value", value]);
      const transcript = `exit ${r.code}\nstdout:\n${r.out}\nstderr:\n${r.err}`;
      assert.equal(r.code, 0, transcript);
      const lines = r.out.trim().split("\n");
      assert.equal(lines.length, 3, transcript);
      const role = id === leader ? "LEADER" : "FOLLOWER";
      assert.match(
        lines[0]!,
        new RegExp(
          `^status: node ${id} at ${c.endpoint(id)} is ${role}, term \\d+, leader ${leader}$`,
        ),
        transcript,
      );
      assert.match(lines[1]!, new RegExp(`^put ${key} = "${value}": OK, index \\d+$`), transcript);
      assert.equal(lines[2], `get ${key}: "${value}"`, transcript);

      // Another client (Connect, through another node) reads what the example wrote.
      const other = c.ids.find((x) => x !== id)!;
      const got = await c.kv(other).get({ key }, { timeoutMs: 5_000 });
      assert.equal(got.found && text(got.value), value);
    }
  });
});

Deno.test("grpc-js example: a dead endpoint exits 3 and names UNAVAILABLE", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close(); // a port nothing listens on
  const r = await runExample(["--endpoint", `127.0.0.1:${port}`]);
  assert.equal(r.code, 3, `stdout:\n${r.out}\nstderr:\n${r.err}`);
  assert.match(r.err, /^Status failed: UNAVAILABLE: /m);
});
