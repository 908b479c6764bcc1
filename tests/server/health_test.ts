/**
 * The gRPC health service (src/server/health.ts) over Connect's in-memory router
 * transport, driven by a fake node whose leader the test sets: Check, Watch
 * (current status at once, then each change, SERVICE_UNKNOWN for an unknown
 * name, the end when the node stops, cancellation) and List.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../src/gen/health/v1/health_pb.ts";
import { healthService, type LeaderSource } from "../../src/server/health.ts";
import type { LeaderChange } from "../../src/server/node.ts";
import { type NodeId, NONE } from "../../src/raft/types.ts";

/** A node whose leader the test sets. */
class FakeNode implements LeaderSource {
  #leader: NodeId;
  readonly #listeners = new Set<(change: LeaderChange) => void>();

  constructor(leader: NodeId) {
    this.#leader = leader;
  }

  leader(): NodeId {
    return this.#leader;
  }

  onLeaderChange(listener: (change: LeaderChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The node now knows `leader` (NONE: none). */
  set(leader: NodeId): void {
    this.#leader = leader;
    for (const l of this.#listeners) l({ leader, final: false });
  }

  /** The node stops. */
  stop(): void {
    this.#leader = NONE;
    for (const l of this.#listeners) l({ leader: NONE, final: true });
  }

  get listeners(): number {
    return this.#listeners.size;
  }
}

function setup(leader: NodeId) {
  const node = new FakeNode(leader);
  const transport = createRouterTransport((r) => r.service(Health, healthService(node)));
  return { node, client: createClient(Health, transport) };
}

/** Reads the next message of a stream, failing if the stream ends. */
async function next<T>(it: AsyncIterator<T>): Promise<T> {
  const r = await it.next();
  assert.ok(r.done !== true, "the stream ended");
  return r.value;
}

Deno.test("health Check: SERVING with a leader, NOT_SERVING without", async () => {
  const { node, client } = setup(NONE);
  for (const service of ["", "raftkv.v1.KVService"]) {
    assert.equal((await client.check({ service })).status, ServingStatus.NOT_SERVING, service);
  }
  node.set(2);
  for (const service of ["", "raftkv.v1.KVService"]) {
    assert.equal((await client.check({ service })).status, ServingStatus.SERVING, service);
  }
  node.set(NONE);
  assert.equal((await client.check({ service: "" })).status, ServingStatus.NOT_SERVING);
  node.set(1);
  assert.equal((await client.check({ service: "" })).status, ServingStatus.SERVING);
  node.stop();
  assert.equal((await client.check({ service: "" })).status, ServingStatus.NOT_SERVING);
  node.set(1); // nothing counts after the stop
  assert.equal((await client.check({ service: "" })).status, ServingStatus.NOT_SERVING);
});

Deno.test("health Check: an unknown service is NOT_FOUND", async () => {
  const { client } = setup(1);
  for (const service of ["raftkv.v1.Nope", "raftkv.v1.RaftService", "grpc.health.v1.Health"]) {
    await assert.rejects(
      client.check({ service }),
      (err: unknown) => err instanceof ConnectError && err.code === Code.NotFound,
      service,
    );
  }
});

Deno.test("health Watch: the status at once, then each change, until cancelled", async () => {
  const { node, client } = setup(NONE);
  const abort = new AbortController();
  const it = client.watch({ service: "raftkv.v1.KVService" }, { signal: abort.signal })[
    Symbol.asyncIterator
  ]();
  assert.equal((await next(it)).status, ServingStatus.NOT_SERVING);
  node.set(3);
  assert.equal((await next(it)).status, ServingStatus.SERVING);
  node.set(2); // another leader: still SERVING, nothing to send
  node.set(NONE);
  assert.equal((await next(it)).status, ServingStatus.NOT_SERVING);
  node.set(1);
  assert.equal((await next(it)).status, ServingStatus.SERVING);
  abort.abort();
  await assert.rejects(
    it.next(),
    (err: unknown) => err instanceof ConnectError && err.code === Code.Canceled,
  );
});

Deno.test("health Watch: ends with NOT_SERVING when the node stops", async () => {
  const { node, client } = setup(1);
  const seen: ServingStatus[] = [];
  const watching = (async () => {
    for await (const res of client.watch({ service: "" })) {
      seen.push(res.status);
      if (seen.length === 1) node.stop();
    }
  })();
  await watching;
  assert.deepEqual(seen, [ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
});

Deno.test("health Watch: an unknown service gets SERVICE_UNKNOWN and stays open", async () => {
  const { node, client } = setup(1);
  const abort = new AbortController();
  const it = client.watch({ service: "nope" }, { signal: abort.signal })[Symbol.asyncIterator]();
  assert.equal((await next(it)).status, ServingStatus.SERVICE_UNKNOWN);
  node.set(NONE);
  node.set(2);
  // Still open: the next read ends only with the cancellation.
  const pending = it.next();
  abort.abort();
  await assert.rejects(
    pending,
    (err: unknown) => err instanceof ConnectError && err.code === Code.Canceled,
  );
});

Deno.test("health List: both names with the shared status", async () => {
  const { node, client } = setup(NONE);
  let res = await client.list({});
  assert.deepEqual(
    Object.fromEntries(Object.entries(res.statuses).map(([k, v]) => [k, v.status])),
    { "": ServingStatus.NOT_SERVING, "raftkv.v1.KVService": ServingStatus.NOT_SERVING },
  );
  node.set(1);
  res = await client.list({});
  assert.equal(res.statuses[""]?.status, ServingStatus.SERVING);
  assert.equal(res.statuses["raftkv.v1.KVService"]?.status, ServingStatus.SERVING);
  assert.equal(node.listeners, 1, "one subscription per service, not per call");
});
