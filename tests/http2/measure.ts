/**
 * Prints, for each attack of `_attacker.ts`, the node's peak RSS and the normal
 * client's worst latency: `deno run -A tests/http2/measure.ts [--repo DIR]
 * [--seconds N] [--only PART;...]`. With `--repo` it lays the siege to the node of
 * another checkout (main's, to measure before the limits). Not a test: it asserts
 * nothing, it measures.
 *
 * @module
 */

import { ATTACKS } from "./_attacks.ts";
import { describeSiege, mib, siege, SiegedNode } from "./_siege.ts";
import { describeReport } from "./_attacker.ts";

function flag(name: string): string | undefined {
  const i = Deno.args.indexOf(`--${name}`);
  return i < 0 ? undefined : Deno.args[i + 1];
}

const repo = flag("repo");
const seconds = Number(flag("seconds") ?? 3);
const only = flag("only")?.split(";");
const rows: string[] = [];
for (const a of ATTACKS) {
  if (only !== undefined && !only.some((o) => a.name.includes(o))) continue;
  const node = await SiegedNode.start([], repo);
  try {
    const r = await siege(node, () => a.run(node.port, seconds * 1000), {
      settleBelowKiB: (b) => b + 20 * 1024,
      settleMs: 10_000,
    });
    console.log(describeSiege(a.name, r));
    if (r.attack !== undefined) console.log(`  attack: ${describeReport(r.attack)}`);
    if (r.attackError !== undefined) console.log(`  attack error: ${r.attackError}`);
    if (r.client.failures.length > 0) console.log(`  first failure: ${r.client.failures[0]}`);
    rows.push(
      `| ${a.name} | ${mib(r.baselineKiB)} | ${mib(r.peakKiB)} | ${mib(r.afterKiB)} | ${
        r.client.worstLatencyMs.toFixed(0)
      } | ${r.client.failures.length}/${r.client.calls} | ${
        r.exit === undefined ? "up" : `exited ${r.exit.code}`
      } |`,
    );
  } finally {
    await node.stop();
  }
}
console.log(
  "\n| attack | baseline MiB | peak MiB | after MiB | worst latency ms | failed calls | node |",
);
console.log("|---|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
