/**
 * An opt-in guard for applications using the client library: Deno's `node:http2`
 * can emit `write EPIPE` on a client session in a moment when Connect-node has no
 * listener on it (a node that accepts a connection and closes it at once: killed,
 * restarting, or behind a proxy with nothing behind it), and an unheard error ends
 * the process, though the call itself fails cleanly and the client retries
 * elsewhere. See `src/http2/stray_errors.ts` for the measurement and why only a
 * process-wide handler catches it.
 *
 * The library does not install it by itself: process-wide error handlers belong to
 * the application, which may have its own (or want to crash on everything). An
 * application that talks to a cluster whose nodes may die calls
 * {@link guardStrayNetworkErrors} once at start. It swallows only socket errors that
 * say the other end went away (EPIPE, ECONNRESET, ECONNREFUSED, ECONNABORTED,
 * ETIMEDOUT on a read, write or connect) and rejections that only carry one; every
 * other uncaught error still ends the process.
 *
 * ```ts
 * import { guardStrayNetworkErrors, RaftKvClient } from "./mod.ts";
 *
 * guardStrayNetworkErrors();
 * const client = new RaftKvClient({ endpoints: ["127.0.0.1:7001"] });
 * ```
 *
 * @module
 */

import { installStrayErrorGuard } from "../http2/stray_errors.ts";

/**
 * Installs the guard for this process (once is enough; see the module
 * documentation). `onIgnored` hears of each error swallowed (default: nothing).
 */
export function guardStrayNetworkErrors(onIgnored?: (error: Error) => void): void {
  installStrayErrorGuard((_kind, error) => onIgnored?.(error));
}
