/**
 * A TLS cluster for the tests: a fresh PKI (_certs.ts) with node certificates for
 * ids 1..n, and {@link ClusterOptions} that start every node with its own
 * certificate, `--ca` for peers and clients, and optionally a policy; the harness
 * clients present an "ops" client certificate.
 *
 * @module
 */

import type { ClientTlsOptions, ClusterOptions } from "../e2e/_harness.ts";
import { type CertFiles, makePki, type TestPki } from "./_certs.ts";

/** A PKI for a TLS cluster of `nodes` nodes, and how to start it. */
export interface TlsCluster {
  readonly pki: TestPki;
  /** Node certificates by id, at stable paths (`node-<id>.crt`/`.key`). */
  readonly nodeCerts: ReadonlyMap<number, CertFiles>;
  /** The client certificate the harness clients present (CN "ops"). */
  readonly ops: CertFiles;
  /** Options for startCluster/withCluster. */
  readonly options: ClusterOptions;
  /** PEM texts to dial with: the CA and `who`'s certificate, or the CA alone. */
  dialWith(who?: CertFiles): Promise<ClientTlsOptions>;
}

/** Makes the PKI; `policy`, if given, is written to `policy.yaml` and passed as --auth-policy. */
export async function tlsCluster(
  nodes: number,
  policy?: string,
  more: Partial<ClusterOptions> = {},
): Promise<TlsCluster> {
  const pki = await makePki();
  const nodeCerts = new Map<number, CertFiles>();
  for (let id = 1; id <= nodes; id++) {
    nodeCerts.set(id, await pki.ca.node(id, { file: `node-${id}` }));
  }
  const ops = await pki.ca.client("ops", { file: "ops" });
  const policyFile = `${pki.dir}/policy.yaml`;
  if (policy !== undefined) await Deno.writeTextFile(policyFile, policy);
  const dialWith = async (who?: CertFiles): Promise<ClientTlsOptions> => {
    const ca = await Deno.readTextFile(pki.ca.cert);
    if (who === undefined) return { ca };
    return { ca, cert: await Deno.readTextFile(who.cert), key: await Deno.readTextFile(who.key) };
  };
  return {
    pki,
    nodeCerts,
    ops,
    dialWith,
    options: {
      nodes,
      ...more,
      extraArgs: [
        "--ca",
        pki.ca.cert,
        ...(policy === undefined ? [] : ["--auth-policy", policyFile]),
        ...(more.extraArgs ?? []),
      ],
      nodeArgs: (id) => [
        "--tls-cert",
        nodeCerts.get(id)!.cert,
        "--tls-key",
        nodeCerts.get(id)!.key,
      ],
      clientTls: await dialWith(ops),
    },
  };
}
