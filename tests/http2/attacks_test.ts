/**
 * Issue 15: one connection must not take a node down. Each attack of
 * `_attacks.ts` runs for two seconds against one live node while a normal client
 * keeps calling it (a Put, a Get, a Status, over and over, on its own
 * connection). Each passes only if the node stays up, every normal call succeeds
 * (a call refused unprocessed, REFUSED_STREAM, is sent again once, as gRPC
 * clients do, and few may be; the worst latency is printed, never asserted), the node's RSS stays under
 * {@link PEAK_BOUND_MIB} above its baseline during the attack and comes back
 * under {@link AFTER_BOUND_MIB} above it once the attack's connections are
 * closed, and the limit hit is logged once, not per stream.
 *
 * On main before the limits, the first attack alone took the node from 78 MiB to
 * 1.4 GiB in three seconds and the normal client's calls timed out
 * (/work/notes/issue15_numbers.md has every attack, before and after).
 *
 * The node runs with short request and idle timeouts (1.5 s) so that the
 * slow-headers connections are closed within the test, and a call byte budget
 * of 8 MiB that the big uploads hit, and no abuse cooldown: every attack and the
 * normal client come from 127.0.0.1, and a cooldown of 127.0.0.1 would refuse
 * the next siege's normal client, which opens a new connection. Whether one
 * starts depends on timing: the node cuts the HPACK bomb's connection, and the
 * unfinished streams' connections when it sees their refused streams before
 * Deno's own GOAWAY does (a run with the default cooldown passed: fewer than 3
 * cuts by the node). cooldown_test.ts tests the cooldown; every other limit is at
 * its default.
 *
 * @module
 */

import assert from "node:assert/strict";
import { describeReport, ERROR, slowHeaders } from "./_attacker.ts";
import { type Attack, ATTACKS } from "./_attacks.ts";
import { describeSiege, mib, siege, SiegedNode } from "./_siege.ts";

/** How long each attack runs. */
const ATTACK_MS = 2_000;
/** RSS during an attack may rise this much over the baseline (MiB). */
const PEAK_BOUND_MIB = 256;
/**
 * RSS once the attack is over must come back under the baseline plus this (MiB).
 * Most attacks leave under 20 MiB; rapid reset leaves 10 to 100 MiB, varying run to
 * run (V8 and Deno's HTTP/2 layer keep what they grew while the connection lasted;
 * Deno cuts it after some ten thousand streams), so the bound is set above that.
 * Main before the limits left 450 to 1,300 MiB after the unfinished streams.
 */
const AFTER_BOUND_MIB = 128;
/** The timeouts the node runs with here (ms): short, so that the test sees them act. */
const TIMEOUT_MS = 1_500;
/** The call byte budget here (MiB): small, so that the big uploads hit it. */
const CALL_BUFFER_MIB = 8;

function limitLines(n: SiegedNode): string[] {
  return n.log.filter((l) => l.includes("HTTP/2 limit hit"));
}

/** One attack against the node: see the module comment for what must hold. */
async function withstands(n: SiegedNode, attack: Attack): Promise<void> {
  const logged = limitLines(n).length;
  const r = await siege(n, () => attack.run(n.port, ATTACK_MS), {
    warmupCalls: 300,
    settleBelowKiB: (b) => b + AFTER_BOUND_MIB * 1024,
    settleMs: 15_000,
  });
  console.log(describeSiege(attack.name, r));
  if (r.attack !== undefined) console.log(`  attack: ${describeReport(r.attack)}`);
  const newLines = limitLines(n).slice(logged);
  for (const l of newLines) console.log(`  node: ${l}`);
  assert.equal(r.exit, undefined, `the node exited: ${n.log.slice(-10).join("\n")}`);
  assert.equal(r.attackError, undefined, `the attack failed to run: ${r.attackError}`);
  assert.deepEqual(r.client.failures, [], "every normal call succeeds");
  // A refused stream sent again is served (see _siege.ts), but refusing the normal
  // client's streams as a rule would be a denial of service: a few in a siege at most.
  assert.ok(
    r.client.refusedThenServed <= Math.max(2, r.client.calls / 50),
    `${r.client.refusedThenServed} of ${r.client.calls} normal calls were refused at first`,
  );
  assert.ok(r.client.calls > 0, "the normal client made calls");
  assert.ok(
    r.peakKiB <= r.baselineKiB + PEAK_BOUND_MIB * 1024,
    `peak RSS ${mib(r.peakKiB)} MiB is more than ${PEAK_BOUND_MIB} MiB over the baseline ${
      mib(r.baselineKiB)
    } MiB`,
  );
  assert.ok(
    r.afterKiB <= r.baselineKiB + AFTER_BOUND_MIB * 1024,
    `RSS after the attack, ${mib(r.afterKiB)} MiB, did not come back under the baseline ${
      mib(r.baselineKiB)
    } MiB + ${AFTER_BOUND_MIB} MiB`,
  );
  // Limits hit are logged once per source and limit, never per stream.
  const kinds = newLines.map((l) => /HTTP\/2 limit hit: (.+?) source=/.exec(l)?.[1]);
  assert.equal(new Set(kinds).size, kinds.length, `a limit logged twice:\n${newLines}`);
  const rep = r.attack!;
  if (attack.name.startsWith("unfinished streams")) {
    // SETTINGS_MAX_CONCURRENT_STREAMS is advertised, and streams past it refused.
    assert.equal(rep.serverSettings?.get(0x3), 100, "the server advertises 100 streams");
    assert.ok(
      (rep.resets.get(ERROR.REFUSED_STREAM) ?? 0) > 0,
      "streams past the limit are refused",
    );
    // Deno's HTTP/2 layer answers about 1,000 refused streams with GOAWAY
    // ENHANCE_YOUR_CALM (11) and closes the connection; the node cuts it itself
    // (and logs it) when it sees more than 100 first.
    // How many streams each connection gets to send in two seconds depends on the
    // machine's load; every connection that sent enough is cut, so at least one is.
    assert.ok(rep.closedByServer >= 1, "the node cuts the connections");
  }
  if (attack.name.startsWith("big unfinished uploads")) {
    // Reset by the byte budget or by the request timeout, whichever comes first
    // (limits_test.ts tests the budget alone).
    const reset = (rep.resets.get(ERROR.ENHANCE_YOUR_CALM) ?? 0) +
      (rep.resets.get(ERROR.CANCEL) ?? 0);
    assert.ok(reset > 0, "the unfinished uploads are reset");
    assert.ok(
      kinds.includes("call bytes") || kinds.includes("request timeout"),
      `the limit is logged:\n${newLines.join("\n")}`,
    );
  }
  if (attack.name.startsWith("HPACK bomb")) {
    assert.equal(rep.closedByServer, 1, "the node cuts the connection");
    assert.ok(
      kinds.includes("streams refused by the HTTP/2 layer"),
      `the cut is logged:\n${newLines.join("\n")}`,
    );
  }
}

Deno.test("HTTP/2 attacks: a node withstands each, one after the other, and keeps serving", async (t) => {
  // One node for every attack (a node takes seconds to start): an attack that
  // kills it fails its own step, and the next step starts a new one.
  const args = [
    "--request-timeout-ms",
    String(TIMEOUT_MS),
    "--idle-timeout-ms",
    String(TIMEOUT_MS),
    "--max-call-buffer-mib",
    String(CALL_BUFFER_MIB),
    "--abuse-cooldown-ms",
    "0",
  ];
  let n = await SiegedNode.start(args);
  try {
    for (const attack of ATTACKS) {
      if (attack.name.startsWith("none") || attack.measuredOnly !== undefined) continue;
      await t.step(
        `${attack.name}: the node stays up, answers, and its memory comes back`,
        async () => {
          if (n.exit !== undefined) {
            await n.stop();
            n = await SiegedNode.start(args);
          }
          await withstands(n, attack);
        },
      );
    }
    await t.step(
      "slow headers past the idle timeout: the node closes every connection",
      async () => {
        const rep = await slowHeaders({
          port: n.port,
          durationMs: TIMEOUT_MS + 3_000,
          connections: 10,
        });
        console.log(`  attack: ${describeReport(rep)}`);
        assert.equal(rep.closedByServer, 10, "every slow connection is closed by the node");
      },
    );
  } finally {
    await n.stop();
  }
});
