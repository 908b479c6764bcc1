/**
 * Bad membership requests are definite errors with a message, and change nothing:
 * a taken id or address (ALREADY_EXISTS), an unknown id (NOT_FOUND), promoting a
 * learner that has not caught up (FAILED_PRECONDITION), a transfer to a learner
 * (FAILED_PRECONDITION), a malformed address (INVALID_ARGUMENT), removing the last
 * voter (FAILED_PRECONDITION); and a transfer to a named voter makes it the leader.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { putWithRetry, WaitAborted, waitFor, withCluster } from "./_harness.ts";
import { memberCall, membersOf } from "./_membership.ts";

async function refused(p: Promise<unknown>, code: Code, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    const e = ConnectError.from(err);
    assert.equal(Code[e.code], Code[code], e.rawMessage);
    assert.match(e.rawMessage, message);
    return true;
  });
}

Deno.test("bad membership requests are refused with their status and change nothing", async () => {
  await withCluster({ nodes: 3 }, async (c) => {
    const leader = await c.leader();
    for (let i = 0; i < 5; i++) await putWithRetry(c, `k${i}`, "v");
    const call = <T>(what: string, f: Parameters<typeof memberCall<T>>[2]) =>
      memberCall(c, what, f);
    await refused(
      call("add 2", (cl) => cl.addMember({ id: 2n, peerAddress: "127.0.0.1:1", learner: true })),
      Code.AlreadyExists,
      /Cannot add member 2: it is already a voter/,
    );
    await refused(
      call(
        "add 4 at 1's",
        (cl) => cl.addMember({ id: 4n, peerAddress: c.endpoint(1), learner: true }),
      ),
      Code.AlreadyExists,
      /member 1 already has peer address/,
    );
    await refused(
      call(
        "add 4 nowhere",
        (cl) => cl.addMember({ id: 4n, peerAddress: "no port", learner: true }),
      ),
      Code.InvalidArgument,
      /Cannot add member 4/,
    );
    await refused(
      call("remove 9", (cl) => cl.removeMember({ id: 9n })),
      Code.NotFound,
      /no such member/,
    );
    // A learner that never started cannot be promoted: it is far behind.
    await call(
      "add learner 4",
      (cl) => cl.addMember({ id: 4n, peerAddress: "127.0.0.1:9", learner: true }),
    );
    await refused(
      call("promote 4", (cl) => cl.promoteMember({ id: 4n })),
      Code.FailedPrecondition,
      /too far behind the leader/,
    );
    await refused(
      call("transfer to 4", (cl) => cl.transferLeadership({ targetId: 4n })),
      Code.FailedPrecondition,
      /it is a learner/,
    );
    assert.equal(await membersOf(c), "1:voter 2:voter 3:voter 4:learner");
    await call("remove 4", (cl) => cl.removeMember({ id: 4n }));
    assert.equal(await membersOf(c), "1:voter 2:voter 3:voter");

    // A transfer to a named voter: it leads afterwards.
    const target = c.ids.find((id) => id !== leader)!;
    // A transfer that did not finish within two election timeouts (a loaded machine
    // can delay the target's campaign) is refused as FAILED_PRECONDITION and leaves the
    // old leader leading; an operator asks again, and so does the test.
    const res = await waitFor("the transfer to a named voter", async () => {
      try {
        return await call("transfer", (cl) => cl.transferLeadership({ targetId: BigInt(target) }));
      } catch (err) {
        const e = ConnectError.from(err);
        if (e.code === Code.FailedPrecondition && /did not take over within/.test(e.rawMessage)) {
          throw e; // waitFor asks again
        }
        throw new WaitAborted(`the transfer was refused: ${e.message}`);
      }
    }, { timeoutMs: 60_000, intervalMs: 100 });
    assert.equal(Number(res.leaderId), target);
    assert.equal(await c.leader(), target);
  });
});

Deno.test("the last voter cannot be removed", async () => {
  await withCluster({ nodes: 1 }, async (c) => {
    await c.leader();
    await refused(
      c.clients(1).cluster.removeMember({ id: 1n }),
      Code.FailedPrecondition,
      /the last voter/,
    );
  });
});
