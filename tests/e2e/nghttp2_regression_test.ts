/**
 * Guards the Deno pin at 2.9.3 (see README, "Why Deno is pinned at 2.9.3").
 *
 * Deno 2.9.4 through 2.9.6 abort with an nghttp2 assertion (exit status 134) when a
 * gRPC client closes its connection after a few hundred calls to a `node:http2`
 * server. This test does exactly that to a real node, several times over, with a
 * grpc-js client, and then requires the node to still answer and to shut down
 * cleanly with exit code 0. Run it before moving the pin.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ClusterService } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { KVService } from "../../src/gen/raftkv/v1/kv_pb.ts";
import { GrpcJsClient } from "./_grpc_js_client.ts";
import { text, utf8, withCluster } from "./_harness.ts";

const ROUNDS = 5;
const CALLS_PER_ROUND = 1_000;
const CONCURRENCY = 20;

Deno.test(
  "nghttp2 regression: a node keeps serving after clients make thousands of calls and close their connection, again and again",
  async () => {
    await withCluster({ nodes: 1 }, async (c) => {
      await c.leader();
      for (let round = 0; round < ROUNDS; round++) {
        const client = new GrpcJsClient(c.endpoint(1));
        try {
          // Units of 10 calls, each a Put, a Get of it and 8 Status calls, spread over workers.
          let next = 0;
          const worker = async (): Promise<void> => {
            for (let unit = next++; unit < CALLS_PER_ROUND / 10; unit = next++) {
              const key = `r${round}-k${unit}`;
              await client.call(KVService.method.put, { key, value: utf8(`v${unit}`) });
              const got = await client.call(KVService.method.get, { key });
              assert.equal(got.found, true);
              assert.equal(text(got.value), `v${unit}`);
              for (let i = 0; i < 8; i++) {
                const s = await client.call(ClusterService.method.status, {});
                assert.equal(s.id, 1n);
              }
            }
          };
          await Promise.all(Array.from({ length: CONCURRENCY }, worker));
        } finally {
          client.close();
        }
        // The abort, when it happens, follows the client's close: check the node after each.
        try {
          assert.equal((await c.status(1)).id, 1n);
        } catch (err) {
          const exit = await c.waitForExit(1, 10_000);
          assert.fail(
            `the node stopped answering after round ${round + 1} (${(err as Error).message}); ` +
              `exit code ${exit?.code ?? "none, still running"} (134 is the nghttp2 abort); ` +
              `its log ends:\n${c.log(1).tail(5)}`,
          );
        }
        assert.equal(c.exitedOnItsOwn(1), undefined, `node exited after round ${round + 1}`);
      }
      const exit = await c.stop(1);
      assert.equal(exit.code, 0, `node exited with ${exit.code} (134 is the nghttp2 abort)`);
    });
  },
);
