/**
 * The input rules of the public key-value API (`raftkv.v1.KVService`).
 *
 * The gRPC layer checks every request with these before proposing it, so nothing that
 * breaks them reaches the log. The state machine itself does not re-check: it applies
 * whatever was committed, the same way on every node.
 *
 * @module
 */

/** The largest key, in bytes of its UTF-8 encoding: 4 KiB. */
export const MAX_KEY_BYTES = 4096;

/** The largest value, in bytes: 1 MiB. */
export const MAX_VALUE_BYTES = 1_048_576;

/**
 * A key or value that breaks the input rules of the public API: the caller's mistake,
 * which the gRPC layer answers with INVALID_ARGUMENT.
 */
export class KvInputError extends Error {
  override name = "KvInputError";
}

const encoder = new TextEncoder();

/**
 * Checks a key: it must be non-empty, valid UTF-8 (a JS string with a lone surrogate
 * has no UTF-8 encoding), and at most {@link MAX_KEY_BYTES} bytes when UTF-8 encoded.
 *
 * @throws {KvInputError} naming the rule broken, and for size the actual and the limit.
 */
export function validateKey(key: string): void {
  if (key.length === 0) {
    throw new KvInputError("Cannot use key: key is empty");
  }
  if (!key.isWellFormed()) {
    throw new KvInputError("Cannot use key: key is not valid UTF-8 (it has a lone surrogate)");
  }
  const size = encoder.encode(key).length;
  if (size > MAX_KEY_BYTES) {
    throw new KvInputError(
      `Cannot use key: ${size} bytes is over the ${MAX_KEY_BYTES}-byte limit`,
    );
  }
}

/**
 * Checks a value: it may be empty, and must be at most {@link MAX_VALUE_BYTES} bytes.
 *
 * @throws {KvInputError} naming the actual size and the limit.
 */
export function validateValue(value: Uint8Array): void {
  if (value.length > MAX_VALUE_BYTES) {
    throw new KvInputError(
      `Cannot use value: ${value.length} bytes is over the ${MAX_VALUE_BYTES}-byte limit`,
    );
  }
}

/**
 * Checks a lease id a write names: 0 (none) or a number a log index can be (below
 * 2^53; the state machine holds ids as numbers).
 *
 * @throws {KvInputError} naming the id.
 */
export function validateLeaseId(id: bigint): void {
  if (id > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new KvInputError(`Cannot use lease ${id}: lease ids are below 2^53`);
  }
}
