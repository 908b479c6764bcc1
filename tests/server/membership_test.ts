/**
 * The membership calls' rules (src/server/membership.ts), apart from any node: the
 * membership listed with addresses, and each bad request refused with its status
 * and a message before anything is proposed.
 */

import assert from "node:assert/strict";
import { MemberRegistry } from "../../src/kv/members.ts";
import {
  checkAdd,
  checkPromote,
  checkRemove,
  listMembers,
  MembershipRefused,
  peerAddressOf,
  pickTransferTarget,
} from "../../src/server/membership.ts";

const peers = new Map([
  [1, { host: "127.0.0.1", port: 7001 }],
  [2, { host: "127.0.0.1", port: 7002 }],
  [3, { host: "127.0.0.1", port: 7003 }],
]);
const conf = { voters: [1, 2, 3], learners: [4] };
const registry = new MemberRegistry([{ id: 4, peerAddress: "127.0.0.1:7004", learner: true }]);

function refused(code: string, message: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof MembershipRefused, `not a refusal: ${String(err)}`);
    assert.equal(err.code, code);
    assert.match(err.message, message);
    return true;
  };
}

Deno.test("the members are listed by id with their addresses: --peers first, then the log's", () => {
  assert.deepEqual(listMembers(conf, registry, peers), [
    { id: 1, peerAddress: "127.0.0.1:7001", learner: false },
    { id: 2, peerAddress: "127.0.0.1:7002", learner: false },
    { id: 3, peerAddress: "127.0.0.1:7003", learner: false },
    { id: 4, peerAddress: "127.0.0.1:7004", learner: true },
  ]);
  // A node behind a proxy dials member 4 where its own --peers says.
  const proxied = new Map([...peers, [4, { host: "127.0.0.1", port: 9999 }]]);
  assert.equal(peerAddressOf(4, registry, proxied), "127.0.0.1:9999");
  assert.equal(peerAddressOf(8, registry, peers), undefined);
});

Deno.test("AddMember: a new id at a new address is accepted, its address normalized", () => {
  assert.equal(checkAdd(conf, registry, peers, 5, "localhost:7005"), "localhost:7005");
});

Deno.test("AddMember refuses id 0, a malformed address, a taken id and a taken address", () => {
  assert.throws(
    () => checkAdd(conf, registry, peers, 0, "h:1"),
    refused("invalid_argument", /ids are positive/),
  );
  assert.throws(
    () => checkAdd(conf, registry, peers, 5, "no-port"),
    refused("invalid_argument", /Cannot add member 5: .*peer_address/),
  );
  assert.throws(
    () => checkAdd(conf, registry, peers, 5, "h:0"),
    refused("invalid_argument", /port 0/),
  );
  assert.throws(
    () => checkAdd(conf, registry, peers, 2, "h:1"),
    refused("already_exists", /Cannot add member 2: it is already a voter/),
  );
  assert.throws(
    () => checkAdd(conf, registry, peers, 4, "h:1"),
    refused("already_exists", /already a learner/),
  );
  assert.throws(
    () => checkAdd(conf, registry, peers, 5, "127.0.0.1:7004"),
    refused("already_exists", /member 4 already has peer address 127.0.0.1:7004/),
  );
});

Deno.test("PromoteMember: a caught-up learner is accepted; a voter, a stranger, a laggard are not", () => {
  checkPromote(conf, 4, { learnerMatch: 95, leaderLast: 100 });
  assert.throws(
    () => checkPromote(conf, 9, { learnerMatch: 0, leaderLast: 100 }),
    refused("not_found", /no such member/),
  );
  assert.throws(
    () => checkPromote(conf, 2, { learnerMatch: 100, leaderLast: 100 }),
    refused("failed_precondition", /already a voter/),
  );
  assert.throws(
    () => checkPromote(conf, 4, { learnerMatch: 50, leaderLast: 100_000 }),
    refused(
      "failed_precondition",
      /too far behind the leader .* up to index 50, .* ends at 100000/,
    ),
  );
});

Deno.test("RemoveMember refuses a stranger and the last voter", () => {
  checkRemove(conf, 4);
  checkRemove(conf, 1);
  assert.throws(() => checkRemove(conf, 9), refused("not_found", /no such member/));
  assert.throws(
    () => checkRemove({ voters: [1], learners: [4] }, 1),
    refused("failed_precondition", /the last voter/),
  );
});

Deno.test("TransferLeadership goes to the named voter, or the most up-to-date other voter", () => {
  const match = (id: number) => ({ 1: 100, 2: 90, 3: 99, 4: 100 } as Record<number, number>)[id]!;
  assert.equal(pickTransferTarget(conf, 1, 2, match), 2);
  assert.equal(pickTransferTarget(conf, 1, 0, match), 3);
  assert.throws(
    () => pickTransferTarget(conf, 1, 4, match),
    refused("failed_precondition", /it is a learner/),
  );
  assert.throws(() => pickTransferTarget(conf, 1, 9, match), refused("not_found", /no such/));
  assert.throws(
    () => pickTransferTarget({ voters: [1], learners: [] }, 1, 0, match),
    refused("failed_precondition", /no other voter/),
  );
});
