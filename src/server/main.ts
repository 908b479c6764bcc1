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
import { startHttpPort } from "../http/start.ts";
import { NodeMetrics } from "../metrics/mod.ts";
import { guardStrayNetworkErrors } from "./stray_errors.ts";

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

  guardStrayNetworkErrors(logger);
  // Metrics only with an HTTP port to scrape them from (--http-listen).
  const metrics = opts.httpListen === undefined ? undefined : new NodeMetrics();

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
      logger,
      random: Math.random,
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
      metrics?.interceptors,
    );
  } catch (err) {
    console.error(
      `error: cannot listen on ${formatHostPort(opts.listen)}: ${(err as Error).message}`,
    );
    await node.stop();
    return 1;
  }
  logger.info("listening", {
    address: formatHostPort({ host: opts.listen.host, port: server.port }),
    peers: [...opts.peers].map(([id, a]) => `${id}=${formatHostPort(a)}`).join(","),
    dataDir: opts.dataDir,
  });

  const httpPort = await startHttpPort(node, opts.httpListen, metrics, logger);
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
      // Stop accepting calls, let the node finish its write under way and
      // close the log, then close the connections that are left.
      const closing = Promise.all([server.close(), httpPort?.close()]);
      await running.stop();
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
