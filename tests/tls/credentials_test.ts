/**
 * The TLS files are checked before use, and a reload takes a new set only when it
 * is whole: a mismatched pair (the certificate rotated, the key not yet) keeps the
 * old set; the matching key completes the change. The caller of a connection is
 * told from its certificate: a peer naming its member, a client by CN, and
 * everything else refused with the reason.
 *
 * @module
 */

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import type { TlsConfig } from "../../src/tls/config.ts";
import { CredentialsError, CredentialsStore, loadCredentials } from "../../src/tls/credentials.ts";
import { classifyCertificate } from "../../src/tls/caller.ts";
import { makePki } from "./_certs.ts";

function config(cert: string, key: string, ca?: string): TlsConfig {
  return {
    certFile: cert,
    keyFile: key,
    peerCaFile: ca,
    clientCaFile: ca,
    authPolicyFile: undefined,
  };
}

async function raw(file: string): Promise<Uint8Array> {
  return new Uint8Array(new X509Certificate(await Deno.readTextFile(file)).raw);
}

Deno.test("credentials: a key of another certificate, a certificate not naming this node, an expired one, a missing file", async () => {
  const pki = await makePki();
  try {
    const n1 = await pki.ca.node(1);
    const n2 = await pki.ca.node(2);
    const old = await pki.ca.node(1, { file: "old-1", expired: true });
    const refused = async (c: TlsConfig, id: number, why: RegExp) => {
      await assert.rejects(loadCredentials(c, id), (e: unknown) => {
        assert.ok(e instanceof CredentialsError, String(e));
        assert.match(e.message, why);
        return true;
      });
    };
    await loadCredentials(config(n1.cert, n1.key, pki.ca.cert), 1);
    await refused(config(n1.cert, n2.key, pki.ca.cert), 1, /--tls-key .* is not the key of/);
    await refused(
      config(n2.cert, n2.key, pki.ca.cert),
      1,
      /does not name this node \(its SAN must hold URI:raftkv:\/\/node\/1/,
    );
    // Without a peer CA there are no peers to name: any certificate serves.
    await loadCredentials(config(n2.cert, n2.key), 1);
    await refused(config(old.cert, old.key), 1, /--tls-cert .* is expired on 2020-01-02/);
    await refused(config(`${pki.dir}/nope.crt`, n1.key), 1, /Cannot read --tls-cert .*nope\.crt/);
    await refused(config(n1.cert, n1.cert), 1, /--tls-key .* holds no PEM private key/);
  } finally {
    await pki.cleanup();
  }
});

Deno.test("reload: a half-rotated pair keeps the old set; the matching key completes the change", async () => {
  const pki = await makePki();
  try {
    const cur = await pki.ca.node(1, { file: "live" });
    const next = await pki.ca.node(1, { file: "next" });
    const store = await CredentialsStore.open(config(cur.cert, cur.key, pki.ca.cert), 1);
    const seen: string[] = [];
    store.onChange((c) => seen.push(c.cert.fingerprint256));
    const before = store.current.cert.fingerprint256;

    assert.equal(await store.reload(), false, "nothing changed");
    await Deno.writeTextFile(cur.cert, await Deno.readTextFile(next.cert));
    await assert.rejects(store.reload(), /is not the key of/);
    assert.equal(store.current.cert.fingerprint256, before, "the old pair stays in use");
    assert.equal(store.generation, 0);

    await Deno.writeTextFile(cur.key, await Deno.readTextFile(next.key));
    assert.equal(await store.reload(), true);
    const after = new X509Certificate(await Deno.readTextFile(next.cert)).fingerprint256;
    assert.equal(store.current.cert.fingerprint256, after);
    assert.equal(store.generation, 1);
    assert.deepEqual(seen, [after]);
  } finally {
    await pki.cleanup();
  }
});

Deno.test("callers: a peer by its SAN URI, a client by CN, and every refusal with its reason", async () => {
  const pki = await makePki();
  try {
    const peerCa = await pki.otherCa("peers");
    const clientCa = await pki.otherCa("clients");
    const cas = {
      peerCa: {
        file: peerCa.cert,
        pem: "",
        certs: [new X509Certificate(await Deno.readTextFile(peerCa.cert))],
      },
      clientCa: {
        file: clientCa.cert,
        pem: "",
        certs: [new X509Certificate(await Deno.readTextFile(clientCa.cert))],
      },
    };
    const node2 = await peerCa.node(2);
    const alice = await clientCa.client("alice");
    const old = await clientCa.client("old", { expired: true });
    // A node certificate signed by the client CA is no peer's: a client with no CN use.
    const fake = await clientCa.node(3, { file: "fake-node-3" });
    const stranger = await pki.ca.client("alice", { file: "stranger" });

    assert.deepEqual(classifyCertificate(await raw(node2.cert), cas), {
      kind: "peer",
      id: 2,
      subject: "CN=node-2",
    });
    assert.deepEqual(classifyCertificate(await raw(alice.cert), cas), {
      kind: "client",
      name: "alice",
      subject: "CN=alice",
    });
    assert.deepEqual(classifyCertificate(await raw(fake.cert), cas), {
      kind: "client",
      name: "node-3",
      subject: "CN=node-3",
    });
    const why = (r: ReturnType<typeof classifyCertificate>) =>
      r.kind === "unauthenticated" ? r.why : `accepted as ${r.kind}`;
    assert.equal(why(classifyCertificate(undefined, cas)), "it presented no client certificate");
    assert.match(why(classifyCertificate(await raw(old.cert), cas)), /CN=old is expired on 2020/);
    assert.match(
      why(classifyCertificate(await raw(stranger.cert), cas)),
      /CN=alice \(issuer CN=ca\) is not signed by .*peers\.crt or .*clients\.crt/,
    );
  } finally {
    await pki.cleanup();
  }
});
