/**
 * The error a {@link RaftKvNode} call fails with. Its own file because every
 * piece of the node (and the services, which map its kind to a gRPC status)
 * throws or catches it, and none of them should need the node to do so.
 *
 * @module
 */

import { type NodeId, NONE } from "../raft/types.ts";

/** Why a call could not be completed; the services map it to a gRPC status. */
export class NodeError extends Error {
  override name = "NodeError";
  constructor(
    readonly kind: "not_leader" | "unavailable" | "deadline" | "stopped",
    message: string,
    readonly leader: NodeId = NONE,
  ) {
    super(message);
  }
}
