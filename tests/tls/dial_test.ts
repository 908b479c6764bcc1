/**
 * A node dialing member N over TLS accepts only a certificate naming member N: a
 * valid certificate of another member at that address is refused, with a message
 * naming both.
 *
 * @module
 */

import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
} from "../../src/gen/health/v1/health_pb.ts";
import { CredentialsStore } from "../../src/tls/credentials.ts";
import { TlsDialer } from "../../src/tls/dial.ts";
import { makePki } from "./_certs.ts";

Deno.test("dialing member 2 at an address that presents member 1's certificate is refused", async () => {
  const pki = await makePki();
  const n1 = await pki.ca.node(1);
  const n3 = await pki.ca.node(3);
  const r = (f: string) => Deno.readTextFile(f);
  const server = http2.createSecureServer(
    { cert: await r(n1.cert), key: await r(n1.key) },
    connectNodeAdapter({
      routes: (router) =>
        router.service(Health, {
          check: () => create(HealthCheckResponseSchema, { status: ServingStatus.SERVING }),
        }),
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    const store = await CredentialsStore.open({
      certFile: n3.cert,
      keyFile: n3.key,
      peerCaFile: pki.ca.cert,
      clientCaFile: undefined,
      authPolicyFile: undefined,
    }, 3);
    const dialer = new TlsDialer(store);
    const asMember1 = createClient(Health, dialer.transport("127.0.0.1", port, {}, 1));
    const ok = await asMember1.check({ service: "" }, { timeoutMs: 5_000 });
    assert.equal(ok.status, ServingStatus.SERVING);

    const asMember2 = createClient(Health, dialer.transport("127.0.0.1", port, {}, 2));
    await assert.rejects(
      asMember2.check({ service: "" }, { timeoutMs: 5_000 }),
      /presents a certificate naming raftkv:\/\/node\/1, not raftkv:\/\/node\/2/,
    );
  } finally {
    server.close();
    await pki.cleanup();
  }
});
