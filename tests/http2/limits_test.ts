/**
 * The HTTP/2 limits that are the node's own (src/http2/guard.ts), each against a
 * live node with the limit set low: connections per address and in total, the
 * request timeout, the idle timeout; and that clients which multiplex more calls
 * than a connection's stream limit wait for a free stream instead of failing
 * (Connect and grpc-js, as peers and followers forwarding calls do).
 *
 * @module
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { ClusterService } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { EndpointClients, waitFor } from "../e2e/_harness.ts";
import { GrpcJsClient } from "../e2e/_grpc_js_client.ts";
import {
  describeReport,
  ERROR,
  FLAG,
  FRAME,
  frame,
  grpcRequestBlock,
  hpackLiteral,
  openStream,
  PUT_PATH,
  RawH2Conn,
  unreadResponses,
} from "./_attacker.ts";
import { normalClient, SiegedNode } from "./_siege.ts";

function limitLines(n: SiegedNode, limit: string): string[] {
  return n.log.filter((l) => l.includes(`HTTP/2 limit hit: ${limit} source=`));
}

/** Waits for the node to log `limit` (its log arrives through a pipe) and checks it did once. */
async function loggedOnce(n: SiegedNode, limit: string): Promise<string> {
  await waitFor(`the node to log "${limit}"`, () => limitLines(n, limit).length > 0);
  const lines = limitLines(n, limit);
  assert.equal(lines.length, 1, `logged more than once:\n${lines.join("\n")}`);
  return lines[0]!;
}

/**
 * Opens a raw connection and makes one Status call on it: "served" if the call
 * ends with an answer, "closed" if the node closed the connection first.
 */
async function statusOnNewConnection(port: number): Promise<"served" | "closed"> {
  const probe = new RawH2Conn(port);
  try {
    await probe.start().catch(() => {});
    await probe.write(Buffer.concat([
      openStream(1, grpcRequestBlock("/raftkv.v1.ClusterService/Status")),
      frame(FRAME.DATA, FLAG.END_STREAM, 1, Buffer.alloc(5)), // an empty StatusRequest
    ]));
    return await waitFor("the probe's call to end or its connection to close", () => {
      if (probe.stats.ended.has(1)) return "served" as const;
      return probe.open ? undefined : "closed" as const;
    });
  } finally {
    await probe.close();
  }
}

async function withNode(args: string[], fn: (n: SiegedNode) => Promise<void>): Promise<void> {
  const n = await SiegedNode.start(args);
  try {
    await fn(n);
  } catch (err) {
    console.error(`node log ends:\n${n.log.slice(-15).join("\n")}`);
    throw err;
  } finally {
    await n.stop();
  }
}

Deno.test("connection limits: past 2 per address or 4 in total, new connections are closed at once, logged once per source; the clients already connected keep working", async () => {
  await withNode(["--max-connections", "4", "--max-connections-per-address", "2"], async (n) => {
    const client = normalClient(n.endpoint);
    await client.ready; // one connection from 127.0.0.1
    const conns: RawH2Conn[] = [];
    try {
      for (const [from, count] of [["127.0.0.1", 3], ["127.0.0.2", 3]] as const) {
        for (let i = 0; i < count; i++) {
          const c = new RawH2Conn(n.port, "127.0.0.1", { localAddress: from });
          conns.push(c);
          await c.start().catch(() => {});
        }
      }
      // 127.0.0.1: 1 more admitted, 2 refused (per address); 127.0.0.2: 2 admitted
      // (4 in total then), 1 refused (in total).
      const closed = await waitFor("the node to close the connections past the limits", () => {
        const closed = conns.map((c) => c.stats.closedBy === "server");
        return closed.filter(Boolean).length === 3 ? closed : false;
      }, { timeoutMs: 10_000 });
      assert.deepEqual(closed, [false, true, true, false, false, true]);
      await loggedOnce(n, "connections per address");
      await loggedOnce(n, "connections");
      assert.ok(limitLines(n, "connections per address")[0]!.includes("source=127.0.0.1"));
      assert.ok(limitLines(n, "connections")[0]!.includes("source=127.0.0.2"));
      // Closing two makes room again: a new client gets in.
      await conns[3]!.close();
      await conns[0]!.close();
      // (A raw probe, not a gRPC client: the node may not have seen the closes yet and
      // refuse the first tries, and a refused node:http2 client session can surface its
      // EPIPE as an uncaught error in Deno 2.9.3.)
      await waitFor("a new connection to be served", async () => {
        return await statusOnNewConnection(n.port) === "served";
      });
    } finally {
      await Promise.all(conns.map((c) => c.close()));
      await client.stop();
    }
    assert.deepEqual(client.record.failures, []);
  });
});

Deno.test("request timeout: a request whose body does not come within 1 s is reset (CANCEL), logged once for many such streams; complete requests are served", async () => {
  await withNode(["--request-timeout-ms", "1000"], async (n) => {
    const c = new RawH2Conn(n.port);
    try {
      await c.start();
      // Five Puts whose gRPC prefix promises 100 bytes, of which 10 come.
      const parts: Buffer[] = [];
      for (let id = 1; id <= 9; id += 2) {
        parts.push(openStream(id));
        parts.push(frame(FRAME.DATA, 0, id, Buffer.from([0, 0, 0, 0, 100, ...Buffer.alloc(10)])));
      }
      await c.write(Buffer.concat(parts));
      await waitFor("the node to reset all five streams", () => {
        return (c.stats.resets.get(ERROR.CANCEL) ?? 0) === 5;
      }, { timeoutMs: 10_000 });
      assert.equal(c.open, true, "the connection itself stays open");
      await loggedOnce(n, "request timeout");
      const clients = new EndpointClients(n.endpoint);
      try {
        assert.equal((await clients.cluster.status({}, { timeoutMs: 5_000 })).id, 1n);
      } finally {
        await clients.close();
      }
    } finally {
      await c.close();
    }
  });
});

Deno.test("call byte budget: uploads that would take the bytes held past 1 MiB (beyond 64 KiB per connection) are reset with ENHANCE_YOUR_CALM, logged once; small calls go on", async () => {
  await withNode(["--max-call-buffer-mib", "1"], async (n) => {
    const client = normalClient(n.endpoint);
    await client.ready;
    const c = new RawH2Conn(n.port);
    try {
      await c.start();
      // Four Puts declaring 1 MiB each, of which 600 KiB come: 2.4 MiB in all.
      const ids = [1, 3, 5, 7];
      await c.write(Buffer.concat(ids.map((id) => openStream(id))));
      const prefix = Buffer.from([0, 0, 0x10, 0, 0]);
      await Promise.all(ids.map(async (id) => {
        await c.sendData(id, prefix, () => true);
        await c.sendData(id, Buffer.alloc(600 * 1024), () => c.open && !c.stats.resets.size);
      }));
      await waitFor("the node to reset an upload", () => {
        return (c.stats.resets.get(ERROR.ENHANCE_YOUR_CALM) ?? 0) > 0;
      }, { timeoutMs: 10_000 });
      await loggedOnce(n, "call bytes");
    } finally {
      await c.close();
      await client.stop();
    }
    assert.deepEqual(client.record.failures, []);
  });
});

Deno.test("call byte budget: answers a client never reads are counted until their stream closes; past 1 MiB (beyond 64 KiB per connection) they are reset with ENHANCE_YOUR_CALM, logged once", async () => {
  await withNode(["--max-call-buffer-mib", "1"], async (n) => {
    // Six Gets of a 512 KiB value on a connection that never opens its flow
    // control window: 3 MiB of answers the node would hold.
    const rep = await unreadResponses({
      port: n.port,
      durationMs: 3_000,
      streams: 6,
      valueBytes: 512 * 1024,
    });
    assert.ok((rep.resets.get(ERROR.ENHANCE_YOUR_CALM) ?? 0) > 0, describeReport(rep));
    await loggedOnce(n, "call bytes");
    const clients = new EndpointClients(n.endpoint);
    try {
      assert.equal((await clients.cluster.status({}, { timeoutMs: 5_000 })).id, 1n);
    } finally {
      await clients.close();
    }
  });
});

Deno.test("header list size: a request with 20 KB of headers (the limit is 16 KiB) is reset with ENHANCE_YOUR_CALM, logged once; the connection serves on", async () => {
  await withNode([], async (n) => {
    const c = new RawH2Conn(n.port);
    try {
      await c.start();
      const big = Buffer.concat([
        grpcRequestBlock(PUT_PATH),
        Buffer.from(hpackLiteral("x-big", "b".repeat(20_000))),
      ]);
      for (const id of [1, 3]) {
        await c.write(frame(FRAME.HEADERS, 0, id, big.subarray(0, 16_000)));
        await c.write(frame(FRAME.CONTINUATION, FLAG.END_HEADERS, id, big.subarray(16_000)));
      }
      await waitFor("the node to reset both streams", () => {
        return (c.stats.resets.get(ERROR.ENHANCE_YOUR_CALM) ?? 0) === 2;
      }, { timeoutMs: 10_000 });
      await loggedOnce(n, "header list size");
      assert.equal(c.open, true);
    } finally {
      await c.close();
    }
  });
});

Deno.test("idle timeout: a connection that opens no stream for 1 s is closed with GOAWAY", async () => {
  await withNode(["--idle-timeout-ms", "1000"], async (n) => {
    const c = new RawH2Conn(n.port);
    try {
      await c.start();
      await waitFor("the node to close the idle connection", () => !c.open, { timeoutMs: 10_000 });
      assert.equal(c.stats.closedBy, "server");
      assert.deepEqual(c.stats.goaways, [ERROR.NO_ERROR]);
    } finally {
      await c.close();
    }
  });
});

Deno.test("stream limit: Connect and grpc-js clients with 200 calls in flight on one connection limited to 10 streams wait for free streams, and every call succeeds", async () => {
  await withNode(["--max-streams-per-connection", "10"], async (n) => {
    const raw = new RawH2Conn(n.port);
    try {
      await raw.start();
      await waitFor("the server's SETTINGS", () => raw.stats.serverSettings !== undefined);
      assert.equal(raw.stats.serverSettings!.get(0x3), 10, "SETTINGS_MAX_CONCURRENT_STREAMS");
    } finally {
      await raw.close();
    }
    const connect = new EndpointClients(n.endpoint);
    const grpcJs = new GrpcJsClient(n.endpoint);
    try {
      const calls = Array.from({ length: 200 }, () => [
        connect.cluster.status({}, { timeoutMs: 30_000 }),
        grpcJs.call(ClusterService.method.status, {}),
      ]).flat();
      const answers = await Promise.all(calls);
      assert.equal(answers.length, 400);
      for (const a of answers) assert.equal(a.id, 1n);
    } finally {
      grpcJs.close();
      await connect.close();
    }
    assert.equal(limitLines(n, "streams").length, 0, "nothing was refused");
  });
});
