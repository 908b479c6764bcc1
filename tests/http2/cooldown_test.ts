/**
 * The abuse cooldown against a live node (src/http2/abuse_cooldown.ts): an
 * address whose HPACK-bomb connections the node cut three times is refused new
 * connections for the cooldown (3 s here), logged once, while the client it
 * already had open keeps being served and another address gets in; once the
 * cooldown is over the address is served again.
 *
 * @module
 */

import assert from "node:assert/strict";
import { EndpointClients, waitFor } from "../e2e/_harness.ts";
import {
  describeReport,
  FLAG,
  FRAME,
  frame,
  grpcRequestBlock,
  hpackBomb,
  openStream,
  RawH2Conn,
} from "./_attacker.ts";
import { normalClient, SiegedNode } from "./_siege.ts";

const COOLDOWN_MS = 3_000;

function cooldownLines(n: SiegedNode): string[] {
  return n.log.filter((l) => l.includes("HTTP/2 limit hit: abuse cooldown source="));
}

/** A gRPC Status call's path. */
const STATUS_PATH = "/raftkv.v1.ClusterService/Status";

/**
 * Makes a Status call on a raw connection from `from` and says whether the node
 * closed the connection without answering it. (The HTTP/2 layer sends its SETTINGS
 * before the node sees the connection, so SETTINGS alone do not tell.)
 */
async function refused(n: SiegedNode, from: string): Promise<boolean> {
  const c = new RawH2Conn(n.port, "127.0.0.1", { localAddress: from });
  try {
    await c.start().catch(() => {});
    await c.write(openStream(1, grpcRequestBlock(STATUS_PATH)));
    // An empty StatusRequest: a gRPC message of length 0.
    await c.write(frame(FRAME.DATA, FLAG.END_STREAM, 1, new Uint8Array(5)));
    return await waitFor(`the node to answer or close a connection from ${from}`, () => {
      if (c.stats.ended.has(1)) return "answered";
      if (c.stats.closedBy === "server") return "refused";
      return false;
    }, { timeoutMs: 5_000 }) === "refused";
  } finally {
    await c.close();
  }
}

Deno.test("abuse cooldown: an address cut 3 times for HPACK bombs is refused new connections for the cooldown, logged once; its open client keeps working, other addresses get in, and it is served again after", async () => {
  const n = await SiegedNode.start(["--abuse-cooldown-ms", String(COOLDOWN_MS)]);
  const client = normalClient(n.endpoint);
  try {
    await client.ready; // its connection, from 127.0.0.1, is open before the attack
    for (let i = 1; i <= 3; i++) {
      const rep = await hpackBomb({ port: n.port, durationMs: 10_000 });
      console.log(`  bomb ${i}: ${describeReport(rep)}`);
      assert.equal(rep.closedByServer, 1, `bomb ${i}: the node cuts the connection`);
    }
    await waitFor("the cooldown to be logged", () => cooldownLines(n).length > 0);
    const started = performance.now();
    assert.ok(await refused(n, "127.0.0.1"), "a new connection from 127.0.0.1 is refused");
    // A fourth bomb gets nowhere: the connection is closed before any of its
    // streams is processed (the first three each had 100 and more reset).
    const fourth = await hpackBomb({ port: n.port, durationMs: 2_000 });
    console.log(`  bomb 4: ${describeReport(fourth)}`);
    assert.equal(fourth.closedByServer, 1, "the fourth bomb's connection is closed");
    assert.equal(fourth.resets.size, 0, `the fourth bomb got through: ${describeReport(fourth)}`);
    assert.equal(await refused(n, "127.0.0.2"), false, "127.0.0.2 is not refused");
    const callsBefore = client.record.calls;
    await waitFor("the open client to make more calls", () => client.record.calls > callsBefore);
    // Served again once the cooldown is over (each refused try is no cut: no longer
    // cooldown). Polled with raw connections: a Connect client whose connection the
    // node closes at once can fail with an EPIPE nobody catches (seen once, Deno 2.9.3).
    await waitFor("a new connection from 127.0.0.1 to be admitted", async () => {
      return !(await refused(n, "127.0.0.1"));
    }, { timeoutMs: 4 * COOLDOWN_MS, intervalMs: 200 });
    const late = new EndpointClients(n.endpoint);
    try {
      assert.equal((await late.cluster.status({}, { timeoutMs: 5_000 })).id, 1n);
    } finally {
      await late.close();
    }
    const waited = performance.now() - started;
    console.log(`  served again ${waited.toFixed(0)} ms after the cooldown was seen`);
    // The cooldown began before `started`, so it may end a little sooner after it.
    assert.ok(waited >= COOLDOWN_MS / 2, `served again after only ${waited.toFixed(0)} ms`);
    const lines = cooldownLines(n);
    assert.equal(lines.length, 1, `logged more than once:\n${lines.join("\n")}`);
    assert.ok(lines[0]!.includes("source=127.0.0.1"), lines[0]!);
  } catch (err) {
    console.error(`node log ends:\n${n.log.slice(-15).join("\n")}`);
    throw err;
  } finally {
    await client.stop();
    await n.stop();
  }
  assert.deepEqual(client.record.failures, [], "the open client's calls all succeed");
});
