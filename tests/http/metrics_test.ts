/**
 * `/metrics` on a real 3-node cluster: the exposition parses with the Prometheus
 * project's text parser (_prom.ts), every metric the README lists is there with its type, and
 * the counters move as writes and elections happen. Then a scrape under load: its
 * time is measured and printed (not asserted: tests assert no speed; README,
 * "Metrics", reports the numbers).
 *
 * @module
 */

import assert from "node:assert/strict";
import { utf8, waitFor, withCluster } from "../e2e/_harness.ts";
import { RAFTKV_METRICS } from "./_metric_names.ts";
import { parseExposition, scrape } from "./_prom.ts";

const PUT = { service: "raftkv.v1.KVService", method: "Put", code: "ok" };

Deno.test("/metrics parses, lists every metric, and its counters move with writes and elections", async () => {
  await withCluster({ nodes: 3, http: true }, async (c) => {
    const leader = await c.leader();
    const url = c.httpUrl(leader);

    const before = await scrape(url);
    for (const [name, type] of Object.entries(RAFTKV_METRICS)) {
      assert.equal(before.family(name)?.type, type, `${name} should be a ${type}`);
    }
    for (const family of before.families) {
      assert.match(family.name, /^raftkv_/, "every metric has the raftkv_ prefix");
      for (const s of family.samples) {
        if (family.type === "counter") assert.match(s.name, /_total$/, "counters end in _total");
      }
    }
    assert.equal(before.value("raftkv_has_leader"), 1);
    assert.equal(before.value("raftkv_role", { role: "leader" }), 1);
    assert.equal(before.value("raftkv_leader_id"), leader);

    // Writes: 20 Puts at the leader.
    for (let i = 0; i < 20; i++) {
      await c.kv(leader).put({ key: `k${i}`, value: utf8(`v${i}`) }, { timeoutMs: 5_000 });
    }
    // A refused call counts under its code.
    await assert.rejects(c.kv(leader).get({ key: "" }));
    const after = await scrape(url);
    const moved = (name: string, labels?: Record<string, string>) =>
      after.value(name, labels) - before.value(name, labels);
    assert.ok(moved("raftkv_proposals_committed_total") >= 20, "20 proposals committed");
    assert.ok(moved("raftkv_proposals_applied_total") >= 20, "20 entries applied");
    assert.ok(moved("raftkv_commit_index") >= 20, "the commit index advanced by 20");
    assert.ok(moved("raftkv_grpc_requests_total", PUT) >= 20, "20 Puts counted, code ok");
    assert.ok(moved("raftkv_grpc_request_duration_seconds", PUT) >= 20, "20 Puts timed");
    assert.equal(
      moved("raftkv_grpc_requests_total", { method: "Get", code: "invalid_argument" }),
      1,
      "the Get of an empty key counted as invalid_argument",
    );
    assert.ok(moved("raftkv_wal_save_duration_seconds") >= 1, "WAL saves timed");
    assert.ok(moved("raftkv_wal_fsync_duration_seconds") >= 1, "fsyncs timed");
    assert.ok(moved("raftkv_ready_loop_duration_seconds") >= 1, "Ready loops timed");
    const followers = c.ids.filter((id) => id !== leader);
    for (const f of followers) {
      assert.ok(
        moved("raftkv_peer_round_trip_seconds", { peer: String(f) }) >= 1,
        `heartbeats to ${f} timed`,
      );
      assert.ok(
        after.samples("raftkv_follower_lag_entries", { follower: String(f) }).length === 1,
        `the leader exports follower ${f}'s lag`,
      );
    }

    // An election: kill the leader; a survivor sees a new leader and a higher term,
    // and counts the failed Sends to the dead node.
    const survivor = followers[0]!;
    const seen = await scrape(c.httpUrl(survivor));
    await c.kill(leader);
    const newLeader = await c.leader(followers);
    const next = await waitFor("the survivor to count the dead leader's failed Sends", async () => {
      const m = await scrape(c.httpUrl(survivor));
      return (survivor === newLeader &&
          m.value("raftkv_peer_send_failures_total", { peer: String(leader) }) === 0)
        ? undefined
        : m;
    });
    assert.ok(
      next.value("raftkv_leader_changes_seen_total") >
        seen.value("raftkv_leader_changes_seen_total"),
      "the survivor saw a leader change",
    );
    assert.ok(next.value("raftkv_term") > seen.value("raftkv_term"), "the term went up");
    assert.equal(next.value("raftkv_leader_id"), newLeader);
  });
});

Deno.test("a scrape of the leader under write load: timed and printed", async () => {
  await withCluster({ nodes: 3, http: true }, async (c) => {
    const leader = await c.leader();
    let stop = false;
    let writes = 0;
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        await c.kv(leader).put({ key: `w${w}-${i}`, value: utf8("x".repeat(100)) });
        writes++;
      }
    };
    const writers = Array.from({ length: 8 }, (_, w) => writer(w));
    const times: number[] = [];
    const health: number[] = [];
    try {
      await waitFor("100 writes under way", () => writes >= 100);
      // The time of the HTTP request and the whole body, not of parsing it here; and,
      // for comparison, of /healthz (a constant answer) on the same loaded node: the
      // floor that the machine and the node's busy event loop set for any request.
      let last = "";
      for (let i = 0; i < 50; i++) {
        const began = performance.now();
        const res = await fetch(`${c.httpUrl(leader)}/metrics`);
        last = await res.text();
        times.push(performance.now() - began);
        assert.equal(res.status, 200);
        const hBegan = performance.now();
        await (await fetch(`${c.httpUrl(leader)}/healthz`)).text();
        health.push(performance.now() - hBegan);
      }
      const parsed = await parseExposition(last);
      assert.ok(parsed.value("raftkv_commit_index") >= 100, "the scrapes saw the writes");
    } finally {
      stop = true;
      await Promise.allSettled(writers);
    }
    const summary = (xs: number[]) => {
      const sorted = [...xs].sort((a, b) => a - b);
      const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
      return `median ${at(0.5).toFixed(1)} ms, p90 ${at(0.9).toFixed(1)} ms, max ${
        at(1).toFixed(1)
      } ms`;
    };
    console.log(
      `scrape under load (8 writers, ${writes} writes): 50 scrapes of /metrics: ${
        summary(times)
      }; /healthz between them: ${summary(health)}`,
    );
  });
});
