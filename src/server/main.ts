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
import { serve, type ServerSecurity } from "./server.ts";
import { startHttpPort } from "../http/start.ts";
import { NodeMetrics } from "../metrics/mod.ts";
import { guardStrayNetworkErrors } from "./stray_errors.ts";
import { Authorizer } from "../tls/authorizer.ts";
import { CredentialsError, CredentialsStore } from "../tls/credentials.ts";
import { TlsDialer } from "../tls/dial.ts";
import { PolicyError } from "../tls/policy.ts";
import { type Reloadable, Reloader } from "../tls/reload.ts";

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

  // TLS files are read and checked before the data dir is touched: a bad
  // certificate is a usage error, like a bad flag.
  let security: ServerSecurity | undefined;
  let reloader: Reloader | undefined;
  if (opts.tls !== undefined) {
    try {
      const credentials = await CredentialsStore.open(opts.tls, opts.id);
      const authorizer = await Authorizer.open(opts.tls.authPolicyFile);
      security = { credentials, authorizer };
      const certs: Reloadable = {
        name: "TLS certificates",
        reload: () => credentials.reload(),
        describe: () => ({
          subject: credentials.current.cert.subject.replaceAll("\n", ", "),
          notAfter: credentials.current.cert.validTo,
        }),
      };
      reloader = new Reloader([certs, authorizer], logger);
    } catch (err) {
      if (err instanceof CredentialsError || err instanceof PolicyError) {
        console.error(`error: ${err.message}`);
        return 2;
      }
      throw err;
    }
  }

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
      dialer: security === undefined ? undefined : new TlsDialer(security.credentials),
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
  const httpPort = await startHttpPort(
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
