/**
 * One flag of a command line and its value, as the node (flags.ts) and the client
 * CLI (src/cli/connection_options.ts) both read them: `--name=value`, or `--name
 * value` where the value is the next argument unless there is none or it is itself
 * a flag (starts with `--`). Only the split is shared: which names exist, and the
 * words and error type of a refusal, stay with each command line. It lives here,
 * beside the node's flags, because the CLI may import the server's modules and the
 * server must not import the CLI's.
 *
 * @module
 */

/** A flag read from the command line by {@link readFlagArgument}. */
export interface FlagArgument {
  /** What stands before `=`, dashes included (`--peers`), or the whole argument. */
  readonly name: string;
  /**
   * The value: after `=` (possibly empty), or the next argument; undefined when
   * there is no `=` and the next argument is missing or is a flag.
   */
  readonly value: string | undefined;
  /** The index of the last argument the flag used: `i`, or `i + 1` for `--name value`. */
  readonly last: number;
}

/**
 * Reads the flag at `args[i]` and its value. It checks nothing: the caller decides
 * whether the name is known and refuses a missing (undefined) or empty value in its
 * own words, then goes on after {@link FlagArgument.last}.
 *
 * @throws {RangeError} when `args[i]` does not exist (a caller's bug)
 */
export function readFlagArgument(args: readonly string[], i: number): FlagArgument {
  const arg = args[i];
  if (arg === undefined) {
    throw new RangeError(`Cannot read a flag at argument ${i}: there are ${args.length}`);
  }
  const eq = arg.indexOf("=");
  if (eq >= 0) return { name: arg.slice(0, eq), value: arg.slice(eq + 1), last: i };
  const next = args[i + 1];
  if (next === undefined || next.startsWith("--")) return { name: arg, value: undefined, last: i };
  return { name: arg, value: next, last: i + 1 };
}
