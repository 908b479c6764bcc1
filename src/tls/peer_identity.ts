/**
 * How a certificate names the member it belongs to: a SAN URI `raftkv://node/<id>`
 * (README, "Securing a cluster"). A URI SAN, not the CN: the CN stays free for the
 * human name client certificates carry (client_identity in caller.ts), so one CA can
 * sign both kinds and a client certificate can never pass for a peer's (a client
 * named "node-2" has no such URI). SPIFFE names workloads the same way.
 *
 * @module
 */

/** The URI prefix of a peer identity: `raftkv://node/2` is member 2. */
export const PEER_URI_PREFIX = "raftkv://node/";

/** The SAN URI naming member `id`: what its certificate must carry. */
export function peerUri(id: number): string {
  return `${PEER_URI_PREFIX}${id}`;
}

/**
 * The member ids a certificate's subjectAltName names (as node:tls renders it:
 * `URI:raftkv://node/2, DNS:localhost, IP Address:127.0.0.1`). Usually one; none
 * for a client certificate. URIs with the prefix but no positive integer after it
 * are ignored, not taken for a member.
 */
export function peerIdsOf(subjectAltName: string | undefined): number[] {
  if (subjectAltName === undefined) return [];
  const ids: number[] = [];
  for (const part of subjectAltName.split(",")) {
    const entry = part.trim();
    if (!entry.startsWith("URI:")) continue;
    const uri = entry.slice("URI:".length);
    if (!uri.startsWith(PEER_URI_PREFIX)) continue;
    const rest = uri.slice(PEER_URI_PREFIX.length);
    if (!/^[1-9][0-9]{0,15}$/.test(rest)) continue;
    const id = Number(rest);
    if (Number.isSafeInteger(id)) ids.push(id);
  }
  return ids;
}
