/**
 * What the bench scripts share: reading a positive integer flag (a usage error exits
 * 2, as the CLI does) and polling a probe until it answers or a deadline passes.
 *
 * @module
 */

/** `text` (the value given for `--name`) as a positive integer; otherwise exits 2, naming it. */
export function positiveInt(name: string, text: string | undefined): number {
  const v = Number(text);
  if (!Number.isInteger(v) || v <= 0) {
    console.error(`error: --${name} takes a positive integer, not "${text}"`);
    Deno.exit(2);
  }
  return v;
}

/** `--name N` from the command line as a positive integer, or `fallback` when absent. */
export function argFlag(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  return i < 0 ? fallback : positiveInt(name, Deno.args[i + 1]);
}

/** Polls `probe` (every 20 ms) until it returns a value, or throws after `ms`. */
export async function until<T>(
  what: string,
  ms: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${what}: not within ${ms / 1000} s`);
}
