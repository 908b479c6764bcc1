/**
 * What a node joining a running cluster (`--join`, etcd's `--initial-cluster-state
 * existing`) needs before it can start its core: the configuration in force before
 * the log's first entry, the cluster's bootstrap voters. A bootstrapped cluster
 * holds that configuration implicitly (every founding member started with it, and
 * no log entry says it), so a node that replays the leader's log from index 1 must
 * be told it; a node sent a snapshot learns the configuration from the snapshot
 * instead. It asks the members it was given (`--peers`) for their Status until one
 * answers with its `bootstrap_voters`.
 *
 * Starting with the bootstrap configuration is safe for a node not (yet) in it: the
 * core never campaigns while this node is not a voter of the configuration in force,
 * and a node that is in it (a replaced disk, rejoining under its old id) has an
 * empty log, which no voter of the cluster votes for (§5.4.1), until the leader
 * adds it again and it catches up.
 *
 * @module
 */

import { createClient } from "@connectrpc/connect";
import { ClusterService } from "../gen/raftkv/v1/cluster_pb.ts";
import type { Logger } from "../raft/logger.ts";
import type { NodeId } from "../raft/types.ts";
import { grpcTransportTo, type PeerAddress } from "./transport.ts";

/**
 * Asks the other entries of `peers` for the cluster's bootstrap voters, in turns,
 * until one answers with a non-empty list (logged while none does), or `signal`
 * aborts. Returns the voters, ascending.
 */
export async function fetchBootstrapVoters(
  selfId: NodeId,
  clusterId: string,
  peers: ReadonlyMap<NodeId, PeerAddress>,
  logger: Logger,
  signal?: AbortSignal,
): Promise<NodeId[]> {
  const others = [...peers].filter(([id]) => id !== selfId);
  if (others.length === 0) {
    throw new Error(
      "Cannot join a running cluster: --peers names no other member to ask for its configuration",
    );
  }
  const clients = others.map(([id, a]) => ({
    id,
    client: createClient(ClusterService, grpcTransportTo(a)),
  }));
  let round = 0;
  for (;;) {
    for (const { id, client } of clients) {
      signal?.throwIfAborted();
      try {
        const s = await client.status({}, { timeoutMs: 2_000, signal });
        if (s.bootstrapVoters.length > 0) {
          const voters = s.bootstrapVoters.map(Number).sort((a, b) => a - b);
          logger.info("learned the cluster's bootstrap configuration", {
            from: id,
            voters: voters.join(","),
            clusterId,
          });
          return voters;
        }
      } catch {
        // Down or unreachable: the next one.
      }
    }
    if (round++ % 10 === 0) {
      logger.warn("joining: no member in --peers answers yet; retrying", {
        asked: others.map(([id]) => id).join(","),
      });
    }
    // Pacing between rounds of asking, while the members are down.
    await new Promise((r) => setTimeout(r, 500));
  }
}
