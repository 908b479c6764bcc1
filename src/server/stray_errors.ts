/**
 * The node's guard against stray socket errors of `node:http2` (see
 * `src/http2/stray_errors.ts` for the failure and why a process-wide handler):
 * installed at start, each ignored error logged at debug level.
 *
 * @module
 */

import type { Logger } from "../raft/logger.ts";
import { installStrayErrorGuard } from "../http2/stray_errors.ts";

export { isStrayNetworkError, isStrayNetworkRejection } from "../http2/stray_errors.ts";

/** Installs the guard for this process. */
export function guardStrayNetworkErrors(logger: Logger): void {
  installStrayErrorGuard((kind, error) => {
    logger.debug(
      kind === "error"
        ? "ignored a socket error no listener was attached for"
        : "ignored a socket error no promise was waiting for",
      { error: error.message },
    );
  });
}
