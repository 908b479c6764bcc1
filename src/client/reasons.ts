/**
 * Why a call failed, said briefly: the network failure behind an error (`connection
 * refused`, `unknown host`, ...), whether it means nothing serves at an address, and
 * a one-line form of any error, for messages that list each endpoint's failure.
 *
 * @module
 */

import { Code, ConnectError } from "@connectrpc/connect";

/** A Connect code as gRPC spells it in lower case: `unavailable`, `failed_precondition`. */
export function codeName(code: Code): string {
  const name = Code[code] as string | undefined;
  return name === undefined
    ? `code_${code}`
    : name.replace(/[a-z][A-Z]/g, (m) => `${m[0]}_${m[1]}`).toLowerCase();
}

/** The network failure behind `e` (`connection refused`, ...), if it is one. */
function netReason(e: unknown): string | undefined {
  for (let c: unknown = e, depth = 0; c instanceof Error && depth < 8; c = c.cause, depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === "string" && Object.hasOwn(NET_REASONS, code)) return NET_REASONS[code];
  }
  return undefined;
}

/**
 * Network errors that say at once, on connecting, that nothing serves at an
 * address: no process listens there (refused), or the name or the route does not
 * exist. A timeout is not one: the host may be slow or paused.
 */
const NOT_CONNECTABLE: ReadonlySet<string> = new Set([
  "connection refused",
  "unknown host",
  "host unreachable",
  "network unreachable",
]);

/** True when `e` says at once that nothing could be connected to. */
export function cannotConnect(e: unknown): boolean {
  const net = netReason(e);
  return net !== undefined && NOT_CONNECTABLE.has(net);
}

const NET_REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ETIMEDOUT: "connect timed out",
  ENOTFOUND: "unknown host",
  EAI_AGAIN: "unknown host",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
};

/**
 * Shortens an error for one table cell or list item: a network failure as
 * `connection refused`, `unknown host`, ...; a deadline as `timed out`; anything
 * else as `<code>: <first line of the message>`, at most 80 characters.
 */
export function shortReason(e: unknown): string {
  const net = netReason(e);
  if (net !== undefined) return net;
  const err = ConnectError.from(e);
  if (err.code === Code.DeadlineExceeded) return "timed out";
  const first = err.rawMessage.split("\n", 1)[0] ?? "";
  const text = `${codeName(err.code)}: ${first}`;
  return text.length > 80 ? text.slice(0, 79) + "…" : text;
}
