/**
 * Certificate rotation without a restart: while writers keep writing through
 * every node, each node's certificate and key files are replaced in place (first
 * the certificate, then the key, so each node sees a mismatched pair for a moment
 * and must keep the old one until the key arrives). Every node reloads, new
 * connections get the new certificate, and no write fails.
 *
 * @module
 */

import assert from "node:assert/strict";
import * as tls from "node:tls";
import { X509Certificate } from "node:crypto";
import { utf8, waitFor, withCluster } from "../e2e/_harness.ts";
import { tlsCluster } from "./_tls_cluster.ts";

/** The SHA-256 fingerprint of the certificate served at 127.0.0.1:port. */
function servedFingerprint(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, ca, ALPNProtocols: ["h2"] }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.once("close", () => resolve(fp));
      s.destroy();
    });
    s.once("error", reject);
    // A probe must not hang its wait: give up on a connection that never completes.
    s.setTimeout(5_000, () => s.destroy(new Error("TLS handshake timed out")));
  });
}

Deno.test("rotation: every node's certificate replaced under a write load, no write fails", async () => {
  const cluster = await tlsCluster(3, undefined, { electionMs: 3_000, heartbeatMs: 100 });
  const { pki } = cluster;
  try {
    const ca = await Deno.readTextFile(pki.ca.cert);
    await withCluster(cluster.options, async (c) => {
      await c.leader();
      let acked = 0;
      const failures: string[] = [];
      let stop = false;
      const writer = async (w: number) => {
        for (let seq = 0; !stop; seq++) {
          const target = c.ids[(w + seq) % c.ids.length]!;
          try {
            await c.kv(target).put({ key: `w${w}-${seq}`, value: utf8("v") }, {
              timeoutMs: 10_000,
            });
            acked++;
          } catch (err) {
            failures.push(`via node ${target}: ${(err as Error).message}`);
          }
        }
      };
      const writers = [0, 1, 2, 3].map(writer);
      try {
        await waitFor("20 writes before the rotation", () => acked >= 20);
        const fresh = new Map<number, string>();
        for (const id of c.ids) {
          const next = await pki.ca.node(id, { file: `node-${id}-next` });
          fresh.set(id, new X509Certificate(await Deno.readTextFile(next.cert)).fingerprint256);
          const files = cluster.nodeCerts.get(id)!;
          // In place, certificate first: a window with a mismatched pair on disk.
          await Deno.writeTextFile(files.cert, await Deno.readTextFile(next.cert));
          await Deno.writeTextFile(files.key, await Deno.readTextFile(next.key));
        }
        for (const id of c.ids) {
          await waitFor(`node ${id} to serve its new certificate`, async () => {
            return (await servedFingerprint(Number(c.endpoint(id).split(":")[1]), ca)) ===
              fresh.get(id);
          });
          assert.match(c.log(id).tail(300), /reloaded TLS certificates/);
        }
        const atRotation = acked;
        await waitFor("40 more writes after the rotation", () => acked >= atRotation + 40);
      } finally {
        stop = true;
        await Promise.all(writers);
      }
      assert.deepEqual(failures, [], `${failures.length} writes failed, ${acked} succeeded`);
    });
  } finally {
    await pki.cleanup();
  }
});
