/**
 * The peer transport reports trouble with a peer once, not on every retry: a
 * peer that cannot be reached as "cannot reach", a peer that answers but refuses
 * our messages as "refused" (with why), and each once more when it clears. Every
 * batch states the membership this node believes in. A snapshot goes on its own
 * call, never in a batch.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  MessageType,
  RaftService,
  type SendRequest,
  type StreamRequest,
} from "../../src/gen/raftkv/v1/raft_pb.ts";
import type { LogFields, Logger } from "../../src/raft/logger.ts";
import { type Message, message } from "../../src/raft/types.ts";
import { raftService, type RaftServiceNode } from "../../src/server/raft_service.ts";
import { MAX_REQUEST_BYTES, PROTOCOLS } from "../../src/server/server.ts";
import { classifySendError, PeerTransport } from "../../src/server/transport.ts";
import { confStateOf } from "../../src/raft/types.ts";
import { listenH2 } from "../e2e/_harness.ts";

const PEERS3 = new Map([1, 2, 3].map((id) => [id, { host: "127.0.0.1", port: 7000 + id }]));

function recordingLogger(lines: string[]): Logger {
  const add = (level: string) => (msg: string, f?: LogFields) =>
    lines.push(`${level} ${msg}${f?.error === undefined ? "" : ` (${f.error})`}`);
  return { debug: () => {}, info: add("info"), warn: add("warn"), error: add("error") };
}

/** Polls `cond` every 10 ms for up to 10 s; fails naming `what`. */
async function until(what: string, cond: () => boolean): Promise<void> {
  for (let k = 0; k < 1000; k++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/**
 * A RaftService on 127.0.0.1 whose answer to each batch the test chooses, on Send
 * and on Stream (where a batch that throws ends the call); `sendOnly` serves Send
 * alone, as a node of a version before Stream.
 */
async function fakePeer(
  answer: (req: SendRequest) => void,
  sendOnly = false,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = http2.createServer(
    {},
    connectNodeAdapter({
      routes: (r) =>
        r.service(RaftService, {
          send: (req) => (answer(req), {}),
          ...(sendOnly ? {} : {
            stream: async (reqs: AsyncIterable<StreamRequest>) => {
              for await (const req of reqs) answer(req.batch!);
              return {};
            },
          }),
        }),
    }),
  );
  const listening = await listenH2(server);
  return {
    port: listening.port,
    close: listening.close,
  };
}

Deno.test("an unreachable peer is logged once, however often sends to it fail", async () => {
  // A port with nothing listening: every Send fails at once.
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  const lines: string[] = [];
  const t = new PeerTransport({
    selfId: 1,
    clusterId: "test",
    peers: new Map([[1, { host: "127.0.0.1", port: 1 }], [2, { host: "127.0.0.1", port }]]),
    logger: recordingLogger(lines),
    timeoutMs: 1000,
    onSnapshotReport: () => {},
  });
  try {
    for (let i = 0; i < 5; i++) {
      t.send([message({ type: "heartbeat", from: 1, to: 2, term: 1 })]);
      // Wait for this send to fail before the next (polling, bounded).
      const before = lines.length;
      for (let k = 0; k < 200 && lines.length === before && i === 0; k++) {
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  } finally {
    await t.close();
  }
  assert.deepEqual(lines.filter((l) => l.startsWith("warn")).map((l) => l.split(" (")[0]), [
    "warn cannot reach peer",
  ]);
});

Deno.test("a peer's queue past 64 MiB drops its oldest messages, logged once when it starts dropping", async () => {
  // A port with nothing listening: the messages wait in the queue meanwhile.
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  const lines: string[] = [];
  const t = new PeerTransport({
    selfId: 1,
    clusterId: "test",
    peers: new Map([[1, { host: "127.0.0.1", port: 1 }], [2, { host: "127.0.0.1", port }]]),
    logger: recordingLogger(lines),
    timeoutMs: 1000,
    onSnapshotReport: () => {},
  });
  // 100 appends of 1 MiB each (one buffer, shared), in two sends: one queue's worth and more.
  const data = new Uint8Array(1024 * 1024);
  const append = (i: number) =>
    message({
      type: "app",
      from: 1,
      to: 2,
      term: 1,
      index: i,
      entries: [{ term: 1, index: i + 1, type: "normal", data }],
    });
  try {
    t.send(Array.from({ length: 50 }, (_, i) => append(i)));
    t.send(Array.from({ length: 50 }, (_, i) => append(50 + i)));
  } finally {
    await t.close();
  }
  assert.deepEqual(
    lines.filter((l) => l.startsWith("warn peer queue full")),
    ["warn peer queue full: dropping its oldest messages"],
  );
});

Deno.test("a peer that refuses our messages is logged once as refused, and once when it accepts again", async () => {
  const seen: SendRequest[] = [];
  let refuse = true;
  const refusal = "Cannot accept messages from node 1: it believes the members are {1,2,3}, " +
    "node 2 believes they are {1,2}; one of the two was started with another --peers";
  const peer = await fakePeer((req) => {
    seen.push(req);
    if (refuse) throw new ConnectError(refusal, Code.FailedPrecondition);
  });
  const lines: string[] = [];
  const t = new PeerTransport({
    selfId: 1,
    clusterId: "test",
    peers: new Map([
      [3, { host: "127.0.0.1", port: 1 }],
      [1, { host: "127.0.0.1", port: 1 }],
      [2, { host: "127.0.0.1", port: peer.port }],
    ]),
    logger: recordingLogger(lines),
    timeoutMs: 5000,
    onSnapshotReport: () => {},
  });
  const heartbeat = () => t.send([message({ type: "heartbeat", from: 1, to: 2, term: 1 })]);
  try {
    // Heartbeats every 10 ms, as a leader would send them, until six batches were
    // refused: each refusal ends the stream (what waited is dropped), and the sender
    // waits a little longer each time before it opens the next.
    await until("six refused batches", () => (heartbeat(), seen.length >= 6));
    refuse = false;
    await until(
      "the peer to accept again",
      () => (heartbeat(), lines.some((l) => l.includes("again"))),
    );
  } finally {
    await t.close();
    await peer.close();
  }
  assert.deepEqual(lines, [
    `warn peer refused our messages (FailedPrecondition: ${refusal})`,
    "info peer accepted our messages again",
  ]);
  // Every batch said which cluster and which members the sender believes in.
  assert.ok(seen.every((r) => r.clusterId === "test" && r.members.join(",") === "1,2,3"));
});

Deno.test("refusals and unreachable peers are told apart by code; identity refusals also by message", () => {
  const refused = (code: Code, msg: string) => classifySendError(new ConnectError(msg, code));
  assert.deepEqual(refused(Code.FailedPrecondition, "cluster id"), {
    kind: "refused",
    cause: "refused FailedPrecondition: cluster id",
  });
  assert.notDeepEqual(
    refused(Code.FailedPrecondition, "cluster id"),
    refused(Code.FailedPrecondition, "members"),
  );
  assert.deepEqual(refused(Code.PermissionDenied, "node 1 is not a member").kind, "refused");
  // A refusal naming an index is one cause whatever the index.
  assert.deepEqual(
    refused(Code.InvalidArgument, "acknowledges index 7"),
    refused(Code.InvalidArgument, "acknowledges index 8"),
  );
  for (const code of [Code.Unavailable, Code.Canceled, Code.Internal, Code.DeadlineExceeded]) {
    assert.deepEqual(refused(code, "x"), { kind: "unreachable", cause: "unreachable" });
  }
  assert.deepEqual(classifySendError(new Error("socket")), {
    kind: "unreachable",
    cause: "unreachable",
  });
});

Deno.test("a snap message travels on InstallSnapshot over HTTP/2, never in a Send batch, and is reported", async () => {
  const stepped: Message[] = [];
  const batches: string[][] = [];
  const node: RaftServiceNode = {
    options: {
      id: 2,
      clusterId: "test",
      peers: PEERS3,
      logger: recordingLogger([]),
    } as unknown as RaftServiceNode["options"],
    status: () =>
      ({ role: "follower", term: 4, lastIndex: 0 }) as ReturnType<
        RaftServiceNode["status"]
      >,
    receive: (ms: readonly Message[]) => void stepped.push(...ms),
  };
  const real = raftService(node);
  // The node's real RaftService behind the server's own request limit, recording batches.
  const server = http2.createServer(
    {},
    connectNodeAdapter({
      ...PROTOCOLS,
      readMaxBytes: MAX_REQUEST_BYTES,
      routes: (r) =>
        r.service(RaftService, {
          ...real,
          send: (req, ctx) => {
            batches.push(req.messages.map((m) => MessageType[m.type]));
            return real.send(req, ctx);
          },
          stream: (reqs, ctx) =>
            real.stream(
              (async function* () {
                for await (const req of reqs) {
                  batches.push(req.batch!.messages.map((m) => MessageType[m.type]));
                  yield req;
                }
              })(),
              ctx,
            ),
        }),
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const reports: string[] = [];
  const t = new PeerTransport({
    selfId: 1,
    clusterId: "test",
    peers: new Map([[1, { host: "127.0.0.1", port: 1 }], [2, { host: "127.0.0.1", port }], [3, {
      host: "127.0.0.1",
      port: 1,
    }]]),
    logger: recordingLogger([]),
    timeoutMs: 5000,
    onSnapshotReport: (to, failed) => reports.push(`${to} ${failed ? "failure" : "finish"}`),
  });
  // 3.5 MB of state: four chunks of at most 1 MiB, under the server's 4 MiB request limit.
  const data = new Uint8Array(3_500_000).map((_, i) => i & 0xff);
  const snapshot = { meta: { index: 900, term: 4, conf: confStateOf([1, 2, 3]) }, data };
  try {
    t.send([
      message({ type: "heartbeat", from: 1, to: 2, term: 4 }),
      message({ type: "snap", from: 1, to: 2, term: 4, snapshot }),
      message({ type: "heartbeat", from: 1, to: 2, term: 4 }),
    ]);
    await until("the snapshot's report", () => reports.length > 0);
    await until("both heartbeats", () => batches.flat().length === 2);
  } finally {
    await t.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  assert.deepEqual(reports, ["2 finish"]);
  assert.deepEqual(batches.flat(), ["HEARTBEAT", "HEARTBEAT"]);
  const snaps = stepped.filter((m) => m.type === "snap");
  assert.equal(snaps.length, 1);
  assert.deepEqual(snaps[0]?.snapshot, snapshot);
});

Deno.test("reachablePeers names the peers that answer an empty Send, stating our cluster and members", async () => {
  // Node 2 answers; node 3's port has nothing listening.
  const seen: SendRequest[] = [];
  const peer2 = await fakePeer((req) => seen.push(req));
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = l.addr.port;
  l.close();
  const t = new PeerTransport({
    selfId: 1,
    clusterId: "test",
    peers: new Map([
      [1, { host: "127.0.0.1", port: 1 }],
      [2, { host: "127.0.0.1", port: peer2.port }],
      [3, { host: "127.0.0.1", port: deadPort }],
    ]),
    logger: recordingLogger([]),
    timeoutMs: 1000,
    onSnapshotReport: () => {},
  });
  try {
    assert.deepEqual(await t.reachablePeers(1000), [2]);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.clusterId, "test");
    assert.equal(seen[0]!.messages.length, 0);
    assert.deepEqual(seen[0]!.members, [1n, 2n, 3n]);
  } finally {
    await t.close();
    await peer2.close();
  }
  assert.deepEqual(await t.reachablePeers(1000), [], "a closed transport reaches no one");
});

Deno.test("setPeers: a member added at runtime is dialed, a removed one is not, and batches state the founding members", async () => {
  const got = new Map<string, SendRequest[]>();
  const record = (name: string) => (req: SendRequest) => {
    got.set(name, [...(got.get(name) ?? []), req]);
  };
  const two = await fakePeer(record("two"));
  const four = await fakePeer(record("four"));
  const lines: string[] = [];
  const t = new PeerTransport({
    selfId: 1,
    clusterId: "test",
    peers: new Map([
      [1, { host: "127.0.0.1", port: 1 }],
      [2, { host: "127.0.0.1", port: two.port }],
    ]),
    members: [1, 2, 3],
    logger: recordingLogger(lines),
    timeoutMs: 5000,
    onSnapshotReport: () => {},
  });
  const heartbeat = (to: number) => t.send([message({ type: "heartbeat", from: 1, to, term: 1 })]);
  try {
    assert.deepEqual(t.peerIds(), [2]);
    t.setPeers(
      new Map([
        [1, { host: "127.0.0.1", port: 1 }],
        [4, { host: "127.0.0.1", port: four.port }],
      ]),
    );
    assert.deepEqual(t.peerIds(), [4]);
    heartbeat(4);
    await until("node 4 to get its heartbeat", () => (got.get("four") ?? []).length === 1);
    heartbeat(2); // no longer a member: dropped, not sent
  } finally {
    await t.close();
    await two.close();
    await four.close();
  }
  assert.equal(got.get("two"), undefined);
  assert.equal(got.get("four")![0]!.members.join(","), "1,2,3");
  assert.deepEqual(lines, [
    "info stopped dialing a former member",
    "info dialing a new member",
    "error dropping message to unknown peer",
  ]);
});

Deno.test("an empty append overtaken by the next append never reaches the peer; one that nothing overtakes arrives late", async () => {
  const got: string[] = [];
  const peer = await fakePeer((req) => {
    for (const m of req.messages) {
      got.push(`${MessageType[m.type]} entries=${m.entries.length} commit=${m.commit}`);
    }
  });
  const transport = (holdEmptyAppendsMs?: number) =>
    new PeerTransport({
      selfId: 1,
      clusterId: "test",
      peers: new Map([[1, { host: "127.0.0.1", port: 1 }], [2, {
        host: "127.0.0.1",
        port: peer.port,
      }]]),
      logger: recordingLogger([]),
      timeoutMs: 5000,
      onSnapshotReport: () => {},
      holdEmptyAppendsMs,
    });
  const empty = (commit: number) =>
    message({ type: "app", from: 1, to: 2, term: 1, index: commit, logTerm: 1, commit });
  const next = message({
    type: "app",
    from: 1,
    to: 2,
    term: 1,
    index: 5,
    logTerm: 1,
    entries: [{ term: 1, index: 6, type: "normal", data: new Uint8Array([6]) }],
    commit: 5,
  });
  const heartbeat = message({ type: "heartbeat", from: 1, to: 2, term: 1, commit: 5 });
  // A hold far longer than the test: only being overtaken can keep the empty append from the
  // peer, and the heartbeat would carry a still-held one out ahead of itself.
  const held = transport(60_000);
  try {
    held.send([empty(5)]);
    held.send([next]);
    held.send([heartbeat]);
    await until("the heartbeat to arrive", () => got.length >= 2);
  } finally {
    await held.close();
  }
  assert.deepEqual(got, ["APP entries=1 commit=5", "HEARTBEAT entries=0 commit=5"]);
  got.length = 0;
  const late = transport(); // the default hold
  try {
    late.send([empty(6)]);
    await until("the lone empty append to arrive", () => got.length === 1);
  } finally {
    await late.close();
    await peer.close();
  }
  assert.deepEqual(got, ["APP entries=0 commit=6"]);
});
