/**
 * A Stream call written on a raw HTTP/2 stream (src/server/raw_stream_call.ts)
 * fails as a call of Connect's client does, against the same servers: a peer that
 * accepts the connection but never speaks HTTP/2 fails the call by its deadline
 * (DEADLINE_EXCEEDED), not by the OS's; an aborted call is CANCELED and the
 * server sees the stream reset with CANCEL; and answers that are not gRPC (an
 * unknown path, a 415, a refusal in the trailers, a stream the server resets)
 * give the code and message Connect's client gives.
 */

import assert from "node:assert/strict";
import * as http2 from "node:http2";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  connectNodeAdapter,
  createGrpcTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import {
  RaftService,
  SendRequestSchema,
  type StreamRequest,
  StreamRequestSchema,
} from "../../src/gen/raftkv/v1/raft_pb.ts";
import { RawStreamCall } from "../../src/server/raw_stream_call.ts";
import { listenH2, waitFor } from "../e2e/_harness.ts";

const STREAM = `/${RaftService.typeName}/${RaftService.method.stream.name}`;

const request = (clusterId: string) =>
  toBinary(
    StreamRequestSchema,
    create(StreamRequestSchema, { batch: create(SendRequestSchema, { clusterId }) }),
  );

/** An HTTP/2 server with `handler`, and its sessions, to close at the end. */
async function h2Server(
  handler: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
) {
  const server = http2.createServer({}, handler);
  const listening = await listenH2(server);
  return {
    server,
    url: `http://127.0.0.1:${listening.port}`,
    close: listening.close,
  };
}

/** A raw call of one request, half-closed at once: its error, or undefined if it succeeded. */
async function rawCall(url: string, path = STREAM, timeoutMs = 5_000) {
  const session = new Http2SessionManager(url);
  try {
    const call = await RawStreamCall.open({
      session,
      path,
      timeoutMs,
      signal: new AbortController().signal,
    });
    call.write(request("c"));
    await call.finish();
    return undefined;
  } catch (err) {
    return ConnectError.from(err);
  } finally {
    session.abort();
  }
}

/** The same call through Connect's client. */
async function connectCall(url: string, path = STREAM) {
  const session = new Http2SessionManager(url);
  try {
    const client = createClient(
      RaftService,
      createGrpcTransport({ baseUrl: url, sessionManager: session }),
    );
    if (path === STREAM) {
      await client.stream((async function* () {
        yield create(StreamRequestSchema, { batch: create(SendRequestSchema, { clusterId: "c" }) });
      })());
    } else {
      throw new Error(`no Connect call for ${path}`);
    }
    return undefined;
  } catch (err) {
    return ConnectError.from(err);
  } finally {
    session.abort();
  }
}

const brief = (e: ConnectError | undefined) =>
  e === undefined ? "ok" : `${Code[e.code]}: ${e.rawMessage}`;

Deno.test("a peer that accepts the connection but never speaks HTTP/2: the call fails by its deadline", async () => {
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
  });
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  try {
    const err = await rawCall(url, STREAM, 300);
    assert.equal(brief(err), "DeadlineExceeded: the operation timed out");
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
  }
});

Deno.test("an aborted call is CANCELED, and the server sees its stream reset with CANCEL", async () => {
  let rstCode: number | undefined;
  let opened = 0;
  const peer = await h2Server((req) => {
    opened++;
    req.stream.on("close", () => rstCode = req.stream.rstCode);
  });
  const session = new Http2SessionManager(peer.url);
  const abort = new AbortController();
  try {
    const call = await RawStreamCall.open({
      session,
      path: STREAM,
      timeoutMs: 10_000,
      signal: abort.signal,
    });
    call.write(request("c"));
    await waitFor("the server has the call", () => opened === 1);
    abort.abort();
    const err = await call.finish().then(() => undefined, (e) => ConnectError.from(e));
    assert.equal(err?.code, Code.Canceled);
    await waitFor("the server sees the reset", () => rstCode !== undefined);
    assert.equal(rstCode, http2.constants.NGHTTP2_CANCEL);
  } finally {
    session.abort();
    await peer.close();
  }
});

Deno.test("answers that are not a plain OK fail the raw call as they fail Connect's client", async () => {
  const refusing = connectNodeAdapter({
    routes: (r) =>
      r.service(RaftService, {
        stream: async (reqs: AsyncIterable<StreamRequest>) => {
          for await (const req of reqs) {
            if (req.batch?.clusterId === "c") {
              throw new ConnectError(
                "Cannot accept messages: another cluster",
                Code.FailedPrecondition,
              );
            }
          }
          return {};
        },
      }),
  });
  const cases: [string, (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void][] =
    [
      ["a refusal in the trailers", refusing],
      [
        "an older node without Stream",
        connectNodeAdapter({ routes: (r) => r.service(RaftService, {}) }),
      ],
      ["not found (404)", (_req, res) => {
        res.writeHead(404);
        res.end();
      }],
      ["another content type", (_req, res) => {
        res.writeHead(200, { "content-type": "text/html" });
        res.end("<html></html>");
      }],
      ["a stream the server resets (REFUSED_STREAM)", (req) => {
        req.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      }],
      ["an answer without a status", (_req, res) => {
        res.writeHead(200, { "content-type": "application/grpc" });
        res.end();
      }],
    ];
  for (const [name, handler] of cases) {
    const peer = await h2Server(handler);
    try {
      const raw = await rawCall(peer.url);
      const connect = await connectCall(peer.url);
      assert.notEqual(raw, undefined, `${name}: the raw call failed`);
      assert.equal(brief(raw), brief(connect), name);
    } finally {
      await peer.close();
    }
  }
});
