/**
 * A 3-node cluster with TLS everywhere (peer mutual TLS, client certificates):
 * it elects a leader, replicates writes made through any node (followers forward
 * to the leader over mutual TLS), and survives kill -9 of the leader with no
 * acknowledged write lost.
 *
 * @module
 */

import assert from "node:assert/strict";
import { checkReads, sleep, utf8, waitApplied, waitFor, withCluster } from "../e2e/_harness.ts";
import { tlsCluster } from "./_tls_cluster.ts";

Deno.test("TLS everywhere: 3 nodes elect, replicate, and survive kill -9 of the leader", async () => {
  const tls = await tlsCluster(3);
  try {
    await withCluster(tls.options, async (c) => {
      const first = await c.leader();
      for (const id of c.ids) {
        assert.match(c.log(id).tail(200), /listening.*tls="on, peer mTLS, client certificates"/);
      }

      const acked = new Map<string, string>();
      let maxIndex = 0n;
      let stop = false;
      const writer = async (w: number) => {
        for (let seq = 0; !stop; seq++) {
          const live = c.liveIds();
          const target = live[(w + seq) % live.length]!;
          const key = `w${w}-${seq}`;
          try {
            const res = await c.kv(target).put({ key, value: utf8(key) }, { timeoutMs: 3_000 });
            acked.set(key, key);
            if (res.index > maxIndex) maxIndex = res.index;
          } catch {
            await sleep(50); // no leader for a while: pace the retries
          }
        }
      };
      const writers = [0, 1, 2].map(writer);
      try {
        // Generous deadlines: on a loaded machine every call waits for CPU and disk.
        const patient = { timeoutMs: 90_000 };
        await waitFor("30 acknowledged writes", () => acked.size >= 30, patient);
        await c.kill(first, "SIGKILL");
        const atCrash = acked.size;
        const second = await c.leader(undefined, patient);
        assert.notEqual(second, first);
        await waitFor(
          "30 more writes after the crash",
          () => acked.size >= atCrash + 30,
          patient,
        );
      } finally {
        stop = true;
        await Promise.all(writers);
      }

      await c.restart(first);
      await c.leader();
      for (const id of c.ids) await waitApplied(c, id, maxIndex);
      for (const id of c.ids) {
        assert.deepEqual(await checkReads(c, id, acked), [], `lost writes through node ${id}`);
      }
    });
  } finally {
    await tls.pki.cleanup();
  }
});
