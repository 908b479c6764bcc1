/**
 * `deno task chaos`: a Jepsen-style chaos run against a real raftkv cluster on
 * 127.0.0.1 (see chaos.ts). Prints progress, then a one-screen summary; exits 0 on
 * PASS, 1 on FAIL, 2 on bad usage, 3 when a live run could not start.
 *
 * ```sh
 * deno task chaos [--nodes 5|3] [--minutes M | --seconds S] [--seed N] [--clients C]
 *                 [--keys K] [--out DIR] [--plain-clients P] [--faults a,b|none]
 *                 [--heartbeat-ms H] [--election-ms E] [--timeout-ms T] [--think-ms T]
 *                 [--no-final-restart] [--inject-stale-reads P] [--quiet]
 * deno task chaos --endpoints HOST:PORT,... [--minutes M | --seconds S] [--seed N]
 *                 [--clients C] [--plain-clients P] [--keys K] [--prefix P] [--out DIR]
 *                 [--timeout-ms T] [--think-ms T] [--quiet]
 * ```
 *
 * With `--endpoints` the run is live (live.ts): the same checked workload against a
 * cluster that is already running, no faults and no processes of its own, its keys
 * under a prefix of its own that it deletes at the end.
 *
 * The task runs with `-A`: it spawns node processes (`--allow-run`, which is as good as
 * every permission anyway) and reads `/proc` for CPU figures, which Deno grants only
 * with all permissions. The nodes run with the e2e harness's (net, read, write, env).
 *
 * @module
 */

import { formatSeconds, terminalProgress } from "../../src/cli/progress.ts";
import { parseArgs } from "node:util";
import { Interrupted, runChaos } from "./chaos.ts";
import { FAULT_KINDS, type FaultKind } from "./nemesis.ts";
import { runLive } from "./live.ts";

const USAGE = `usage: deno task chaos [options]

  --nodes N              cluster size, 5 (default) or 3
  --minutes M            inject faults for M minutes (default 1)
  --seconds S            ... or for S seconds
  --seed N               seed of the fault schedule and the clients (default: random, printed)
  --clients C            concurrent clients (default 5), --plain-clients of them without sessions
  --plain-clients P      clients writing without sessions: at least once, never retried (default 1)
  --keys K               keys k0..k(K-1) (default 3)
  --txn-keys T           keys t0..t(T-1) that Txn and Range calls use, checked together
                         by the multi-register model (default 3; 0: no Txn or Range)
  --out DIR              where history, node logs and timelines go (default: a new temp dir)
  --faults LIST          comma-separated fault kinds, or "none" (default: all of
                         ${FAULT_KINDS.join(", ")})
  --heartbeat-ms H       node heartbeat (default 100)
  --election-ms E        node election timeout (default 1000, randomized up to 2x)
  --snapshot-entries N   node --snapshot-entries (default 100, so snapshots happen under faults)
  --snapshot-catchup-entries N
                         node --snapshot-catchup-entries (default 10)
  --timeout-ms T         deadline of one client call (default 2500)
  --think-ms T           mean pause between a client's calls (default 10)
  --no-final-restart     skip killing and restarting every node before the final checks
  --inject-stale-reads P client 1 fakes a stale read with probability P (the run must FAIL)
  --tls                  TLS everywhere: throwaway certificates, peer mutual TLS, client
                         certificates (README, "Securing a cluster")
  --quiet                only the summary

Live mode: check a cluster that is already running (during a rolling restart, a
membership change, an upgrade...), with no faults and no processes of its own:

  --endpoints LIST       comma-separated client endpoints host:port of the running
                         cluster; the run writes only keys under its prefix and deletes
                         them at the end (with --seconds/--minutes, --seed, --clients,
                         --plain-clients, --keys, --out, --timeout-ms, --think-ms, --quiet)
  --prefix P             the live run's key prefix (default chaos-live-<random hex>/);
                         the run refuses to start if one of its keys exists
`;

/** Flags that describe the run's own cluster: meaningless against a running one. */
const CLUSTER_ONLY = [
  "nodes",
  "faults",
  "heartbeat-ms",
  "election-ms",
  "snapshot-entries",
  "snapshot-catchup-entries",
  "no-final-restart",
  "inject-stale-reads",
] as const;

function usage(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  Deno.exit(2);
}

function int(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) usage(`--${name} must be an integer >= ${min}, got ${v}`);
  return n;
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        nodes: { type: "string" },
        minutes: { type: "string" },
        seconds: { type: "string" },
        seed: { type: "string" },
        clients: { type: "string" },
        "plain-clients": { type: "string" },
        keys: { type: "string" },
        "txn-keys": { type: "string" },
        out: { type: "string" },
        faults: { type: "string" },
        "heartbeat-ms": { type: "string" },
        "election-ms": { type: "string" },
        "timeout-ms": { type: "string" },
        "snapshot-entries": { type: "string" },
        "snapshot-catchup-entries": { type: "string" },
        "think-ms": { type: "string" },
        "no-final-restart": { type: "boolean" },
        "inject-stale-reads": { type: "string" },
        quiet: { type: "boolean" },
        endpoints: { type: "string" },
        prefix: { type: "string" },
        tls: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    usage((err as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.endpoints === undefined && values.prefix !== undefined) {
    usage("--prefix is for a live run: give --endpoints too");
  }
  if (values.endpoints !== undefined) {
    for (const flag of CLUSTER_ONLY) {
      if (values[flag] !== undefined) usage(`--${flag} does not go with --endpoints (live mode)`);
    }
  }
  const nodes = int("nodes", values.nodes, 1) ?? 5;
  if (nodes !== 3 && nodes !== 5) usage(`--nodes must be 3 or 5, got ${nodes}`);
  if (values.minutes !== undefined && values.seconds !== undefined) {
    usage("give --minutes or --seconds, not both");
  }
  const minutes = values.minutes === undefined ? undefined : Number(values.minutes);
  if (minutes !== undefined && !(minutes > 0)) usage(`--minutes must be positive`);
  const seconds = int("seconds", values.seconds, 1);
  const durationMs = seconds !== undefined ? seconds * 1000 : (minutes ?? 1) * 60_000;
  const seed = int("seed", values.seed, 0) ?? Math.floor(Math.random() * 1_000_000);
  let faults: FaultKind[] | undefined;
  if (values.faults !== undefined) {
    faults = values.faults === "none"
      ? []
      : values.faults.split(",").map((f) => f.trim()) as FaultKind[];
    for (const f of faults) if (!FAULT_KINDS.includes(f)) usage(`unknown fault kind ${f}`);
  }
  const stale = values["inject-stale-reads"] === undefined
    ? undefined
    : Number(values["inject-stale-reads"]);
  if (stale !== undefined && !(stale >= 0 && stale <= 1)) {
    usage("--inject-stale-reads must be in [0, 1]");
  }

  // Ctrl-C: end the run early and tear everything down (a node frozen by SIGSTOP
  // would otherwise outlive us); a second Ctrl-C exits at once.
  const interrupt = new AbortController();
  const onSigint = () => {
    if (interrupt.signal.aborted) Deno.exit(130);
    console.error("interrupted: healing and stopping every node (Ctrl-C again to exit at once)");
    interrupt.abort();
  };
  Deno.addSignalListener("SIGINT", onSigint);
  let result;
  const live = terminalProgress();
  try {
    if (values.endpoints !== undefined) {
      const endpoints = values.endpoints.split(",").map((e) => e.trim()).filter((e) => e !== "");
      for (const e of endpoints) {
        if (!/^[^\s:]+:\d{1,5}$/.test(e)) usage(`--endpoints: ${e} is not host:port`);
      }
      if (endpoints.length === 0) usage("--endpoints is empty");
      result = await runLive({
        endpoints,
        durationMs,
        seed,
        prefix: values.prefix,
        clients: int("clients", values.clients, 1),
        plainClients: int("plain-clients", values["plain-clients"], 0),
        keys: int("keys", values.keys, 1),
        txnKeys: int("txn-keys", values["txn-keys"], 0),
        outDir: values.out,
        opTimeoutMs: int("timeout-ms", values["timeout-ms"], 1),
        thinkMs: int("think-ms", values["think-ms"], 0),
        progress: values.quiet ? undefined : (line) => {
          live.clear();
          console.error(line);
        },
        signal: interrupt.signal,
      });
    } else {
      result = await runChaos({
        tls: values.tls === true,
        nodes,
        durationMs,
        seed,
        clients: int("clients", values.clients, 1),
        plainClients: int("plain-clients", values["plain-clients"], 0),
        keys: int("keys", values.keys, 1),
        txnKeys: int("txn-keys", values["txn-keys"], 0),
        outDir: values.out,
        faults,
        heartbeatMs: int("heartbeat-ms", values["heartbeat-ms"], 1),
        electionMs: int("election-ms", values["election-ms"], 1),
        opTimeoutMs: int("timeout-ms", values["timeout-ms"], 1),
        snapshotEntries: int("snapshot-entries", values["snapshot-entries"], 1),
        snapshotCatchupEntries: int(
          "snapshot-catchup-entries",
          values["snapshot-catchup-entries"],
          0,
        ),
        thinkMs: int("think-ms", values["think-ms"], 0),
        finalRestart: !values["no-final-restart"],
        injectStaleReads: stale,
        progress: values.quiet ? undefined : (line) => {
          live.clear();
          console.error(line);
        },
        // A live line on a terminal only: operations, faults, time left (src/cli/progress.ts).
        onTick: values.quiet || !live.live ? undefined : (t) =>
          live.update(
            `[${formatSeconds(t.elapsedMs)} of ${formatSeconds(t.durationMs)}] ${t.ops} ops ` +
              `(${t.ok} ok), ${t.faults} faults, ` + (t.elapsedMs < t.durationMs
                ? `${formatSeconds(t.durationMs - t.elapsedMs)} left`
                : "faults over: healing, then the checks"),
          ),
        signal: interrupt.signal,
      });
    }
  } catch (err) {
    if (err instanceof Interrupted) {
      console.error("interrupted: no verdict");
      return 130;
    }
    if (values.endpoints !== undefined) {
      // A live run that could not start (the prefix is taken, no endpoint answers):
      // a message, not a stack trace; no verdict.
      console.error(`chaos live: ${(err as Error).message}`);
      return 3;
    }
    throw err;
  } finally {
    live.clear();
    Deno.removeSignalListener("SIGINT", onSigint);
  }
  console.log(result.summary);
  return result.verdict.pass ? 0 : 1;
}

Deno.exit(await main());
