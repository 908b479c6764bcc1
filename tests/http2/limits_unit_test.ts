/**
 * The bookkeeping behind the HTTP/2 limits, without sockets: the connection
 * gate, the node-wide budgets (streams, bytes) with a guaranteed share per connection,
 * and the once-per-source limit log.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ConnectionGate } from "../../src/http2/connection_gate.ts";
import { headerListSize, utf8Length } from "../../src/http2/guard.ts";
import { LimitLog, QUIET_MS } from "../../src/http2/limit_log.ts";
import { SharedBudget } from "../../src/http2/shared_budget.ts";
import type { LogFields, Logger } from "../../src/raft/logger.ts";

Deno.test("connection gate: refuses past the per-address limit, then past the total, and admits again once connections close", () => {
  const gate = new ConnectionGate(3, 2);
  assert.equal(gate.admit("a"), undefined);
  assert.equal(gate.admit("a"), undefined);
  assert.equal(gate.admit("a"), "connections per address");
  assert.equal(gate.from("a"), 2, "a refused connection is not counted");
  assert.equal(gate.admit("b"), undefined);
  assert.equal(gate.admit("c"), "connections");
  assert.equal(gate.total, 3);
  gate.release("a");
  assert.equal(gate.admit("c"), undefined);
  assert.throws(() => gate.release("d"), /no connection/);
});

Deno.test("shared budget: each connection keeps its guaranteed share when others filled the budget", () => {
  const budget = new SharedBudget(2, 1);
  const attacker = { held: 0 };
  const peer = { held: 0 };
  assert.ok(budget.take(attacker)); // guaranteed
  assert.ok(budget.take(attacker)); // budget 1/2
  assert.ok(budget.take(attacker)); // budget 2/2
  assert.equal(budget.take(attacker), false, "past the budget");
  assert.equal(budget.beyond, 2);
  assert.ok(budget.take(peer), "the peer's first unit is its guaranteed one");
  assert.equal(budget.take(peer), false, "its second needs the budget, which is full");
  budget.give(attacker);
  assert.equal(budget.beyond, 1);
  assert.ok(budget.take(peer));
  budget.give(peer, 2);
  budget.give(attacker, 2);
  assert.equal(budget.beyond, 0);
  assert.throws(() => budget.give(peer), /holds 0/);
});

Deno.test("shared budget: bytes are taken all or nothing, the guaranteed part free", () => {
  const budget = new SharedBudget(100, 64);
  const a = { held: 0 };
  assert.ok(budget.take(a, 50));
  assert.equal(budget.beyond, 0);
  assert.ok(budget.take(a, 100)); // 150 held: 86 beyond
  assert.equal(budget.beyond, 86);
  assert.equal(budget.take(a, 15), false, "86 + 15 > 100");
  assert.equal(a.held, 150, "a refused take holds nothing more");
  assert.ok(budget.take(a, 14));
  budget.give(a, 164);
  assert.equal(budget.beyond, 0);
});

function recordingLogger(): { logger: Logger; lines: [string, LogFields | undefined][] } {
  const lines: [string, LogFields | undefined][] = [];
  const warn = (msg: string, fields?: LogFields) => lines.push([msg, fields]);
  return { lines, logger: { debug() {}, info() {}, warn, error: warn } };
}

Deno.test("limit log: once per source and limit, again after the quiet time with the count in between", () => {
  let now = 0;
  const { logger, lines } = recordingLogger();
  const log = new LimitLog(logger, () => now);
  for (let i = 0; i < 1000; i++) log.hit("streams", "10.0.0.1", { limit: 5 });
  log.hit("streams", "10.0.0.2");
  log.hit("connections", "10.0.0.1");
  assert.deepEqual(lines.map(([m, f]) => `${m} ${f?.source}`), [
    "HTTP/2 limit hit: streams 10.0.0.1",
    "HTTP/2 limit hit: streams 10.0.0.2",
    "HTTP/2 limit hit: connections 10.0.0.1",
  ]);
  now = QUIET_MS;
  log.hit("streams", "10.0.0.1");
  assert.equal(lines.length, 4);
  assert.equal(lines[3]![1]?.since_last_log, 999);
});

Deno.test("limit log: a request timeout on a long-lived stream is not quieted by peers' timeouts from the same source", () => {
  const { logger, lines } = recordingLogger();
  const log = new LimitLog(logger, () => 0);
  const keepAlive = "/raftkv.v1.KVService/LeaseKeepAliveStream";
  log.hit("request timeout", "127.0.0.1", { path: "/raftkv.v1.RaftService/Stream" });
  log.hit("request timeout", "127.0.0.1", { path: "/raftkv.v1.RaftService/Stream" });
  log.hit("request timeout", "127.0.0.1", { path: keepAlive }, keepAlive);
  log.hit("request timeout", "127.0.0.1", { path: keepAlive }, keepAlive);
  assert.deepEqual(lines.map(([, f]) => f?.path), ["/raftkv.v1.RaftService/Stream", keepAlive]);
});

Deno.test("header list size: counts each field's UTF-8 bytes as TextEncoder does, without encoding them", () => {
  const utf8 = new TextEncoder();
  // Fixed cases: ASCII, 2-, 3- and 4-byte characters, and lone surrogates (U+FFFD, 3 bytes).
  const strings = [
    "",
    "grpc-timeout",
    "é",
    "€",
    "😀",
    "a\ud800b",
    "\udc00",
    "\ud800",
    "x😀é€\ud83dz",
  ];
  // And random UTF-16 strings from a fixed seed (a linear congruential generator).
  let seed = 11;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let k = 0; k < 500; k++) {
    let s = "";
    for (let j = Math.floor(next() * 8); j > 0; j--) {
      s += String.fromCharCode(Math.floor(next() * 0x10000));
    }
    strings.push(s);
  }
  for (const s of strings) {
    assert.equal(utf8Length(s), utf8.encode(s).length, `length of ${JSON.stringify(s)}`);
  }
  assert.equal(headerListSize([":path", "/a", "é", "€"]), 5 + 2 + 2 + 3 + 2 * 32);
});
