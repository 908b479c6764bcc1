/**
 * Errors the core reports to its caller: expected situations, not bugs.
 *
 * @module
 */

import type { NodeId } from "./types.ts";

/**
 * A proposal reached a node that is not the leader. `leader` is the leader this
 * node knows of ({@link NONE} when none), so the caller can forward there.
 */
export class NotLeaderError extends Error {
  override name = "NotLeaderError";
  constructor(readonly leader: NodeId) {
    super(
      leader === 0
        ? "Cannot propose: this node is not the leader and knows no leader"
        : `Cannot propose: this node is not the leader; the leader is node ${leader}`,
    );
  }
}
