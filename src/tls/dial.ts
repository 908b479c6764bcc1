/**
 * Dialing peers over mutual TLS: the node presents its own certificate and checks
 * the peer's against the peer CA (and its address against the certificate's SANs:
 * list the host peers dial, a DNS name or IP, in every node certificate).
 *
 * A transport here follows the credentials in use: after a reload (reload.ts) the
 * next call builds a new connection with the new certificate; calls on the old
 * connection finish on it, and it closes when idle.
 *
 * @module
 */

import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport, type GrpcTransportOptions } from "@connectrpc/connect-node";
import type { CredentialsStore } from "./credentials.ts";

/** Options of a dialed transport other than where and how to secure it. */
export type DialOptions = Omit<GrpcTransportOptions, "baseUrl" | "nodeOptions">;

/** Makes transports to peers; {@link TlsDialer} or none (plaintext). */
export interface PeerDialer {
  /** A transport to `host:port`. */
  transport(host: string, port: number, options: DialOptions): Transport;
}

/** `https://host:port`, with IPv6 hosts bracketed. */
export function httpsUrl(host: string, port: number): string {
  return `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Dials peers with the node's credentials, following their reloads. */
export class TlsDialer implements PeerDialer {
  readonly #store: CredentialsStore;

  constructor(store: CredentialsStore) {
    this.#store = store;
  }

  transport(host: string, port: number, options: DialOptions): Transport {
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
