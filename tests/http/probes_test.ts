/**
 * `/healthz` and `/readyz`: what each answers, first as functions of a node's
 * status, then on a real cluster that loses its quorum: the survivor stays
 * healthy (it serves) but is not ready (it knows no leader).
 *
 * @module
 */

import assert from "node:assert/strict";
import { healthz, readyz } from "../../src/http/probes.ts";
import { waitFor, withCluster } from "../e2e/_harness.ts";

const status = (s: Partial<ReturnType<Parameters<typeof readyz>[0]["status"]>>) => ({
  status: () => ({ id: 1, lead: 2, term: 3, commit: 10, kvApplied: 10, ...s }),
});

Deno.test("readyz: ready with a leader and everything committed applied; else 503 and why", () => {
  assert.deepEqual(readyz(status({})), {
    status: 200,
    body: { ready: true, id: 1, leader: 2, term: 3, commit: 10, applied: 10 },
  });
  const noLeader = readyz(status({ lead: 0 }));
  assert.equal(noLeader.status, 503);
  assert.equal(noLeader.body.reason, "no leader is known");
  const behind = readyz(status({ kvApplied: 7 }));
  assert.equal(behind.status, 503);
  assert.equal(behind.body.reason, "applied 7 of 10 committed entries");
  assert.deepEqual(healthz(status({ lead: 0 })), { status: 200, body: { status: "ok", id: 1 } });
});

Deno.test("a node cut off from its quorum stays healthy but is not ready", async () => {
  await withCluster({ nodes: 3, http: true }, async (c) => {
    const leader = await c.leader();
    const get = async (id: number, path: string) => {
      const res = await fetch(`${c.httpUrl(id)}${path}`);
      return { status: res.status, body: await res.json() };
    };
    await waitFor(
      "the leader to be ready",
      async () => (await get(leader, "/readyz")).status === 200,
    );
    const [a, b] = c.ids.filter((id) => id !== leader);
    await c.kill(leader);
    await c.kill(b!);
    const notReady = await waitFor(`node ${a} to stop being ready`, async () => {
      const r = await get(a!, "/readyz");
      return r.status === 503 ? r : undefined;
    });
    assert.equal(notReady.body.ready, false);
    assert.equal(notReady.body.reason, "no leader is known");
    assert.deepEqual(await get(a!, "/healthz"), { status: 200, body: { status: "ok", id: a } });
  });
});
