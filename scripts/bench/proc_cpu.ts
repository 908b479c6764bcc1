/**
 * CPU time of processes from Linux's `/proc/<pid>/stat`: user plus system time
 * (fields 14 and 15, `utime` and `stime`, in clock ticks; proc(5)). The bench reads
 * every server process before and after a run, so a system's cost per operation
 * counts all its members (followers' appends and fsyncs included), not the leader
 * alone.
 *
 * @module
 */

/** Clock ticks per second (`getconf CLK_TCK`); 100 on Linux when getconf is missing. */
export async function clockTicksPerSecond(): Promise<number> {
  try {
    const out = await new Deno.Command("getconf", { args: ["CLK_TCK"], stderr: "null" }).output();
    const n = Number(new TextDecoder().decode(out.stdout).trim());
    if (out.success && Number.isInteger(n) && n > 0) return n;
  } catch {
    // no getconf: Linux's USER_HZ is 100 on every architecture Deno runs on
  }
  return 100;
}

/**
 * The user + system clock ticks `pid` has used, parsed from the text of its
 * `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may hold
 * spaces or parentheses itself, so fields are counted from the last `)`.
 *
 * @throws {Error} if the text is not a stat line
 */
export function parseStatTicks(stat: string): number {
  const close = stat.lastIndexOf(")");
  if (close < 0) throw new Error(`not a /proc/<pid>/stat line: ${stat.slice(0, 80)}`);
  // After ")": field 3 (state) is rest[0], so field n is rest[n - 3].
  const rest = stat.slice(close + 1).trim().split(/\s+/);
  const utime = Number(rest[14 - 3]);
  const stime = Number(rest[15 - 3]);
  if (!Number.isInteger(utime) || !Number.isInteger(stime)) {
    throw new Error(`no utime/stime in /proc/<pid>/stat line: ${stat.slice(0, 80)}`);
  }
  return utime + stime;
}

/** The CPU seconds (user + system) process `pid` has used so far. */
export function cpuSeconds(pid: number, ticksPerSecond: number): number {
  return parseStatTicks(Deno.readTextFileSync(`/proc/${pid}/stat`)) / ticksPerSecond;
}

/** The 1, 5 and 15 minute load averages from /proc/loadavg. */
export function loadAverage(): [number, number, number] {
  const [a, b, c] = Deno.readTextFileSync("/proc/loadavg").split(" ").map(Number);
  return [a ?? NaN, b ?? NaN, c ?? NaN];
}
