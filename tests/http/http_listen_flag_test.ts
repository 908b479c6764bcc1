/**
 * `--http-listen` / `RAFTKV_HTTP_LISTEN`: off unless set; a bad address is a
 * clear flag error; a port already taken stops the node with a message and exit
 * status 1, as a taken gRPC port does.
 *
 * @module
 */

import assert from "node:assert/strict";
import { FlagError, parseNodeFlags } from "../../src/server/flags.ts";
import { freePort, runNodeToExit } from "../e2e/_harness.ts";

Deno.test("--http-listen is off by default, set by the flag or RAFTKV_HTTP_LISTEN", () => {
  assert.equal(parseNodeFlags([], {}).httpListen, undefined);
  assert.deepEqual(parseNodeFlags(["--http-listen", "127.0.0.1:8001"], {}).httpListen, {
    host: "127.0.0.1",
    port: 8001,
  });
  assert.deepEqual(parseNodeFlags([], { RAFTKV_HTTP_LISTEN: "0.0.0.0:9000" }).httpListen, {
    host: "0.0.0.0",
    port: 9000,
  });
  assert.throws(
    () => parseNodeFlags(["--http-listen", "nowhere"], {}),
    (err) => err instanceof FlagError && /--http-listen/.test(err.message),
  );
});

Deno.test("a node whose HTTP port is taken says so and exits 1", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const dataDir = await Deno.makeTempDir({ prefix: "raftkv_http_taken_" });
  try {
    const port = (taken.addr as Deno.NetAddr).port;
    const grpc = freePort();
    const result = await runNodeToExit([
      "--listen",
      `127.0.0.1:${grpc}`,
      "--data-dir",
      dataDir,
      "--http-listen",
      `127.0.0.1:${port}`,
    ]);
    assert.equal(result.code, 1, result.output);
    assert.match(result.output, new RegExp(`error: cannot listen on 127\\.0\\.0\\.1:${port}: `));
  } finally {
    taken.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
