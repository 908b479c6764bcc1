/**
 * RaftService refuses a batch whose sender believes in another cluster or another
 * membership, before any of its messages reaches the core, and says what differs;
 * a sender that agrees, or one that predates the membership field, gets through.
 * Served in memory (Connect's router transport) by a fake node that records what
 * it is given.
 *
 * @module
 */

import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { MessageSchema, MessageType, RaftService } from "../../src/gen/raftkv/v1/raft_pb.ts";
import type { Message } from "../../src/raft/types.ts";
import { membersFromPb, membersToPb } from "../../src/server/codec.ts";
import type { RaftKvNode } from "../../src/server/node.ts";
import { raftService, refusedByMembership } from "../../src/server/raft_service.ts";

const PEERS = new Map([1, 2, 3].map((id) => [id, { host: "127.0.0.1", port: 7000 + id }]));

/**
 * Node 1 of cluster "c" with members {1,2,3}, as RaftService sees it; records what
 * it steps; `stop()` gives the final leader report a stopping node gives.
 */
function setup() {
  const stepped: Message[] = [];
  const listeners = new Set<(c: { leader: number; final: boolean }) => void>();
  const node = {
    options: { id: 1, clusterId: "c", peers: PEERS },
    status: () => ({ role: "follower", term: 1, lastIndex: 0 }),
    receive: (ms: readonly Message[]) => stepped.push(...ms),
    onLeaderChange: (l: (c: { leader: number; final: boolean }) => void) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  } as unknown as RaftKvNode;
  const client = createClient(
    RaftService,
    createRouterTransport((r) => r.service(RaftService, raftService(node))),
  );
  const stop = () => {
    for (const l of listeners) l({ leader: 0, final: true });
  };
  return { stepped, client, stop, listening: () => listeners.size };
}

/** A heartbeat from node 2 to node 1. */
const heartbeat = create(MessageSchema, {
  type: MessageType.HEARTBEAT,
  from: 2n,
  to: 1n,
  term: 1n,
});

async function refusal(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ConnectError, `expected a ConnectError, got ${err}`);
    return err;
  }
  assert.fail("the batch was accepted");
}

Deno.test("a sender that believes in the same cluster and membership is heard", async () => {
  const { stepped, client } = setup();
  await client.send({ clusterId: "c", members: [1n, 2n, 3n], messages: [heartbeat] });
  assert.deepEqual(stepped.map((m) => `${m.type} ${m.from}->${m.to}`), ["heartbeat 2->1"]);
});

Deno.test("a sender that predates the membership field is checked message by message, as before", async () => {
  const { stepped, client } = setup();
  await client.send({ clusterId: "c", messages: [heartbeat] });
  assert.equal(stepped.length, 1);
  const err = await refusal(
    client.send({ clusterId: "c", messages: [{ ...heartbeat, from: 9n }] }),
  );
  assert.equal(err.code, Code.PermissionDenied);
  assert.match(err.rawMessage, /node 9 is not a member/);
  assert.equal(stepped.length, 1);
});

Deno.test("a sender that believes in another membership is refused, naming both", async () => {
  const { stepped, client } = setup();
  // Node 2 restarted with --peers naming only itself and node 1.
  const err = await refusal(
    client.send({ clusterId: "c", members: [1n, 2n], messages: [heartbeat] }),
  );
  assert.equal(err.code, Code.FailedPrecondition);
  assert.equal(
    err.rawMessage,
    "Cannot accept messages from node 2: it believes the members are {1,2}, node 1 believes " +
      "they are {1,2,3}; one of the two was started with another --peers (compare their " +
      "--peers and data dirs)",
  );
  // A superset is another membership too: it would count quorums over four nodes.
  const more = await refusal(
    client.send({ clusterId: "c", members: [1n, 2n, 3n, 4n], messages: [heartbeat] }),
  );
  assert.equal(more.code, Code.FailedPrecondition);
  assert.match(more.rawMessage, /believes the members are \{1,2,3,4\}/);
  assert.deepEqual(stepped, []);
});

Deno.test("a membership accepted once does not let another one through later", async () => {
  const { stepped, client } = setup();
  await client.send({ clusterId: "c", members: [1n, 2n, 3n], messages: [heartbeat] });
  // The same sender, restarted with other --peers: each batch's list is checked.
  const err = await refusal(
    client.send({ clusterId: "c", members: [1n, 2n], messages: [heartbeat] }),
  );
  assert.equal(err.code, Code.FailedPrecondition);
  const invalid = await refusal(
    client.send({ clusterId: "c", members: [1n, 3n, 2n], messages: [heartbeat] }),
  );
  assert.equal(invalid.code, Code.InvalidArgument);
  await client.send({ clusterId: "c", members: [1n, 2n, 3n], messages: [heartbeat] });
  assert.equal(stepped.length, 2);
});

Deno.test("a sender of another cluster is refused before its membership is looked at", async () => {
  const { stepped, client } = setup();
  const err = await refusal(
    client.send({ clusterId: "other", members: [1n, 2n, 3n], messages: [heartbeat] }),
  );
  assert.equal(err.code, Code.FailedPrecondition);
  assert.equal(
    err.rawMessage,
    'Cannot accept messages from node 2: cluster id "other" does not match this node\'s "c"',
  );
  assert.deepEqual(stepped, []);
});

Deno.test("a membership list that is not positive ids in ascending order is invalid", async () => {
  const { stepped, client } = setup();
  const cases: [bigint[], RegExp][] = [
    [[2n, 1n, 3n], /Cannot decode members: 1 after 2/],
    [[1n, 1n, 2n, 3n], /Cannot decode members: 1 after 1/],
    [[0n, 1n, 2n, 3n], /node id 0 is not a node/],
    [[1n, 2n, 2n ** 53n], /above 2\^53 - 1/],
  ];
  for (const [members, why] of cases) {
    const err = await refusal(client.send({ clusterId: "c", members, messages: [heartbeat] }));
    assert.equal(err.code, Code.InvalidArgument, String(members));
    assert.match(err.rawMessage, why);
  }
  assert.deepEqual(stepped, []);
});

Deno.test("membership codec: ascending on the way out, checked on the way in", () => {
  assert.deepEqual(membersToPb([3, 1, 2]), [1n, 2n, 3n]);
  assert.deepEqual(membersFromPb(membersToPb(new Map([[5, 0], [2, 0]]).keys())), [2, 5]);
  assert.deepEqual(membersFromPb([]), []);
});

Deno.test("refusedByMembership: equal sets agree, anything else is refused", () => {
  assert.equal(refusedByMembership("node 2", [1, 2, 3], 1, [1, 2, 3]), undefined);
  assert.match(refusedByMembership("node 2", [1, 2, 4], 1, [1, 2, 3]) ?? "", /\{1,2,4\}/);
  assert.match(refusedByMembership("node 2", [], 1, [1]) ?? "", /believes the members are \{\}/);
});

/** A heartbeat from node 2 to node 1 with read round `context`, in a batch of its own. */
const batch = (
  context: bigint,
  over: Partial<typeof heartbeat> = {},
  batchOver: { clusterId?: string; members?: bigint[] } = {},
) => ({
  batch: {
    clusterId: "c",
    members: [1n, 2n, 3n],
    messages: [{ ...heartbeat, context, ...over }],
    ...batchOver,
  },
});

Deno.test("Stream: each batch is stepped as it arrives, in order, and the call is answered at its end", async () => {
  const { stepped, client, listening } = setup();
  async function* batches() {
    for (let k = 1n; k <= 3n; k++) {
      yield batch(k);
      // Stepped before the next batch is even written: nothing waits for the end.
      for (let n = 0; n < 1000 && stepped.length < k; n++) {
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.equal(stepped.length, Number(k));
    }
  }
  await client.stream(batches());
  assert.deepEqual(stepped.map((m) => m.context), [1, 2, 3]);
  assert.equal(listening(), 0, "the call stopped listening for the node's stop");
});

Deno.test("Stream: the first batch that fails a check ends the call with Send's status; none after it is stepped", async () => {
  const cases: [string, ReturnType<typeof batch>, Code, RegExp][] = [
    ["another cluster", batch(2n, {}, { clusterId: "x" }), Code.FailedPrecondition, /"x"/],
    [
      "another membership",
      batch(2n, {}, { members: [1n, 2n] }),
      Code.FailedPrecondition,
      /\{1,2\}/,
    ],
    ["no batch", {} as ReturnType<typeof batch>, Code.InvalidArgument, /without a batch/],
    ["a stranger", batch(2n, { from: 9n }), Code.PermissionDenied, /node 9 is not a member/],
    [
      "an unknown type",
      batch(2n, { type: 99 as MessageType }),
      Code.InvalidArgument,
      /unknown type 99/,
    ],
  ];
  for (const [what, bad, code, why] of cases) {
    const { stepped, client } = setup();
    const batches = async function* () {
      yield batch(1n);
      yield bad;
      yield batch(3n);
    };
    const err = await refusal(client.stream(batches()));
    assert.equal(err.code, code, what);
    assert.match(err.rawMessage, why, what);
    assert.deepEqual(stepped.map((m) => m.context), [1], what);
  }
});

Deno.test("Stream: a node that stops ends the calls it serves, answering them", async () => {
  const { stepped, client, stop, listening } = setup();
  let more: () => void = () => {};
  async function* batches() {
    yield batch(1n);
    // The sender has nothing more to send for now: the call stays open.
    await new Promise<void>((r) => more = r);
  }
  const call = client.stream(batches());
  for (let k = 0; k < 1000 && stepped.length === 0; k++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  stop();
  await call;
  more();
  assert.deepEqual(stepped.map((m) => m.context), [1]);
  assert.equal(listening(), 0);
});
