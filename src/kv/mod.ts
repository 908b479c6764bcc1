/**
 * The key-value state machine of raftkv: the deterministic store that every node
 * applies committed Raft log entries to, the wire form of the commands those entries
 * carry, and the input rules the public API enforces before proposing.
 *
 * The state machine follows the FSM contract (in hashicorp/raft's words, "Apply must be
 * deterministic and produce the same result on all peers in the cluster"): applying an
 * entry reads no clock and no random source, so every node that applies the same log
 * holds the same data. See `store.ts` for the details.
 *
 * ```ts
 * import { encodeCommand, KvStore, validateKey, validateValue } from "./mod.ts";
 *
 * const key = "greeting";
 * const value = new TextEncoder().encode("hello");
 * validateKey(key);
 * validateValue(value);
 * const data = encodeCommand({ op: { case: "put", value: { key, value } } });
 *
 * const store = new KvStore();
 * store.apply(1, new Uint8Array()); // the new leader's no-op
 * store.apply(2, data); // { kind: "put" }
 * store.get(key); // Uint8Array "hello"
 * ```
 *
 * @module
 */

export { AppliedChain, CHAIN_LINK_BYTES } from "./applied_chain.ts";
export { type Command, decodeCommand, encodeCommand } from "./command.ts";
export {
  decodeKvState,
  encodeKvState,
  encodeKvStateInSteps,
  KV_STATE_VERSION,
  type KvSnapshotState,
  KvStateCodecError,
} from "./state_codec.ts";
export {
  type ApplyResult,
  type CasResult,
  type DeleteResult,
  KvStore,
  type KvStoreState,
  type NoopResult,
  type PutResult,
} from "./store.ts";
export {
  KvInputError,
  MAX_KEY_BYTES,
  MAX_VALUE_BYTES,
  validateKey,
  validateValue,
} from "./validate.ts";
