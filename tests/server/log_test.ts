import assert from "node:assert/strict";
import type { LogLevel } from "../../src/raft/logger.ts";
import { createLogger, PeerErrorLatch } from "../../src/server/log.ts";

const TS = new Date("2026-11-26T17:58:00.123Z");

/** A logger writing into an array, with a fixed clock and a counted context. */
function capture(
  level: LogLevel,
  format: "text" | "json",
  context: Record<string, unknown> = { node: 1, term: 3, role: "leader" },
) {
  const lines: string[] = [];
  let contextCalls = 0;
  const log = createLogger({
    level,
    format,
    context: () => {
      contextCalls++;
      return context;
    },
    write: (line) => lines.push(line),
    now: () => TS,
  });
  return { log, lines, contextCalls: () => contextCalls };
}

Deno.test("text format", async (t) => {
  await t.step("the documented example", () => {
    const { log, lines } = capture("info", "text");
    log.info("became leader", { lastIndex: 42 });
    assert.deepEqual(lines, [
      "2026-11-26T17:58:00.123Z INFO  node=1 term=3 role=leader became leader lastIndex=42",
    ]);
  });
  await t.step("levels are upper case, padded to 5", () => {
    const { log, lines } = capture("debug", "text", {});
    log.debug("a");
    log.info("b");
    log.warn("c");
    log.error("d");
    assert.deepEqual(lines.map((l) => l.slice(25)), ["DEBUG a", "INFO  b", "WARN  c", "ERROR d"]);
  });
  await t.step("values with spaces, quotes, '=' or control characters are quoted", () => {
    const { log, lines } = capture("info", "text", {});
    log.info("m", {
      plain: "abc",
      spaced: "connection refused",
      quote: 'say "hi"',
      eq: "a=b",
      nl: "a\nb",
      empty: "",
      path: "/data/node1",
    });
    assert.equal(
      lines[0]?.slice(31),
      'm plain=abc spaced="connection refused" quote="say \\"hi\\"" eq="a=b" nl="a\\nb" empty="" path=/data/node1',
    );
  });
  await t.step("numbers, bigints, booleans, null, errors, bytes, objects", () => {
    const { log, lines } = capture("info", "text", {});
    log.info("m", {
      n: 1.5,
      big: 2n ** 64n - 1n,
      yes: true,
      nil: null,
      err: new Error("boom now"),
      bytes: new Uint8Array(3),
      obj: { a: 1, b: [1n] },
      skipped: undefined,
    });
    assert.equal(
      lines[0]?.slice(31),
      'm n=1.5 big=18446744073709551615 yes=true nil=null err="boom now" bytes=<3B> obj="{\\"a\\":1,\\"b\\":[1]}"',
    );
  });
  await t.step("a message with a newline stays on one line", () => {
    const { log, lines } = capture("info", "text", {});
    log.info("two\nlines");
    assert.equal(lines[0]?.slice(31), "two\\nlines");
  });
  await t.step("a field repeating a context value is left out; a different one is kept", () => {
    const { log, lines } = capture("info", "text");
    log.info("x", { term: 3, role: "follower" });
    assert.equal(lines[0]?.slice(31), "node=1 term=3 role=leader x role=follower");
  });
  await t.step("undefined context fields are left out", () => {
    const { log, lines } = capture("info", "text", { node: 1, term: undefined, role: "follower" });
    log.info("x");
    assert.equal(lines[0]?.slice(31), "node=1 role=follower x");
  });
});

Deno.test("json format", async (t) => {
  await t.step("the documented example", () => {
    const { log, lines } = capture("info", "json");
    log.info("became leader", { lastIndex: 42 });
    assert.equal(
      lines[0],
      '{"ts":"2026-11-26T17:58:00.123Z","level":"info","node":1,"term":3,"role":"leader","msg":"became leader","lastIndex":42}',
    );
  });
  await t.step("every line parses, whatever the values", () => {
    const { log, lines } = capture("debug", "json");
    log.debug('m\n"q"', {
      big: 2n ** 64n - 1n,
      small: 7n,
      err: new Error("boom"),
      bytes: new Uint8Array(2),
      map: new Map([["a", 1]]),
    });
    const obj = JSON.parse(lines[0] ?? "");
    assert.equal(obj.level, "debug");
    assert.equal(obj.msg, 'm\n"q"');
    assert.equal(obj.big, "18446744073709551615");
    assert.equal(obj.small, 7);
    assert.equal(obj.err, "boom");
    assert.equal(obj.bytes, "<2B>");
    assert.deepEqual(obj.map, { a: 1 });
  });
  await t.step("fields never overwrite ts, level, msg or a different context value", () => {
    const { log, lines } = capture("info", "json");
    log.info("real", { msg: "fake", level: "error", term: 3, role: "candidate" });
    const obj = JSON.parse(lines[0] ?? "");
    assert.equal(obj.msg, "real");
    assert.equal(obj.level, "info");
    assert.equal(obj["fields.msg"], "fake");
    assert.equal(obj["fields.level"], "error");
    assert.equal(obj.role, "leader");
    assert.equal(obj["fields.role"], "candidate");
    assert.equal(obj.term, 3);
    assert.equal("fields.term" in obj, false);
  });
  await t.step("a cyclic value degrades the line instead of throwing", () => {
    const { log, lines } = capture("info", "json");
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    log.info("m", { cyclic });
    const obj = JSON.parse(lines[0] ?? "");
    assert.equal(obj.msg, "m");
    assert.match(obj.logError, /circular/i);
  });
});

Deno.test("level filtering", async (t) => {
  await t.step("lines below the level are dropped before context or formatting", () => {
    const { log, lines, contextCalls } = capture("warn", "text");
    let formatted = 0;
    const fields = {
      get expensive(): number {
        formatted++;
        return 1;
      },
    };
    log.debug("d", fields);
    log.info("i", fields);
    assert.equal(lines.length, 0);
    assert.equal(contextCalls(), 0);
    assert.equal(formatted, 0);
    log.warn("w");
    log.error("e");
    assert.equal(lines.length, 2);
    assert.equal(contextCalls(), 2);
  });
  await t.step("context is read per line", () => {
    let term = 1;
    const lines: string[] = [];
    const log = createLogger({
      level: "info",
      format: "text",
      context: () => ({ term }),
      write: (l) => lines.push(l),
    });
    log.info("a");
    term = 2;
    log.info("b");
    assert.match(lines[0] ?? "", / term=1 a$/);
    assert.match(lines[1] ?? "", / term=2 b$/);
  });
  await t.step("a throwing context does not throw from the logger", () => {
    const lines: string[] = [];
    const log = createLogger({
      level: "info",
      format: "text",
      context: () => {
        throw new Error("no");
      },
      write: (l) => lines.push(l),
    });
    log.info("still logged");
    assert.match(lines[0] ?? "", /INFO {2}still logged$/);
  });
  await t.step("the default clock writes an ISO timestamp", () => {
    const lines: string[] = [];
    const log = createLogger({
      level: "info",
      format: "text",
      context: () => ({}),
      write: (l) => lines.push(l),
    });
    log.info("x");
    assert.match(lines[0] ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}x$/);
  });
});

Deno.test("PeerErrorLatch reports each peer's state changes once", () => {
  const latch = new PeerErrorLatch();
  assert.equal(latch.clear(2), false, "a healthy peer has nothing to clear");
  assert.equal(latch.report(2, "unavailable: connection refused"), true);
  assert.equal(latch.report(2, "unavailable: connection refused"), false);
  assert.equal(latch.report(2, "unavailable: connection refused"), false);
  assert.equal(latch.report(3, "unavailable: connection refused"), true, "peers are independent");
  assert.equal(latch.report(2, "deadline_exceeded"), true, "a different error is news");
  assert.equal(latch.errorOf(2), "deadline_exceeded");
  assert.deepEqual(latch.failing(), [2, 3]);
  assert.equal(latch.clear(2), true, "recovery is news");
  assert.equal(latch.clear(2), false);
  assert.equal(latch.errorOf(2), undefined);
  assert.equal(latch.report(2, "deadline_exceeded"), true, "failing again after recovery is news");
  assert.deepEqual(latch.failing(), [2, 3]);
});
