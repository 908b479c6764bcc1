/**
 * `deno task test [PATH...] [DENO TEST FLAGS...]`: runs `deno test -A` on the paths
 * given, or on `tests/` when none is given, and exits with its status.
 *
 * ```sh
 * deno task test                           # every test under tests/
 * deno task test tests/cli                 # only tests/cli
 * deno task test tests/raft --filter PreVote
 * deno task test --filter status           # no path: tests/, filtered
 * ```
 *
 * `deno task` appends its arguments to the task's command and its shell has no
 * `${@:-default}`, so a task of `deno test -A tests/` would run every test and then
 * PATH again; this wrapper chooses instead. An argument that names an existing file
 * or directory is a path; without one, `tests/` is added (a mistyped path is then
 * passed on as well, and `deno test` reports it as not found).
 *
 * @module
 */

/** The arguments of `deno` that run the tests `args` ask for. */
export function denoTestArgs(args: readonly string[], exists: (path: string) => boolean): string[] {
  const hasPath = args.some((a) => !a.startsWith("-") && exists(a));
  return ["test", "-A", ...args, ...(hasPath ? [] : ["tests/"])];
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

if (import.meta.main) {
  const child = new Deno.Command(Deno.execPath(), {
    args: denoTestArgs(Deno.args, exists),
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  // Ctrl-C reaches `deno test` too (same process group): wait for it to finish and
  // report. A SIGTERM for this process is passed on, so no test run is left behind.
  Deno.addSignalListener("SIGINT", () => {});
  Deno.addSignalListener("SIGTERM", () => child.kill("SIGTERM"));
  // A run killed by a signal reports 128 + its number, as a shell would (Deno does this).
  Deno.exit((await child.status).code);
}
