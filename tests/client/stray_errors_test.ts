/**
 * The client library's opt-in guard against stray socket errors: a process calling
 * "nodes" that accept connections and close them at once dies of an uncaught
 * `write EPIPE` without it (Deno's node:http2 emits it on a session Connect-node is
 * not listening to; this shows the failure is real here), and survives with it, every
 * call failing cleanly.
 *
 * @module
 */

import assert from "node:assert/strict";

async function run(mode: "guard" | "bare"): Promise<{ code: number; out: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./_stray_epipe_client.ts", import.meta.url).pathname, mode],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code, out: decode(stdout) + decode(stderr) };
}

Deno.test("without the guard, a stray EPIPE ends a client process (the failure is real)", async () => {
  const { code, out } = await run("bare");
  assert.notEqual(code, 0, out);
  assert.match(out, /Uncaught.*EPIPE/, out);
});

Deno.test("with guardStrayNetworkErrors(), the client process survives, each call failing cleanly", async () => {
  const { code, out } = await run("guard");
  assert.equal(code, 0, out);
  assert.match(out, /survived 50/, out);
});
