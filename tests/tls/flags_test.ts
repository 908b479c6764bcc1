/**
 * The TLS flags of a node: each has its variable, --ca stands for both CAs, and
 * settings that would half-work are refused naming the flag.
 *
 * @module
 */

import assert from "node:assert/strict";
import { FlagError, NODE_ENV_VARS, parseNodeFlags } from "../../src/server/flags.ts";

const THREE = ["--peers", "1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003"];

Deno.test("TLS flags: off by default, --ca for both CAs, a variable for each", () => {
  assert.equal(parseNodeFlags([], {}).tls, undefined);
  const t = parseNodeFlags([...THREE, "--tls-cert", "c", "--tls-key", "k", "--ca", "ca"], {}).tls;
  assert.deepEqual(t, {
    certFile: "c",
    keyFile: "k",
    peerCaFile: "ca",
    clientCaFile: "ca",
    authPolicyFile: undefined,
  });
  const e = parseNodeFlags(THREE, {
    RAFTKV_TLS_CERT: "c",
    RAFTKV_TLS_KEY: "k",
    RAFTKV_PEER_CA: "p",
    RAFTKV_CLIENT_CA: "cl",
    RAFTKV_AUTH_POLICY: "pol",
  }).tls;
  assert.deepEqual(e, {
    certFile: "c",
    keyFile: "k",
    peerCaFile: "p",
    clientCaFile: "cl",
    authPolicyFile: "pol",
  });
  // TLS between peers only, clients without certificates.
  const peersOnly = parseNodeFlags([
    ...THREE,
    "--tls-cert",
    "c",
    "--tls-key",
    "k",
    "--peer-ca",
    "p",
  ], {});
  assert.equal(peersOnly.tls?.clientCaFile, undefined);
  for (
    const v of [
      "RAFTKV_TLS_CERT",
      "RAFTKV_TLS_KEY",
      "RAFTKV_CA",
      "RAFTKV_PEER_CA",
      "RAFTKV_CLIENT_CA",
      "RAFTKV_AUTH_POLICY",
    ]
  ) {
    assert.ok(NODE_ENV_VARS.includes(v), v);
  }
});

Deno.test("TLS flags that would half-work are refused, naming the flag", () => {
  const refused = (args: string[], why: RegExp) =>
    assert.throws(() => parseNodeFlags(args, {}), (e: unknown) => {
      assert.ok(e instanceof FlagError);
      assert.match(e.message, why);
      return true;
    });
  refused(["--tls-cert", "c"], /Cannot use --tls-cert without --tls-key/);
  refused(["--tls-key", "k"], /Cannot use --tls-key without --tls-cert/);
  refused(["--ca", "ca"], /Cannot use --ca without --tls-cert and --tls-key/);
  refused(["--client-ca", "ca"], /Cannot use --client-ca without --tls-cert/);
  refused(
    ["--tls-cert", "c", "--tls-key", "k", "--auth-policy", "p"],
    /Cannot use --auth-policy without --client-ca/,
  );
  refused(
    [...THREE, "--tls-cert", "c", "--tls-key", "k", "--client-ca", "ca"],
    /in a cluster of 3 nodes without --peer-ca/,
  );
  // One node alone has no peers: TLS without a peer CA is fine.
  assert.equal(
    parseNodeFlags(["--tls-cert", "c", "--tls-key", "k"], {}).tls?.peerCaFile,
    undefined,
  );
});
