/**
 * A flood of hostile connections: 500 raw TCP connections to a node, opened in
 * bursts of 50, of eight kinds (seeded): closed at once, reset at once, silent,
 * text garbage, binary garbage, an HTTP/1.1 request, half an HTTP/2 preface, the
 * preface and SETTINGS then nothing, the preface then garbage frames; and 100 gRPC
 * calls whose request body never comes. The node must go on answering KV calls
 * after every burst; the connections that sent garbage must be closed by the node
 * (not left to pile up); and once the test closes what is left, the node still
 * serves and every socket the test opened is closed.
 *
 * Known limit: in Deno 2.9.3 a node whose accept() fails with EMFILE stops
 * accepting for good, even once descriptors are free again (nothing is logged, the
 * process stays up). The node bounds its connections (--max-connections 512, 64 per
 * address, idle ones closed after --idle-timeout-ms: tests/http2/), under the common
 * soft limit of 1024 descriptors; deployments raise the limit too
 * (deploy/systemd: LimitNOFILE=65536); the fix belongs in Deno's node:net.
 *
 * Seeded: the seed is printed on failure; replay with `RAFTKV_FLOOD_SEED=<seed>`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import * as http2 from "node:http2";
import * as net from "node:net";
import { randomInt, seededRandom } from "../../src/raft/rand.ts";
import { text, utf8, waitFor, withCluster } from "./_harness.ts";

const BURSTS = 10;
const PER_BURST = 50;
const STALLED_CALLS = 100;

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

type Kind =
  | "close"
  | "reset"
  | "silent"
  | "text-garbage"
  | "binary-garbage"
  | "http1"
  | "half-preface"
  | "preface-idle"
  | "preface-garbage";

const KINDS: readonly Kind[] = [
  "close",
  "reset",
  "silent",
  "text-garbage",
  "binary-garbage",
  "http1",
  "half-preface",
  "preface-idle",
  "preface-garbage",
];

/** Kinds that send bytes that are not HTTP/2: the node must close these itself. */
const GARBAGE: ReadonlySet<Kind> = new Set([
  "text-garbage",
  "binary-garbage",
  "http1",
  "preface-garbage",
]);

interface Conn {
  readonly kind: Kind;
  readonly socket: net.Socket;
  readonly closed: Promise<void>;
  /** Set when the socket closed without the test destroying it (the node closed it). */
  closedByPeer: boolean;
  destroyedByUs: boolean;
}

function randomBytes(random: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = randomInt(random, 0, 256);
  return b;
}

/** Opens one connection of `kind` and resolves once it is connected and has sent its bytes. */
function open(port: number, kind: Kind, random: () => number): Promise<Conn> {
  const socket = net.connect({ host: "127.0.0.1", port });
  socket.on("error", () => {});
  // Read (and drop) whatever the node sends, so that its FIN is seen.
  socket.on("data", () => {});
  const conn: Conn = {
    kind,
    socket,
    closed: new Promise<void>((resolve) => socket.once("close", () => resolve())),
    closedByPeer: false,
    destroyedByUs: false,
  };
  socket.once("close", () => {
    if (!conn.destroyedByUs) conn.closedByPeer = true;
  });
  socket.on("end", () => socket.destroy());
  const garbage = randomBytes(random, randomInt(random, 1, 2000));
  return new Promise<Conn>((resolve) => {
    socket.once("close", () => resolve(conn));
    socket.once("connect", () => {
      switch (kind) {
        case "close":
          conn.destroyedByUs = true;
          socket.end();
          break;
        case "reset":
          conn.destroyedByUs = true;
          socket.resetAndDestroy();
          break;
        case "silent":
          break;
        case "text-garbage":
          socket.write("hello, this is not HTTP/2 at all\r\n\r\n".repeat(randomInt(random, 1, 50)));
          break;
        case "binary-garbage":
          // Never a valid preface: the first byte of one is "P".
          garbage[0] = 0;
          socket.write(garbage);
          break;
        case "http1":
          socket.write(
            "POST /raftkv.v1.KVService/Put HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",
          );
          break;
        case "half-preface":
          socket.write(PREFACE.subarray(0, randomInt(random, 1, PREFACE.length)));
          break;
        case "preface-idle":
          socket.write(PREFACE);
          socket.write(EMPTY_SETTINGS);
          break;
        case "preface-garbage":
          socket.write(PREFACE);
          // A frame header announcing a 16 MiB frame of an unknown type, then noise.
          socket.write(
            Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xee, 0, 0, 0, 0, 1]), garbage]),
          );
          break;
      }
      resolve(conn);
    });
  });
}

Deno.test("a flood of hostile connections: the node serves during and after, closes garbage, and every socket is closed", async () => {
  const seedText = Deno.env.get("RAFTKV_FLOOD_SEED");
  const seed = seedText !== undefined ? Number(seedText) : Math.floor(Math.random() * 2 ** 31);
  const random = seededRandom(seed);
  await withCluster({ nodes: 1 }, async (c) => {
    await c.leader();
    const port = Number(c.endpoint(1).split(":")[1]);
    const conns: Conn[] = [];
    // gRPC calls whose body never comes, on their own HTTP/2 connection.
    const stalledSession = http2.connect(`http://${c.endpoint(1)}`);
    stalledSession.on("error", () => {});
    const stalledClosed = new Promise<void>((r) => stalledSession.once("close", () => r()));
    try {
      const kv = c.kv(1);
      for (let i = 0; i < STALLED_CALLS; i++) {
        const stream = stalledSession.request({
          ":method": "POST",
          ":path": "/raftkv.v1.KVService/Put",
          "content-type": "application/grpc+proto",
          "te": "trailers",
        }, { endStream: false });
        stream.on("error", () => {});
        stream.write(Buffer.from([0, 0, 0, 0, 100])); // a prefix promising 100 bytes, and nothing
      }

      for (let burst = 0; burst < BURSTS; burst++) {
        const opened = await Promise.all(
          Array.from(
            { length: PER_BURST },
            () => open(port, KINDS[randomInt(random, 0, KINDS.length)]!, random),
          ),
        );
        conns.push(...opened);
        // The node answers while the burst's connections are open.
        const key = `flood-${burst}`;
        await kv.put({ key, value: utf8(key) }, { timeoutMs: 10_000 });
        assert.equal(text((await kv.get({ key }, { timeoutMs: 10_000 })).value), key);
        assert.equal(c.exitedOnItsOwn(1), undefined);
      }

      const counts = new Map<Kind, number>();
      for (const k of conns) counts.set(k.kind, (counts.get(k.kind) ?? 0) + 1);
      console.log(`flood seed ${seed}: ${[...counts].map(([k, n]) => `${k} ${n}`).join(", ")}`);

      // The node closes every connection that sent garbage, by itself.
      await waitFor("the node to close every connection that sent garbage", () => {
        const open = conns.filter((k) => GARBAGE.has(k.kind) && !k.closedByPeer);
        if (open.length === 0) return true;
        throw new Error(`${open.length} still open, e.g. ${open[0]!.kind}`);
      }, { timeoutMs: 10_000 });

      assert.equal((await c.status(1)).id, 1n);
    } catch (err) {
      console.error(`flood failed with seed ${seed}; replay with RAFTKV_FLOOD_SEED=${seed}`);
      throw err;
    } finally {
      for (const k of conns) {
        if (!k.socket.destroyed) {
          k.destroyedByUs = true;
          k.socket.destroy();
        }
      }
      stalledSession.destroy();
      await Promise.all([...conns.map((k) => k.closed), stalledClosed]);
    }
    // After the flood: still serving, nothing left behind on the node's side either.
    await c.kv(1).put({ key: "after", value: utf8("flood") }, { timeoutMs: 10_000 });
    assert.equal(text((await c.kv(1).get({ key: "after" })).value), "flood");
    assert.equal(c.exitedOnItsOwn(1), undefined);
  });
});
