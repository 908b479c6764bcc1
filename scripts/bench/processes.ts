/**
 * Server processes the bench starts: each one's output goes to a log file in the
 * run's temporary directory (shown when a cluster fails to start); they are
 * stopped with SIGKILL.
 *
 * @module
 */

/** A server process and where its output goes. */
export interface ServerProcess {
  readonly child: Deno.ChildProcess;
  readonly pid: number;
  /** The file holding its stdout and stderr. */
  readonly logPath: string;
  /** True once it has exited. */
  exited: boolean;
  /** Resolves when all its output is in the log (after it exits). */
  logged: Promise<void>;
}

/** Every server process started by this bench, for {@link stopEveryServer}. */
const started: ServerProcess[] = [];

/**
 * Stops every server this process started, also those of a cluster still starting
 * (an interrupt can come at any time; a child left running would keep its ports).
 */
export function stopEveryServer(): Promise<void> {
  return stopServers(started);
}

/**
 * Starts `command args` in `cwd`, with `env` added to this process's environment, its
 * stdout and stderr appended to `logPath`.
 */
export async function spawnServer(
  command: string,
  args: string[],
  logPath: string,
  cwd?: string,
  env?: Readonly<Record<string, string>>,
): Promise<ServerProcess> {
  const log = await Deno.open(logPath, { create: true, append: true });
  const child = new Deno.Command(command, {
    args,
    cwd,
    env: env === undefined ? undefined : { ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const sink = log.writable.getWriter();
  const copy = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) await sink.write(chunk);
  };
  const logged = Promise.all([copy(child.stdout), copy(child.stderr)])
    .catch(() => {})
    .then(() => sink.close().catch(() => {}));
  const proc: ServerProcess = { child, pid: child.pid, logPath, exited: false, logged };
  started.push(proc);
  void child.status.then(() => proc.exited = true);
  return proc;
}

/** The last lines of every server's log that has any, each under its file's name, for an error message. */
export async function logTails(procs: readonly ServerProcess[], lines = 5): Promise<string> {
  const tails = await Promise.all(procs.map(async (p) => {
    const tail = await logTail(p, lines);
    return tail === "" ? "" : `\n${p.logPath}:\n${tail}`;
  }));
  return tails.join("");
}

/** The last `lines` lines of a server's log, for an error message. */
export async function logTail(proc: ServerProcess, lines = 20): Promise<string> {
  // All of an exited process's output, not what the copy has written so far.
  if (proc.exited) await proc.logged;
  try {
    const text = await Deno.readTextFile(proc.logPath);
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * SIGKILL to every process still running; waits for all. Not SIGTERM: their data is
 * deleted right after, and a raftkv node's orderly shutdown took seconds on a
 * loaded machine, for nothing.
 */
export async function stopServers(procs: readonly ServerProcess[]): Promise<void> {
  for (const p of procs) {
    if (p.exited) continue;
    try {
      p.child.kill("SIGKILL");
    } catch {
      // exited between the check and the kill
    }
  }
  await Promise.all(procs.map((p) => p.child.status));
}

/**
 * Resolves `wait` unless one of `procs` exits first, in which case it rejects with
 * that process's log tail: a member that dies while its cluster starts is a failed
 * start at once, not a wait until the deadline.
 */
export async function unlessOneExits<T>(
  what: string,
  procs: readonly ServerProcess[],
  wait: Promise<T>,
): Promise<T> {
  let done = false;
  const exited = Promise.race(procs.map(async (p) => {
    const status = await p.child.status;
    if (done) return new Promise<never>(() => {});
    throw new Error(
      `${what}: process ${p.pid} exited with ${
        status.signal === null ? `code ${status.code}` : `signal ${status.signal}`
      }; the end of its log (${p.logPath}):\n${await logTail(p)}`,
    );
  }));
  try {
    return await Promise.race([wait, exited]);
  } finally {
    done = true;
    exited.catch(() => {});
  }
}
