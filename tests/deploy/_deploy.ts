/**
 * Helpers for the deployment tests: readers for the files under `deploy/` (a
 * Dockerfile, systemd units and env files, Kubernetes' `$(VAR)` expansion), the
 * shape of a node command (`deno run <permissions> <entry> <node flags>`), and
 * node processes started with an exact command line.
 *
 * @module
 */

import { tlsFiles } from "../../src/tls/config.ts";
import { parseAllDocuments } from "yaml";
import { REPO_ROOT } from "../e2e/_harness.ts";

export { REPO_ROOT };
import { NODE_PERMITTED_ENV, type NodeOptions, parseNodeFlags } from "../../src/server/flags.ts";

/** `deploy/` in the repository. */
export const DEPLOY_DIR: string = `${REPO_ROOT}deploy`;

/** Reads a file of the repository (`path` relative to its root). */
export function readRepoFile(path: string): string {
  return Deno.readTextFileSync(`${REPO_ROOT}${path}`);
}

/**
 * Every file under `deploy/` (paths relative to the repository root), sorted,
 * without the build output `deploy/dist/`.
 */
export function deployFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(`${REPO_ROOT}${dir}`)) {
      const path = `${dir}/${e.name}`;
      if (path === "deploy/dist") continue;
      if (e.isDirectory) walk(path);
      else if (e.isFile) out.push(path);
    }
  };
  walk("deploy");
  return out.sort();
}

/** Parses every YAML document of a file (merge keys `<<` on); throws on any error or warning. */
export function parseYaml(path: string): unknown[] {
  const docs = parseAllDocuments(readRepoFile(path), { merge: true, prettyErrors: true });
  if (!Array.isArray(docs)) return []; // an empty stream
  const problems = docs.flatMap((d) => [...d.errors, ...d.warnings]).map((e) => e.message);
  if (problems.length > 0) throw new Error(`${path}: ${problems.join("\n")}`);
  return docs.map((d) => d.toJS({ maxAliasCount: 100 })).filter((d) => d !== null);
}

// -----------------------------------------------------------------------------
// The node command.

/** A node command taken apart: `deno run <flags> <entry> <args>`. */
export interface NodeCommand {
  /** Where it was found, for messages. */
  readonly where: string;
  /** The Deno flags, before the entry point. */
  readonly denoFlags: readonly string[];
  /** The script: `src/server/main.ts`, or the bundle `raftkv-node.js`, as written. */
  readonly entry: string;
  /** The node's own flags, after the entry point. */
  readonly args: readonly string[];
}

/**
 * Takes `deno run ...` apart. `argv[0]` is `deno` or a path ending in `/deno`; the
 * entry point is the first argument after `run` that is not a flag (no flag used
 * here takes a separate value).
 */
export function parseDenoRun(where: string, argv: readonly string[]): NodeCommand {
  const [deno, sub, ...rest] = argv;
  if (deno === undefined || !/(^|\/)deno$/.test(deno) || sub !== "run") {
    throw new Error(`${where}: not a "deno run" command: ${argv.join(" ")}`);
  }
  const i = rest.findIndex((a) => !a.startsWith("-"));
  if (i < 0) throw new Error(`${where}: no entry point in: ${argv.join(" ")}`);
  return { where, denoFlags: rest.slice(0, i), entry: rest[i]!, args: rest.slice(i + 1) };
}

/** A node command's permissions, as granted by its `--allow-*` flags. */
export interface Grants {
  net: string | true | undefined;
  read: string[] | undefined;
  write: string[] | undefined;
  env: string[] | undefined;
  /** Any other Deno flag. */
  other: string[];
}

/** Sorts out the `--allow-*` flags of a command (a flag given twice is an error). */
export function grantsOf(cmd: NodeCommand): Grants {
  const g: Grants = {
    net: undefined,
    read: undefined,
    write: undefined,
    env: undefined,
    other: [],
  };
  for (const flag of cmd.denoFlags) {
    const m = /^--allow-(net|read|write|env)(?:=(.*))?$/.exec(flag);
    if (m === null) {
      g.other.push(flag);
      continue;
    }
    const kind = m[1] as "net" | "read" | "write" | "env";
    if (g[kind] !== undefined) throw new Error(`${cmd.where}: --allow-${kind} given twice`);
    const value = m[2];
    if (kind === "net") g.net = value ?? true;
    else g[kind] = value === undefined ? ["<all>"] : value.split(",");
  }
  return g;
}

/**
 * Checks that a node command grants what `deno task node` grants, with the data
 * dir in place of `./data`: the whole network, read and write on the node's data
 * dir alone, exactly the node's `RAFTKV_*` variables, and no other flag. Returns
 * the node's options, as `parseNodeFlags` reads them from its arguments and `env`.
 */
export function checkNodeCommand(
  cmd: NodeCommand,
  env: Record<string, string | undefined>,
): NodeOptions {
  const g = grantsOf(cmd);
  const opts = parseNodeFlags([...cmd.args], env);
  const problems: string[] = [];
  if (!/(^|\/)(src\/server\/main\.ts|raftkv-node\.js)$/.test(cmd.entry)) {
    problems.push(`entry point ${cmd.entry} is neither src/server/main.ts nor raftkv-node.js`);
  }
  if (g.net !== true) problems.push(`--allow-net is ${String(g.net)}, not the whole network`);
  const w = g.write;
  if (w === undefined || w.length !== 1 || w[0] !== opts.dataDir) {
    problems.push(`--allow-write is ${w?.join(",")}, not the data dir ${opts.dataDir}`);
  }
  // Read: the data dir, and a TLS dir (a directory named tls: ./tls, /etc/raftkv/tls)
  // holding every TLS file the node is given (README, "Securing a cluster").
  const r = g.read;
  const tlsDirs = r?.slice(1) ?? [];
  if (
    r === undefined || r[0] !== opts.dataDir || tlsDirs.length > 1 ||
    tlsDirs.some((d) => !/(^|\/)tls$/.test(d))
  ) {
    problems.push(
      `--allow-read is ${r?.join(",")}, not the data dir ${opts.dataDir} and a TLS dir`,
    );
  }
  for (const f of opts.tls === undefined ? [] : tlsFiles(opts.tls)) {
    if (!tlsDirs.some((d) => f.file.startsWith(`${d}/`))) {
      problems.push(`${f.flag} ${f.file} is outside the TLS dir ${tlsDirs.join(",")}`);
    }
  }
  const env1 = [...(g.env ?? [])].sort().join(",");
  const want = [...NODE_PERMITTED_ENV].sort().join(",");
  if (env1 !== want) problems.push(`--allow-env is ${env1}, not ${want}`);
  // V8's memory tuning (`deno task node` sets it: README, "Memory") grants nothing.
  const other = g.other.filter((f) => !f.startsWith("--v8-flags="));
  if (other.length > 0) problems.push(`unexpected Deno flags ${other.join(" ")}`);
  if (problems.length > 0) {
    throw new Error(`${cmd.where}: ${problems.join("; ")}\n  command: ${describe(cmd)}`);
  }
  return opts;
}

/** The command as one line. */
export function describe(cmd: NodeCommand): string {
  return ["deno", "run", ...cmd.denoFlags, cmd.entry, ...cmd.args].join(" ");
}

/**
 * The command of `deno task <name>` in deno.json, split on whitespace, without the
 * variables it sets before it (see {@link taskEnv}).
 */
export function taskCommand(name: string): string[] {
  const words = taskWords(name);
  return words.slice(words.findIndex((w) => !ASSIGNMENT.test(w)));
}

/** The variables `deno task <name>` sets for its command (`NAME=value` before it). */
export function taskEnv(name: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const w of taskWords(name)) {
    const m = ASSIGNMENT.exec(w);
    if (m === null) break;
    env[m[1]!] = m[2]!;
  }
  return env;
}

const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)=(\S*)$/;

function taskWords(name: string): string[] {
  const config = JSON.parse(readRepoFile("deno.json")) as {
    tasks: Record<string, string | { command: string }>;
  };
  const task = config.tasks[name];
  if (task === undefined) throw new Error(`deno.json has no task "${name}"`);
  return (typeof task === "string" ? task : task.command).trim().split(/\s+/);
}

/**
 * The `deno run ...` commands of a Markdown file's fenced code blocks that run a
 * node (entry point `main.ts` or `raftkv-node.js`), with `\` continuations joined.
 */
export function markdownNodeCommands(path: string): NodeCommand[] {
  const out: NodeCommand[] = [];
  const text = readRepoFile(path);
  for (const block of text.matchAll(/^```[a-z]*\n([\s\S]*?)^```/gm)) {
    const lines = block[1]!.replace(/\\\n\s*/g, "").split("\n");
    lines.forEach((line, i) => {
      const words = line.replace(/#.*$/, "").trim().split(/\s+/);
      const at = words.findIndex((w, j) => /(^|\/)deno$/.test(w) && words[j + 1] === "run");
      if (at < 0) return;
      const cmd = parseDenoRun(`${path} (block line ${i + 1})`, words.slice(at));
      if (/(^|\/)(main\.ts|raftkv-node\.js)$/.test(cmd.entry)) out.push(cmd);
    });
  }
  return out;
}

// -----------------------------------------------------------------------------
// Dockerfile.

/** One Dockerfile instruction: the keyword (upper case) and the rest of it, continuations joined. */
export interface Instruction {
  readonly keyword: string;
  readonly rest: string;
}

/** The instructions of a Dockerfile, comments dropped and `\` continuations joined. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let current = "";
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (current === "" && line.trim() === "") continue;
    if (line.trimStart().startsWith("#")) continue; // also inside a continued instruction
    if (line.endsWith("\\")) {
      current += line.slice(0, -1) + " ";
      continue;
    }
    current += line;
    const m = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(current);
    if (m === null) throw new Error(`Dockerfile: cannot read instruction "${current}"`);
    out.push({ keyword: m[1]!.toUpperCase(), rest: m[2]!.trim() });
    current = "";
  }
  if (current !== "") throw new Error("Dockerfile: ends inside a continued instruction");
  return out;
}

/** The stages of a Dockerfile: each `FROM` and the instructions after it. */
export function dockerStages(
  instructions: Instruction[],
): { from: string; name?: string; body: Instruction[] }[] {
  const stages: { from: string; name?: string; body: Instruction[] }[] = [];
  for (const ins of instructions) {
    if (ins.keyword === "FROM") {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.rest);
      if (m === null) throw new Error(`Dockerfile: cannot read FROM ${ins.rest}`);
      stages.push({ from: m[1]!, name: m[2], body: [] });
    } else {
      const last = stages[stages.length - 1];
      if (last === undefined) throw new Error(`Dockerfile: ${ins.keyword} before FROM`);
      last.body.push(ins);
    }
  }
  return stages;
}

/** An exec-form (JSON array) argument list, as in `CMD ["deno", "run"]`. */
export function execForm(text: string, what: string): string[] {
  const v = JSON.parse(text) as unknown;
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
    throw new Error(`${what} is not in exec form (a JSON array of strings): ${text}`);
  }
  return v;
}

/** The variables set by the `ENV KEY=VALUE ...` instructions of a stage (unquoted values only). */
export function dockerEnv(body: Instruction[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const ins of body.filter((i) => i.keyword === "ENV")) {
    for (const pair of ins.rest.split(/\s+/)) {
      const eq = pair.indexOf("=");
      if (eq <= 0 || /["']/.test(pair)) throw new Error(`Dockerfile: cannot read ENV ${pair}`);
      env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  return env;
}

/** The stages of deploy/Dockerfile, its final stage, that stage's CMD and ENV. */
export function dockerImage(): {
  stages: { from: string; name?: string; body: Instruction[] }[];
  final: { from: string; name?: string; body: Instruction[] };
  /** The one `keyword` instruction of the final stage (throws if not exactly one). */
  one: (keyword: string) => string;
  /** CMD, as a node command. */
  cmd: NodeCommand;
  /** HEALTHCHECK's options and its exec-form command. */
  healthcheck: { options: string; argv: string[] };
  env: Record<string, string>;
} {
  const stages = dockerStages(parseDockerfile(readRepoFile("deploy/Dockerfile")));
  const final = stages[stages.length - 1]!;
  const one = (keyword: string) => {
    const all = final.body.filter((i) => i.keyword === keyword);
    if (all.length !== 1) {
      throw new Error(`the final stage should have one ${keyword}, has ${all.length}`);
    }
    return all[0]!.rest;
  };
  const cmd = parseDenoRun("deploy/Dockerfile CMD", execForm(one("CMD"), "CMD"));
  const hc = /^((?:--\S+\s+)*)CMD\s+(\[.*\])$/.exec(one("HEALTHCHECK"));
  if (hc === null) {
    throw new Error(`HEALTHCHECK should be "[options] CMD [exec form]": ${one("HEALTHCHECK")}`);
  }
  const healthcheck = { options: hc[1]!.trim(), argv: execForm(hc[2]!, "HEALTHCHECK CMD") };
  return { stages, final, one, cmd, healthcheck, env: dockerEnv(final.body) };
}

// -----------------------------------------------------------------------------
// systemd.

/** A unit file: section → key → values, in order (a key may repeat). */
export type Unit = Map<string, Map<string, string[]>>;

/**
 * Reads a systemd unit file as INI sections: `[Section]` headers, `Key=Value`
 * lines, `#`/`;` comments, `\` continuations joined with a space. Throws on a
 * line that is none of these, or a key outside a section.
 */
export function parseUnit(text: string, what: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  const lines = text.replace(/\\\n/g, " ").split("\n");
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) return;
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header !== null) {
      if (unit.has(header[1]!)) throw new Error(`${what}: section [${header[1]}] twice`);
      section = new Map();
      unit.set(header[1]!, section);
      return;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line);
    if (kv === null) throw new Error(`${what}:${i + 1}: not Key=Value: ${line}`);
    if (section === undefined) throw new Error(`${what}:${i + 1}: ${kv[1]} outside a section`);
    const values = section.get(kv[1]!) ?? [];
    values.push(kv[2]!.replace(/\s+/g, " ").trim());
    section.set(kv[1]!, values);
  });
  return unit;
}

/** Reads an env file (`KEY=VALUE` lines, `#` comments, no quoting) as systemd's EnvironmentFile= would. */
export function parseEnvFile(text: string, what: string): Record<string, string> {
  const env: Record<string, string> = {};
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const m = /^([A-Z_][A-Z0-9_]*)=(\S*)$/.exec(line);
    if (m === null) throw new Error(`${what}:${i + 1}: not KEY=VALUE (unquoted): ${line}`);
    env[m[1]!] = m[2]!;
  });
  return env;
}

// -----------------------------------------------------------------------------
// Kubernetes.

/**
 * Kubernetes' expansion of `$(VAR)` in a container's env values, command and args
 * (k8s.io/kubernetes third_party/forked/golang/expansion): `$$` is a literal `$`,
 * `$(NAME)` is replaced when NAME is defined and left as it is otherwise, and any
 * other `$` is kept.
 */
export function k8sExpand(input: string, vars: Record<string, string>): string {
  let out = "";
  for (let i = 0; i < input.length; i++) {
    const c = input[i];
    if (c !== "$" || i + 1 >= input.length) {
      out += c;
      continue;
    }
    const next = input[i + 1];
    if (next === "$") {
      out += "$";
      i += 1;
    } else if (next === "(") {
      const close = input.indexOf(")", i + 2);
      if (close < 0) {
        out += "$(";
        i += 1;
      } else {
        const name = input.slice(i + 2, close);
        out += Object.hasOwn(vars, name) ? vars[name] : `$(${name})`;
        i = close;
      }
    } else {
      out += `$${next}`;
      i += 1;
    }
  }
  return out;
}

/** What a container command ran, as seen by a stand-in `deno` on the PATH. */
export interface FakeDenoRun {
  /** The stand-in's arguments, `deno` first. */
  readonly argv: string[];
  /** Its `RAFTKV_*` environment. */
  readonly env: Record<string, string>;
}

/**
 * Runs `command` (a container's command, e.g. `["/bin/sh", "-c", script]`) with
 * exactly `env`, and a `deno` on the PATH that records its arguments and
 * environment instead of running anything. Throws, with its output, if the command
 * exits non-zero or never runs `deno`.
 */
export async function runWithFakeDeno(
  command: readonly string[],
  env: Record<string, string>,
): Promise<FakeDenoRun> {
  const dir = await Deno.makeTempDir({ prefix: "raftkv_fake_deno_" });
  try {
    await Deno.writeTextFile(
      `${dir}/deno`,
      `#!/bin/sh\nfor a in deno "$@"; do printf 'ARG %s\\n' "$a"; done\n` +
        `env | grep '^RAFTKV_' | sed 's/^/ENV /'\nexit 0\n`,
      { mode: 0o755 },
    );
    const [exe, ...args] = command;
    const out = await new Deno.Command(exe!, {
      args,
      env: { ...env, PATH: `${dir}:/usr/bin:/bin` },
      clearEnv: true,
      stdin: "null",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    if (!out.success || !stdout.includes("ARG deno")) {
      throw new Error(
        `${command.join(" ")} exited ${out.code} without running deno:\n${stdout}${stderr}`,
      );
    }
    const argv: string[] = [];
    const rEnv: Record<string, string> = {};
    for (const line of stdout.split("\n")) {
      if (line.startsWith("ARG ")) argv.push(line.slice(4));
      if (line.startsWith("ENV ")) {
        const kv = line.slice(4);
        rEnv[kv.slice(0, kv.indexOf("="))] = kv.slice(kv.indexOf("=") + 1);
      }
    }
    return { argv, env: rEnv };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// -----------------------------------------------------------------------------
// Processes.

/** A process started by {@link spawnLogged}. */
export interface Logged {
  readonly child: Deno.ChildProcess;
  /** stdout and stderr lines, as they come. */
  readonly lines: string[];
  /** Resolves when the process has exited and its output is read. */
  readonly done: Promise<Deno.CommandStatus>;
}

/** Starts `argv` (`deno` → this Deno) in the repository root, collecting its output lines. */
export function spawnLogged(
  argv: readonly string[],
  env: Record<string, string> = {},
): Logged {
  const [exe, ...args] = argv;
  const child = new Deno.Command(exe === "deno" ? Deno.execPath() : exe!, {
    args,
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    let partial = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      partial += chunk;
      const parts = partial.split("\n");
      partial = parts.pop() ?? "";
      lines.push(...parts);
    }
    if (partial !== "") lines.push(partial);
  };
  const done = Promise.all([child.status, drain(child.stdout), drain(child.stderr)]).then((
    [s],
  ) => s);
  return { child, lines, done };
}

/** Kills a process (if still running) and waits for it. */
export async function killAndWait(p: Logged, signal: Deno.Signal = "SIGKILL"): Promise<void> {
  try {
    p.child.kill(signal);
  } catch {
    // Already exited.
  }
  await p.done;
}

/** Builds what `deno task bundle` builds, into `outDir`, with the task's own flags. */
export async function buildBundles(outDir: string): Promise<Map<string, string>> {
  const built = new Map<string, string>(); // file name → path in outDir
  const words = taskCommand("bundle");
  const commands: string[][] = [[]];
  for (const w of words) {
    if (w === "&&") commands.push([]);
    else commands[commands.length - 1]!.push(w);
  }
  for (const cmd of commands) {
    if (cmd[0] !== "deno" || cmd[1] !== "bundle") {
      throw new Error(`deno task bundle runs something else than deno bundle: ${cmd.join(" ")}`);
    }
    const o = cmd.findIndex((w) => w === "-o" || w === "--output");
    const target = cmd[o + 1];
    if (o < 0 || target === undefined || !target.startsWith("deploy/dist/")) {
      throw new Error(`deno task bundle should write into deploy/dist/: ${cmd.join(" ")}`);
    }
    const name = target.slice("deploy/dist/".length);
    const args = cmd.slice(1); // args[k] is cmd[k + 1]
    args[o] = `${outDir}/${name}`; // the value of -o
    const out = await new Deno.Command(Deno.execPath(), {
      args,
      cwd: REPO_ROOT,
      env: { NO_COLOR: "1" },
      stdin: "null",
    }).output();
    if (!out.success) {
      throw new Error(
        `${cmd.join(" ")} failed (${out.code}):\n${new TextDecoder().decode(out.stderr)}`,
      );
    }
    built.set(name, `${outDir}/${name}`);
  }
  return built;
}
