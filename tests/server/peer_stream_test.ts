/**
 * One peer's sending loop over RaftService/Stream (peer_stream.ts), against a fake
 * peer on real HTTP/2 on 127.0.0.1: messages arrive in the order they were queued,
 * many batches to a call and across calls; a connection cut under a stream is
 * followed by a new one and delivery resumes; a peer that is down is told as a
 * failure on every attempt, with waits between attempts, and is reached once it
 * is up; a peer of an older version, serving Send only, is sent Sends, the batches
 * of the refused Stream call included. Each story runs twice: with Stream calls
 * through Connect's client, and written directly on the HTTP/2 session
 * (raw_stream_call.ts), against the same Connect servers.
 *
 * @module
 */

import { listenH2, waitFor } from "../e2e/_harness.ts";
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { createClient } from "@connectrpc/connect";
import {
  connectNodeAdapter,
  createGrpcTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import {
  RaftService,
  type SendRequest,
  type StreamRequest,
} from "../../src/gen/raftkv/v1/raft_pb.ts";
import { message } from "../../src/raft/types.ts";
import { Http2Guard } from "../../src/http2/guard.ts";
import { DEFAULT_HTTP2_LIMITS } from "../../src/http2/limits.ts";
import { PeerQueue } from "../../src/server/peer_queue.ts";
import {
  type CallOutcome,
  MAX_BACKOFF_MS,
  MIN_BACKOFF_MS,
  nextBackoffMs,
  PeerStream,
  ROTATE_MS,
} from "../../src/server/peer_stream.ts";
import { parseNodeFlags } from "../../src/server/flags.ts";

/** Polls `cond` every 10 ms for up to 20 s (the harness's waitFor); fails naming `what`. */
async function until(what: string, cond: () => boolean): Promise<void> {
  await waitFor(what, cond, { timeoutMs: 20_000, intervalMs: 10 });
}

/** What a fake peer saw: each call's method and the contexts of its messages, in order. */
interface Seen {
  calls: { method: "send" | "stream"; batches: number[][] }[];
}

/**
 * A RaftService on 127.0.0.1 (on `port`, or a free one) that records what it is
 * sent; `sendOnly` serves Send alone, as a node of a version before Stream.
 */
async function fakePeer(seen: Seen, opts: { sendOnly?: boolean; port?: number } = {}) {
  const contexts = (req: SendRequest) => req.messages.map((m) => Number(m.context));
  const server = http2.createServer(
    {},
    connectNodeAdapter({
      routes: (r) =>
        r.service(RaftService, {
          send: (req) => {
            seen.calls.push({ method: "send", batches: [contexts(req)] });
            return {};
          },
          ...(opts.sendOnly === true ? {} : {
            stream: async (reqs: AsyncIterable<StreamRequest>) => {
              const call = { method: "stream" as const, batches: [] as number[][] };
              seen.calls.push(call);
              for await (const req of reqs) call.batches.push(contexts(req.batch!));
              return {};
            },
          }),
        }),
    }),
  );
  const listening = await listenH2(server, opts.port ?? 0);
  return {
    port: listening.port,
    cut: listening.cut,
    close: listening.close,
  };
}

/**
 * A RaftService/Stream behind the node's HTTP/2 guard (src/http2/guard.ts) with a
 * request timeout of `requestTimeoutMs`: a call whose request has not ended by then
 * is cut (CANCEL), as `--request-timeout-ms` makes a node do.
 */
async function guardedPeer(seen: Seen, requestTimeoutMs: number) {
  const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
  const guard = new Http2Guard({ ...DEFAULT_HTTP2_LIMITS, requestTimeoutMs }, quiet);
  const server = http2.createServer(
    {},
    guard.wrap(connectNodeAdapter({
      routes: (r) =>
        r.service(RaftService, {
          stream: async (reqs: AsyncIterable<StreamRequest>) => {
            const call = { method: "stream" as const, batches: [] as number[][] };
            seen.calls.push(call);
            for await (const req of reqs) {
              call.batches.push(req.batch!.messages.map((m) => Number(m.context)));
            }
            return {};
          },
        }),
    })),
  );
  guard.install(server);
  const listening = await listenH2(server);
  return {
    port: listening.port,
    close: listening.close,
  };
}

/** A free port with nothing listening on it. */
function deadPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

/** A PeerStream to 127.0.0.1:port whose messages are heartbeats numbered by `context`. */
function streamTo(port: number, opts: { rotateMs?: number; rotateBytes?: number } = {}) {
  const queue = new PeerQueue();
  const outcomes: CallOutcome[] = [];
  let fellBack = 0;
  // One session for the Connect client and the raw calls, as transport.ts shares it.
  const session = new Http2SessionManager(`http://127.0.0.1:${port}`);
  const client = createClient(
    RaftService,
    createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}`, sessionManager: session }),
  );
  const stream = new PeerStream({
    ...(raw ? { session: () => session } : {}),
    peer: 2,
    queue,
    client: () => client,
    clusterId: "test",
    members: [1n, 2n],
    timeoutMs: 5_000,
    ended: (o) => outcomes.push(o),
    fellBack: () => fellBack++,
    ...opts,
  });
  let next = 1;
  return {
    stream,
    outcomes,
    fellBack: () => fellBack,
    /** Queues `n` heartbeats numbered on from the last, and wakes the loop. */
    send(n: number) {
      for (let i = 0; i < n; i++) {
        queue.push(message({ type: "heartbeat", from: 1, to: 2, term: 1, context: next++ }));
      }
      stream.wake();
    },
    get sent() {
      return next - 1;
    },
  };
}

/** Whether the test under way sends on raw HTTP/2 streams (raw_stream_call.ts). */
let raw = false;

/**
 * Registers a story twice: Stream calls through Connect's client, and written
 * directly on the HTTP/2 session (the fake peers are Connect servers: a raw sender
 * against a receiver without the stream fast lane).
 */
function bothWays(name: string, fn: () => Promise<void>): void {
  for (const way of [false, true]) {
    Deno.test(`${name}${way ? " (raw sender)" : ""}`, async () => {
      raw = way;
      await fn();
    });
  }
}

const delivered = (seen: Seen) => seen.calls.flatMap((c) => c.batches.flat());

bothWays(
  "messages arrive in the order queued, many batches to a call and in order across calls",
  async () => {
    const seen: Seen = { calls: [] };
    const peer = await fakePeer(seen);
    // Short calls (100 ms, 2 KB), so that the run crosses many of them.
    const s = streamTo(peer.port, { rotateMs: 500, rotateBytes: 2048 });
    try {
      for (let round = 0; round < 40; round++) {
        s.send(1 + (round % 7));
        // Paced: each round goes out as batches of its own, not all in the first.
        await until("the round to arrive", () => delivered(seen).length === s.sent);
      }
      await until("every message to arrive", () => delivered(seen).length === s.sent);
    } finally {
      await s.stream.close();
      await peer.close();
    }
    assert.deepEqual(delivered(seen), Array.from({ length: s.sent }, (_, i) => i + 1));
    assert.ok(seen.calls.every((c) => c.method === "stream"), "all on Stream, none on Send");
    assert.ok(seen.calls.length > 1, `the calls rotated (${seen.calls.length} call(s))`);
    assert.ok(s.outcomes.every((o) => o.ok), JSON.stringify(s.outcomes));
  },
);

bothWays("one call carries batch after batch: a batch costs a frame, not a call", async () => {
  const seen: Seen = { calls: [] };
  const peer = await fakePeer(seen);
  const s = streamTo(peer.port, { rotateMs: 600_000 });
  try {
    for (let i = 1; i <= 5; i++) {
      s.send(1);
      await until(`message ${i}`, () => delivered(seen).length === i);
    }
  } finally {
    await s.stream.close();
    await peer.close();
  }
  assert.equal(seen.calls.length, 1);
  assert.deepEqual(seen.calls[0]!.batches, [[1], [2], [3], [4], [5]]);
});

bothWays(
  "a connection cut under a stream: the call fails, a new one is opened, delivery resumes",
  async () => {
    const seen: Seen = { calls: [] };
    const peer = await fakePeer(seen);
    const s = streamTo(peer.port);
    try {
      s.send(3);
      await until("the first messages", () => delivered(seen).length === 3);
      peer.cut();
      await until("the cut call to be told as failed", () => s.outcomes.some((o) => !o.ok));
      // Messages after the cut arrive on a new call (the leader's heartbeats go on).
      await until("delivery to resume", () => (s.send(1), delivered(seen).some((c) => c > 3)));
    } finally {
      await s.stream.close();
      await peer.close();
    }
    assert.ok(seen.calls.length >= 2, "a second call after the cut");
    const got = delivered(seen);
    assert.deepEqual(got.slice(0, 3), [1, 2, 3]);
    // Some may be lost to the cut (Raft retries), but none arrive out of order.
    assert.deepEqual(got, [...got].sort((a, b) => a - b));
  },
);

bothWays(
  "a peer that is down fails every attempt, with waits between them, and is reached once up",
  async () => {
    const port = deadPort();
    const s = streamTo(port);
    const seen: Seen = { calls: [] };
    let peer: Awaited<ReturnType<typeof fakePeer>> | undefined;
    try {
      // A leader's heartbeats every 10 ms for a while: attempts are spaced by the backoff.
      const began = performance.now();
      await until("five failed attempts", () => (s.send(1), s.outcomes.length >= 5));
      const failures = s.outcomes.filter((o) => !o.ok);
      assert.equal(failures.length, s.outcomes.length);
      // 50 + 100 + 100 + 100 ms of waits at least between the five attempts, whatever
      // the machine's speed: not an attempt per message.
      assert.ok(performance.now() - began >= 350, "attempts are spaced out");
      assert.ok(s.outcomes.length < s.sent, "fewer attempts than messages");
      peer = await fakePeer(seen, { port });
      await until("delivery once the peer is up", () => (s.send(1), delivered(seen).length > 0));
    } finally {
      await s.stream.close();
      await peer?.close();
    }
    const got = delivered(seen);
    assert.deepEqual(got, [...got].sort((a, b) => a - b));
  },
);

Deno.test("a peer that stays down is dialled again every heartbeat at most, however long it has failed", () => {
  // A full restart starts three processes seconds apart on a busy machine: a
  // leader elected by two of them has failed many calls to the third by the time
  // it listens, and must not then wait longer than a heartbeat to reach it
  // (etcd's rafthttp dials every 100 ms). The waits, failure after failure:
  const waits: number[] = [];
  let wait = 0;
  for (let failures = 0; failures < 20; failures++) waits.push(wait = nextBackoffMs(wait));
  assert.deepEqual(waits.slice(0, 3), [MIN_BACKOFF_MS, 2 * MIN_BACKOFF_MS, MAX_BACKOFF_MS]);
  const heartbeatMs = parseNodeFlags([], {}).heartbeatMs;
  assert.ok(
    waits.every((w) => w <= heartbeatMs),
    `waits ${waits.join(",")} exceed the default heartbeat of ${heartbeatMs} ms`,
  );
});

bothWays(
  "a peer serving Send only (an older version) is sent Sends, the refused call's batches included",
  async () => {
    const seen: Seen = { calls: [] };
    const peer = await fakePeer(seen, { sendOnly: true });
    const s = streamTo(peer.port);
    try {
      s.send(2);
      await until("the first messages", () => delivered(seen).length === 2);
      s.send(3);
      await until("the next ones", () => delivered(seen).length === 5);
    } finally {
      await s.stream.close();
      await peer.close();
    }
    assert.equal(s.fellBack(), 1);
    assert.deepEqual(delivered(seen), [1, 2, 3, 4, 5]);
    assert.ok(seen.calls.every((c) => c.method === "send"));
  },
);

bothWays("close() ends the loop at once, with a call open and waiting for messages", async () => {
  const seen: Seen = { calls: [] };
  const peer = await fakePeer(seen);
  // A call that would stay open for ten minutes: close() must not wait for it.
  const s = streamTo(peer.port, { rotateMs: 600_000 });
  try {
    s.send(1);
    await until("the message", () => delivered(seen).length === 1);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const closed = await Promise.race([
      s.stream.close().then(() => true),
      new Promise<boolean>((r) => timer = setTimeout(() => r(false), 30_000)),
    ]);
    clearTimeout(timer);
    assert.ok(closed, "close() waited for the open call");
  } finally {
    await peer.close();
  }
});

bothWays(
  "a peer whose server cuts calls sooner (a short --request-timeout-ms) gets shorter calls, and they get through",
  async () => {
    const seen: Seen = { calls: [] };
    // The server cuts a call 300 ms after its headers; ours last 2 s unless shortened.
    const peer = await guardedPeer(seen, 300);
    const s = streamTo(peer.port);
    try {
      await until(
        "a call answered, not cut",
        () => (s.send(1), s.outcomes.some((o) => o.ok)),
      );
    } finally {
      await s.stream.close();
      await peer.close();
    }
    assert.ok(s.outcomes.some((o) => !o.ok), "at least one call was cut first");
    assert.ok(s.stream.rotateMs < ROTATE_MS, `calls now last ${s.stream.rotateMs} ms at most`);
    const got = delivered(seen);
    assert.deepEqual(got, [...got].sort((a, b) => a - b));
  },
);
