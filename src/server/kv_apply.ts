/**
 * What every KVService write handler does around its proposal: checking the request's
 * optional session before proposing, and reading what applying the proposal produced
 * (a session's refusal, a missing lease, or the result of the kind proposed) as the
 * answer or the right gRPC status.
 *
 * @module
 */

import { Code, ConnectError } from "@connectrpc/connect";
import type { Session } from "../gen/raftkv/v1/kv_pb.ts";
import type { ApplyResult } from "../kv/store.ts";

/** Checks a request's optional session; both numbers must be positive and below 2^53. */
export function checkSession(session: Session | undefined): void {
  if (session === undefined) return;
  const limit = BigInt(Number.MAX_SAFE_INTEGER);
  if (session.id === 0n || session.id > limit) {
    throw new ConnectError(
      `Cannot use session id ${session.id}: open a session with OpenSession`,
      Code.InvalidArgument,
    );
  }
  if (session.sequence === 0n || session.sequence > limit) {
    throw new ConnectError(
      `Cannot use sequence ${session.sequence}: sequences start at 1 and stay below 2^53`,
      Code.InvalidArgument,
    );
  }
}

/** The result of applying what was proposed, or the session's definite refusal. */
export function expectKind<K extends ApplyResult["kind"]>(
  result: ApplyResult,
  kind: K,
): Extract<ApplyResult, { kind: K }> {
  if (result.kind === "session_error") {
    throw new ConnectError(result.message, Code.FailedPrecondition);
  }
  if (result.kind === "lease_not_found") {
    throw new ConnectError(
      `lease ${result.id} not found (expired, revoked, or never granted); nothing was written`,
      Code.NotFound,
    );
  }
  if (result.kind !== kind) {
    throw new ConnectError(`applied a ${result.kind} where a ${kind} was proposed`, Code.Internal);
  }
  return result as Extract<ApplyResult, { kind: K }>;
}
