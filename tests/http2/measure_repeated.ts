/**
 * Prints the node's RSS while one attack is repeated on fresh connections, one
 * after another, as an attacker that reconnects whenever it is cut would:
 * `deno run -A tests/http2/measure_repeated.ts [--repo DIR] [--attack NAME]
 * [--times N] [--seconds S] [-- NODE FLAGS...]`. Memory the node keeps per cut
 * connection shows as RSS growing with the count. Not a test: it measures.
 *
 * @module
 */

import { ATTACKS } from "./_attacks.ts";
import { describeReport } from "./_attacker.ts";
import { mib, normalClient, rssKiB, SiegedNode } from "./_siege.ts";
import { waitFor } from "../e2e/_harness.ts";

const split = Deno.args.indexOf("--");
const own = split < 0 ? Deno.args : Deno.args.slice(0, split);
const nodeArgs = split < 0 ? [] : Deno.args.slice(split + 1);

function flag(name: string): string | undefined {
  const i = own.indexOf(`--${name}`);
  return i < 0 ? undefined : own[i + 1];
}

const name = flag("attack") ?? "HPACK bomb";
const attack = ATTACKS.find((a) => a.name === name);
if (attack === undefined) throw new Error(`no attack named ${name}`);
const times = Number(flag("times") ?? 30);
const seconds = Number(flag("seconds") ?? 2);

const node = await SiegedNode.start(nodeArgs, flag("repo"));
try {
  // Warm up as the siege does, so that the baseline is the working size.
  const client = normalClient(node.endpoint);
  await waitFor("the normal client to warm up", () => client.record.calls >= 3000, {
    timeoutMs: 60_000,
  });
  await client.stop();
  const baseline = await rssKiB(node.pid);
  console.log(`baseline ${mib(baseline)} MiB`);
  for (let i = 1; i <= times; i++) {
    const r = await attack.run(node.port, seconds * 1000);
    if (node.exit !== undefined) {
      console.log(`${i}: NODE EXITED (code ${node.exit.code}): ${node.log.slice(-5).join("\n")}`);
      break;
    }
    const now = await rssKiB(node.pid);
    console.log(`${i}: RSS ${mib(now)} MiB (+${mib(now - baseline)}); ${describeReport(r)}`);
  }
  // What stays once the attacks are over.
  await new Promise((r) => setTimeout(r, 10_000));
  const after = await rssKiB(node.pid);
  console.log(
    `after ${times} x ${name}, 10 s later: RSS ${mib(after)} MiB (+${mib(after - baseline)})`,
  );
  console.log(
    node.log.filter((l) => l.includes("limit hit")).slice(0, 10).join("\n"),
  );
} finally {
  await node.stop();
}
