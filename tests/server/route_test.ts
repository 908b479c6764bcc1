/**
 * The router's call budget: a routed call runs within its client's deadline less an
 * answer margin, and the timer that enforces it ends with the call. It once did not
 * (AbortSignal.timeout cannot be cleared), so a leader kept every finished call's
 * timer and signal for the client's whole deadline: 5,300 of them at 180 puts/s with
 * 30 s deadlines.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type ConnectError, createContextValues, createHandlerContext } from "@connectrpc/connect";
import { KVService } from "../../src/gen/raftkv/v1/kv_pb.ts";
import { whenAborted } from "../../src/server/abort_hooks.ts";
import { Router } from "../../src/server/route.ts";
import type { RaftKvNode } from "../../src/server/node.ts";
import { callContext } from "../../src/server/unary_fast_lane.ts";

/** A node that leads (the router asks it nothing else on the local path). */
const leading = { id: 1, waitForLeader: () => Promise.resolve(1) } as unknown as RaftKvNode;

function context(timeoutMs: number) {
  return createHandlerContext({
    service: KVService,
    method: KVService.method.put,
    protocolName: "grpc",
    requestMethod: "POST",
    url: "http://127.0.0.1/raftkv.v1.KVService/Put",
    timeoutMs,
  });
}

/**
 * Runs `fn` with setTimeout and clearTimeout watched: the delays of the timers it
 * started, and those still pending when it settled.
 */
async function watchingTimers<T>(
  fn: () => Promise<T>,
): Promise<{ result: T; started: number[]; pending: number[] }> {
  const [set, clear] = [globalThis.setTimeout, globalThis.clearTimeout];
  const pending = new Map<unknown, number>();
  const started: number[] = [];
  globalThis.setTimeout = ((handler: () => void, ms?: number) => {
    const id = set(() => {
      pending.delete(id);
      handler();
    }, ms);
    pending.set(id, ms ?? 0);
    started.push(ms ?? 0);
    return id;
  }) as typeof setTimeout;
  globalThis.clearTimeout = ((id?: number) => {
    pending.delete(id);
    clear(id);
  }) as typeof clearTimeout;
  try {
    const result = await fn();
    return { result, started, pending: [...pending.values()] };
  } finally {
    globalThis.setTimeout = set;
    globalThis.clearTimeout = clear;
  }
}

Deno.test("a routed call that answers leaves no timer behind, though its client allowed 30 s", async () => {
  const ctx = context(30_000);
  try {
    const { result, started, pending } = await watchingTimers(() =>
      new Router(leading).route(
        ctx,
        (signal) => Promise.resolve(signal.aborted ? "aborted" : "served"),
        () => Promise.reject(new Error("this node leads: nothing is forwarded")),
      )
    );
    assert.equal(result, "served");
    assert.ok(
      started.some((ms) => ms > 29_000 && ms <= 30_000),
      `the call's budget is a timer of its own (started: ${started.join(", ")})`,
    );
    assert.deepEqual(pending, [], "every timer the call started ended with it");
  } finally {
    ctx.abort(); // Connect's own deadline timer for the context
  }
});

Deno.test("a routed call still times out within its client's deadline, less the margin", async () => {
  const ctx = context(200);
  try {
    const reason = await new Router(leading).route(
      ctx,
      (signal) =>
        new Promise<string>((resolve) =>
          signal.addEventListener("abort", () => resolve((signal.reason as Error).name), {
            once: true,
          })
        ),
      () => Promise.reject(new Error("this node leads: nothing is forwarded")),
    );
    assert.equal(reason, "TimeoutError", "the budget's timer, not the client's deadline");
  } finally {
    ctx.abort();
  }
});

Deno.test("a fast lane call whose client goes aborts the routed work with the call's reason", async () => {
  // The fast lane's context (a hooked signal: route.ts hears it without a listener).
  const ctx = callContext(
    KVService.method.put,
    30_000,
    { "content-type": "application/grpc" },
    "http://127.0.0.1",
    createContextValues(),
    undefined,
  );
  const gone = new Error("the client reset its call");
  let local: AbortSignal | undefined;
  const routed = new Router(leading).route(
    ctx,
    (signal) => {
      local = signal;
      return new Promise<string>((_, reject) =>
        signal.addEventListener("abort", () => reject(signal.reason), { once: true })
      );
    },
    () => Promise.reject(new Error("this node leads: nothing is forwarded")),
  );
  // The router finds the leader (a resolved promise here), then runs the local work.
  for (let i = 0; i < 100 && local === undefined; i++) await Promise.resolve();
  assert.ok(local !== undefined && !local.aborted, "the work runs, its signal not aborted");
  ctx.abort(gone);
  await assert.rejects(routed, (err: ConnectError) => err.message.includes(gone.message));
  assert.equal(local.reason, gone, "the routed work's signal aborted with the call's reason");
  assert.equal(whenAborted(ctx.signal, () => {}), false, "the call's signal is aborted");
});
