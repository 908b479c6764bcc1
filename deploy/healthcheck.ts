/**
 * Health check of one raftkv node, for Docker's `HEALTHCHECK` (which cannot speak
 * gRPC): exits 0 if the node is healthy, 1 if not, and prints one line saying why.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1:7001 deploy/healthcheck.ts [HOST:PORT]   # default 127.0.0.1:7001
 * ```
 *
 * Healthy means what the node's `grpc.health.v1.Health/Check` (service `""`) says:
 * `SERVING`, which a raftkv node answers when it knows a leader. A node without the
 * health service (an older build: the call fails with `UNIMPLEMENTED`) is asked
 * `raftkv.v1.ClusterService/Status` instead, and is healthy when `leader_id != 0`,
 * the same condition. Anything else (connection refused, deadline exceeded, another
 * status) is unhealthy.
 *
 * With `--tls` it speaks TLS to a node started with `--tls-cert` (README, "Securing a
 * cluster"), without checking the node's certificate: it probes its own node on the
 * loopback, and Health carries no data, so there is nothing to protect and no CA
 * file to grant it; Health needs no client certificate.
 *
 * `deno task bundle` makes it one file, `deploy/dist/healthcheck.js`, which the
 * Docker image runs.
 *
 * @module
 */

import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../src/gen/health/v1/health_pb.ts";
import { ClusterService } from "../src/gen/raftkv/v1/cluster_pb.ts";

export { ServingStatus };

/** The address checked when none is given: a node's default port, on the loopback. */
export const DEFAULT_ADDRESS = "127.0.0.1:7001";

/** How long the whole check may take, in milliseconds (Docker's `--timeout` is 5 s). */
export const DEFAULT_TIMEOUT_MS = 3_000;

/** The outcome of a check. */
export interface HealthResult {
  /** True when the node is healthy. */
  readonly healthy: boolean;
  /** What answered: the health service, ClusterService/Status (fallback), or nothing. */
  readonly via: "grpc.health.v1.Health" | "raftkv.v1.ClusterService" | "none";
  /** One line for the operator (`docker inspect` shows it). */
  readonly detail: string;
}

/**
 * Checks the node at `address` (`host:port`, `[ipv6]:port` too). Never throws:
 * every failure is an unhealthy {@link HealthResult}.
 */
export async function checkHealth(
  address: string,
  timeoutMs: number = DEFAULT_TIMEOUT_MS,
  tls = false,
): Promise<HealthResult> {
  const deadline = Date.now() + timeoutMs;
  const left = () => Math.max(1, deadline - Date.now());
  const url = `${tls ? "https" : "http"}://${address}`;
  const sessions = new Http2SessionManager(
    url,
    undefined,
    tls ? { rejectUnauthorized: false } : {},
  );
  const transport: Transport = createGrpcTransport({
    baseUrl: url,
    sessionManager: sessions,
  });
  try {
    try {
      const { status } = await createClient(Health, transport).check(
        { service: "" },
        { timeoutMs: left() },
      );
      const name = ServingStatus[status] ?? `status ${status}`;
      return {
        healthy: status === ServingStatus.SERVING,
        via: "grpc.health.v1.Health",
        detail: `${address}: ${name}`,
      };
    } catch (err) {
      if (!(err instanceof ConnectError && err.code === Code.Unimplemented)) throw err;
    }
    // No health service on this node: the same condition from Status.
    const s = await createClient(ClusterService, transport).status({}, { timeoutMs: left() });
    return s.leaderId !== 0n
      ? {
        healthy: true,
        via: "raftkv.v1.ClusterService",
        detail: `${address}: node ${s.id} knows leader ${s.leaderId} (term ${s.term})`,
      }
      : {
        healthy: false,
        via: "raftkv.v1.ClusterService",
        detail: `${address}: node ${s.id} knows no leader (term ${s.term})`,
      };
  } catch (err) {
    const why = err instanceof ConnectError
      ? `${Code[err.code]}: ${err.rawMessage}`
      : String(err instanceof Error ? err.message : err);
    return { healthy: false, via: "none", detail: `${address}: ${why}` };
  } finally {
    sessions.abort();
  }
}

if (import.meta.main) {
  const args = Deno.args;
  const usage = "Usage: deno run --allow-net=HOST:PORT deploy/healthcheck.ts [--tls] [HOST:PORT]";
  if (args[0] === "--help" || args[0] === "-h") {
    console.log(`${usage}\nExits 0 if the node is healthy (SERVING: it knows a leader), 1 if not.`);
    Deno.exit(0);
  }
  const tls = args[0] === "--tls";
  const rest = tls ? args.slice(1) : args;
  if (rest.length > 1 || rest[0]?.startsWith("-")) {
    console.error(usage);
    Deno.exit(2);
  }
  const result = await checkHealth(rest[0] ?? DEFAULT_ADDRESS, DEFAULT_TIMEOUT_MS, tls);
  console.log(`${result.healthy ? "healthy" : "unhealthy"}: ${result.detail} (${result.via})`);
  Deno.exit(result.healthy ? 0 : 1);
}
