/**
 * The client CLI's commands on the application API (issue 13), run through the client
 * library (`src/client/`): `range`, `watch`, `txn`, `lease` and `lock NAME -- COMMAND`
 * (etcdctl's lock). `main.ts` parses the options before the command (`connection_options.ts`)
 * and hands the rest of the command line to {@link runApiCli} when its command is one of
 * {@link API_COMMANDS}.
 *
 * @module
 */

import type { ClientTlsPem } from "./tls_options.ts";
import { fromJson, type JsonValue, toJsonString } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { TxnRequestSchema, TxnResponseSchema, WatchEvent_Kind } from "../gen/raftkv/v1/kv_pb.ts";
import { RaftKvClient } from "../client/client.ts";
import { acquireLock } from "../client/lock.ts";
import { failureLine } from "./commands.ts";

/** The commands this file runs. */
export const API_COMMANDS: ReadonlySet<string> = new Set([
  "range",
  "watch",
  "txn",
  "lease",
  "lock",
]);

/** Help for these commands (part of `deno task client --help`). */
export const API_USAGE = `\
API commands (issue 13):
  range [START [END]] [--prefix P] [--limit N] [--keys-only] [--count-only] [--serializable]
                           Print the keys in [START, END) or under P, one "KEY<TAB>VALUE"
                           a line, every page (or the first N keys); --count-only prints
                           the count
  watch [KEY] [--prefix P] [--range START END] [--from INDEX] [--count N]
                           Print changes as "INDEX PUT KEY VALUE" / "INDEX DELETE KEY"
                           until interrupted (or N changes), resuming on another node
                           if one fails
  txn JSON                 Run a transaction given as the JSON of raftkv.v1.TxnRequest;
                           print the response as JSON; exit 1 if the failure branch ran
  lease grant TTL          Grant a lease of TTL seconds; print its id
  lease revoke ID          Revoke a lease (its keys are deleted)
  lease ttl ID [--keys]    Print a lease's time left, granted TTL (and keys)
  lease keep-alive ID      Keep a lease alive until interrupted
  lock NAME [--ttl N] -- COMMAND [ARGS...]
                           Hold lock NAME (a lease of N seconds, 10 by default) while
                           COMMAND runs; exit with its code. If the lease is lost the
                           command is killed and the exit code is 3
`;

class Usage extends Error {}

/** How to reach the cluster: the connection options, parsed by `main.ts`, TLS files read. */
export interface ApiConnection {
  readonly endpoints: readonly string[];
  readonly timeoutMs: number;
  /** The PEM texts of --cacert, --cert and --key, or undefined for plaintext. */
  readonly tls?: ClientTlsPem;
}

/** An API command line, after the options. */
interface Parsed {
  command: string;
  positional: string[];
  flags: Map<string, string | true>;
  /** What follows `--` (lock's command). */
  rest: string[];
}

const VALUED = new Set(["--prefix", "--limit", "--from", "--count", "--ttl", "--range"]);

/** Parses `line`: the command, then its arguments and flags, in any order, up to `--`. */
function parse(line: readonly string[]): Parsed {
  let i = 0;
  const command = line[i++] ?? "";
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  let rest: string[] = [];
  for (; i < line.length; i++) {
    const a = line[i]!;
    if (a === "--") {
      rest = line.slice(i + 1);
      break;
    }
    if (a.startsWith("--")) {
      if (a === "--range") {
        const [s, e] = [line[++i], line[++i]];
        if (s === undefined || e === undefined) {
          throw new Usage("Cannot parse --range: give START END");
        }
        flags.set("--range", `${s}\u0000${e}`);
      } else if (VALUED.has(a)) {
        const v = line[++i];
        if (v === undefined) throw new Usage(`Cannot parse ${a}: it needs a value`);
        flags.set(a, v);
      } else if (["--keys-only", "--count-only", "--serializable", "--keys"].includes(a)) {
        flags.set(a, true);
      } else throw new Usage(`Cannot parse ${command}: unknown option "${a}"`);
    } else positional.push(a);
  }
  return { command, positional, flags, rest };
}

function intFlag(p: Parsed, name: string, fallback: number): number {
  const v = p.flags.get(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (v === true || !Number.isSafeInteger(n) || n < 0) {
    throw new Usage(`Cannot parse ${name}: "${String(v)}" is not a non-negative integer`);
  }
  return n;
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** An output sink (stdout, stderr). */
export interface Out {
  write(s: string): void;
}

/**
 * Runs an API command line (`line`: the command and its arguments, after the options)
 * against the cluster `connection` names; returns the exit code (0 done, 1 negative,
 * 2 usage, 3 failed, as the rest of the CLI). `signal` ends `watch`, `lease keep-alive`
 * and a `lock`'s command early (the CLI wires it to SIGINT/SIGTERM).
 */
export async function runApiCli(
  connection: ApiConnection,
  line: readonly string[],
  out: Out,
  err: Out,
  signal: AbortSignal,
): Promise<number> {
  let p: Parsed;
  try {
    p = parse(line);
  } catch (e) {
    if (!(e instanceof Usage)) throw e;
    err.write(`error: ${e.message}\nRun "deno task client --help" for the commands and options.\n`);
    return 2;
  }
  const client = new RaftKvClient({
    endpoints: connection.endpoints,
    timeoutMs: connection.timeoutMs,
    ...(connection.tls === undefined ? {} : { tls: connection.tls }),
  });
  try {
    return await run(p, client, out, err, signal);
  } catch (e) {
    if (e instanceof Usage) {
      err.write(
        `error: ${e.message}\nRun "deno task client --help" for the commands and options.\n`,
      );
      return 2;
    }
    if (e instanceof ConnectError) {
      err.write(failureLine(e));
      return 3;
    }
    err.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    return 3;
  } finally {
    client.close();
  }
}

async function run(
  p: Parsed,
  client: RaftKvClient,
  out: Out,
  err: Out,
  signal: AbortSignal,
): Promise<number> {
  switch (p.command) {
    case "range": {
      const prefix = p.flags.get("--prefix");
      const [start = "", end = ""] = p.positional;
      if (p.positional.length > 2) throw new Usage("Cannot parse range: at most START and END");
      const limit = intFlag(p, "--limit", 0);
      const request = {
        ...(typeof prefix === "string" ? { prefix } : { start, end }),
        keysOnly: p.flags.has("--keys-only"),
        countOnly: p.flags.has("--count-only"),
        serializable: p.flags.has("--serializable"),
        limit: Math.min(limit, 0xffff_ffff),
      };
      if (request.countOnly) {
        out.write(`${(await client.range(request)).count}\n`);
        return 0;
      }
      let printed = 0;
      for await (const page of client.rangeAll(request)) {
        for (const kv of page.kvs) {
          out.write(request.keysOnly ? `${kv.key}\n` : `${kv.key}\t${text(kv.value)}\n`);
          printed++;
        }
        if (limit > 0 && printed >= limit) break;
      }
      return 0;
    }
    case "watch": {
      const prefix = p.flags.get("--prefix");
      const range = p.flags.get("--range");
      const request = typeof prefix === "string"
        ? { prefix }
        : typeof range === "string"
        ? { start: range.split("\u0000")[0]!, end: range.split("\u0000")[1]! }
        : p.positional.length === 1
        ? { key: p.positional[0]! }
        : undefined;
      if (request === undefined) {
        throw new Usage("Cannot parse watch: give KEY, --prefix P or --range START END");
      }
      const count = intFlag(p, "--count", 0);
      let seen = 0;
      for await (
        const batch of client.watch(request, {
          startIndex: BigInt(intFlag(p, "--from", 0)),
          signal,
        })
      ) {
        for (const e of batch.events) {
          out.write(
            e.kind === WatchEvent_Kind.PUT
              ? `${e.index} PUT ${e.key} ${text(e.value)}\n`
              : `${e.index} DELETE ${e.key}\n`,
          );
          if (count > 0 && ++seen >= count) return 0;
        }
      }
      return 0;
    }
    case "txn": {
      if (p.positional.length !== 1) {
        throw new Usage("Cannot parse txn: give the TxnRequest as one JSON argument");
      }
      let request;
      try {
        request = fromJson(TxnRequestSchema, JSON.parse(p.positional[0]!) as JsonValue);
      } catch (e) {
        throw new Usage(`Cannot parse txn: ${e instanceof Error ? e.message : String(e)}`);
      }
      const response = await client.txn(request);
      out.write(`${toJsonString(TxnResponseSchema, response)}\n`);
      return response.succeeded ? 0 : 1;
    }
    case "lease": {
      const [sub, arg] = p.positional;
      const id = () => {
        if (arg === undefined || !/^\d+$/.test(arg)) {
          throw new Usage(`Cannot parse lease ${sub}: give a lease ID`);
        }
        return BigInt(arg);
      };
      switch (sub) {
        case "grant": {
          const ttl = Number(arg);
          if (!Number.isSafeInteger(ttl) || ttl < 1) {
            throw new Usage("Cannot parse lease grant: TTL is a positive integer");
          }
          const g = await client.leaseGrant(ttl);
          out.write(`lease ${g.id} granted with TTL ${g.ttl}s\n`);
          return 0;
        }
        case "revoke":
          await client.leaseRevoke(id());
          out.write(`lease ${arg} revoked\n`);
          return 0;
        case "ttl": {
          const t = await client.leaseTimeToLive(id(), p.flags.has("--keys"));
          out.write(
            `lease ${t.id}: ${t.ttl}s left of ${t.grantedTtl}s${
              p.flags.has("--keys") ? `, keys: ${t.keys.join(" ")}` : ""
            }\n`,
          );
          return 0;
        }
        case "keep-alive": {
          const t = await client.leaseTimeToLive(id());
          out.write(`keeping lease ${arg} alive (TTL ${t.grantedTtl}s)\n`);
          await client.keepAlive(id(), Number(t.grantedTtl), signal);
          return 0;
        }
        default:
          throw new Usage(
            `Cannot parse lease: unknown subcommand "${
              sub ?? ""
            }" (grant, revoke, ttl, keep-alive)`,
          );
      }
    }
    case "lock": {
      if (p.positional.length !== 1 || p.rest.length === 0) {
        throw new Usage("Cannot parse lock: give NAME -- COMMAND [ARGS...]");
      }
      const name = p.positional[0]!;
      const lock = await acquireLock(client, name, { ttl: intFlag(p, "--ttl", 10), signal });
      err.write(`holding lock ${name} (${lock.key})\n`);
      const child = new Deno.Command(p.rest[0]!, {
        args: p.rest.slice(1),
        env: { RAFTKV_LOCK_KEY: lock.key },
        stdin: "inherit",
        stdout: "inherit",
        stderr: "inherit",
      }).spawn();
      const onAbort = () => child.kill("SIGTERM");
      signal.addEventListener("abort", onAbort, { once: true });
      let lost = false;
      lock.lost.catch(() => {
        lost = true;
        err.write(`error: lock ${name} lost (its lease expired); stopping the command\n`);
        try {
          child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      });
      const status = await child.status;
      signal.removeEventListener("abort", onAbort);
      await lock.release().catch(() => {});
      return lost ? 3 : status.code;
    }
    default:
      throw new Usage(`Cannot parse arguments: unknown command "${p.command}"`);
  }
}
