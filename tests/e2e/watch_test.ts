/**
 * Watch on real nodes: a watcher on a follower sees every acknowledged change of a
 * write load, once, in log order, and resumes on another node from the last index it
 * got when the node it watched is killed; a watch older than a node's history is
 * OUT_OF_RANGE naming the oldest index; a quiet watch gets progress messages.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { WatchEvent_Kind } from "../../src/gen/raftkv/v1/kv_pb.ts";
import { type Cluster, codeOf, text, utf8, waitFor, withCluster } from "./_harness.ts";

const T = { timeoutMs: 15_000 };

interface Seen {
  index: bigint;
  key: string;
  kind: "put" | "delete";
  value: string;
}

/**
 * Watches `prefix` from `startIndex` on node `first`, and on any error goes on from the
 * last index delivered + 1 on another live node (what the client library does).
 */
function resumingWatch(c: Cluster, first: number, prefix: string, startIndex: bigint) {
  const seen: Seen[] = [];
  const nodesUsed: number[] = [];
  let through = startIndex - 1n;
  const abort = new AbortController();
  const done = (async () => {
    let node = first;
    while (!abort.signal.aborted) {
      nodesUsed.push(node);
      try {
        const stream = c.kv(node).watch(
          { prefix, startIndex: through + 1n, progressIntervalMs: 100 },
          { signal: abort.signal },
        );
        for await (const res of stream) {
          for (const e of res.events) {
            seen.push({
              index: e.index,
              key: e.key,
              kind: e.kind === WatchEvent_Kind.PUT ? "put" : "delete",
              value: text(e.value),
            });
          }
          through = res.throughIndex;
        }
      } catch (err) {
        if (abort.signal.aborted) return;
        const code = err instanceof ConnectError ? err.code : Code.Unknown;
        if (code === Code.OutOfRange || code === Code.ResourceExhausted) throw err;
      }
      const others = c.liveIds().filter((id) => id !== node);
      node = others[Math.floor(Math.random() * others.length)] ?? node;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    seen,
    nodesUsed,
    through: () => through,
    stop: async () => {
      abort.abort();
      await done;
    },
  };
}

Deno.test("a watch from a follower sees every acknowledged change in order, across a kill of the watched node", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const lead = await c.leader();
    const [watched, other] = c.ids.filter((id) => id !== lead) as [number, number];
    const start = (await c.kv(lead).put({ key: "before", value: utf8("x") }, T)).index + 1n;
    const watch = resumingWatch(c, watched, "load/", start);

    const acked: Seen[] = [];
    const write = async (n: number) => {
      const key = `load/${n % 40}`;
      if (n % 7 === 3) {
        const r = await c.kv(lead).txn({
          success: [
            { op: { case: "delete", value: { key } } },
            { op: { case: "put", value: { key: `${key}/t`, value: utf8(`t${n}`) } } },
          ],
        }, T);
        const deleted = r.responses[0]?.op;
        if (deleted?.case === "delete" && deleted.value.deleted) {
          acked.push({ index: r.index, key, kind: "delete", value: "" });
        }
        acked.push({ index: r.index, key: `${key}/t`, kind: "put", value: `t${n}` });
      } else {
        const r = await c.kv(lead).put({ key, value: utf8(`v${n}`) }, T);
        acked.push({ index: r.index, key, kind: "put", value: `v${n}` });
      }
      await c.kv(lead).put({ key: `elsewhere/${n}`, value: utf8("not watched") }, T);
    };
    let next = 0;
    const load = (count: number) =>
      Promise.all(Array.from({ length: 4 }, async () => {
        for (let n = next++; n < count; n = next++) await write(n);
      }));
    await load(150);
    await c.kill(watched); // kill -9 of the node being watched, mid-stream
    await load(300);
    const last = acked.reduce((m, a) => (a.index > m ? a.index : m), 0n);
    await waitFor(
      "the watcher to get through the last acknowledged write",
      () => watch.through() >= last,
    );
    await watch.stop();

    assert.ok(
      watch.nodesUsed.length >= 2 && watch.nodesUsed[1] !== watched,
      `resumed: ${watch.nodesUsed}`,
    );
    const order = (
      a: Seen,
      b: Seen,
    ) => (a.index < b.index ? -1 : a.index > b.index ? 1 : a.key < b.key ? -1 : 1);
    for (let i = 1; i < watch.seen.length; i++) {
      assert.ok(watch.seen[i - 1]!.index <= watch.seen[i]!.index, `log order at event ${i}`);
    }
    // Exactly the acknowledged changes: each once, nothing else (this test is the only writer).
    assert.deepEqual([...watch.seen].sort(order), [...acked].sort(order));
    void other;
  });
});

Deno.test("a watch older than the node's history is OUT_OF_RANGE naming the oldest index", async () => {
  await withCluster({ nodes: 1, extraArgs: ["--snapshot-entries", "20"] }, async (c) => {
    await c.leader();
    for (let i = 0; i < 60; i++) await c.kv(1).put({ key: "k", value: utf8(String(i)) }, T);
    // Restarted, the node holds history only from what it applied after its snapshot.
    await c.kill(1);
    await c.restart(1);
    await c.leader();
    const err = await (async () => {
      for await (const _ of c.kv(1).watch({ key: "k", startIndex: 1n }, T)) {
        return undefined;
      }
    })().catch((e) => e);
    assert.equal(codeOf(err), Code.OutOfRange, String(err));
    const oldest = Number(/holds changes from index (\d+) on/.exec(String(err))?.[1]);
    assert.ok(oldest > 20, String(err));
    // From the oldest index it names, the watch works.
    for await (const res of c.kv(1).watch({ key: "k", startIndex: BigInt(oldest) }, T)) {
      assert.ok(res.throughIndex >= BigInt(oldest - 1));
      break;
    }
  });
});

Deno.test("--watch-history-events bounds how far back a watch may start", async () => {
  await withCluster({ nodes: 1, extraArgs: ["--watch-history-events", "5"] }, async (c) => {
    await c.leader();
    const first = (await c.kv(1).put({ key: "h", value: utf8("0") }, T)).index;
    let last = first;
    for (let i = 1; i < 12; i++) {
      last = (await c.kv(1).put({ key: "h", value: utf8(String(i)) }, T)).index;
    }
    const err = await (async () => {
      for await (const _ of c.kv(1).watch({ key: "h", startIndex: first }, T)) return undefined;
    })().catch((e) => e);
    assert.equal(codeOf(err), Code.OutOfRange, String(err));
    const oldest = Number(/holds changes from index (\d+) on/.exec(String(err))?.[1]);
    // The last 5 of the 12 puts, and nothing older, are there to start from.
    assert.equal(oldest, Number(last) - 4, String(err));
    const got: string[] = [];
    for await (const res of c.kv(1).watch({ key: "h", startIndex: BigInt(oldest) }, T)) {
      got.push(...res.events.map((e) => text(e.value)));
      if (got.includes("11")) break;
    }
    assert.ok(got.length <= 5 && got.at(-1) === "11", got.join(","));
  });
});

Deno.test("a quiet watch gets progress messages with the applied index", async () => {
  await withCluster({ nodes: 1 }, async (c) => {
    await c.leader();
    const put = await c.kv(1).put({ key: "elsewhere", value: utf8("x") }, T);
    let progress = 0;
    for await (const res of c.kv(1).watch({ key: "quiet", progressIntervalMs: 50 }, T)) {
      assert.equal(res.events.length, 0);
      assert.ok(res.throughIndex >= put.index);
      if (++progress === 3) break;
    }
    const bad = await (async () => {
      for await (const _ of c.kv(1).watch({ key: "a", prefix: "b" }, T)) return;
    })().catch((e) => e);
    assert.equal(codeOf(bad), Code.InvalidArgument, String(bad));
  });
});
