/**
 * README.md's curl examples ("curl, metrics, probes and the web view"), run as
 * written against a real 3-node cluster with HTTP ports: each command must print
 * what the README shows under it. The README's addresses 127.0.0.1:800N become
 * node N's HTTP port; in the expected text, a run of digits matches any number
 * (indexes, terms and ids differ between runs) and `…` matches anything.
 *
 * @module
 */

import assert from "node:assert/strict";
import { REPO_ROOT, waitFor, withCluster } from "../e2e/_harness.ts";

/** One example: a command and the output shown under it. */
interface Example {
  readonly command: string;
  readonly expected: string;
}

/** The ```sh curl block / output block pairs of the README's "### curl" section. */
export function curlExamples(readme: string): Example[] {
  const start = readme.indexOf("\n### curl\n");
  assert.ok(start >= 0, "README.md has no '### curl' section");
  const end = readme.indexOf("\n### ", start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const blocks = [...section.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({
    lang: m[1]!,
    body: m[2]!.trim(),
  }));
  const examples: Example[] = [];
  for (let i = 0; i < blocks.length; i++) {
    const b = blocks[i]!;
    if (b.lang !== "sh") continue;
    const out = blocks[i + 1];
    assert.ok(out !== undefined && out.lang !== "sh", `no output shown for: ${b.body}`);
    assert.match(b.body, /^curl /, "each example is one curl command");
    examples.push({ command: b.body, expected: out.body });
  }
  return examples;
}

/** The expected text as a regular expression (see the module doc). */
export function expectedPattern(expected: string): RegExp {
  const parts = expected.split(/(\d+|…)/).map((p) =>
    /^\d+$/.test(p) ? "\\d+" : p === "…" ? "[\\s\\S]*?" : p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
  );
  return new RegExp(`^${parts.join("")}$`);
}

Deno.test("expected outputs match numbers and … loosely, the rest exactly", () => {
  const p = expectedPattern('{"index":"4","role":"…"}');
  assert.match('{"index":"17","role":"ROLE_LEADER"}', p);
  assert.doesNotMatch('{"index":"x","role":"ROLE_LEADER"}', p);
  assert.doesNotMatch('{"index":"4","role":"a"} trailing', p);
});

Deno.test("every curl command in the README prints what the README shows", async () => {
  const examples = curlExamples(await Deno.readTextFile(`${REPO_ROOT}README.md`));
  assert.ok(examples.length >= 6, `only ${examples.length} curl examples found`);
  await withCluster({ nodes: 3, http: true }, async (c) => {
    await c.leader();
    // /readyz in the README is ready: wait until every node has applied what it knows committed.
    await waitFor("every node ready", async () => {
      for (const id of c.ids) {
        const res = await fetch(`${c.httpUrl(id)}/readyz`);
        await res.body?.cancel();
        if (res.status !== 200) return false;
      }
      return true;
    });
    for (const { command, expected } of examples) {
      const run = command.replace(
        /127\.0\.0\.1:800([1-3])/g,
        (_, id) => c.httpUrl(Number(id)).replace("http://", ""),
      );
      const out = await new Deno.Command("sh", { args: ["-c", run], stdout: "piped" }).output();
      const text = new TextDecoder().decode(out.stdout).trim();
      assert.equal(out.code, 0, `${command} exited ${out.code}`);
      assert.match(text, expectedPattern(expected), `${command} printed:\n${text}`);
    }
  });
});
