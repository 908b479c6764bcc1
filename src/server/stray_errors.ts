/**
 * A guard for one known failure of Deno's `node:http2` with Connect-node: when
 * a peer accepts a TCP connection and closes it at once (a peer's proxy with
 * nothing behind it, a port being recycled), the client session can emit
 * `write EPIPE` in the instant between Connect's connect-time error listener
 * and its ready-time one. With no listener the error is uncaught and would end
 * the process, though the call that caused it already fails cleanly (the
 * transport sees the session destroyed and reports it).
 *
 * The guard swallows exactly such socket errors, logging them at debug level,
 * and lets every other uncaught error end the process as before.
 *
 * @module
 */

import type { Logger } from "../raft/logger.ts";

/** Socket error codes that mean "the other end went away", nothing worse. */
const PEER_GONE = new Set(["EPIPE", "ECONNRESET", "ECONNREFUSED", "ECONNABORTED", "ETIMEDOUT"]);

/** True for a socket-level error from Node's stream internals that only says a peer left. */
export function isStrayNetworkError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const e = error as Error & { code?: unknown; syscall?: unknown };
  return typeof e.code === "string" && PEER_GONE.has(e.code) &&
    (e.syscall === "write" || e.syscall === "read" || e.syscall === "connect");
}

/**
 * True for a rejection that only carries such an error: the error itself, or a
 * Connect error whose cause it is (a session's connect promise that nobody awaits
 * any more once the call failed over to another node).
 */
export function isStrayNetworkRejection(reason: unknown): boolean {
  if (isStrayNetworkError(reason)) return true;
  return reason instanceof Error && isStrayNetworkError((reason as { cause?: unknown }).cause);
}

/** Installs the guard for this process. */
export function guardStrayNetworkErrors(logger: Logger): void {
  globalThis.addEventListener("error", (event) => {
    if (!isStrayNetworkError(event.error)) return;
    event.preventDefault();
    logger.debug("ignored a socket error no listener was attached for", {
      error: (event.error as Error).message,
    });
  });
  globalThis.addEventListener("unhandledrejection", (event) => {
    if (!isStrayNetworkRejection(event.reason)) return;
    event.preventDefault();
    logger.debug("ignored a socket error no promise was waiting for", {
      error: (event.reason as Error).message,
    });
  });
}
