/**
 * Everything a node's core is configured with. The defaults follow
 * etcd-io/raft: time is counted in ticks, the runtime decides how long a tick is.
 *
 * @module
 */

import { type Logger, SILENT_LOGGER } from "./logger.ts";
import type { Random } from "./rand.ts";
import type { NodeId } from "./types.ts";

/** The options of one node's core. */
export interface Config {
  /** This node's id: a positive integer, unique in the cluster. */
  readonly id: NodeId;
  /**
   * Ticks without hearing from a leader before a follower campaigns. The actual
   * timeout is drawn from [electionTick, 2 * electionTick) after every reset (§5.2).
   */
  readonly electionTick: number;
  /** Ticks between a leader's heartbeats. Must be well below electionTick. */
  readonly heartbeatTick: number;
  /** Run the PreVote phase before a real election (dissertation §9.6). */
  readonly preVote: boolean;
  /** A leader steps down when it has not heard from a majority in an election timeout (§6.2). */
  readonly checkQuorum: boolean;
  /** The most entry payload bytes in one AppendEntries (at least one entry is always sent). */
  readonly maxSizePerMsg: number;
  /** The most AppendEntries in flight to one follower, unacknowledged. */
  readonly maxInflightMsgs: number;
  /** The index up to which the state machine has already applied (on restart). */
  readonly applied: number;
  /** The only source of randomness: the election timeout. */
  readonly random: Random;
  readonly logger: Logger;
}

/** The defaults, with `id` and `random` left for the caller. */
export const DEFAULT_CONFIG: Omit<Config, "id" | "random"> = {
  electionTick: 10,
  heartbeatTick: 1,
  preVote: true,
  checkQuorum: true,
  maxSizePerMsg: 1024 * 1024,
  maxInflightMsgs: 256,
  applied: 0,
  logger: SILENT_LOGGER,
};

/** Fills defaults and checks the config, throwing on the first invalid field. */
export function validateConfig(
  partial: Partial<Config> & Pick<Config, "id" | "random">,
): Config {
  const c: Config = { ...DEFAULT_CONFIG, ...partial };
  if (!Number.isInteger(c.id) || c.id <= 0) {
    throw new Error(`Cannot use node id ${c.id}: it must be a positive integer`);
  }
  if (!Number.isInteger(c.heartbeatTick) || c.heartbeatTick <= 0) {
    throw new Error(`Cannot use heartbeatTick ${c.heartbeatTick}: it must be a positive integer`);
  }
  if (!Number.isInteger(c.electionTick) || c.electionTick <= c.heartbeatTick) {
    throw new Error(
      `Cannot use electionTick ${c.electionTick}: it must be an integer greater than heartbeatTick ${c.heartbeatTick}`,
    );
  }
  if (!Number.isInteger(c.maxInflightMsgs) || c.maxInflightMsgs <= 0) {
    throw new Error(
      `Cannot use maxInflightMsgs ${c.maxInflightMsgs}: it must be a positive integer`,
    );
  }
  if (!(c.maxSizePerMsg > 0)) {
    throw new Error(`Cannot use maxSizePerMsg ${c.maxSizePerMsg}: it must be positive`);
  }
  return c;
}
