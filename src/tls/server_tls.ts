/**
 * The TLS side of the node's server: HTTP/2 over TLS with ALPN `h2` only
 * (gRPC needs HTTP/2; an HTTP/1 client is refused in the handshake), asking
 * every client for a certificate without requiring one (caller.ts says why), and
 * serving new credentials as soon as they are in use: `setSecureContext` applies
 * to new connections, open ones keep theirs until they close.
 *
 * @module
 */

import type * as http2 from "node:http2";
import type { SecureContextOptions } from "node:tls";
import type { Credentials, CredentialsStore } from "./credentials.ts";

/** The CA certificates a handshake accepts client certificates of: peer and client CAs. */
function trusted(c: Credentials): string[] {
  return [...new Set([c.peerCa?.pem, c.clientCa?.pem].filter((p) => p !== undefined))];
}

/** The secure context of `c`: certificate, key, and the CAs client certificates are checked with. */
export function secureContextOptions(c: Credentials): SecureContextOptions {
  const ca = trusted(c);
  return { cert: c.certPem, key: c.keyPem, ...(ca.length > 0 ? { ca } : {}) };
}

/** Options for `http2.createSecureServer`, on top of `base` (the HTTP/2 limits). */
export function secureServerOptions(
  c: Credentials,
  base: http2.ServerOptions,
): http2.SecureServerOptions {
  return {
    ...base,
    ...secureContextOptions(c),
    ALPNProtocols: ["h2"],
    allowHTTP1: false,
    // Asked for, checked per call (caller.ts): a probe without one still gets Health.
    requestCert: trusted(c).length > 0,
    rejectUnauthorized: false,
  };
}

/** Makes `server` serve every new set of credentials of `store`; returns the unsubscriber. */
export function followCredentials(
  server: http2.Http2SecureServer,
  store: CredentialsStore,
): () => void {
  return store.onChange((c) => server.setSecureContext(secureContextOptions(c)));
}
