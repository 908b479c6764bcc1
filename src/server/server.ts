/**
 * One gRPC server per node: Connect-ES's `connectNodeAdapter` on `node:http2`,
 * with plain unary KVService calls served beside it by unary_fast_lane.ts,
 * without TLS (h2c) by default, or over TLS with the access rules of
 * src/tls/access.ts when given {@link ServerSecurity}. `Deno.serve` cannot send HTTP trailers, which gRPC needs,
 * so it is not used.
 *
 * @module
 */

import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { HandlerContext, Interceptor } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, connectNodeAdapter } from "@connectrpc/connect-node";
import { createContextValues, createServiceImplSpec } from "@connectrpc/connect";
import { Http2Guard } from "../http2/guard.ts";
import { DEFAULT_HTTP2_LIMITS, type Http2Limits, http2ServerOptions } from "../http2/limits.ts";
import { Health } from "../gen/health/v1/health_pb.ts";
import { ClusterService } from "../gen/raftkv/v1/cluster_pb.ts";
import { KVService } from "../gen/raftkv/v1/kv_pb.ts";
import { DEFAULT_WATCH_LIMITS, WatchHub } from "../kv/watch_hub.ts";
import { Lessor } from "./lessor.ts";
import { type ForwardRequest, RaftService } from "../gen/raftkv/v1/raft_pb.ts";
import { clusterService } from "./cluster_service.ts";
import { healthService } from "./health.ts";
import { kvService } from "./kv_service.ts";
import type { RaftKvNode } from "./node.ts";
import { raftService } from "./raft_service.ts";
import { registerReflection } from "./reflection.ts";
import { ForwardServer } from "./forward.ts";
import { Router } from "./route.ts";
import { accessInterceptor, CALLER, CallerCache } from "../tls/access.ts";
import type { Authorizer } from "../tls/authorizer.ts";
import type { CredentialsStore } from "../tls/credentials.ts";
import { followCredentials, secureServerOptions } from "../tls/server_tls.ts";
import { UnaryFastLane } from "./unary_fast_lane.ts";
import { StreamFastLane } from "./stream_fast_lane.ts";

/** The largest request a node accepts: a 1 MiB value plus a 4 KiB key and framing, with room. */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024;

/**
 * The longest deadline (grpc-timeout) a call may carry: 2^31 - 1 ms, about 24.8
 * days, the longest a timer can wait. A longer one made the call's timers fire at
 * once (Node's timers treat an overflowing delay as 1 ms): a write answered
 * DEADLINE_EXCEEDED and then applied. Connect refuses a longer deadline with
 * INVALID_ARGUMENT before the call runs. (Clamping the deadline in route.ts instead
 * would accept such calls; until then, this keeps them from doing harm.)
 */
export const MAX_CALL_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * A node speaks gRPC only. Connect-ES would also serve the Connect protocol
 * (`application/json`, `application/proto`, even GET) and gRPC-Web on the same
 * paths; nothing of raftkv uses them, so they are turned off: a request with any
 * content type but `application/grpc[+proto|+json]` is answered 415.
 */
export const PROTOCOLS = { grpc: true, grpcWeb: false, connect: false } as const;

/** TLS and who may call what (src/tls/); without it the server speaks h2c to anyone. */
export interface ServerSecurity {
  readonly credentials: CredentialsStore;
  readonly authorizer: Authorizer;
}

/** Options of {@link serve} beyond the node's flags. */
export interface ServeOptions {
  /**
   * Whether plain unary KVService calls take the direct path of
   * unary_fast_lane.ts (default) or go through Connect's node adapter like every
   * other call (tests compare the two).
   */
  readonly fastLane?: boolean;
  /**
   * Whether peers' plain `RaftService/Stream` calls take the direct path of
   * stream_fast_lane.ts (default) or go through Connect's node adapter like every
   * other call (tests compare the two).
   */
  readonly peerLane?: boolean;
}

/** A listening server. */
export interface GrpcServer {
  readonly port: number;
  /** Calls served by the fast lane (unary_fast_lane.ts) so far; 0 when it is off. */
  readonly fastLaneCalls: number;
  /** Stream calls served by the stream fast lane (stream_fast_lane.ts) so far; 0 when it is off. */
  readonly peerLaneCalls: number;
  /** The node's watches and lessor, which the HTTP port's Connect JSON shares. */
  readonly api: { readonly watches: WatchHub; readonly lessor: Lessor };
  /** Stops accepting connections and closes open ones once their calls finish. */
  close(): Promise<void>;
}

/**
 * Serves the node's services on host:port (port 0 picks a free one), within the
 * HTTP/2 resource `limits` (see src/http2/limits.ts): streams per connection and in
 * the node, connections in total and per address, request and idle timeouts.
 * `interceptors` wrap every call (the call metrics of src/metrics/grpc_metrics.ts).
 */
export async function serve(
  node: RaftKvNode,
  host: string,
  port: number,
  limits: Http2Limits = DEFAULT_HTTP2_LIMITS,
  security?: ServerSecurity,
  interceptors: Interceptor[] = [],
  options: ServeOptions = {},
): Promise<GrpcServer> {
  const router = new Router(node);
  const callers = new CallerCache(security?.credentials);
  const tlsConfig = security?.credentials.config;
  // The node's watches and their history, from the state applied by now on.
  const watches = new WatchHub(node.kv, {
    ...DEFAULT_WATCH_LIMITS,
    historyEvents: node.options.watchHistoryEvents ?? DEFAULT_WATCH_LIMITS.historyEvents,
  });
  // The leader's lease deadlines (a follower's lessor idles until it leads).
  const lessor = new Lessor(node);
  // Metrics outermost, so that a call the access check refuses is counted with its code.
  const callInterceptors = [
    ...interceptors,
    ...(security === undefined ? [] : [
      accessInterceptor({
        peerAuth: tlsConfig?.peerCaFile !== undefined,
        clientAuth: tlsConfig?.clientCaFile !== undefined,
        authorizer: security.authorizer,
        logger: node.options.logger,
      }),
    ]),
  ];
  const kv = kvService(node, router, watches, lessor);
  const cluster = clusterService(node, router);
  // Calls followers forward on RaftService/Forward run the same handlers, behind the
  // same interceptors (forward.ts).
  const forwarded = new ForwardServer({
    services: [
      createServiceImplSpec<typeof KVService>(KVService, kv),
      createServiceImplSpec<typeof ClusterService>(ClusterService, cluster),
    ],
    interceptors: callInterceptors,
    maxTimeoutMs: MAX_CALL_TIMEOUT_MS,
  });
  const contextValues = (req: Parameters<CallerCache["callerOf"]>[0]) =>
    createContextValues().set(CALLER, callers.callerOf(req));
  // connect-node's default, named so that the fast lane accepts and answers the same.
  const acceptCompression = [compressionGzip, compressionBrotli];
  const raft = {
    ...raftService(node),
    forward: (requests: AsyncIterable<ForwardRequest>, ctx: HandlerContext) =>
      forwarded.serve(requests, ctx),
  };
  const handler = connectNodeAdapter({
    ...PROTOCOLS,
    acceptCompression,
    contextValues,
    interceptors: callInterceptors,
    readMaxBytes: MAX_REQUEST_BYTES,
    maxTimeoutMs: MAX_CALL_TIMEOUT_MS,
    routes: (r) => {
      r.service(RaftService, raft);
      r.service(KVService, kv);
      r.service(ClusterService, cluster);
      r.service(Health, healthService(node));
      // Last: reflection lists and describes every service registered on the router.
      registerReflection(r);
    },
  });
  // Plain unary KVService calls skip Connect's adapter (unary_fast_lane.ts says why
  // and how); everything else goes to it.
  const lane = options.fastLane === false ? undefined : new UnaryFastLane({
    services: [createServiceImplSpec<typeof KVService>(KVService, kv)],
    interceptors: callInterceptors,
    contextValues,
    readMaxBytes: MAX_REQUEST_BYTES,
    maxTimeoutMs: MAX_CALL_TIMEOUT_MS,
    acceptCompression,
  });
  const unaryCall = lane?.inFrontOf(handler) ?? handler;
  // Peers' Stream calls skip Connect's pipeline too (stream_fast_lane.ts); the
  // same RaftService implementation steps their batches.
  const peerLane = options.peerLane === false ? undefined : new StreamFastLane({
    methods: [createServiceImplSpec<typeof RaftService>(RaftService, raft).methods.stream!],
    interceptors: callInterceptors,
    contextValues,
    readMaxBytes: MAX_REQUEST_BYTES,
    maxTimeoutMs: MAX_CALL_TIMEOUT_MS,
    acceptCompression,
  });
  const serveCall = peerLane?.inFrontOf(unaryCall) ?? unaryCall;
  const guard = new Http2Guard(limits, node.options.logger, {
    // A keep-alive stream stays open as long as its leases live: the request timeout
    // bounds the silence between its messages instead of its whole body.
    streamingRequestPaths: [
      `/${KVService.typeName}/${KVService.method.leaseKeepAliveStream.name}`,
      // Forwarded calls come and go on it while it stays open (forward.ts).
      `/${RaftService.typeName}/${RaftService.method.forward.name}`,
    ],
  });
  const server = security === undefined
    ? http2.createServer(http2ServerOptions(limits), guard.wrap(serveCall))
    : http2.createSecureServer(
      secureServerOptions(security.credentials.current, http2ServerOptions(limits)),
      guard.wrap(serveCall),
    );
  const unfollow = security === undefined
    ? () => {}
    : followCredentials(server as http2.Http2SecureServer, security.credentials);
  guard.install(server);
  const sessions = new Set<http2.Http2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    get fastLaneCalls() {
      return lane?.served ?? 0;
    },
    get peerLaneCalls() {
      return peerLane?.served ?? 0;
    },
    api: { watches, lessor },
    close: () =>
      new Promise<void>((resolve) => {
        unfollow();
        watches.close(); // watch streams never end on their own
        lessor.close();
        forwarded.close(); // nor do Forward calls while a follower forwards

        server.close(() => resolve());
        // Ask clients to go away; calls in flight finish first.
        for (const s of sessions) s.close();
      }),
  };
}
