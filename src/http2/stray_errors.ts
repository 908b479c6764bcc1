/**
 * One known failure of Deno's `node:http2` with Connect-node, for servers and clients
 * alike: when a peer accepts a TCP connection and closes it at once (a proxy with
 * nothing behind it, a port being recycled, a node killed), the client session
 * emits `write EPIPE` in the instant between Connect's connect-time error listener
 * and its ready-time one (measured: Connect's listeners are removed when the session
 * connects and the next are attached a promise turn later; the error comes first,
 * on every such connection). With no listener the error is uncaught and would end
 * the process, though the call that caused it already fails cleanly (the transport
 * sees the session destroyed and reports it). The session is created inside
 * Connect-node, so no listener can be attached to it earlier without patching
 * `node:http2`: a process-wide handler is the one reliable guard.
 *
 * {@link installStrayErrorGuard} installs one that swallows exactly such socket
 * errors (and rejections that only carry one), and lets every other uncaught error
 * end the process as before. The node installs it at start
 * (`src/server/stray_errors.ts`); the client library offers it to applications
 * (`src/client/stray_errors.ts`).
 *
 * @module
 */

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

/**
 * Installs the guard for this process: uncaught stray socket errors and rejections
 * are swallowed and reported to `ignored` (`"error"`: an event nobody listened to;
 * `"rejection"`: a promise nobody awaited); anything else is left alone.
 */
export function installStrayErrorGuard(
  ignored: (kind: "error" | "rejection", error: Error) => void,
): void {
  globalThis.addEventListener("error", (event) => {
    if (!isStrayNetworkError(event.error)) return;
    event.preventDefault();
    ignored("error", event.error as Error);
  });
  globalThis.addEventListener("unhandledrejection", (event) => {
    if (!isStrayNetworkRejection(event.reason)) return;
    event.preventDefault();
    ignored("rejection", event.reason as Error);
  });
}
