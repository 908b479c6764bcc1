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
 * connection finish on it, and it closes when idle. The session under a transport
 * is one `Http2SessionManager` per credentials, which the peer stream's raw calls
 * share (src/server/raw_stream_call.ts): one connection per peer.
 *
 * @module
 */

import type { Transport } from "@connectrpc/connect";
import {
  createGrpcTransport,
  type GrpcTransportOptions,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { checkServerIdentity, type PeerCertificate } from "node:tls";
import type { CredentialsStore } from "./credentials.ts";
import { peerIdsOf, peerUri } from "./peer_identity.ts";

/** Options of a dialed transport other than where and how to secure it. */
export type DialOptions = Omit<GrpcTransportOptions, "baseUrl" | "nodeOptions">;

/** Makes transports to peers; {@link TlsDialer} or none (plaintext). */
export interface PeerDialer {
  /** A transport to `host:port`, where member `peerId` (if known) must answer. */
  transport(host: string, port: number, options: DialOptions, peerId?: number): Transport;
  /**
   * The HTTP/2 session to `host:port` in use now (a new one after a credentials
   * reload), for calls written on it directly (src/server/raw_stream_call.ts); a
   * transport made with {@link PeerDialer.transportOver} on the same function
   * shares it.
   */
  sessions?(
    host: string,
    port: number,
    options: DialOptions,
    peerId?: number,
  ): () => Http2SessionManager;
  /** A transport whose calls go on the session `sessions` gives at each call. */
  transportOver?(
    host: string,
    port: number,
    options: DialOptions,
    sessions: () => Http2SessionManager,
  ): Transport;
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
    return this.transportOver(host, port, options, this.sessions(host, port, options, peerId));
  }

  sessions(
    host: string,
    port: number,
    options: DialOptions,
    peerId?: number,
  ): () => Http2SessionManager {
    const store = this.#store;
    let generation = -1;
    let session: Http2SessionManager | undefined;
    return () => {
      if (session === undefined || generation !== store.generation) {
        const c = store.current;
        generation = store.generation;
        // Connect's transport options, as createGrpcTransport gives them its session.
        session = new Http2SessionManager(httpsUrl(host, port), {
          pingIntervalMs: options.pingIntervalMs,
          pingIdleConnection: options.pingIdleConnection,
          pingTimeoutMs: options.pingTimeoutMs,
          idleConnectionTimeoutMs: options.idleConnectionTimeoutMs,
          connectTimeoutMs: options.connectTimeoutMs,
        }, {
          cert: c.certPem,
          key: c.keyPem,
          ...(c.peerCa !== undefined ? { ca: c.peerCa.pem } : {}),
          checkServerIdentity: (name: string, cert: PeerCertificate) =>
            checkServerIdentity(name, cert) ?? checkMember(host, port, cert, peerId),
        });
      }
      return session;
    };
  }

  transportOver(
    host: string,
    port: number,
    options: DialOptions,
    sessions: () => Http2SessionManager,
  ): Transport {
    // A new session (a reload) gets a new transport; calls on the old one finish on
    // it, and its connection closes when idle.
    let last: Http2SessionManager | undefined;
    let inner: Transport | undefined;
    const current = (): Transport => {
      const session = sessions();
      if (inner === undefined || session !== last) {
        last = session;
        inner = createGrpcTransport({
          ...options,
          baseUrl: httpsUrl(host, port),
          sessionManager: session,
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
