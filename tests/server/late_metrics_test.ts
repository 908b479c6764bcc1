/**
 * Metrics attached after the node started (src/server/late_metrics.ts): what the
 * node reported before is replayed in order, calls are timed until then and
 * counted on attach, and go through the metrics' interceptors after, and the WAL's file operations
 * run on the defaults until the metrics' own (timing) ones are there.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { LateMetrics, MAX_QUEUED_HOOKS } from "../../src/server/late_metrics.ts";
import type { NodeObserver } from "../../src/server/node_observer.ts";

function recordingObserver(calls: string[]): NodeObserver {
  return {
    proposed: () => calls.push("proposed"),
    proposalEnded: (o) => calls.push(`ended ${o}`),
    softStateChanged: (role, leader, term) => calls.push(`soft ${role} ${leader} ${term}`),
    walSaved: (s) => calls.push(`walSaved ${s}`),
    walIo: {
      sync: () => {
        calls.push("timed sync");
        return Promise.resolve();
      },
    },
  };
}

Deno.test("late metrics: hooks reported before attach are replayed in order, then reported as they come", () => {
  const late = new LateMetrics();
  late.observer.softStateChanged!("leader", 1, 2);
  late.observer.proposed!();
  late.observer.proposalEnded!("committed");
  late.observer.compacted!(); // the metrics may not have every hook
  const calls: string[] = [];
  assert.equal(late.attached, false);
  late.attach(recordingObserver(calls), []);
  assert.equal(late.attached, true);
  assert.deepEqual(calls, ["soft leader 1 2", "proposed", "ended committed"]);
  late.observer.walSaved!(0.5);
  assert.deepEqual(calls.slice(3), ["walSaved 0.5"]);
  assert.throws(() => late.attach(recordingObserver([]), []), /attached twice/);
});

Deno.test("late metrics: a node that never learns a leader queues a bounded number of hooks", () => {
  const late = new LateMetrics();
  for (let i = 0; i < MAX_QUEUED_HOOKS + 5; i++) late.observer.proposed!();
  assert.equal(late.dropped, 5);
  let n = 0;
  late.attach({ proposed: () => void n++ }, []);
  assert.equal(n, MAX_QUEUED_HOOKS);
});

Deno.test("late metrics: calls before attach are timed and counted on attach; after, they go through the metrics' interceptors", async () => {
  const late = new LateMetrics();
  const seen: string[] = [];
  const recorded: string[] = [];
  const method = (name: string) => ({
    service: { typeName: "raftkv.v1.KVService" },
    method: { name },
  });
  let release = () => {};
  const slow = new Promise<void>((r) => release = r);
  const next = (async (req: { method: { name: string } }) => {
    if (req.method.name === "Slow") await slow;
    if (req.method.name === "Bad") throw new ConnectError("no", Code.InvalidArgument);
    return { stream: false, req: req.method.name };
  }) as unknown as Parameters<Interceptor>[0];
  // deno-lint-ignore no-explicit-any
  const call = (name: string) => late.interceptor(next)(method(name) as any) as Promise<unknown>;
  assert.deepEqual(await call("Put"), { stream: false, req: "Put" });
  await assert.rejects(call("Bad"), /no/);
  const underway = call("Slow");
  const counting: Interceptor = (n) => (req) => {
    seen.push(req.method.name);
    return n(req);
  };
  late.attach({}, [counting], (service, m, code, seconds) => {
    assert.ok(seconds >= 0);
    recorded.push(`${service}/${m} ${code}`);
  });
  // What ended before attach is counted at attach, in order.
  assert.deepEqual(recorded, [
    "raftkv.v1.KVService/Put ok",
    "raftkv.v1.KVService/Bad invalid_argument",
  ]);
  // A call under way at attach is counted when it ends; one after goes through the metrics.
  release();
  await underway;
  assert.deepEqual(await call("Get"), { stream: false, req: "Get" });
  assert.deepEqual(recorded.slice(2), ["raftkv.v1.KVService/Slow ok"]);
  assert.deepEqual(seen, ["Get"]);
});

Deno.test("late metrics: the WAL's file operations use the defaults until the metrics' own are attached", async () => {
  const late = new LateMetrics();
  const dir = await Deno.makeTempDir({ prefix: "raftkv-late-" });
  const file = await Deno.open(`${dir}/f`, { create: true, write: true });
  try {
    await late.observer.walIo!.write!(file, new Uint8Array([1, 2, 3]), "f");
    await late.observer.walIo!.sync!(file, "f");
    const calls: string[] = [];
    late.attach(recordingObserver(calls), []);
    await late.observer.walIo!.sync!(file, "f");
    await late.observer.walIo!.truncate!(file, 1, "f");
    assert.deepEqual(calls, ["timed sync"]);
  } finally {
    file.close();
  }
  assert.equal((await Deno.stat(`${dir}/f`)).size, 1);
  await Deno.remove(dir, { recursive: true });
});
