/**
 * What the bench smoke tests share: a free run of ports for a script's clusters, and
 * running one of the repo's scripts as a user would, with its output captured.
 *
 * @module
 */

import { REPO_ROOT, text } from "../e2e/_harness.ts";
import { portsInUse } from "../../scripts/cluster.ts";

/**
 * A base port in 20000-32767 (below Linux's ephemeral range) with `offsets` above it
 * all free: the benches take consecutive ports from their bases.
 */
export function freeBase(offsets: readonly number[]): number {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 11000);
    if (portsInUse(offsets.map((o) => base + o)).length === 0) return base;
  }
  throw new Error("no free run of ports in 20000-31000 after 1000 tries");
}

/** Runs `deno run ...denoArgs` from the repo's root, without colours or input. */
export async function runScript(
  denoArgs: readonly string[],
): Promise<{ code: number; out: string; err: string }> {
  const res = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...denoArgs],
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  return { code: res.code, out: text(res.stdout), err: text(res.stderr) };
}
