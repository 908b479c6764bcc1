/**
 * The leader's lessor on a fake node and clock: a lease expires (a revoke is proposed)
 * only once its TTL has passed without a renewal; renewals push the deadline; a new
 * leader gives every lease its TTL plus an election timeout before expiring any (etcd's
 * rule); a follower neither expires nor renews.
 *
 * @module
 */

import assert from "node:assert/strict";
import { decodeCommand, encodeCommand } from "../../src/kv/command.ts";
import { KvStore } from "../../src/kv/store.ts";
import { Lessor } from "../../src/server/lessor.ts";
import { NodeError } from "../../src/server/node.ts";
import { SILENT_LOGGER } from "../../src/raft/logger.ts";
import { NONE } from "../../src/raft/types.ts";

const ELECTION_MS = 1000;

function fake() {
  const kv = new KvStore();
  let index = 0;
  const revoked: number[] = [];
  const node = {
    id: 1,
    leaderId: 1 as number,
    kv,
    options: {
      electionMs: ELECTION_MS,
      logger: SILENT_LOGGER,
    },
    leader() {
      return this.leaderId;
    },
    propose(data: Uint8Array) {
      const op = decodeCommand(data).op;
      if (op.case === "leaseRevoke") revoked.push(Number(op.value.id));
      kv.apply(++index, data);
      return Promise.resolve({ index, result: { kind: "noop" as const } });
    },
  };
  const grant = (ttl: number): number => {
    kv.apply(
      ++index,
      encodeCommand({ op: { case: "leaseGrant", value: { ttlSeconds: BigInt(ttl) } } }),
    );
    return index;
  };
  let clock = 0;
  // deno-lint-ignore no-explicit-any
  const lessor = new Lessor(node as any, () => clock, 0);
  return {
    node,
    lessor,
    grant,
    revoked,
    at: (ms: number) => {
      clock = ms;
      lessor.tick();
    },
  };
}

Deno.test("a lease granted by this leader expires after its TTL without renewal, not before", () => {
  const { lessor, grant, revoked, at } = fake();
  at(0);
  const id = grant(2);
  assert.equal(lessor.renew(id), 2); // the grant handler renews at once
  at(1999);
  assert.deepEqual(revoked, []);
  at(2000);
  assert.deepEqual(revoked, [id]);
  assert.equal(lessor.renew(id), undefined, "gone once revoked");
});

Deno.test("renewals push the deadline a full TTL from each renewal", () => {
  const { lessor, grant, revoked, at } = fake();
  at(0);
  const id = grant(2);
  lessor.renew(id);
  for (let t = 1500; t <= 15_000; t += 1500) {
    at(t);
    lessor.renew(id);
  }
  at(16_999);
  assert.deepEqual(revoked, []);
  assert.equal(Math.ceil(lessor.remainingMs(id)! / 1000), 1);
  at(17_000);
  assert.deepEqual(revoked, [id]);
});

Deno.test("a new leader gives each lease its TTL plus an election timeout before expiring it", () => {
  const { node, lessor, grant, revoked, at } = fake();
  node.leaderId = 2; // another node leads; the lease was granted and kept alive there
  at(0);
  const id = grant(2);
  at(50_000);
  assert.throws(() => lessor.renew(id), (e) => e instanceof NodeError && e.kind === "not_leader");
  assert.deepEqual(revoked, [], "a follower never expires a lease");
  node.leaderId = 1; // this node wins an election at 60 s
  at(60_000);
  at(60_000 + 2000 + ELECTION_MS - 1);
  assert.deepEqual(revoked, [], "not within TTL + election timeout of the change");
  at(60_000 + 2000 + ELECTION_MS);
  assert.deepEqual(revoked, [id]);
});

Deno.test("losing leadership forgets deadlines; regaining it starts them over", () => {
  const { node, lessor, grant, revoked, at } = fake();
  at(0);
  const id = grant(5);
  lessor.renew(id);
  node.leaderId = NONE;
  at(4000);
  node.leaderId = 1;
  at(8000); // the old deadline (5000) is forgotten: 8000 + 5000 + 1000 now
  assert.deepEqual(revoked, []);
  at(13_999);
  assert.deepEqual(revoked, []);
  at(14_000);
  assert.deepEqual(revoked, [id]);
});
