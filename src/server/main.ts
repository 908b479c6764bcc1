/**
 * `deno task node`: runs one raftkv node until SIGTERM or Ctrl-C.
 *
 * With no flags it is a one-node cluster on 127.0.0.1:7001 with its data in
 * ./data. See `--help` (flags.ts) for the rest.
 *
 * @module
 */

import { WalCorruptionError } from "../wal/mod.ts";
import { formatHostPort, parseNodeFlagsOrExit, readNodeEnv } from "./flags.ts";
import { createLogger } from "./log.ts";
import { DataDirError } from "./data_dir.ts";
import { NodeError, RaftKvNode } from "./node.ts";
import { checkNotRestoring, restoreDataDir, RestoreError } from "./restore_backup.ts";
import { serve } from "./server.ts";
import { guardStrayNetworkErrors } from "./stray_errors.ts";
import type { NodeTls } from "../tls/start.ts";
import type { HttpPort } from "../http/server.ts";
import { LateMetrics } from "./late_metrics.ts";
import { cpuUsage } from "node:process";

/** Whether Deno's permissions let this process read and write `dataDir`. */
function dataDirGranted(dataDir: string): boolean {
  return Deno.permissions.querySync({ name: "read", path: dataDir }).state === "granted" &&
    Deno.permissions.querySync({ name: "write", path: dataDir }).state === "granted";
}

function dataDirGrantError(dataDir: string): string {
  return `error: Cannot use data dir ${dataDir}: Deno's permissions do not grant it ` +
    `(\`deno task node\` grants ./data only); run with --allow-read=${dataDir} ` +
    `--allow-write=${dataDir} instead (README.md, "Running a node")`;
}

async function main(): Promise<number> {
  const opts = parseNodeFlagsOrExit(Deno.args, readNodeEnv());
  // A data dir the permissions do not grant is a usage error, like a bad flag: said
  // before the node logs anything, in one line (the NotCapable catch below is the
  // backstop for a grant that covers the dir but not what is inside it).
  if (!dataDirGranted(opts.dataDir)) {
    console.error(dataDirGrantError(opts.dataDir));
    return 2;
  }
  let node: RaftKvNode | undefined;
  const logger = createLogger({
    level: opts.logLevel,
    format: opts.logFormat,
    context: () => {
      const s = node?.status();
      return { node: opts.id, term: s?.term, role: s?.role };
    },
  });

  // How long Deno took to load and evaluate the node's modules (performance.now()
  // counts from the runtime's time origin): the largest part of a start on a busy
  // machine (README, "Start-up time"), so every start says it.
  logger.info("starting", {
    version: Deno.version.deno,
    modulesMs: Math.round(performance.now()),
    pid: Deno.pid,
  });
  guardStrayNetworkErrors(logger);
  // What only some nodes use is imported only by them, and what a node needs only
  // once it serves is imported then: start-up time is mostly module loading, and
  // three nodes restarted at once share the CPU (README, "Start-up time"). Metrics
  // (prom-client) come with an HTTP port to scrape them from (--http-listen), both
  // once the node knows a leader (late_metrics.ts holds their place until then).
  const late = opts.httpListen === undefined ? undefined : new LateMetrics();

  // TLS files are read and checked before the data dir is touched: a bad
  // certificate is a usage error, like a bad flag.
  let tls: NodeTls | undefined;
  if (opts.tls !== undefined) {
    const started = await (await import("../tls/start.ts")).startTls(opts.tls, opts.id, logger);
    if (started === 2) return 2;
    tls = started;
  }
  const security = tls?.security;
  const reloader = tls?.reloader;

  try {
    // A restore cut short by a crash leaves half a data dir: never start on it.
    await checkNotRestoring(opts.dataDir);
    if (opts.restore !== undefined) {
      await restoreDataDir({
        file: opts.restore,
        dataDir: opts.dataDir,
        identity: { nodeId: opts.id, clusterId: opts.clusterId, peers: opts.peers },
        logger,
      });
    }
    node = await RaftKvNode.start({
      id: opts.id,
      clusterId: opts.clusterId,
      peers: opts.peers,
      dataDir: opts.dataDir,
      heartbeatMs: opts.heartbeatMs,
      electionMs: opts.electionMs,
      snapshotEntries: opts.snapshotEntries,
      snapshotCatchupEntries: opts.snapshotCatchupEntries,
      watchHistoryEvents: opts.watchHistoryEvents,
      join: opts.join,
      logger,
      random: Math.random,
      dialer: tls?.dialer,
      observer: late?.observer,
    });
  } catch (err) {
    if (err instanceof WalCorruptionError) {
      logger.error("refusing to start: the write-ahead log is damaged", {
        file: err.file,
        offset: err.offset,
        reason: err.reason,
      });
      console.error(`error: ${err.message} (file ${err.file})`);
      return 1;
    }
    if (err instanceof NodeError || err instanceof RestoreError || err instanceof DataDirError) {
      console.error(`error: ${err.message}`);
      return 1;
    }
    if (err instanceof Deno.errors.NotCapable) {
      // A data dir the permissions do not grant is a usage error, like a bad flag:
      // the command line asks for what it does not allow.
      console.error(dataDirGrantError(opts.dataDir));
      return 2;
    }
    throw err;
  }

  let server;
  try {
    server = await serve(
      node,
      opts.listen.host,
      opts.listen.port,
      opts.http2,
      security,
      late === undefined ? undefined : [late.interceptor],
    );
  } catch (err) {
    console.error(
      `error: cannot listen on ${formatHostPort(opts.listen)}: ${(err as Error).message}`,
    );
    await node.stop();
    return 1;
  }
  reloader?.start();
  const cpu = cpuUsage();
  logger.info("listening", {
    address: formatHostPort({ host: opts.listen.host, port: server.port }),
    // CPU time (user + system) the start took: what three nodes restarted together
    // on a busy machine compete for, and robust to its load (README, "Start-up time").
    cpuMs: Math.round((cpu.user + cpu.system) / 1000),
    tls: opts.tls === undefined
      ? "off"
      : `on${opts.tls.peerCaFile === undefined ? "" : ", peer mTLS"}${
        opts.tls.clientCaFile === undefined ? "" : ", client certificates"
      }${opts.tls.authPolicyFile === undefined ? "" : ", policy"}`,
    peers: [...opts.peers].map(([id, a]) => `${id}=${formatHostPort(a)}`).join(","),
    dataDir: opts.dataDir,
  });

  const running = node;
  let httpPort: HttpPort | undefined;
  let stopping = false;
  return await new Promise<number>((resolve) => {
    const shutdown = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info("shutting down", { signal });
      // A leader first hands its leadership to an up-to-date follower (bounded:
      // two election timeouts), while it still serves: the cluster has a leader
      // again within a heartbeat or two instead of an election timeout.
      await running.handOffLeadership();
      // Stop the node first: it finishes its write under way, answers the calls
      // still waiting UNAVAILABLE, ends health watches with NOT_SERVING, and closes
      // the log. Then close the connections, once what they carry is out (closing
      // them first let Deno drop a health watch's last message now and then).
      await reloader?.stop();
      await running.stop();
      const closing = Promise.all([server.close(), httpPort?.close()]);
      await Promise.race([closing, new Promise((r) => setTimeout(r, 2000))]);
      resolve(0);
    };
    Deno.addSignalListener("SIGTERM", () => void shutdown("SIGTERM"));
    Deno.addSignalListener("SIGINT", () => void shutdown("SIGINT"));
    running.failed.then((err) => {
      console.error(`error: ${err.message}`);
      resolve(1);
    });
    if (late === undefined || opts.httpListen === undefined) return;
    // The HTTP port and its metrics, an election timeout after the node knows a
    // leader (or two went by without one): not while it elects, nor while the
    // first writes after a restart go through (loading them stalls the event loop
    // for as long as they take to evaluate). Without TLS on the HTTP port, its
    // Connect JSON would bypass client certificates.
    const listen = opts.httpListen;
    void (async () => {
      await untilLeaderKnown(running, HTTP_PORT_WAIT_FACTOR * opts.electionMs);
      if (!stopping) await new Promise((r) => setTimeout(r, opts.electionMs));
      if (stopping) return;
      const metrics = new (await import("../metrics/mod.ts")).NodeMetrics();
      late.attach(metrics.observer, metrics.interceptors, metrics.grpc.record);
      const started = await (await import("../http/start.ts")).startHttpPort(
        running,
        listen,
        metrics,
        logger,
        server,
        opts.tls?.clientCaFile === undefined,
      );
      if (started === "failed") {
        if (stopping) return;
        stopping = true;
        await Promise.all([server.close(), running.stop()]);
        resolve(1);
        return;
      }
      httpPort = started;
      if (stopping) await httpPort?.close();
    })().catch((err) => {
      console.error(`error: cannot start the HTTP port: ${(err as Error).message}`);
      resolve(1);
    });
  });
}

/**
 * The HTTP port waits for a leader this many election timeouts at most: a node
 * that cannot find one still serves its metrics and health after that.
 */
const HTTP_PORT_WAIT_FACTOR = 2;

/** Resolves once `node` knows a leader, after `ms` at most, or when it stops. */
async function untilLeaderKnown(node: RaftKvNode, ms: number): Promise<void> {
  const give = new AbortController();
  const timer = setTimeout(() => give.abort(), ms);
  try {
    await node.waitForLeader(give.signal);
  } catch {
    // Not within `ms`, or the node stopped: go on (the caller checks which).
  } finally {
    clearTimeout(timer);
  }
}

Deno.exit(await main());
