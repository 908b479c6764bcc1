/**
 * The core's window to the operator. The core never prints: it reports what it
 * does through an injected {@link Logger}, and the runtime decides where lines go
 * and which levels pass.
 *
 * @module
 */

/** Log levels, quietest last. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Every level, most verbose first: what `--log-level` accepts. */
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

/** Structured key/value context for one line (`{ term: 3, to: 2 }`). */
export type LogFields = Readonly<Record<string, unknown>>;

/**
 * Where the core reports events. Levels, as the core uses them:
 * - debug: every heartbeat, every append, every message: the whole story;
 * - info: term changes, votes cast, elections started, won and lost, leader changes;
 * - warn: things an operator should look at (a leader stepping down for lost quorum);
 * - error: never from a correct core; invariant violations throw instead.
 */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

/** A logger that drops everything. */
export const SILENT_LOGGER: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** True when a line at `level` passes a logger configured at `threshold`. */
export function levelEnabled(level: LogLevel, threshold: LogLevel): boolean {
  return RANK[level] >= RANK[threshold];
}
