/**
 * A follower that was down while the others wrote thousands of entries and
 * compacted their logs past where it stopped catches up by snapshot: the leader
 * streams its snapshot on RaftService/InstallSnapshot, the follower installs it and
 * goes on from the log after it, and every node ends with the same state.
 *
 * @module
 */

import assert from "node:assert/strict";
import { checkReads, utf8, waitApplied, waitFor, withCluster } from "./_harness.ts";

const WRITES = 3000;
const KEYS = 300;

Deno.test("a follower behind the compacted log catches up by snapshot, to the same state_digest", async () => {
  await withCluster(
    { nodes: 3, extraArgs: ["--snapshot-entries", "200", "--snapshot-catchup-entries", "50"] },
    async (c) => {
      const leader = await c.leader();
      const follower = c.ids.find((id) => id !== leader)!;
      await c.kill(follower);
      const stoppedAt = (await c.status(leader)).lastLogIndex;

      // Thousands of writes while it is down, eight at a time, through the leader.
      const expected = new Map<string, string>();
      let last = 0n;
      let next = 0;
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (next < WRITES) {
          const i = next++;
          const key = `key${i % KEYS}`;
          const res = await c.kv(leader).put({ key, value: utf8(`value${i}`) }, {
            timeoutMs: 10_000,
          });
          if (res.index > last) last = res.index;
        }
      }));
      // Each key's value is its last write's (writes to a key are 300 apart, never
      // in flight together).
      for (let i = 0; i < WRITES; i++) expected.set(`key${i % KEYS}`, `value${i}`);

      // The leader has compacted its log past where the follower stopped.
      await waitFor("the leader to compact past the follower's log", async () => {
        const s = await c.status(leader);
        if (s.firstIndex <= stoppedAt + 1n) throw new Error(`first_index ${s.firstIndex}`);
        return true;
      });

      await c.restart(follower);
      const s = await waitApplied(c, follower, last);
      assert.ok(s.snapshotIndex > stoppedAt, `snapshot_index ${s.snapshotIndex}`);
      assert.match(c.log(follower).all(), /received snapshot.*from=\d/);
      assert.match(c.log(follower).all(), /restored snapshot from leader/);
      assert.match(c.log(leader).all(), /snapshot sent.*bytes=\d+.*ms=\d+/);

      // No more writes: every node settles at one applied index, with one state.
      const settled = await waitFor("every node at the same applied index", async () => {
        const all = await Promise.all(c.ids.map((id) => c.status(id)));
        if (new Set(all.map((x) => x.appliedIndex)).size !== 1) {
          throw new Error(`applied ${all.map((x) => x.appliedIndex).join(",")}`);
        }
        return all;
      });
      assert.equal(new Set(settled.map((x) => x.stateDigest)).size, 1, "state digests differ");
      assert.equal(new Set(settled.map((x) => x.appliedChain)).size, 1, "applied chains differ");
      assert.deepEqual(await checkReads(c, follower, expected), []);
    },
  );
});
