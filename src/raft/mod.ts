/**
 * The raftkv Raft core: a pure, deterministic implementation of Raft. Drive it
 * through {@link RawNode}; see that module for the Ready/Advance loop.
 *
 * @module
 */

export * from "./types.ts";
export * from "./config.ts";
export * from "./logger.ts";
export * from "./rand.ts";
export * from "./storage.ts";
export * from "./errors.ts";
export * from "./invariant.ts";
export * from "./describe.ts";
export * from "./confchange/codec.ts";
export { nextConfState, validateConfChange } from "./confchange/changer.ts";
export type { ReadState } from "./read_only.ts";
export {
  type ProgressStatus,
  RawNode,
  type Ready,
  type SoftState,
  type Status,
} from "./raw_node.ts";
export { mustSync } from "./must_sync.ts";
