/**
 * Snapshots on real processes: nodes take snapshots every few entries, compact their
 * logs and WAL, and a full restart rebuilds each node from its newest snapshot plus
 * the WAL after it, to the same state on every node.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { checkReads, utf8, waitApplied, waitFor, withCluster } from "./_harness.ts";

Deno.test("restart from snapshot plus WAL: same keys, same state_digest and applied_chain everywhere", async () => {
  await withCluster(
    { nodes: 3, extraArgs: ["--snapshot-entries", "50", "--snapshot-catchup-entries", "10"] },
    async (c) => {
      await c.leader();
      const expected = new Map<string, string | undefined>();
      let last = 0n;
      for (let i = 0; i < 230; i++) {
        const key = `k${i % 40}`;
        const value = `v${i}`;
        last = (await c.kv(c.ids[i % 3]!).put({ key, value: utf8(value) }, { timeoutMs: 10_000 }))
          .index;
        expected.set(key, value);
      }
      await c.kv(c.ids[0]!).delete({ key: "k1" });
      expected.set("k1", undefined);
      last += 1n;
      // Every node took snapshots and compacted behind them.
      const before = await Promise.all(c.ids.map(async (id) => {
        const s = await waitApplied(c, id, last);
        return await waitFor(`node ${id} to take a snapshot at 200 or beyond`, async () => {
          const st = await c.status(id);
          if (st.snapshotIndex < 200n) throw new Error(`snapshot_index ${st.snapshotIndex}`);
          assert.ok(st.firstIndex > 1n && st.firstIndex <= st.snapshotIndex + 1n);
          return { ...s, snapshotIndex: st.snapshotIndex };
        });
      }));
      for (const id of c.ids) {
        const snaps = [...Deno.readDirSync(join(c.dataDir(id), "snap"))].map((e) => e.name);
        assert.ok(snaps.length >= 1 && snaps.length <= 2, `node ${id}: ${snaps}`);
      }
      const digests = before.map((s) => s.stateDigest);
      const chains = before.map((s) => s.appliedChain);

      await Promise.all(c.ids.map((id) => c.stop(id)));
      for (const id of c.ids) c.spawn(id);
      await Promise.all(c.ids.map((id) => c.waitServing(id)));
      for (const id of c.ids) {
        assert.match(
          c.log(id).all(),
          /recovered from the snapshot and the write-ahead log.*snapshot=[1-9]/,
        );
      }
      await c.leader();
      // The restart's applied state at the old last index is what it was: compare
      // at one index by writing nothing until every node is back there.
      for (const id of c.ids) await waitApplied(c, id, last);
      for (const [i, id] of c.ids.entries()) {
        const s = await c.status(id);
        if (s.appliedIndex === before[i]!.appliedIndex) {
          assert.equal(s.stateDigest, digests[i]);
          assert.equal(s.appliedChain, chains[i]);
        }
      }
      for (const id of c.ids) assert.deepEqual(await checkReads(c, id, expected), []);
      // Then one more write: every node applies it onto the same state.
      const idx = (await c.kv(c.ids[0]!).put({ key: "after", value: utf8("restart") })).index;
      const after = await Promise.all(c.ids.map((id) => waitApplied(c, id, idx)));
      const settled = await Promise.all(c.ids.map(async (id) => {
        return await waitFor(`node ${id} at index ${idx}`, async () => {
          const s = await c.status(id);
          if (s.appliedIndex !== after[0]!.appliedIndex) throw new Error(`${s.appliedIndex}`);
          return s;
        });
      }));
      assert.equal(new Set(settled.map((s) => s.stateDigest)).size, 1, "state digests differ");
      assert.equal(new Set(settled.map((s) => s.appliedChain)).size, 1, "applied chains differ");
    },
  );
});

Deno.test("a clean stop snapshots the applied state, so the next start replays nothing; a kill does not", async () => {
  // The default --snapshot-entries (10,000): no snapshot is due in this test but
  // the ones taken on stopping.
  await withCluster({ nodes: 3 }, async (c) => {
    await c.leader();
    const expected = new Map<string, string>();
    let last = 0n;
    for (let i = 0; i < 60; i++) {
      const key = `k${i % 20}`;
      last = (await c.kv(c.ids[i % 3]!).put({ key, value: utf8(`v${i}`) }, { timeoutMs: 10_000 }))
        .index;
      expected.set(key, `v${i}`);
    }
    const before = await Promise.all(c.ids.map(async (id) => {
      await waitApplied(c, id, last);
      return await waitFor(`node ${id} to apply exactly ${last}`, async () => {
        const s = await c.status(id);
        if (s.appliedIndex !== last) throw new Error(`applied ${s.appliedIndex}`);
        assert.equal(s.snapshotIndex, 0n, "a snapshot was due before stopping");
        return s;
      });
    }));
    const [killed, ...stopped] = c.ids as [number, ...number[]];
    await c.kill(killed);
    for (const id of stopped) await c.stop(id);
    for (const id of stopped) {
      assert.match(
        c.log(id).all(),
        new RegExp(`snapshotted the applied state on stopping index=${last} `),
      );
      const snaps = [...Deno.readDirSync(join(c.dataDir(id), "snap"))].map((e) => e.name);
      assert.deepEqual(snaps, [
        `${before[0]!.term.toString(16).padStart(16, "0")}-${
          last.toString(16).padStart(16, "0")
        }.snap`,
      ]);
    }
    assert.doesNotMatch(c.log(killed).all(), /snapshotted the applied state on stopping/);

    for (const id of c.ids) c.spawn(id);
    await Promise.all(c.ids.map((id) => c.waitServing(id)));
    for (const id of stopped) {
      // Started from the stop's snapshot: nothing of the log left to apply.
      assert.match(
        c.log(id).all(),
        new RegExp(`recovered from the snapshot and the write-ahead log snapshot=${last} `),
      );
      const s = await c.status(id);
      assert.equal(s.snapshotIndex, last);
      // The digest and chain cover the applied index: compare them unless the new
      // leader's first entry was applied already (the agreement check below covers it).
      if (s.appliedIndex === last) {
        assert.equal(s.stateDigest, before[c.ids.indexOf(id)]!.stateDigest);
        assert.equal(s.appliedChain, before[c.ids.indexOf(id)]!.appliedChain);
      }
    }
    assert.match(
      c.log(killed).all(),
      /recovered from the snapshot and the write-ahead log snapshot=0 /,
    );
    for (const id of c.ids) {
      await waitApplied(c, id, last);
      assert.deepEqual(await checkReads(c, id, expected), []);
    }
    // Every node, restarted from a snapshot or from the whole log, holds the same state
    // at the same index.
    const settled = await waitFor("every node at one index with one state", async () => {
      const all = await Promise.all(c.ids.map((id) => c.status(id)));
      if (new Set(all.map((s) => s.appliedIndex)).size !== 1) throw new Error("indexes differ");
      return all;
    });
    assert.equal(new Set(settled.map((s) => s.stateDigest)).size, 1, "state digests differ");
    assert.equal(new Set(settled.map((s) => s.appliedChain)).size, 1, "applied chains differ");
  });
});
