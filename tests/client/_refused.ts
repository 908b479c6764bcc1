/**
 * A node that is not there, for in-memory tests: the error connect-node raises for a
 * refused connection, and a transport that fails every call with it.
 *
 * @module
 */

import { Code, ConnectError, type Transport } from "@connectrpc/connect";

/** The error connect-node raises for a refused connection to `endpoint`. */
export function refused(endpoint: string): ConnectError {
  const cause = Object.assign(new Error(`connect ECONNREFUSED ${endpoint}`), {
    code: "ECONNREFUSED",
  });
  const err = new ConnectError(`connect ECONNREFUSED ${endpoint}`, Code.Unavailable);
  err.cause = cause;
  return err;
}

/** A transport to `endpoint` whose every call is refused, like one where no node runs. */
export function refusingTransport(endpoint: string): Transport {
  const err = refused(endpoint);
  return { unary: () => Promise.reject(err), stream: () => Promise.reject(err) };
}
