/**
 * Server reflection and the health service on a real 3-node cluster, through a
 * grpc-js client that learns every type from reflection, as grpcurl does
 * (`_reflection_client.ts`):
 *
 * - a follower lists its services, describes KVService, and takes a Put and a Get
 *   built from the reflected descriptors alone (v1 and v1alpha);
 * - health: SERVING on every node once a leader is known; a follower cut off from
 *   the others loses its leader and turns NOT_SERVING, and SERVING again once the
 *   partition heals; the last node standing of three turns NOT_SERVING, and
 *   SERVING again once a peer is back; a Watch stream on that node sees each of
 *   these transitions.
 *
 * @module
 */

import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { HealthCheckResponse_ServingStatus as ServingStatus } from "../../src/gen/health/v1/health_pb.ts";
import { grpcCode, grpcCodeName } from "./_grpc_js_client.ts";
import { type Cluster, waitFor, withCluster } from "./_harness.ts";
import { type HealthWatch, ReflectionClient } from "./_reflection_client.ts";

const SERVICES = [
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
  "raftkv.v1.ClusterService",
  "raftkv.v1.KVService",
  "raftkv.v1.RaftService",
];

/** Runs `fn` with a reflection client for node `id`, closed afterwards. */
async function withClient<T>(
  c: Cluster,
  id: number,
  fn: (client: ReflectionClient) => Promise<T>,
): Promise<T> {
  const client = new ReflectionClient(c.endpoint(id));
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

Deno.test("reflection on a follower: list, describe, and calls built from reflection alone", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const leader = await c.leader();
    const follower = c.ids.find((id) => id !== leader)!;
    await withClient(c, follower, async (client) => {
      // grpcurl -plaintext HOST:PORT list (v1, and v1alpha that older grpcurl uses)
      assert.deepEqual([...await client.list("v1")].sort(), SERVICES);
      assert.deepEqual([...await client.list("v1alpha")].sort(), SERVICES);

      // grpcurl -plaintext HOST:PORT describe raftkv.v1.KVService
      for (const version of ["v1", "v1alpha"] as const) {
        const registry = await client.describe("raftkv.v1.KVService", version);
        const kv = registry.getService("raftkv.v1.KVService");
        assert.ok(kv !== undefined, `${version}: KVService described`);
        const methods = kv.methods.map((m) => m.name);
        for (const m of ["Put", "Get", "Delete", "CompareAndSwap"]) {
          assert.ok(methods.includes(m), `${version}: KVService.${m} in ${methods}`);
        }
        assert.equal(kv.method.put?.input.typeName, "raftkv.v1.PutRequest");
      }
      await assert.rejects(client.describe("raftkv.v1.Nope"), /error_response 5/);

      // grpcurl -plaintext -d '{"key":"greeting","value":"aGVsbG8="}' HOST:PORT raftkv.v1.KVService/Put
      const put = await client.invoke(
        "raftkv.v1.KVService/Put",
        '{"key":"greeting","value":"aGVsbG8="}',
      ) as { index?: string };
      assert.ok(BigInt(put.index ?? "0") > 0n, `Put answered ${JSON.stringify(put)}`);
      const got = await client.invoke("raftkv.v1.KVService/Get", '{"key":"greeting"}');
      assert.deepEqual(got, {
        found: true,
        value: "aGVsbG8=",
        createIndex: put.index,
        modIndex: put.index,
      });
      // And the value is what a generated client reads.
      const direct = await c.kv(leader).get({ key: "greeting" });
      assert.equal(new TextDecoder().decode(direct.value), "hello");

      // grpcurl -plaintext -d '{"service":""}' HOST:PORT grpc.health.v1.Health/Check
      assert.deepEqual(
        await client.invoke("grpc.health.v1.Health/Check", '{"service":""}'),
        { status: "SERVING" },
      );
    });
  });
});

/** Polls Check(`service`) on the client's node until it answers `want`. */
async function waitStatus(
  c: Cluster,
  client: ReflectionClient,
  want: ServingStatus,
  service = "",
): Promise<void> {
  await waitFor(`${client.address} to report ${ServingStatus[want]} for "${service}"`, async () => {
    c.checkNoCrash();
    const got = await client.check(service);
    if (got !== want) throw new Error(`it reports ${ServingStatus[got]}`);
    return true;
  });
}

/** Polls until the Watch stream's last status is `want`, and returns all it has seen. */
async function waitWatched(watch: HealthWatch, want: ServingStatus): Promise<ServingStatus[]> {
  return await waitFor(`the Watch stream to see ${ServingStatus[want]}`, () => {
    if (watch.ended !== undefined) {
      throw new Error(`the Watch stream ended after ${watch.describe()}`);
    }
    if (watch.statuses[watch.statuses.length - 1] !== want) {
      throw new Error(`it saw ${watch.describe()}`);
    }
    return [...watch.statuses];
  });
}

Deno.test("health: SERVING with a leader, NOT_SERVING without, and Watch sees each change", async (t) => {
  await withCluster({ nodes: 3, proxied: true }, async (c) => {
    const clients = new Map(c.ids.map((id) => [id, new ReflectionClient(c.endpoint(id))]));
    const client = (id: number): ReflectionClient => clients.get(id)!;
    let watch: HealthWatch | undefined;
    try {
      const leader = await c.leader();
      const lone = c.ids.find((id) => id !== leader)!;
      const others = c.ids.filter((id) => id !== lone);

      await t.step("every node is SERVING, under both names", async () => {
        for (const id of c.ids) {
          await waitStatus(c, client(id), ServingStatus.SERVING, "");
          await waitStatus(c, client(id), ServingStatus.SERVING, "raftkv.v1.KVService");
        }
      });

      await t.step("an unknown service is NOT_FOUND", async () => {
        const err = await client(lone).check("raftkv.v1.Nope").then(() => undefined, (e) => e);
        assert.equal(grpcCode(err), grpc.status.NOT_FOUND, grpcCodeName(grpcCode(err)));
      });

      watch = client(lone).watch("raftkv.v1.KVService");
      const w = watch;
      await t.step("Watch starts with the current status", async () => {
        await waitWatched(w, ServingStatus.SERVING);
      });

      await t.step("a follower cut off from the others turns NOT_SERVING", async () => {
        c.partition([lone], others);
        await waitStatus(c, client(lone), ServingStatus.NOT_SERVING);
        await waitWatched(w, ServingStatus.NOT_SERVING);
        // The majority still has a leader.
        await c.leader(others);
        for (const id of others) await waitStatus(c, client(id), ServingStatus.SERVING);
      });

      await t.step("after the partition heals it is SERVING again", async () => {
        c.heal();
        await waitStatus(c, client(lone), ServingStatus.SERVING);
        const seen = await waitWatched(w, ServingStatus.SERVING);
        assert.deepEqual(seen.slice(0, 2), [ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
      });

      await t.step(
        "the last node of three standing is NOT_SERVING, then SERVING with a peer back",
        async () => {
          for (const id of others) await c.kill(id);
          await waitStatus(c, client(lone), ServingStatus.NOT_SERVING);
          await waitWatched(w, ServingStatus.NOT_SERVING);
          await c.restart(others[0]!);
          await waitStatus(c, client(lone), ServingStatus.SERVING);
          const seen = await waitWatched(w, ServingStatus.SERVING);
          // Each change was sent once: the statuses alternate.
          for (let i = 1; i < seen.length; i++) {
            assert.notEqual(seen[i], seen[i - 1], `repeated status in ${w.describe()}`);
          }
          assert.ok(seen.length >= 5, `saw ${w.describe()}`);
        },
      );

      await t.step("the client cancels the Watch", async () => {
        w.cancel();
        const ended = await waitFor("the Watch to end", () => w.ended);
        assert.ok(ended !== "ok", "a cancelled call ends with an error status");
        assert.equal(grpcCode(ended), grpc.status.CANCELLED);
      });

      await t.step("a node shutting down ends its Watch streams with NOT_SERVING", async () => {
        const last = client(lone).watch("");
        try {
          await waitWatched(last, ServingStatus.SERVING);
          const exit = await c.stop(lone);
          assert.equal(exit.code, 0, `node ${lone} exited with ${exit.code}`);
          const ended = await waitFor("the Watch to end", () => last.ended);
          assert.equal(ended, "ok", `the Watch ended with ${String(ended)}`);
          assert.equal(last.statuses[0], ServingStatus.SERVING, last.describe());
          assert.equal(last.statuses.at(-1), ServingStatus.NOT_SERVING, last.describe());
        } finally {
          last.cancel();
        }
      });
    } finally {
      watch?.cancel();
      for (const cl of clients.values()) cl.close();
    }
  });
});
