/**
 * The node's HTTP/1.1 port (`--http-listen`): `/metrics` for Prometheus,
 * `/healthz` and `/readyz` for probes, the live web view at `/` with the JSON it
 * polls (`/api/cluster`), and the Connect protocol (JSON or binary over HTTP/1.1,
 * unary calls) for KVService and ClusterService, so that `curl` can read and
 * write. It runs on node:http beside the gRPC server (node:http2, server.ts):
 * the same service implementations, another protocol. gRPC stays on the gRPC
 * port only; Raft's own RaftService is not served here.
 *
 * @module
 */

import type { Lessor } from "../server/lessor.ts";
import type { WatchHub } from "../kv/watch_hub.ts";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import type { Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { ClusterService } from "../gen/raftkv/v1/cluster_pb.ts";
import { KVService } from "../gen/raftkv/v1/kv_pb.ts";
import type { Logger } from "../raft/logger.ts";
import { clusterService } from "../server/cluster_service.ts";
import { kvService } from "../server/kv_service.ts";
import type { RaftKvNode } from "../server/node.ts";
import { Router } from "../server/route.ts";
import { MAX_CALL_TIMEOUT_MS, MAX_REQUEST_BYTES } from "../server/server.ts";
import { ClusterViewer } from "./cluster_view.ts";
import { healthz, type ProbeAnswer, readyz } from "./probes.ts";
import { LeaderTimeline } from "./timeline.ts";
import { APP_JS } from "./web/app_bundle.ts";
import { PAGE_HTML } from "./web/page.ts";

/** What the HTTP port serves from; metrics are optional (tests of the probes go without). */
export interface HttpPortOptions {
  readonly node: RaftKvNode;
  readonly host: string;
  readonly port: number;
  readonly logger: Logger;
  /** Exposition for `/metrics`, and its content type. */
  readonly metrics?: { scrape(): Promise<string>; readonly contentType: string };
  /** Interceptors of the Connect handler (the call metrics). */
  readonly interceptors?: Interceptor[];
  /** The gRPC port's watches and lessor: one of each per node, shared by both ports. */
  readonly api: { readonly watches: WatchHub; readonly lessor: Lessor };
  /**
   * Whether KVService and ClusterService answer here (Connect JSON). False when
   * the gRPC port asks for client certificates (--client-ca): this port has no
   * TLS, so it would let anyone around them; metrics, probes and the view stay.
   */
  readonly connectApi: boolean;
}

/** A listening HTTP port. */
export interface HttpPort {
  readonly port: number;
  close(): Promise<void>;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body) + "\n";
  res.writeHead(status, {
    "content-type": "application/json",
    "cache-control": "no-store",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function sendText(res: http.ServerResponse, contentType: string, text: string): void {
  res.writeHead(200, {
    "content-type": contentType,
    "cache-control": "no-store",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

/** Serves the HTTP port on host:port (0 picks a free port). */
export async function serveHttp(options: HttpPortOptions): Promise<HttpPort> {
  const { node, logger } = options;
  const router = new Router(node);
  const connect = connectNodeAdapter({
    grpc: false,
    grpcWeb: false,
    connect: true,
    readMaxBytes: MAX_REQUEST_BYTES,
    maxTimeoutMs: MAX_CALL_TIMEOUT_MS,
    interceptors: options.interceptors,
    routes: (r) => {
      if (!options.connectApi) return;
      r.service(KVService, kvService(node, router, options.api.watches, options.api.lessor));
      r.service(ClusterService, clusterService(node, router));
    },
  });
  const timeline = new LeaderTimeline(node);
  const viewer = new ClusterViewer(node, () => timeline.events());
  const probe = (res: http.ServerResponse, answer: ProbeAnswer) =>
    sendJson(res, answer.status, answer.body);

  const pages: Record<string, (res: http.ServerResponse) => void | Promise<void>> = {
    "/healthz": (res) => probe(res, healthz(node)),
    "/readyz": (res) => probe(res, readyz(node)),
    "/": (res) => sendText(res, "text/html; charset=utf-8", PAGE_HTML),
    "/app.js": (res) => sendText(res, "text/javascript; charset=utf-8", APP_JS),
    "/favicon.ico": (res) => void res.writeHead(204).end(),
    "/api/cluster": async (res) => sendJson(res, 200, await viewer.view()),
    "/metrics": async (res) => {
      if (options.metrics === undefined) return sendJson(res, 404, { error: "no metrics" });
      sendText(res, options.metrics.contentType, await options.metrics.scrape());
    },
  };

  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const page = pages[path];
    if (page === undefined) {
      connect(req, res); // Connect's paths, or its 404
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    Promise.resolve(page(res)).catch((err) => {
      logger.error("HTTP request failed", { path, error: String(err) });
      if (!res.headersSent) sendJson(res, 500, { error: String(err) });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        timeline.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
