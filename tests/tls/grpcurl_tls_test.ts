/**
 * What grpcurl does over TLS (README, "Securing a cluster"), through the grpc-js
 * reflection client that stands in for it (grpcurl cannot be installed here):
 * `grpcurl -cacert CA list` works without a client certificate (reflection is
 * open); a KVService call needs `-cert -key`, and is UNAUTHENTICATED without them.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import { withCluster } from "../e2e/_harness.ts";
import { ReflectionClient } from "../e2e/_reflection_client.ts";
import { tlsCluster } from "./_tls_cluster.ts";

Deno.test("grpcurl-like over TLS: list with -cacert alone, Put needs -cert -key", async () => {
  const tls = await tlsCluster(1);
  try {
    await withCluster(tls.options, async (c) => {
      await c.leader();
      // By name: grpc-js sends the host as TLS server name, which Deno refuses for an IP.
      const address = `localhost:${c.endpoint(1).split(":")[1]}`;
      const ca = Buffer.from(await Deno.readTextFile(tls.pki.ca.cert));
      const key = Buffer.from(await Deno.readTextFile(tls.ops.key));
      const cert = Buffer.from(await Deno.readTextFile(tls.ops.cert));

      const anonymous = new ReflectionClient(address, grpc.credentials.createSsl(ca));
      try {
        // grpcurl -cacert ca.crt HOST:PORT list
        const services = await anonymous.list();
        assert.ok(services.includes("raftkv.v1.KVService"), `${services}`);
        // grpcurl -cacert ca.crt -d '{"key":"k"}' HOST:PORT raftkv.v1.KVService/Get
        await assert.rejects(
          anonymous.invoke("raftkv.v1.KVService/Get", '{"key":"k"}'),
          /UNAUTHENTICATED|presented no client certificate/,
        );
      } finally {
        anonymous.close();
      }

      const ops = new ReflectionClient(
        address,
        grpc.credentials.createSsl(ca, key, cert),
      );
      try {
        // grpcurl -cacert ca.crt -cert ops.crt -key ops.key -d '{...}' HOST:PORT .../Put
        const put = await ops.invoke(
          "raftkv.v1.KVService/Put",
          '{"key":"greeting","value":"aGVsbG8="}',
        ) as { index?: string };
        assert.ok(BigInt(put.index ?? "0") > 0n, JSON.stringify(put));
        assert.deepEqual(
          await ops.invoke("raftkv.v1.KVService/Get", '{"key":"greeting"}'),
          // A new key: created and last changed by that Put.
          { found: true, value: "aGVsbG8=", createIndex: put.index, modIndex: put.index },
        );
      } finally {
        ops.close();
      }
    });
  } finally {
    await tls.pki.cleanup();
  }
});
