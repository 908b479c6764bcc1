/**
 * The client CLI's connection options, the ones before the command: `--endpoints`,
 * `--timeout-ms` and the TLS options (`--cacert`, `--cert`, `--key`, see
 * `tls_options.ts`), with their variables. `main.ts` parses them once, with
 * {@link parseConnectionOptions}, and hands the result to whichever command runs: the
 * key-value and membership commands (`commands.ts`, `members.ts`) or the API commands
 * (`api_commands.ts`).
 *
 * @module
 */

import { FlagError, formatHostPort, parseHostPort } from "../server/flags.ts";
import { readFlagArgument } from "../server/flag_argument.ts";
import {
  type ClientTlsFiles,
  isTlsOption,
  parseTlsOptions,
  type TlsOption,
  TlsOptionError,
} from "./tls_options.ts";

/** A command line the CLI cannot run; `message` says why. */
export class UsageError extends Error {
  /** Creates a UsageError with a complete, user-facing message. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The default of `--endpoints` when neither it nor `RAFTKV_ENDPOINTS` is set. */
export const DEFAULT_ENDPOINTS = "127.0.0.1:7001";

/** The default of `--timeout-ms`. */
export const DEFAULT_TIMEOUT_MS = 5000;

/** How to reach the cluster, as the options and variables say. */
export interface ConnectionOptions {
  /** Endpoints as `host:port` (IPv6 bracketed), in order, without duplicates. */
  endpoints: string[];
  /** Time budget of the command in milliseconds. */
  timeoutMs: number;
  /** TLS files (--cacert, --cert, --key), or undefined for plaintext. */
  tls?: ClientTlsFiles;
}

/** What {@link parseConnectionOptions} found. */
export type ParsedConnection =
  /** --help (or -h) came among the options: nothing else was checked. */
  | { readonly help: true }
  | {
    readonly help: false;
    readonly options: ConnectionOptions;
    /** The command and its arguments: everything after the options (and a `--` ending them). */
    readonly rest: readonly string[];
  };

/**
 * Parses the options before the command: `--name value` or `--name=value`, up to the
 * first argument that does not start with `-` or a `--`. `--endpoints` falls back on
 * `RAFTKV_ENDPOINTS` (when set and not empty), then {@link DEFAULT_ENDPOINTS}; each
 * TLS option on its variable.
 *
 * @param args the arguments (`Deno.args`)
 * @param env environment: `RAFTKV_ENDPOINTS` and the TLS variables
 * @throws {UsageError} on an unknown option, a missing or malformed value, a bad
 *   endpoint, or TLS options that do not go together
 */
export function parseConnectionOptions(
  args: readonly string[],
  env: Record<string, string | undefined>,
): ParsedConnection {
  let endpointsRaw: { value: string; source: string } | undefined;
  const tlsRaw = new Map<TlsOption, { value: string; source: string }>();
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === "--help" || arg === "-h") return { help: true };
    if (arg === "--") {
      i++;
      break;
    }
    if (!arg.startsWith("-")) break;
    const { name, value, last } = readFlagArgument(args, i);
    if (name !== "--endpoints" && name !== "--timeout-ms" && !isTlsOption(name)) {
      throw new UsageError(`Cannot parse arguments: unknown option "${name}"`);
    }
    if (value === undefined || value === "") {
      throw new UsageError(`Cannot parse ${name}: missing value`);
    }
    i = last;
    if (name === "--endpoints") {
      endpointsRaw = { value, source: name };
    } else if (isTlsOption(name)) {
      tlsRaw.set(name, { value, source: name });
    } else {
      const n = /^\d+$/.test(value) ? Number(value) : NaN;
      if (!Number.isSafeInteger(n) || n < 1) {
        throw new UsageError(`Cannot parse --timeout-ms: "${value}" is not a positive integer`);
      }
      timeoutMs = n;
    }
  }

  const envEndpoints = env["RAFTKV_ENDPOINTS"];
  endpointsRaw ??= envEndpoints !== undefined && envEndpoints !== ""
    ? { value: envEndpoints, source: "RAFTKV_ENDPOINTS" }
    : { value: DEFAULT_ENDPOINTS, source: "--endpoints" };
  const endpoints = parseEndpoints(endpointsRaw.value, endpointsRaw.source);
  let tls;
  try {
    tls = parseTlsOptions(tlsRaw, env);
  } catch (e) {
    if (e instanceof TlsOptionError) throw new UsageError(e.message);
    throw e;
  }
  return {
    help: false,
    options: { endpoints, timeoutMs, ...(tls === undefined ? {} : { tls }) },
    rest: args.slice(i),
  };
}

/** Parses a comma-separated list of `host:port`, dropping repeats; `source` names it in errors. */
function parseEndpoints(value: string, source: string): string[] {
  const out: string[] = [];
  for (const entry of value.split(",")) {
    const trimmed = entry.trim();
    if (trimmed === "") throw new UsageError(`Cannot parse ${source}: empty entry in "${value}"`);
    let text: string;
    try {
      const addr = parseHostPort(trimmed, source);
      if (addr.port === 0) {
        throw new UsageError(`Cannot parse ${source}: "${trimmed}" has port 0`);
      }
      text = formatHostPort(addr);
    } catch (e) {
      if (e instanceof FlagError) throw new UsageError(e.message);
      throw e;
    }
    if (!out.includes(text)) out.push(text);
  }
  return out;
}
