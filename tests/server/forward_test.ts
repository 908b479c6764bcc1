/**
 * Forwarding on one stream (forward.ts), between a follower's transport and a
 * leader's ForwardServer on real HTTP/2 on 127.0.0.1, the leader's KVService a fake
 * that records what it saw: a forwarded call reaches the handler once, with the
 * forwarded-by header and the caller's deadline, and its answer comes back as
 * sent, errors with their status and message; many calls share one Forward call; a
 * stream that breaks under a call answers it UNAVAILABLE; a caller that gives up
 * aborts the handler; a leader that does not serve Forward is sent ordinary calls;
 * requests a follower would never send are refused one by one, the stream serving on;
 * open calls are bounded, and a reused call id ends the stream; a stopping leader
 * ends its Forward calls once their open calls are answered.
 *
 * @module
 */

import { listenH2, waitFor } from "../e2e/_harness.ts";
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createClient,
  createServiceImplSpec,
  type HandlerContext,
} from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import { KVService, PutResponseSchema } from "../../src/gen/raftkv/v1/kv_pb.ts";
import {
  type ForwardRequest,
  ForwardRequestSchema,
  type ForwardResponse,
  RaftService,
} from "../../src/gen/raftkv/v1/raft_pb.ts";
import {
  FORWARDED_HEADER,
  ForwardServer,
  forwardTransport,
  MAX_OPEN_CALLS,
} from "../../src/server/forward.ts";

/** What the fake leader's KVService saw. */
interface Seen {
  puts: { key: string; forwardedBy: string | null; timeoutMs: number | undefined }[];
  aborted: string[];
  forwardCalls: number;
  forwardEnded: number;
}

/** The fake KVService: `fail/...` keys fail, `hang/...` keys wait for their abort. */
function fakeKv(seen: Seen) {
  return {
    async put(req: { key: string }, ctx: HandlerContext) {
      seen.puts.push({
        key: req.key,
        forwardedBy: ctx.requestHeader.get(FORWARDED_HEADER),
        timeoutMs: ctx.timeoutMs(),
      });
      if (req.key === "fail/invalid") {
        throw new ConnectError("key must not contain NUL", Code.InvalidArgument);
      }
      if (req.key === "fail/unavailable") {
        throw new ConnectError("node 1 is not the leader", Code.Unavailable);
      }
      if (req.key.startsWith("hang/")) {
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
        seen.aborted.push(req.key);
        throw new ConnectError("gave up", Code.Canceled);
      }
      return create(PutResponseSchema, { index: BigInt(seen.puts.length) });
    },
  };
}

interface Leader {
  url: string;
  seen: Seen;
  forward: ForwardServer;
  close(): Promise<void>;
}

/** A leader on 127.0.0.1: `raft` decides how RaftService is served (by default, Forward). */
async function startLeader(
  raft?: (r: ConnectRouter, seen: Seen, forward: ForwardServer) => void,
): Promise<Leader> {
  const seen: Seen = { puts: [], aborted: [], forwardCalls: 0, forwardEnded: 0 };
  const kv = fakeKv(seen);
  const forward = new ForwardServer({
    services: [createServiceImplSpec<typeof KVService>(KVService, kv)],
    interceptors: [],
    maxTimeoutMs: 2 ** 31 - 1,
  });
  const handler = connectNodeAdapter({
    grpc: true,
    grpcWeb: false,
    connect: false,
    routes: (r) => {
      r.service(KVService, kv);
      if (raft !== undefined) return raft(r, seen, forward);
      r.service(RaftService, {
        forward: async function* (requests, ctx) {
          seen.forwardCalls++;
          try {
            yield* forward.serve(requests, ctx);
          } finally {
            seen.forwardEnded++;
          }
        },
      });
    },
  });
  const server = http2.createServer(handler);
  const listening = await listenH2(server);
  const port = listening.port;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    forward,
    close: listening.close,
  };
}

/** The follower's KV client to `leader`, as route.ts builds it (follower 2, leader 1). */
function followerClient(leader: Leader) {
  const direct = createGrpcTransport({ baseUrl: leader.url });
  const transport = forwardTransport(createClient(RaftService, direct), direct, 2n, 1n);
  return createClient(KVService, transport);
}

Deno.test("a forwarded put reaches the leader's handler once, forwarded by the follower, with its deadline", async () => {
  const leader = await startLeader();
  try {
    const kv = followerClient(leader);
    const res = await kv.put({ key: "a", value: new Uint8Array([1]) }, { timeoutMs: 5_000 });
    assert.equal(res.index, 1n);
    assert.equal(leader.seen.puts.length, 1);
    const put = leader.seen.puts[0]!;
    assert.equal(put.key, "a");
    assert.equal(put.forwardedBy, "2");
    assert.ok(put.timeoutMs !== undefined && put.timeoutMs > 0 && put.timeoutMs <= 5_000);
    assert.equal(leader.seen.forwardCalls, 1);
  } finally {
    await leader.close();
  }
});

Deno.test("many forwarded calls at once share one Forward call, each answered with its own result", async () => {
  const leader = await startLeader();
  try {
    const kv = followerClient(leader);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => kv.put({ key: `k${i}`, value: new Uint8Array() })),
    );
    assert.equal(results.length, 50);
    assert.equal(new Set(results.map((r) => r.index)).size, 50);
    assert.deepEqual(
      leader.seen.puts.map((p) => p.key).sort(),
      Array.from({ length: 50 }, (_, i) => `k${i}`).sort(),
    );
    assert.equal(leader.seen.forwardCalls, 1);
  } finally {
    await leader.close();
  }
});

Deno.test("a forwarded call's error comes back with the handler's status and message", async () => {
  const leader = await startLeader();
  try {
    const kv = followerClient(leader);
    await assert.rejects(
      kv.put({ key: "fail/invalid", value: new Uint8Array() }),
      (err: unknown) => {
        assert.ok(err instanceof ConnectError);
        assert.equal(err.code, Code.InvalidArgument);
        assert.equal(err.rawMessage, "key must not contain NUL");
        return true;
      },
    );
    await assert.rejects(
      kv.put({ key: "fail/unavailable", value: new Uint8Array() }),
      (err: unknown) => {
        assert.ok(err instanceof ConnectError);
        assert.equal(err.code, Code.Unavailable);
        assert.equal(err.rawMessage, "node 1 is not the leader");
        return true;
      },
    );
    // The stream serves on after errors.
    assert.equal((await kv.put({ key: "b", value: new Uint8Array() })).index, 3n);
  } finally {
    await leader.close();
  }
});

Deno.test("a caller that gives up aborts the leader's handler, and hears DEADLINE_EXCEEDED", async () => {
  const leader = await startLeader();
  try {
    const kv = followerClient(leader);
    await assert.rejects(
      kv.put({ key: "hang/1", value: new Uint8Array() }, { timeoutMs: 300 }),
      (err: unknown) => err instanceof ConnectError && err.code === Code.DeadlineExceeded,
    );
    const abort = new AbortController();
    const call = kv.put({ key: "hang/2", value: new Uint8Array() }, { signal: abort.signal });
    await until("the leader to see hang/2", () => leader.seen.puts.some((p) => p.key === "hang/2"));
    abort.abort();
    await assert.rejects(
      call,
      (err: unknown) => err instanceof ConnectError && err.code === Code.Canceled,
    );
    await until("both handlers aborted", () => leader.seen.aborted.length === 2);
    assert.deepEqual(leader.seen.aborted.sort(), ["hang/1", "hang/2"]);
  } finally {
    await leader.close();
  }
});

Deno.test("a Forward stream that breaks under a call answers it UNAVAILABLE, and the next call opens a new one", async () => {
  let breakNext = true;
  const leader = await startLeader((r, seen, forward) => {
    r.service(RaftService, {
      forward: async function* (requests, ctx) {
        seen.forwardCalls++;
        if (breakNext) {
          breakNext = false;
          // Take the call, then the connection goes (as when the leader dies mid-call).
          for await (const _ of requests) {
            throw new ConnectError("connection reset", Code.Aborted);
          }
          return;
        }
        yield* forward.serve(requests, ctx);
      },
    });
  });
  try {
    const kv = followerClient(leader);
    await assert.rejects(
      kv.put({ key: "lost", value: new Uint8Array() }),
      (err: unknown) => {
        assert.ok(err instanceof ConnectError);
        assert.equal(err.code, Code.Unavailable);
        assert.match(err.rawMessage, /Forward stream to leader 1 broke/);
        return true;
      },
    );
    assert.equal((await kv.put({ key: "after", value: new Uint8Array() })).index, 1n);
    assert.equal(leader.seen.forwardCalls, 2);
  } finally {
    await leader.close();
  }
});

Deno.test("a leader that does not serve Forward (an older version) is sent ordinary calls, each once", async () => {
  const leader = await startLeader((r) => r.service(RaftService, {}));
  try {
    const kv = followerClient(leader);
    assert.equal((await kv.put({ key: "x", value: new Uint8Array() })).index, 1n);
    assert.equal((await kv.put({ key: "y", value: new Uint8Array() })).index, 2n);
    assert.deepEqual(leader.seen.puts.map((p) => p.key), ["x", "y"]);
    // Sent as ordinary calls, from the follower's own headers: no forwarded-by here
    // (route.ts sets it on each call; this test's client does not).
    assert.equal(leader.seen.puts[0]!.forwardedBy, null);
  } finally {
    await leader.close();
  }
});

Deno.test("Forward requests a follower never sends are refused one by one, and the stream serves on", async () => {
  const leader = await startLeader();
  try {
    const raft = createClient(RaftService, createGrpcTransport({ baseUrl: leader.url }));
    const requests: ForwardRequest[] = [
      // Not a unary KV or cluster method: a streaming one, a Raft one, nonsense.
      create(ForwardRequestSchema, { callId: 1n, path: "/raftkv.v1.KVService/Watch" }),
      create(ForwardRequestSchema, { callId: 2n, path: "/raftkv.v1.RaftService/Send" }),
      create(ForwardRequestSchema, { callId: 3n, path: "\u0000".repeat(1000) }),
      // A message that is not a PutRequest: a truncated varint, a wrong wire type.
      create(ForwardRequestSchema, {
        callId: 4n,
        path: "/raftkv.v1.KVService/Put",
        message: new Uint8Array([0x08, 0xff]),
      }),
      create(ForwardRequestSchema, {
        callId: 5n,
        path: "/raftkv.v1.KVService/Put",
        message: new Uint8Array([0xff, 0xff]),
      }),
      // A deadline past the server's longest.
      create(ForwardRequestSchema, {
        callId: 6n,
        path: "/raftkv.v1.KVService/Put",
        timeoutMs: 2n ** 63n,
      }),
      // A cancellation of a call that is not open: ignored.
      create(ForwardRequestSchema, { callId: 99n, cancel: true }),
      // And a good one, after all that.
      create(ForwardRequestSchema, {
        callId: 7n,
        path: "/raftkv.v1.KVService/Put",
        message: new Uint8Array([0x0a, 0x01, 0x6b]), // key "k"
      }),
    ];
    const answers = new Map<bigint, ForwardResponse>();
    for await (const r of raft.forward(iterate(requests))) answers.set(r.callId, r);
    const status = (id: bigint) => {
      const r = answers.get(id);
      assert.ok(r !== undefined, `call ${id} answered`);
      return r.code;
    };
    assert.equal(status(1n), Code.Unimplemented);
    assert.equal(status(2n), Code.Unimplemented);
    assert.equal(status(3n), Code.Unimplemented);
    assert.equal(status(4n), Code.Internal);
    assert.match(answers.get(4n)!.errorMessage, /^parse binary: /);
    assert.equal(status(5n), Code.Internal);
    assert.equal(status(6n), Code.InvalidArgument);
    assert.equal(status(7n), 0);
    assert.equal(answers.size, 7);
    assert.deepEqual(leader.seen.puts.map((p) => p.key), ["k"]);

    // A call without an id ends the stream: INVALID_ARGUMENT.
    await assert.rejects(
      (async () => {
        for await (
          const _ of raft.forward(iterate([create(ForwardRequestSchema, { path: "/x" })]))
        ) {
          // none expected
        }
      })(),
      (err: unknown) => err instanceof ConnectError && err.code === Code.InvalidArgument,
    );
  } finally {
    await leader.close();
  }
});

Deno.test("a Forward call holds at most MAX_OPEN_CALLS calls open; one more is RESOURCE_EXHAUSTED, a reused id ends the call", async () => {
  const leader = await startLeader();
  try {
    const raft = createClient(RaftService, createGrpcTransport({ baseUrl: leader.url }));
    const hang = (callId: bigint) =>
      create(ForwardRequestSchema, {
        callId,
        path: "/raftkv.v1.KVService/Put",
        message: new Uint8Array([0x0a, 0x06, ...new TextEncoder().encode(`hang/${callId % 10n}`)]),
      });
    const answers: ForwardResponse[] = [];
    const err = await (async () => {
      try {
        for await (
          const r of raft.forward((async function* () {
            for (let i = 1; i <= MAX_OPEN_CALLS + 1; i++) yield hang(BigInt(i));
            // Once the one over the limit is answered, reuse an open call's id.
            await until("the call over the limit answered", () => answers.length === 1);
            yield hang(1n);
          })())
        ) {
          answers.push(r);
        }
      } catch (e) {
        return ConnectError.from(e);
      }
      assert.fail("a reused call id was taken");
    })();
    assert.equal(answers.length, 1);
    assert.equal(answers[0]!.callId, BigInt(MAX_OPEN_CALLS + 1));
    assert.equal(answers[0]!.code, Code.ResourceExhausted);
    assert.match(answers[0]!.errorMessage, /too many forwarded calls open/);
    assert.equal(err.code, Code.InvalidArgument, err.message);
    assert.match(err.rawMessage, /reuses call_id 1, still open/);
    // The calls left open were aborted when the Forward call ended.
    await until("every open call aborted", () => leader.seen.aborted.length === MAX_OPEN_CALLS);
  } finally {
    await leader.close();
  }
});

Deno.test("a stopping leader ends its Forward calls once their open calls finish, refusing new ones UNAVAILABLE", async () => {
  const leader = await startLeader();
  try {
    const kv = followerClient(leader);
    await kv.put({ key: "before", value: new Uint8Array() });
    const abort = new AbortController();
    const hanging = kv.put({ key: "hang/open", value: new Uint8Array() }, { signal: abort.signal })
      .catch((err) => ConnectError.from(err));
    await until(
      "the leader to see hang/open",
      () => leader.seen.puts.some((p) => p.key === "hang/open"),
    );
    leader.forward.close();
    await assert.rejects(
      kv.put({ key: "after", value: new Uint8Array() }),
      (err: unknown) => {
        assert.ok(err instanceof ConnectError);
        assert.equal(err.code, Code.Unavailable);
        assert.equal(err.rawMessage, "the leader is stopping");
        return true;
      },
    );
    // The open call still runs: the Forward call has not ended.
    assert.equal(leader.seen.forwardEnded, 0);
    abort.abort();
    const ended = await hanging;
    assert.ok(ended instanceof ConnectError && ended.code === Code.Canceled, String(ended));
    await until("the Forward call to end", () => leader.seen.forwardEnded === 1);
    assert.deepEqual(leader.seen.puts.map((p) => p.key), ["before", "hang/open"]);
  } finally {
    await leader.close();
  }
});

/** Polls `cond` every 10 ms for up to 20 s (the harness's waitFor); fails naming `what`. */
async function until(what: string, cond: () => boolean): Promise<void> {
  await waitFor(what, cond, { timeoutMs: 20_000, intervalMs: 10 });
}

async function* iterate<T>(items: T[]): AsyncGenerator<T> {
  yield* items;
}
