/**
 * Crash of the leader (SIGKILL, no shutdown): the others elect a new leader, writes
 * continue, and no acknowledged write is lost, on any node, after the crashed node
 * comes back.
 *
 * @module
 */

import assert from "node:assert/strict";
import { checkReads, sleep, utf8, waitApplied, waitFor, withCluster } from "./_harness.ts";

const WRITERS = 4;

Deno.test("kill -9 the leader: a new one is elected, writes continue, no acknowledged write is lost", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const oldLeader = await c.leader();

    // Writers spread Puts over the live nodes (followers forward) and record each
    // acknowledged one; a failed Put has an unknown outcome and is not recorded.
    const acked = new Map<string, string>();
    let maxIndex = 0n;
    let failures = 0;
    let stop = false;
    const writer = async (w: number): Promise<void> => {
      for (let seq = 0; !stop; seq++) {
        const live = c.liveIds();
        const target = live[(w + seq) % live.length]!;
        const key = `w${w}-${seq}`;
        const value = `${key}@${target}`;
        try {
          const res = await c.kv(target).put({ key, value: utf8(value) }, { timeoutMs: 3_000 });
          acked.set(key, value);
          if (res.index > maxIndex) maxIndex = res.index;
        } catch {
          failures++;
          await sleep(50); // Pace retries while there is no leader.
        }
      }
    };
    const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));
    try {
      await waitFor("40 acknowledged writes", () => acked.size >= 40);

      const exit = await c.kill(oldLeader, "SIGKILL");
      assert.equal(exit.signal, "SIGKILL");
      const ackedAtCrash = acked.size;

      const newLeader = await c.leader();
      assert.notEqual(newLeader, oldLeader);
      await waitFor(
        "40 more acknowledged writes after the crash",
        () => acked.size >= ackedAtCrash + 40,
      );
    } finally {
      stop = true;
      await Promise.all(writers);
    }

    await c.restart(oldLeader);
    const lead = await c.leader();
    for (const id of c.ids) await waitApplied(c, id, maxIndex);
    for (const id of c.ids) {
      assert.deepEqual(await checkReads(c, id, acked), [], `lost writes through node ${id}`);
    }
    assert.ok(acked.size >= 80, `${acked.size} acknowledged writes, ${failures} failed`);
    assert.ok(c.isLive(lead));
  });
});
