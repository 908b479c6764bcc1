/**
 * The command a leader proposed is kept with its waiting call
 * (PendingCalls.proposedCommand), so that the leader applies it without decoding
 * the entry again: only for the entry of that index and term, and only while the
 * call waits; after that (applied, given up, leadership lost) the entry is decoded.
 */

import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { CommandSchema } from "../../src/gen/raftkv/v1/raft_pb.ts";
import { NodeError } from "../../src/server/node_error.ts";
import { PendingCalls } from "../../src/server/pending_calls.ts";

const late = () => new NodeError("deadline", "late");

function putCommand(key: string) {
  return create(CommandSchema, {
    op: { case: "put", value: { key, value: new TextEncoder().encode(key) } },
  });
}

Deno.test("a proposal's command is found by its index and term while its call waits, and not after", async () => {
  const pending = new PendingCalls();
  const command = putCommand("a");
  const waited = pending.waitForProposal(7, 2, undefined, late, command);
  assert.equal(pending.proposedCommand(7, 2), command);
  assert.equal(pending.proposedCommand(7, 3), undefined, "another term's entry at that index");
  assert.equal(pending.proposedCommand(8, 2), undefined, "another index");
  pending.applied(7, 2, { kind: "noop" } as never);
  await waited;
  assert.equal(pending.proposedCommand(7, 2), undefined, "applied: nothing kept");

  // A call that gives up takes its command with it: the entry is decoded when applied.
  const gaveUp = new AbortController();
  const abandoned = pending.waitForProposal(9, 2, gaveUp.signal, late, putCommand("b"));
  gaveUp.abort();
  await assert.rejects(abandoned, /late/);
  assert.equal(pending.proposedCommand(9, 2), undefined);

  // A proposal made without its command (a lease's, a membership change's) keeps none.
  const bare = pending.waitForProposal(10, 2, undefined, late);
  assert.equal(pending.proposedCommand(10, 2), undefined);
  pending.leadershipLost(3);
  await assert.rejects(bare, /leadership was lost/);
});
