/**
 * The README's walkthrough ("A 3-node cluster in five minutes"), followed as a new
 * user follows it: the test reads the section's code blocks and runs its commands
 * in order, through `deno task` and bash as written, and checks what they print
 * against what the README shows. A README that promises another output than the
 * commands give fails here.
 *
 * What differs from a user's run is substituted, and only that: the ports
 * (7001-7003 become three free ports, so the test can run beside anything), the
 * launcher's data dir (a temp dir instead of ./data/cluster), and, once the leader
 * is killed, which node led and its pid (the README's example is node 2).
 *
 * - `deno task cluster ...` runs in the background, as in its own terminal; a
 *   `text` block of `[cluster]` lines is what the launchers print (pids aside).
 * - `NAME=value` sets a variable for the commands after it.
 * - `deno task client ... status` followed by a `text` block is asked again until
 *   its table has the shape shown (as a user asks again while an election runs):
 *   the header; each endpoint's node id; one leader, named by every live node;
 *   the down nodes; and the commit, applied and last indexes shown.
 * - any other command runs once; its comment, `# OUTPUT` or `# OUTPUT; exits N`,
 *   is what it prints (stdout and stderr, without deno task's `Task ...` echo)
 *   and its exit status (0 unless given). A comment `# exits N: ...` gives only
 *   the status.
 *
 * @module
 */

import assert from "node:assert/strict";
import { dirname } from "node:path";
import { REPO_ROOT, waitFor } from "./_harness.ts";

const SECTION = "## A 3-node cluster in five minutes";
/** The sentence after the walkthrough's last step. */
const END = "Ctrl-C in the third terminal";

interface Block {
  readonly lang: string;
  readonly lines: string[];
}

/** The fenced code blocks of the walkthrough, in order. */
function walkthroughBlocks(readme: string): Block[] {
  const start = readme.indexOf(SECTION);
  assert.ok(start >= 0, `README.md has no section "${SECTION}"`);
  const end = readme.indexOf(END, start);
  assert.ok(end >= 0, `README.md's walkthrough no longer ends with "${END}"`);
  const blocks: Block[] = [];
  let current: Block | undefined;
  for (const line of readme.slice(start, end).split("\n")) {
    const fence = /^```(\w*)/.exec(line);
    if (fence !== null) {
      if (current === undefined) {
        current = { lang: fence[1] ?? "", lines: [] };
      } else {
        blocks.push(current);
        current = undefined;
      }
    } else if (current !== undefined) {
      current.lines.push(line);
    }
  }
  return blocks;
}

/** A command line and what its comment promises. */
function splitComment(line: string): { command: string; comment: string | undefined } {
  const at = line.indexOf(" #");
  if (at < 0) return { command: line.trim(), comment: undefined };
  return { command: line.slice(0, at).trim(), comment: line.slice(at + 2).trim() };
}

/** `OUTPUT; exits N`, `exits N: prose`, or `OUTPUT`: the output (if promised) and the status. */
function promise(comment: string | undefined): { output?: string; exit: number } {
  if (comment === undefined) return { exit: 0 };
  const onlyExit = /^exits (\d+)(?::.*)?$/.exec(comment);
  if (onlyExit !== null) return { exit: Number(onlyExit[1]) };
  const withExit = /^(.*); exits (\d+)$/.exec(comment);
  if (withExit !== null) return { output: withExit[1], exit: Number(withExit[2]) };
  return { output: comment, exit: 0 };
}

/** Three consecutive free ports in 20000-32767 (below the ephemeral range, like freePort). */
function threeFreePorts(): number {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 12760);
    const held: Deno.Listener[] = [];
    try {
      for (let k = 0; k < 3; k++) {
        // The gRPC port and, 1000 above, the HTTP port (scripts/cluster.ts).
        for (const port of [base + k, base + 1000 + k]) {
          held.push(Deno.listen({ hostname: "127.0.0.1", port }));
        }
      }
      return base;
    } catch {
      // One is in use: try another base.
    } finally {
      for (const l of held) l.close();
    }
  }
  throw new Error("Cannot find three consecutive free ports");
}

/** A launcher (`deno task cluster ...`) running in the background, its stdout by line. */
class Launcher {
  readonly lines: string[] = [];
  readonly child: Deno.ChildProcess;
  readonly done: Promise<Deno.CommandStatus>;

  constructor(args: string[], env: Record<string, string>) {
    this.child = new Deno.Command(Deno.execPath(), {
      args,
      cwd: REPO_ROOT,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const read = async (stream: ReadableStream<Uint8Array>, into?: string[]) => {
      let partial = "";
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        partial += chunk;
        const parts = partial.split("\n");
        partial = parts.pop() ?? "";
        into?.push(...parts);
      }
    };
    const reading = Promise.all([read(this.child.stdout, this.lines), read(this.child.stderr)]);
    this.done = reading.then(() => this.child.status);
  }

  /**
   * Stops what is left after a failure: SIGTERM (deno task passes it on to the
   * launcher, which stops its nodes); if that does not end it, SIGKILL for its
   * nodes, by the pids it printed, and for deno task.
   */
  async stop(): Promise<void> {
    const exited = (ms: number) =>
      Promise.race([
        this.done.then(() => true),
        new Promise<false>((r) => {
          const t = setTimeout(() => r(false), ms);
          void this.done.finally(() => clearTimeout(t));
        }),
      ]);
    const signal = (pid: number, sig: Deno.Signal) => {
      try {
        Deno.kill(pid, sig);
      } catch {
        // Already gone.
      }
    };
    signal(this.child.pid, "SIGTERM");
    if (await exited(15_000)) return;
    for (const pid of this.nodePids().values()) signal(pid, "SIGKILL");
    signal(this.child.pid, "SIGKILL");
    if (!(await exited(5_000))) console.error("a launcher did not exit; its processes may remain");
  }

  /** Pids the launcher started nodes with, from its `node N: ... pid P ...` lines. */
  nodePids(): Map<number, number> {
    const pids = new Map<number, number>();
    for (const l of this.lines) {
      const m = /^\[cluster\] node (\d+): \S+ +pid (\d+) /.exec(l);
      if (m !== null) pids.set(Number(m[1]), Number(m[2]));
    }
    return pids;
  }
}

/** A status table's rows as columns; the reason of a down row kept whole. */
function parseTable(lines: readonly string[]): { header: string; rows: string[][] } {
  const [header = "", ...rows] = lines.map((l) => l.trimEnd());
  return {
    header,
    rows: rows.map((r) => {
      const cols = r.split(/ {2,}|(?<=\S) (?=\S)/);
      return cols.length > 10 ? [...cols.slice(0, 10), cols.slice(10).join(" ")] : cols;
    }),
  };
}

/**
 * Whether `actual` (a status table) has the shape of the README's `sample`, the
 * sample's node `from` being node `to` in this run (the leader killed). Returns
 * what differs, or undefined.
 */
function statusMismatch(
  sample: readonly string[],
  actual: readonly string[],
  nodeOf: (endpoint: string) => number,
  rename: (id: number) => number,
): string | undefined {
  const want = parseTable(sample);
  const got = parseTable(actual);
  // Columns are as wide as their widest value: five-digit ports widen the first.
  const words = (h: string) => h.split(/\s+/).join(" ");
  if (words(got.header) !== words(want.header)) return `header ${JSON.stringify(got.header)}`;
  if (got.rows.length !== want.rows.length) return `${got.rows.length} rows`;
  const wantDown = want.rows.filter((r) => r[2] === "down").map((r) => rename(nodeOf(r[0]!)));
  const gotDown = got.rows.filter((r) => r[2] === "down").map((r) => nodeOf(r[0]!));
  if (wantDown.join() !== gotDown.join()) return `down: ${gotDown.join() || "none"}`;
  const wantUp = want.rows.filter((r) => r[2] !== "down");
  const gotUp = got.rows.filter((r) => r[2] !== "down");
  const roles = (rows: string[][]) => rows.map((r) => r[2]).sort().join();
  if (roles(gotUp) !== roles(wantUp)) return `roles ${roles(gotUp)}`;
  const leader = gotUp.find((r) => r[2] === "leader");
  for (const [k, r] of got.rows.entries()) {
    if (r[0] !== want.rows[k]![0]) return `endpoint ${r[0]} in row ${k + 1}`;
    if (r[2] === "down") {
      if (r.slice(1).join("|") !== "-|down|-|-|-|-|-|-|-|(connection refused)") return `row ${r}`;
      continue;
    }
    if (r[1] !== String(nodeOf(r[0]!))) return `node ${r[0]} says it is ${r[1]}`;
    if (r[4] !== leader?.[1]) return `node ${r[1]} follows ${r[4]}`;
    if (r[3] !== leader?.[3]) return `node ${r[1]} in term ${r[3]}`;
    const indexes = r.slice(5, 10).join(" ");
    const wanted = wantUp[0]!.slice(5, 10).join(" ");
    if (indexes !== wanted) {
      return `node ${r[1]} at commit/applied/last/snapshot/first ${indexes}, not ${wanted}`;
    }
  }
  return undefined;
}

/** Runs one command line with bash, as a user's shell would; output without deno task's echo. */
async function sh(
  line: string,
  env: Record<string, string>,
): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command("bash", {
    args: ["-c", line],
    cwd: REPO_ROOT,
    env,
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  const output = (dec.decode(out.stdout) + dec.decode(out.stderr)).split("\n")
    .filter((l) => l !== "" && !l.startsWith("Task ")).join("\n");
  return { code: out.code, output };
}

Deno.test("the README's 3-node walkthrough prints what the README shows", async () => {
  const blocks = walkthroughBlocks(await Deno.readTextFile(`${REPO_ROOT}README.md`));
  const base = threeFreePorts();
  const root = await Deno.makeTempDir({ prefix: "raftkv_walkthrough_" });
  const dataDir = `${root}/cluster`;
  const env: Record<string, string> = {
    NO_COLOR: "1",
    // The deno that runs the tests is the one the commands run.
    PATH: `${dirname(Deno.execPath())}:${Deno.env.get("PATH") ?? ""}`,
  };
  // The README's example leader (its id and pid), and who it is in this run.
  let killed: { readmeId: number; readmePid: string; id: number; pid: number } | undefined;
  const launcherSample = blocks.find((b) => b.lines[0]?.startsWith("[cluster] node 1:"));
  assert.ok(launcherSample !== undefined, "the walkthrough shows no launcher output");

  /** The README's text as it reads in this run: our ports, data dir, and leader. */
  const adapt = (text: string): string => {
    let t = text
      .replace(/127\.0\.0\.1:700([1-3])/g, (_, d) => `127.0.0.1:${base + Number(d) - 1}`)
      .replace(/127\.0\.0\.1:800([1-3])/g, (_, d) => `127.0.0.1:${base + 999 + Number(d)}`)
      .replaceAll(
        "deno task cluster",
        `deno task cluster --base-port ${base} --data-dir ${dataDir}`,
      )
      .replaceAll("./data/cluster", dataDir);
    if (killed !== undefined) {
      t = t.replaceAll(`kill -9 ${killed.readmePid}`, `kill -9 ${killed.pid}`)
        .replace(new RegExp(`\\bnode ${killed.readmeId}\\b`, "g"), `node ${killed.id}`)
        .replace(new RegExp(`--only ${killed.readmeId}\\b`, "g"), `--only ${killed.id}`);
    }
    return t;
  };
  const nodeOf = (endpoint: string): number => Number(endpoint.split(":")[1]) - base + 1;
  const rename = (id: number): number =>
    killed !== undefined && id === killed.readmeId ? killed.id : id;
  const launchers: Launcher[] = [];
  const ran: string[] = [];

  try {
    for (const [b, block] of blocks.entries()) {
      if (block.lang === "text") {
        const prev = blocks[b - 1];
        if (block.lines[0]?.startsWith("[cluster]")) {
          // What a launcher prints: every line, with any pid.
          const pidless = (l: string) => l.replace(/pid \d+/, "pid N");
          const want = block.lines.map((l) => pidless(adapt(l)));
          await waitFor(`the launcher to print:\n${want.join("\n")}`, () => {
            const seen = new Set(launchers.flatMap((l) => l.lines.map(pidless)));
            const missing = want.filter((w) => !seen.has(w));
            if (missing.length > 0) throw new Error(`missing: ${missing.join(" | ")}`);
            return true;
          });
          ran.push(`(launcher printed ${want.length} lines as shown)`);
          continue;
        }
        assert.ok(
          block.lines[0]?.startsWith("ENDPOINT") && prev?.lang === "sh",
          `a text block after ${JSON.stringify(prev?.lines.at(-1))} that the test cannot check`,
        );
        continue; // A status sample: checked with the command before it.
      }
      assert.equal(block.lang, "sh", `a ${block.lang} block in the walkthrough`);
      const next = blocks[b + 1];
      for (const [k, raw] of block.lines.entries()) {
        const { command: readmeCommand, comment } = splitComment(raw);
        if (readmeCommand === "") continue;
        const kill = /^kill -9 (\d+)$/.exec(readmeCommand);
        if (kill !== null) {
          // The README kills its example leader: find who leads here, and its pid.
          const readmeId: number = Number(
            new RegExp(`\\[cluster\\] node (\\d+): .* pid ${kill[1]} `).exec(
              launcherSample.lines.join("\n"),
            )?.[1],
          );
          assert.ok(readmeId > 0, `the kill's pid ${kill[1]} is none of the launcher's`);
          const table = await sh(
            `deno task client --endpoints 127.0.0.1:${base},127.0.0.1:${base + 1},127.0.0.1:${
              base + 2
            } status`,
            env,
          );
          const row = parseTable(table.output.split("\n")).rows.find((r) => r[2] === "leader");
          assert.ok(row !== undefined, `no leader to kill:\n${table.output}`);
          const id = Number(row[1]);
          const pid = launchers[0]!.nodePids().get(id);
          assert.ok(pid !== undefined, `no pid for node ${id}`);
          killed = { readmeId, readmePid: kill[1]!, id, pid };
        }
        const command = adapt(readmeCommand);
        ran.push(command);
        const variable = /^(\w+)=(\S+)$/.exec(command);
        if (variable !== null) {
          env[variable[1]!] = variable[2]!;
          continue;
        }
        if (command.startsWith("deno task cluster")) {
          launchers.push(new Launcher(command.split(/\s+/).slice(1), env));
          continue;
        }
        const promised = promise(comment);
        const isLast = k === block.lines.length - 1;
        if (/ status$/.test(command) && isLast && next?.lang === "text") {
          // Asked again until the table has the shape shown (an election may be running).
          const sample = next.lines.map(adapt);
          let last = "";
          await waitFor(`"${command}" to print a table like\n${sample.join("\n")}`, async () => {
            const r = await sh(command, env);
            last = r.output;
            const lines = r.output.split("\n");
            const why = statusMismatch(sample, lines, nodeOf, rename) ??
              (r.code === promised.exit ? undefined : `exit ${r.code}`);
            if (why !== undefined) throw new Error(`${why}; it printed:\n${last}`);
            return true;
          }, { intervalMs: 300 });
          continue;
        }
        const r = await sh(command, env);
        if (promised.output !== undefined) {
          assert.equal(r.output, adapt(promised.output), `what "${command}" printed`);
        }
        assert.equal(
          r.code,
          promised.exit,
          `exit status of "${command}"; it printed:\n${r.output}`,
        );
      }
    }
    // The README's commands ran, every one: a walkthrough that lost its steps fails here.
    assert.ok(killed !== undefined, "the walkthrough kills no leader");
    assert.equal(
      launchers.length,
      2,
      "the walkthrough should start the cluster, then a node again",
    );

    // "Ctrl-C in the third terminal, then in the first, stops every node."
    for (const l of [...launchers].reverse()) {
      l.child.kill("SIGINT");
      const status = await l.done;
      assert.equal(status.code, 0, l.lines.slice(-5).join("\n"));
      assert.equal(l.lines.at(-1), "[cluster] every node stopped");
    }
  } catch (err) {
    console.error(`walkthrough steps run:\n  ${ran.join("\n  ")}`);
    for (const [i, l] of launchers.entries()) {
      console.error(`launcher ${i + 1} printed:\n${l.lines.slice(-20).join("\n")}`);
    }
    throw err;
  } finally {
    await Promise.all(launchers.map((l) => l.stop()));
    await Deno.remove(root, { recursive: true });
  }
});
