/**
 * `deno task bench:api`: figures for the application API (issue 13) on a local cluster
 * of real node processes: the latency of a 1,000-key Range (linearizable at the leader,
 * serializable at a follower) over 10,000 keys, and the delay of Watch events at a
 * follower under a paced write load (1,000 writes/s by default): from a write's
 * acknowledgement (committed and applied at the leader) to the event's delivery, and
 * from the write's sending. It prints figures; it asserts nothing.
 *
 * Flags: --nodes N (3), --base-port P (7451), --rate N (writes/s, 1000), --seconds N (10).
 *
 * @module
 */

import { RaftKvClient } from "../src/client/mod.ts";
import { type ClusterOptions, NODE_ENV, nodeAddress, nodeCommandArgs } from "./cluster.ts";
import { argFlag, until } from "./_flags_and_waits.ts";

const nodes = argFlag("nodes", 3);
const rate = argFlag("rate", 1000);
const seconds = argFlag("seconds", 10);
const dataDir = await Deno.makeTempDir({ prefix: "raftkv-bench-api-" });
const opts: ClusterOptions = {
  nodes,
  basePort: argFlag("base-port", 7451),
  dataDir,
  logLevel: "warn",
  help: false,
};
const mainPath = new URL("../src/server/main.ts", import.meta.url).pathname;
const endpoints = Array.from({ length: nodes }, (_, i) => nodeAddress(opts, i + 1));
// The client library (src/client/), one connection per node: the writes go through
// its leader-following, exactly-once path; a node's own figures through kvAt().
const client = new RaftKvClient({ endpoints });

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
const summary = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `p50=${pct(s, 0.5).toFixed(2)}ms p90=${pct(s, 0.9).toFixed(2)}ms p99=${
    pct(s, 0.99).toFixed(2)
  }ms max=${(s[s.length - 1] ?? NaN).toFixed(2)}ms (n=${s.length})`;
};

const children: Deno.ChildProcess[] = [];
try {
  for (let id = 1; id <= nodes; id++) {
    children.push(
      new Deno.Command(Deno.execPath(), {
        args: nodeCommandArgs(opts, id, mainPath),
        env: NODE_ENV,
        stdout: "null",
        stderr: "inherit",
      }).spawn(),
    );
  }
  const leaderAt = await until("a leader", 30_000, () => client.findLeader());
  const followerAt = endpoints.find((e) => e !== leaderAt)!;
  console.log(`raftkv bench:api: ${nodes} nodes, leader ${leaderAt}, Deno ${Deno.version.deno}`);

  // 10,000 keys of 64 bytes, 100 per transaction.
  const value = new Uint8Array(64).fill(120);
  for (let b = 0; b < 100; b++) {
    await client.txn({
      success: Array.from({ length: 100 }, (_, i) => ({
        op: {
          case: "put" as const,
          value: { key: `r/${String(b * 100 + i).padStart(5, "0")}`, value },
        },
      })),
    });
  }
  for (
    const [what, at, serializable] of [["leader, linearizable", leaderAt, false], [
      "follower, serializable",
      followerAt,
      true,
    ]] as const
  ) {
    const c = client.kvAt(at);
    const times: number[] = [];
    for (let i = 0; i < 200; i++) {
      const start = `r/${String((i * 37) % 9000).padStart(5, "0")}`;
      const t0 = performance.now();
      const page = await c.range({ start, limit: 1000, serializable });
      times.push(performance.now() - t0);
      if (page.kvs.length !== 1000) throw new Error(`a page of ${page.kvs.length}`);
    }
    console.log(`range 1,000 keys (${what}): ${summary(times.slice(20))}`);
  }

  // Watch delay at a follower under a paced write load.
  const sent = new Map<string, number>();
  const acked = new Map<string, number>();
  const fromAck: number[] = [];
  const fromSend: number[] = [];
  const abort = new AbortController();
  // A client of the follower alone, so the watch is served there.
  const watcherClient = new RaftKvClient({ endpoints: [followerAt] });
  const watcher = (async () => {
    try {
      for await (const res of watcherClient.watch({ prefix: "w/" }, { signal: abort.signal })) {
        const now = performance.now();
        for (const e of res.events) {
          fromSend.push(now - sent.get(e.key)!);
          const a = acked.get(e.key);
          if (a !== undefined) fromAck.push(now - a);
          else acked.set(e.key, -now); // delivered before the ack came back: recorded below
        }
      }
    } catch {
      // Aborted at the end.
    }
  })();
  await new Promise((r) => setTimeout(r, 300));
  const total = rate * seconds;
  // 32 writers, each with its own exactly-once session.
  const t0 = performance.now();
  let n = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    for (;;) {
      const i = n++;
      if (i >= total) return;
      const due = t0 + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const key = `w/${i}`;
      sent.set(key, performance.now());
      await client.put(key, value);
      const now = performance.now();
      const delivered = acked.get(key);
      if (delivered !== undefined && delivered < 0) fromAck.push(-delivered - now);
      else acked.set(key, now);
    }
  }));
  const took = (performance.now() - t0) / 1000;
  const deadline = Date.now() + 10_000;
  while (fromSend.length < total && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  abort.abort();
  await watcher;
  watcherClient.close();
  console.log(
    `watch at a follower, ${total} writes at ${(total / took).toFixed(0)} writes/s ` +
      `(target ${rate}); ${fromSend.length} events delivered`,
  );
  console.log(`  delay from the write's ack (negative: delivered first): ${summary(fromAck)}`);
  console.log(`  delay from the write's sending: ${summary(fromSend)}`);
} finally {
  client.close();
  for (const child of children) {
    try {
      child.kill("SIGTERM");
    } catch {
      // Gone.
    }
  }
  await Promise.all(children.map((c) => c.status));
  await Deno.remove(dataDir, { recursive: true });
}
