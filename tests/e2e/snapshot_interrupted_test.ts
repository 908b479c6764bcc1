/**
 * A snapshot transfer cut halfway is retried from the start (issue 9: "an
 * interrupted transfer is retried from the start"). A follower that was down while
 * the others compacted their logs past it is sent a snapshot of a few MiB; the
 * connection carrying it is reset after 1 MiB, in the middle of the second chunk.
 * The leader reports the send failed to its core (etcd's ReportSnapshot with
 * SnapshotFailure), which probes the follower again and sends the whole snapshot
 * anew; the follower, which never steps a partial stream, installs the second
 * one and ends with the same state as every other node.
 *
 * The cut is made by the test's proxy on the leader→follower link when a connection
 * has carried 1 MiB after the snapshot file's magic (`RKVSNAP1`, the first bytes of
 * the first chunk): appends share that connection (the leader may first send
 * entries of 32 KiB the follower no longer matches, over 1 MiB of them), so counting
 * from the magic is what makes it the snapshot stream that is cut, whatever the
 * timing; the assertions on the logs say so if it was not.
 *
 * @module
 */

import assert from "node:assert/strict";
import { SNAPSHOT_MAGIC } from "../../src/snapshot/file.ts";
import { checkReads, utf8, waitApplied, waitFor, withCluster } from "./_harness.ts";

const KEYS = 100;
/** 100 values of 32 KiB: a snapshot of some 3.2 MiB, four chunks of at most 1 MiB. */
const VALUE_BYTES = 32 * 1024;
const WRITES = 400;
const CUT_AFTER_BYTES = 1024 * 1024;

/** Write `i`'s value: its number, padded to {@link VALUE_BYTES}. */
function valueOf(i: number): string {
  return `value${i}:`.padEnd(VALUE_BYTES, String.fromCharCode(97 + i % 26));
}

Deno.test("a snapshot transfer cut halfway is sent again from the start, and the follower catches up", async () => {
  await withCluster(
    {
      nodes: 3,
      proxied: true,
      extraArgs: ["--snapshot-entries", "100", "--snapshot-catchup-entries", "20"],
    },
    async (c) => {
      const leader = await c.leader();
      const follower = c.ids.find((id) => id !== leader)!;
      await c.kill(follower);
      const stoppedAt = (await c.status(leader)).lastLogIndex;

      let last = 0n;
      let next = 0;
      await Promise.all(Array.from({ length: 4 }, async () => {
        while (next < WRITES) {
          const i = next++;
          const res = await c.kv(leader).put({ key: `key${i % KEYS}`, value: utf8(valueOf(i)) }, {
            timeoutMs: 20_000,
          });
          if (res.index > last) last = res.index;
        }
      }));
      const expected = new Map<string, string>();
      for (let i = 0; i < WRITES; i++) expected.set(`key${i % KEYS}`, valueOf(i));

      await waitFor("the leader to compact past the follower's log", async () => {
        const s = await c.status(leader);
        if (s.firstIndex <= stoppedAt + 1n) throw new Error(`first_index ${s.firstIndex}`);
        return true;
      });

      // Armed while the follower is down: its link carries nothing until it is back.
      let carried: number | undefined;
      void c.cutLinkOnceAfter(leader, follower, CUT_AFTER_BYTES, SNAPSHOT_MAGIC).then((n) =>
        carried = n
      );
      await c.restart(follower);
      await waitFor("the proxy to cut the snapshot's connection", () => {
        if (carried === undefined) throw new Error("not cut yet");
        return true;
      });

      const s = await waitApplied(c, follower, last);
      assert.ok(s.snapshotIndex > stoppedAt, `snapshot_index ${s.snapshotIndex}`);

      // The leader saw the first transfer fail partway and sent the snapshot again.
      const leaderLog = c.log(leader).all();
      const failed = leaderLog.search(
        new RegExp(`snapshot send failed; the leader will retry.* to=${follower} `),
      );
      assert.ok(failed >= 0, "the leader logged no failed snapshot send");
      const failedLine = leaderLog.slice(failed).split("\n")[0]!;
      // Cut partway: the connection had carried 1 MiB of a file of some 3.2 MiB. (The
      // sender's own `sent` counts what HTTP/2 took into its buffers, not what arrived.)
      const size = Number(/ bytes=(\d+)/.exec(failedLine)?.[1]);
      assert.ok(carried! < size, `the cut came after ${carried} bytes of a ${size}-byte file`);
      assert.match(
        leaderLog.slice(failed),
        new RegExp(`snapshot sent.* to=${follower} .*bytes=\\d+`),
        "the leader never sent the snapshot whole after the failure",
      );
      // The follower began receiving twice and stepped only a whole snapshot.
      const followerLog = c.log(follower).all();
      const receiving = followerLog.match(/receiving snapshot/g) ?? [];
      assert.ok(receiving.length >= 2, `receiving snapshot logged ${receiving.length} times`);
      assert.match(followerLog, /installed a snapshot from the leader/);

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
