/**
 * The node's {@link Logger}: one line per event on stderr, as text for people or
 * JSON for machines, and {@link PeerErrorLatch} to log a peer's network errors
 * once per state change instead of on every retry.
 *
 * Text:
 *
 * ```text
 * 2026-11-26T17:58:00.123Z INFO  node=1 term=3 role=leader became leader lastIndex=42
 * ```
 *
 * JSON:
 *
 * ```json
 * {"ts":"2026-11-26T17:58:00.123Z","level":"info","node":1,"term":3,"role":"leader","msg":"became leader","lastIndex":42}
 * ```
 *
 * @module
 */

import { levelEnabled, type LogFields, type Logger, type LogLevel } from "../raft/logger.ts";

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Lines below this level are dropped before anything is formatted. */
  level: LogLevel;
  /** `text`: `ts LEVEL key=value... msg key=value...`; `json`: one object per line. */
  format: "text" | "json";
  /**
   * Fields every line starts with (node id, term, role), called once per line
   * that passes the level. Fields whose value is `undefined` are left out.
   */
  context: () => Record<string, unknown>;
  /** Receives each line, without its newline. Defaults to writing to stderr. */
  write?: (line: string) => void;
  /** The clock for timestamps; defaults to `() => new Date()`. */
  now?: () => Date;
}

/** Keys a JSON line always has; a field with one of these names is written as `fields.<name>`. */
const RESERVED = new Set(["ts", "level", "msg"]);

/**
 * Creates a {@link Logger} that formats lines as `opts.format` and hands them to
 * `opts.write`. Methods for levels below `opts.level` are no-ops. A field that
 * repeats a context key with the same value is left out; with a different value
 * it is kept (in JSON under `fields.<key>`). The logger never throws: a failing
 * `context()` or an unserializable value degrades the line, not the caller.
 */
export function createLogger(opts: LoggerOptions): Logger {
  const write = opts.write ?? writeStderr;
  const now = opts.now ?? (() => new Date());
  const format = opts.format === "json" ? formatJson : formatText;
  const make = (level: LogLevel): (msg: string, fields?: LogFields) => void => {
    if (!levelEnabled(level, opts.level)) return () => {};
    return (msg, fields) => {
      let context: Record<string, unknown>;
      try {
        context = opts.context();
      } catch {
        context = {};
      }
      let line: string;
      try {
        line = format(now(), level, context, msg, fields ?? {});
      } catch (e) {
        line = format(now(), level, {}, msg, { logError: String(e) });
      }
      write(line);
    };
  };
  return {
    debug: make("debug"),
    info: make("info"),
    warn: make("warn"),
    error: make("error"),
  };
}

/**
 * Formats one text line: timestamp, level padded to 5, context fields, message,
 * fields. Values are written bare when they are simple and quoted (JSON string
 * syntax) when they contain spaces, quotes, `=` or control characters, or are empty.
 */
export function formatText(
  ts: Date,
  level: LogLevel,
  context: Record<string, unknown>,
  msg: string,
  fields: LogFields,
): string {
  const parts = [ts.toISOString(), level.toUpperCase().padEnd(5)];
  for (const [k, v] of Object.entries(context)) {
    if (v !== undefined) parts.push(`${k}=${textValue(v)}`);
  }
  parts.push(escapeControl(msg));
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || (k in context && Object.is(context[k], v))) continue;
    parts.push(`${k}=${textValue(v)}`);
  }
  return parts.join(" ");
}

/**
 * Formats one JSON line: `ts`, `level`, the context fields, `msg`, then the
 * fields. Bigints are written as numbers when safe, else as strings; errors as
 * their message; byte arrays as their length (`<3B>`).
 */
export function formatJson(
  ts: Date,
  level: LogLevel,
  context: Record<string, unknown>,
  msg: string,
  fields: LogFields,
): string {
  const obj: Record<string, unknown> = { ts: ts.toISOString(), level };
  for (const [k, v] of Object.entries(context)) {
    if (v !== undefined) obj[RESERVED.has(k) ? `fields.${k}` : k] = v;
  }
  obj.msg = msg;
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    if (k in obj) {
      if (!RESERVED.has(k) && Object.is(obj[k], v)) continue;
      obj[`fields.${k}`] = v;
    } else {
      obj[k] = v;
    }
  }
  return JSON.stringify(obj, jsonReplacer);
}

function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") {
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
      ? Number(value)
      : value.toString();
  }
  if (value instanceof Error) return value.message;
  if (value instanceof Uint8Array) return `<${value.length}B>`;
  if (value instanceof Map) return Object.fromEntries(value);
  if (value instanceof Set) return [...value];
  return value;
}

// deno-lint-ignore no-control-regex
const BARE = /^[^\s"=\\\x00-\x1f\x7f]+$/;

function textValue(v: unknown): string {
  let s: string;
  if (typeof v === "string") {
    s = v;
  } else if (
    typeof v === "number" || typeof v === "bigint" || typeof v === "boolean" || v === null
  ) {
    return String(v);
  } else if (v instanceof Error) {
    s = v.message;
  } else if (v instanceof Uint8Array) {
    return `<${v.length}B>`;
  } else if (typeof v === "object") {
    try {
      s = JSON.stringify(v, jsonReplacer) ?? String(v);
    } catch {
      s = String(v);
    }
  } else {
    s = String(v);
  }
  return BARE.test(s) ? s : JSON.stringify(s);
}

function escapeControl(s: string): string {
  // deno-lint-ignore no-control-regex
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => JSON.stringify(c).slice(1, -1));
}

const encoder = new TextEncoder();

function writeStderr(line: string): void {
  const bytes = encoder.encode(line + "\n");
  try {
    let written = 0;
    while (written < bytes.length) {
      written += Deno.stderr.writeSync(bytes.subarray(written));
    }
  } catch {
    // stderr is gone (closed pipe): nowhere left to report to.
  }
}

/**
 * Remembers which peers are failing and how, so that RPC and network errors are
 * logged once per peer and state change rather than on every retry:
 *
 * ```ts
 * if (latch.report(peer, `${err.code}: ${err.rawMessage}`)) log.warn("peer unreachable", {...});
 * // ... after a successful call:
 * if (latch.clear(peer)) log.info("peer reachable again", { peer });
 * ```
 *
 * Pass a stable error description (code and message, not a stack or a timing),
 * so that the same failure repeated is recognized as the same state.
 */
export class PeerErrorLatch {
  #errors = new Map<number, string>();

  /**
   * Records that a call to `peer` failed with `error`. True when this is news:
   * the peer was healthy, or was failing with a different error.
   */
  report(peer: number, error: string): boolean {
    if (this.#errors.get(peer) === error) return false;
    this.#errors.set(peer, error);
    return true;
  }

  /** Records that a call to `peer` succeeded. True if the peer was failing until now. */
  clear(peer: number): boolean {
    return this.#errors.delete(peer);
  }

  /** The error `peer` is failing with, or undefined if it is healthy. */
  errorOf(peer: number): string | undefined {
    return this.#errors.get(peer);
  }

  /** The peers currently failing, in ascending order. */
  failing(): number[] {
    return [...this.#errors.keys()].sort((a, b) => a - b);
  }
}
