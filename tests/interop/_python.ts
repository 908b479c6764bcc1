/**
 * What the Python interop test needs besides the cluster: Debian's Python with grpcio,
 * the Python code generated from `proto/` by `buf.gen.python.yaml`, and a way to run the
 * client script line by line.
 *
 * Missing tools fail the test with the command that installs them: CI (`.ci/run`) installs
 * them, so a missing one is a broken machine, not a reason to skip.
 *
 * @module
 */

import { REPO_ROOT } from "../e2e/_harness.ts";

/**
 * The interpreter: Debian's, which `apt-get install python3-grpcio` serves (a `python3`
 * earlier on the PATH, pyenv's say, has no grpcio). `RAFTKV_INTEROP_PYTHON` overrides it.
 */
export const PYTHON: string = Deno.env.get("RAFTKV_INTEROP_PYTHON") ?? "/usr/bin/python3";

/** The Debian packages the interop test needs, as `.ci/run` installs them. */
export const APT_PACKAGES =
  "python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc";

const INSTALL_HINT = `install them with: apt-get update && apt-get install -y ${APT_PACKAGES} ` +
  `(.ci/run does this)`;

/** The tools `buf.gen.python.yaml` runs. */
const GENERATORS = ["/usr/bin/protoc", "/usr/bin/grpc_python_plugin"];

/** What a finished process printed and how it exited. */
export interface Output {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion, stdin closed. */
export async function run(cmd: string, args: string[], cwd = REPO_ROOT): Promise<Output> {
  const out = await new Deno.Command(cmd, { args, cwd, stdin: "null", env: { NO_COLOR: "1" } })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * The environment of the Python process: Debian's packages only (no user site, no
 * PYTHONPATH from the caller), unbuffered, no bytecode files written.
 */
export function pythonEnv(): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    LANG: "C.UTF-8",
    PYTHONNOUSERSITE: "1",
    PYTHONUNBUFFERED: "1",
    PYTHONDONTWRITEBYTECODE: "1",
  };
}

/**
 * Throws, saying what to install, unless {@link PYTHON} imports grpc and google.protobuf
 * and protoc and grpc_python_plugin are where `buf.gen.python.yaml` runs them.
 * Returns the versions found, e.g. `grpc 1.51.1, protobuf 4.21.12`.
 */
export async function requirePythonGrpc(): Promise<string> {
  const missing: string[] = [];
  for (const tool of GENERATORS) {
    try {
      await Deno.stat(tool);
    } catch {
      missing.push(tool);
    }
  }
  let versions = "";
  try {
    const out = await new Deno.Command(PYTHON, {
      args: [
        "-c",
        "import grpc, google.protobuf; print('grpc', grpc.__version__ + ', protobuf', google.protobuf.__version__)",
      ],
      clearEnv: true,
      env: pythonEnv(),
      stdin: "null",
    }).output();
    if (out.success) versions = new TextDecoder().decode(out.stdout).trim();
    else missing.push(`grpcio/protobuf for ${PYTHON} (${lastLine(out.stderr)})`);
  } catch (err) {
    missing.push(`${PYTHON} (${err instanceof Error ? err.message : String(err)})`);
  }
  if (missing.length > 0) {
    throw new Error(`The Python interop test needs ${missing.join(", ")}: ${INSTALL_HINT}`);
  }
  return versions;
}

function lastLine(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes).trim().split("\n").pop() ?? "";
}

/**
 * Generates the Python code into `<outDir>/build/python` with buf and
 * `buf.gen.python.yaml` (the `-o` base directory keeps the work tree untouched) and
 * returns that directory.
 */
export async function generatePython(outDir: string): Promise<string> {
  const res = await run(Deno.execPath(), [
    "run",
    "-A",
    "@bufbuild/buf",
    "generate",
    "--template",
    "buf.gen.python.yaml",
    "-o",
    outDir,
  ]);
  if (res.code !== 0) {
    throw new Error(
      `buf generate --template buf.gen.python.yaml failed (exit ${res.code}):\n` +
        res.stdout + res.stderr,
    );
  }
  const gen = `${outDir}/build/python`;
  for (const f of ["kv_pb2.py", "kv_pb2_grpc.py", "cluster_pb2.py", "cluster_pb2_grpc.py"]) {
    await Deno.stat(`${gen}/raftkv/v1/${f}`); // throws NotFound naming the file
  }
  return gen;
}

/**
 * A running process whose stdout is read line by line, killed (SIGKILL) if it has not
 * exited `timeoutMs` after it started: a hang ends the test with whatever it printed.
 */
export class LineProcess {
  readonly #child: Deno.ChildProcess;
  readonly #lines: AsyncIterator<string>;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #stderr: Promise<string>;
  readonly #status: Promise<Deno.CommandStatus>;
  #timedOut = false;
  /** Every stdout line read so far. */
  readonly stdout: string[] = [];

  constructor(cmd: string, args: string[], env: Record<string, string>, timeoutMs: number) {
    this.#child = new Deno.Command(cmd, {
      args,
      cwd: REPO_ROOT,
      clearEnv: true,
      env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    this.#lines = splitLines(this.#child.stdout)[Symbol.asyncIterator]();
    this.#stderr = new Response(this.#child.stderr).text();
    const timer = setTimeout(() => {
      this.#timedOut = true;
      this.#kill();
    }, timeoutMs);
    this.#status = this.#child.status.finally(() => clearTimeout(timer));
  }

  /** Whether the process was killed for running longer than its timeout. */
  get timedOut(): boolean {
    return this.#timedOut;
  }

  /** The next stdout line, or undefined at the end of stdout. */
  async nextLine(): Promise<string | undefined> {
    const r = await this.#lines.next();
    if (r.done === true) return undefined;
    this.stdout.push(r.value);
    return r.value;
  }

  /** Writes a line to the process's stdin. */
  async writeLine(line: string): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(`${line}\n`));
  }

  /** Closes stdin, reads the rest of stdout and stderr, and waits for the exit. */
  async finish(): Promise<Output> {
    await this.#stdin.close().catch(() => {});
    while ((await this.nextLine()) !== undefined) {
      // Collected in this.stdout.
    }
    const status = await this.#status;
    return { code: status.code, stdout: this.stdout.join("\n"), stderr: await this.#stderr };
  }

  /** Kills the process if it still runs and waits for it (for `finally` blocks). */
  async close(): Promise<void> {
    this.#kill();
    await this.finish().catch(() => {});
  }

  #kill(): void {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  }
}

async function* splitLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let partial = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    partial += chunk;
    const parts = partial.split("\n");
    partial = parts.pop() ?? "";
    yield* parts;
  }
  if (partial !== "") yield partial;
}
