/**
 * Exactly-once writes through client sessions (dissertation §6.3): a retried write
 * is answered with its first outcome, and sessions expire by log time alone.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { encodeCommand } from "../../src/kv/command.ts";
import { SESSION_TTL_MS } from "../../src/kv/sessions.ts";
import { KvStore } from "../../src/kv/store.ts";

const enc = new TextEncoder();
const T0 = 1_700_000_000_000;

/** Applies commands in order, at indexes 1, 2, ..., returning the results. */
class Log {
  readonly store = new KvStore();
  apply(cmd: Parameters<typeof encodeCommand>[0]) {
    return this.store.apply(this.store.appliedIndex + 1, encodeCommand(cmd));
  }
  open(timeMs = T0): number {
    const r = this.apply({ timeMs: BigInt(timeMs), op: { case: "openSession", value: {} } });
    assert.equal(r.kind, "session_opened");
    return (r as { id: number }).id;
  }
  cas(session: number, sequence: number, expected: string | undefined, value: string, t = T0) {
    return this.apply({
      sessionId: BigInt(session),
      sequence: BigInt(sequence),
      timeMs: BigInt(t),
      op: {
        case: "compareAndSwap",
        value: {
          key: "k",
          expected: expected === undefined ? undefined : enc.encode(expected),
          value: enc.encode(value),
        },
      },
    });
  }
  put(session: number, sequence: number, value: string, t = T0) {
    return this.apply({
      sessionId: BigInt(session),
      sequence: BigInt(sequence),
      timeMs: BigInt(t),
      op: { case: "put", value: { key: "k", value: enc.encode(value) } },
    });
  }
}

Deno.test("a session's id is the index of the entry that opened it", () => {
  const log = new Log();
  log.apply({ op: { case: "put", value: { key: "x", value: enc.encode("1") } } });
  assert.equal(log.open(), 2);
});

Deno.test("a retried compare-and-swap returns its first outcome instead of failing the compare", () => {
  const log = new Log();
  const s = log.open();
  assert.equal(log.cas(s, 1, undefined, "a").kind, "cas");
  const first = log.cas(s, 2, "a", "b");
  assert.deepEqual(first, { kind: "cas", succeeded: true, found: true, value: enc.encode("b") });
  // The client lost the answer and retries the same write: applied again, the
  // compare would fail ("b" != "a"); from the session it succeeds, as it did.
  assert.deepEqual(log.cas(s, 2, "a", "b"), first);
  assert.deepEqual(log.store.get("k"), enc.encode("b"));
});

Deno.test("a retried put is applied once and reports the index of its first application", () => {
  const log = new Log();
  const s = log.open();
  assert.deepEqual(log.put(s, 1, "v1"), { kind: "put", index: 2 });
  log.apply({ op: { case: "put", value: { key: "k", value: enc.encode("other") } } });
  assert.deepEqual(log.put(s, 1, "v1"), { kind: "put", index: 2 }, "not applied again");
  assert.deepEqual(log.store.get("k"), enc.encode("other"), "the retry did not overwrite");
});

Deno.test("writes without a session are applied every time (at least once)", () => {
  const log = new Log();
  const put = () => log.apply({ op: { case: "put", value: { key: "k", value: enc.encode("v") } } });
  assert.deepEqual(put(), { kind: "put", index: 1 });
  assert.deepEqual(put(), { kind: "put", index: 2 });
});

Deno.test("an unknown session, sequence 0, and an old sequence are definite errors", () => {
  const log = new Log();
  assert.equal(log.put(99, 1, "x").kind, "session_error");
  const s = log.open();
  assert.equal(log.put(s, 0, "x").kind, "session_error");
  log.put(s, 1, "a");
  log.put(s, 2, "b");
  const old = log.put(s, 1, "a");
  assert.equal(old.kind, "session_error");
  assert.deepEqual(log.store.get("k"), enc.encode("b"), "nothing applied by the errors");
});

Deno.test("sessions expire after an hour of log time, on every node alike", () => {
  const a = new Log();
  const b = new Log();
  for (const log of [a, b]) {
    const s = log.open(T0);
    const busy = log.open(T0);
    log.put(busy, 1, "x", T0 + SESSION_TTL_MS - 1); // keeps `busy` alive
    assert.equal(log.put(s, 1, "late", T0 + SESSION_TTL_MS + 1).kind, "session_error");
    assert.equal(log.put(busy, 2, "y", T0 + SESSION_TTL_MS + 1).kind, "put");
  }
  assert.equal(a.store.digest(), b.store.digest());
  assert.equal(a.store.sessionCount, 1);
});

Deno.test("log time never goes back: a lagging leader's clock does not revive sessions", () => {
  const log = new Log();
  const s = log.open(T0);
  log.apply({
    timeMs: BigInt(T0 + 2 * SESSION_TTL_MS),
    op: { case: "delete", value: { key: "z" } },
  });
  assert.equal(log.put(s, 1, "x", T0).kind, "session_error", "expired at the later time");
});

Deno.test("the digest covers sessions: same data, different session state, different digest", () => {
  const a = new Log();
  const b = new Log();
  const sa = a.open();
  const sb = b.open();
  a.put(sa, 1, "v");
  b.apply({
    sessionId: 0n,
    timeMs: BigInt(T0),
    op: { case: "put", value: { key: "k", value: enc.encode("v") } },
  });
  assert.deepEqual(a.store.get("k"), b.store.get("k"));
  assert.notEqual(a.store.digest(), b.store.digest());
  void sb;
});

Deno.test("the same entries digest alike whether their bytes came as Uint8Arrays or as Buffers", () => {
  // A node that received its entries as Buffers (node:http2's chunks are Buffers,
  // and fromBinary cuts `bytes` fields from what it parses) keeps Buffers in its
  // sessions' results; a Buffer's toJSON differs, and the digest must not.
  const plain = new KvStore();
  const buffers = new KvStore();
  const cmds: Parameters<typeof encodeCommand>[0][] = [
    { timeMs: BigInt(T0), op: { case: "openSession", value: {} } },
    {
      sessionId: 1n,
      sequence: 1n,
      timeMs: BigInt(T0),
      op: { case: "compareAndSwap", value: { key: "k", value: enc.encode("v") } },
    },
  ];
  for (const [i, cmd] of cmds.entries()) {
    const data = encodeCommand(cmd);
    plain.apply(i + 1, data);
    buffers.apply(i + 1, Buffer.from(data));
  }
  assert.equal(buffers.digest(), plain.digest());
});
