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

async function main(): Promise<number> {
  const opts = parseNodeFlagsOrExit(Deno.args, readNodeEnv());
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
  // What only some nodes use is imported only by them: start-up time is mostly
  // module loading, and three nodes restarted at once share the CPU (README,
  // "Start-up time"). Metrics (prom-client) come with an HTTP port to scrape them
  // from (--http-listen).
  const metrics = opts.httpListen === undefined
    ? undefined
    : new (await import("../metrics/mod.ts")).NodeMetrics();

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
      join: opts.join,
      logger,
      random: Math.random,
      dialer: tls?.dialer,
      observer: metrics?.observer,
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
      console.error(
        `error: Cannot use data dir ${opts.dataDir}: Deno's permissions do not grant it ` +
          `(\`deno task node\` grants ./data only); run with --allow-read=${opts.dataDir} ` +
          `--allow-write=${opts.dataDir} instead (README.md, "Running a node")`,
      );
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
      metrics?.interceptors,
    );
  } catch (err) {
    console.error(
      `error: cannot listen on ${formatHostPort(opts.listen)}: ${(err as Error).message}`,
    );
    await node.stop();
    return 1;
  }
  reloader?.start();
  logger.info("listening", {
    address: formatHostPort({ host: opts.listen.host, port: server.port }),
    tls: opts.tls === undefined
      ? "off"
      : `on${opts.tls.peerCaFile === undefined ? "" : ", peer mTLS"}${
        opts.tls.clientCaFile === undefined ? "" : ", client certificates"
      }${opts.tls.authPolicyFile === undefined ? "" : ", policy"}`,
    peers: [...opts.peers].map(([id, a]) => `${id}=${formatHostPort(a)}`).join(","),
    dataDir: opts.dataDir,
  });

  // Without TLS on the HTTP port, its Connect JSON would bypass client certificates.
  const httpPort = opts.httpListen === undefined ? undefined : await (
    await import("../http/start.ts")
  ).startHttpPort(
    node,
    opts.httpListen,
    metrics,
    logger,
    server,
    opts.tls?.clientCaFile === undefined,
  );
  if (httpPort === "failed") {
    await Promise.all([server.close(), node.stop()]);
    return 1;
  }
  const running = node;
  const stopped = new Promise<number>((resolve) => {
    let stopping = false;
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
  });
  return await stopped;
}

Deno.exit(await main());
