/**
 * Dialing peers over mutual TLS: the node presents its own certificate and checks
 * the peer's against the peer CA, its address against the certificate's SANs (list
 * the host peers dial, a DNS name or IP, in every node certificate), and, when it
 * dials a known member, that the certificate names that member (peer_identity.ts):
 * another member's valid certificate at that address is refused, as the receiving
 * side refuses a member sending under another's id (access.ts).
 *
 * A transport here follows the credentials in use: after a reload (reload.ts) the
 * next call builds a new connection with the new certificate; calls on the old
 * connection finish on it, and it closes when idle.
 *
 * @module
 */

import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport, type GrpcTransportOptions } from "@connectrpc/connect-node";
import { checkServerIdentity, type PeerCertificate } from "node:tls";
import type { CredentialsStore } from "./credentials.ts";
import { peerIdsOf, peerUri } from "./peer_identity.ts";

/** Options of a dialed transport other than where and how to secure it. */
export type DialOptions = Omit<GrpcTransportOptions, "baseUrl" | "nodeOptions">;

/** Makes transports to peers; {@link TlsDialer} or none (plaintext). */
export interface PeerDialer {
  /** A transport to `host:port`, where member `peerId` (if known) must answer. */
  transport(host: string, port: number, options: DialOptions, peerId?: number): Transport;
}

/** `https://host:port`, with IPv6 hosts bracketed. */
export function httpsUrl(host: string, port: number): string {
  return `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Why the certificate at host:port is not member `peerId`'s, or undefined if it is. */
function checkMember(
  host: string,
  port: number,
  cert: PeerCertificate,
  peerId: number | undefined,
): Error | undefined {
  if (peerId === undefined) return undefined;
  const ids = peerIdsOf(cert.subjectaltname);
  if (ids.length === 1 && ids[0] === peerId) return undefined;
  return new Error(
    `the peer at ${host}:${port} presents a certificate naming ${
      ids.length === 0 ? "no member" : ids.map(peerUri).join(", ")
    }, not ${peerUri(peerId)} (check --peers and its certificate)`,
  );
}

/** Dials peers with the node's credentials, following their reloads. */
export class TlsDialer implements PeerDialer {
  readonly #store: CredentialsStore;

  constructor(store: CredentialsStore) {
    this.#store = store;
  }

  transport(host: string, port: number, options: DialOptions, peerId?: number): Transport {
    const store = this.#store;
    let generation = -1;
    let inner: Transport | undefined;
    const current = (): Transport => {
      if (inner === undefined || generation !== store.generation) {
        const c = store.current;
        generation = store.generation;
        inner = createGrpcTransport({
          ...options,
          baseUrl: httpsUrl(host, port),
          nodeOptions: {
            cert: c.certPem,
            key: c.keyPem,
            ...(c.peerCa !== undefined ? { ca: c.peerCa.pem } : {}),
            checkServerIdentity: (name: string, cert: PeerCertificate) =>
              checkServerIdentity(name, cert) ?? checkMember(host, port, cert, peerId),
          },
        });
      }
      return inner;
    };
    return {
      unary: (...args) => current().unary(...args),
      stream: (...args) => current().stream(...args),
    };
  }
}
