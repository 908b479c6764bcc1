/**
 * Invariant checks. An impossible state is a bug, never an input error: it
 * throws at once with a message naming the broken rule, rather than let the
 * node run on with a log that no longer means what Raft says it means.
 *
 * @module
 */

/** Thrown when the core reaches a state the protocol rules out. */
export class InvariantError extends Error {
  override name = "InvariantError";
}

/** Throws an {@link InvariantError} with `message` unless `condition` holds. */
export function invariant(condition: boolean, message: () => string): asserts condition {
  if (!condition) throw new InvariantError(message());
}
