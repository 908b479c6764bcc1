/**
 * The client library's time budget, in memory (Connect's router transport): an
 * operation no endpoint answers ends with an UnreachableError that names each
 * endpoint's last failure, and a write's budget includes opening its session.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Code, ConnectError, createRouterTransport, type Transport } from "@connectrpc/connect";
import { RaftKvClient, UnreachableError } from "../../src/client/client.ts";
import { KVService } from "../../src/gen/raftkv/v1/kv_pb.ts";
import { refusingTransport } from "./_refused.ts";

/** A node that accepts calls and never answers (paused, or cut off after connecting). */
const silent: Transport = createRouterTransport(({ service }) => {
  const hang = (_req: unknown, ctx: { signal: AbortSignal }) =>
    new Promise<never>((_, reject) =>
      ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))
    );
  service(KVService, { get: hang, openSession: hang, put: hang });
});

Deno.test("an operation no endpoint answers ends with an error naming each endpoint", async (t) => {
  await t.step("one refuses, one is silent: not 'nothing listening'", async () => {
    const client = new RaftKvClient({
      endpoints: ["a:1", "b:2"],
      timeoutMs: 300,
      transport: (endpoint) => endpoint === "a:1" ? refusingTransport(endpoint) : silent,
    });
    const err = await client.get("k").then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof UnreachableError, String(err));
    assert.equal(err.code, Code.Unavailable);
    assert.match(
      err.rawMessage,
      /^no endpoint answered within 300 ms \(a:1: connection refused; b:2: /,
    );
    assert.equal(err.nothingListening, false);
    client.close();
  });

  await t.step("every endpoint refuses: nothing listening", async () => {
    const client = new RaftKvClient({
      endpoints: ["a:1", "b:2"],
      timeoutMs: 300,
      transport: refusingTransport,
    });
    const err = await client.put("k", "v").then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof UnreachableError, String(err));
    assert.equal(
      err.rawMessage,
      "no endpoint answered within 300 ms (a:1: connection refused; b:2: connection refused)",
    );
    assert.equal(err.nothingListening, true);
    // Connect's own errors are not UnreachableErrors, and it stays a ConnectError.
    assert.equal(new ConnectError("x", Code.Unavailable) instanceof UnreachableError, false);
    assert.equal(ConnectError.from(err), err);
    client.close();
  });
});

Deno.test("a write's budget includes opening its session", async () => {
  const BUDGET = 1_000;
  const SESSION_TAKES = 600;
  const putTimeouts: (number | undefined)[] = [];
  const slowSessions = createRouterTransport(({ service }) => {
    service(KVService, {
      async openSession() {
        await new Promise((r) => setTimeout(r, SESSION_TAKES));
        return { sessionId: 1n };
      },
      put(_req, ctx) {
        putTimeouts.push(ctx.timeoutMs());
        return { index: 1n };
      },
    });
  });
  const client = new RaftKvClient({
    endpoints: ["a:1"],
    timeoutMs: BUDGET,
    transport: () => slowSessions,
  });
  // However long the session took, the put may only use what is left of the budget.
  const done = await client.put("k", "v").then(() => true, (e) => {
    assert.ok(e instanceof UnreachableError, String(e)); // the session alone took it all
    return false;
  });
  if (done) assert.equal(putTimeouts.length, 1);
  for (const t of putTimeouts) {
    assert.ok(t !== undefined && t <= BUDGET - SESSION_TAKES, `put given ${t} ms`);
  }
  client.close();
});
