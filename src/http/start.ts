/**
 * Starting the HTTP port from main: off unless `--http-listen` is set; a port that
 * cannot be bound is an error main exits on, like the gRPC port.
 *
 * @module
 */

import type { Logger } from "../raft/logger.ts";
import type { NodeMetrics } from "../metrics/mod.ts";
import { formatHostPort, type HostPort } from "../server/flags.ts";
import type { RaftKvNode } from "../server/node.ts";
import type { GrpcServer } from "../server/server.ts";
import { type HttpPort, serveHttp } from "./server.ts";

/**
 * Serves the HTTP port at `listen` with `metrics` attached to `node`, sharing the
 * gRPC port's watches and lessor (Connect JSON off when `connectApi` is false); undefined
 * when `listen` is; "failed" (after printing why) when it cannot listen.
 */
export async function startHttpPort(
  node: RaftKvNode,
  listen: HostPort | undefined,
  metrics: NodeMetrics | undefined,
  logger: Logger,
  grpc: GrpcServer,
  connectApi: boolean,
): Promise<HttpPort | undefined | "failed"> {
  if (listen === undefined) return undefined;
  metrics?.attach(node);
  metrics?.grpc.countFastLane(grpc);
  try {
    const port = await serveHttp({
      node,
      host: listen.host,
      port: listen.port,
      logger,
      metrics: metrics && {
        scrape: () => metrics.scrape(),
        contentType: metrics.registry.contentType,
      },
      interceptors: metrics?.interceptors,
      api: grpc.api,
      connectApi,
    });
    logger.info("HTTP port listening", {
      address: formatHostPort({ host: listen.host, port: port.port }),
    });
    return port;
  } catch (err) {
    console.error(`error: cannot listen on ${formatHostPort(listen)}: ${(err as Error).message}`);
    return "failed";
  }
}
