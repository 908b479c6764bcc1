/**
 * The peer transport reports a peer that cannot be reached once, not on every
 * retry, and says so again only when it comes back.
 */
import assert from "node:assert/strict";
import type { LogFields, Logger } from "../../src/raft/logger.ts";
import { message } from "../../src/raft/types.ts";
import { PeerTransport } from "../../src/server/transport.ts";

function recordingLogger(lines: string[]): Logger {
  const add = (level: string) => (msg: string, _f?: LogFields) => lines.push(`${level} ${msg}`);
  return { debug: () => {}, info: add("info"), warn: add("warn"), error: add("error") };
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
  assert.deepEqual(lines.filter((l) => l.startsWith("warn")), ["warn cannot reach peer"]);
});
