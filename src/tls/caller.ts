/**
 * Who is calling, from the certificate the client presented in the TLS handshake.
 *
 * The server asks every client for a certificate but lets the handshake finish
 * without one, or with one it does not trust (server_tls.ts): a refused call then
 * gets a gRPC status that says why (UNAUTHENTICATED: "expired on ...", "not signed by
 * the client CA"), which a failed handshake cannot, and Health and reflection stay
 * reachable for probes that carry no certificate. The checks the handshake skipped
 * are made here, per connection: signed by a certificate of the CA file (directly;
 * intermediates are not followed), valid now, and for a peer a SAN URI naming one
 * member (peer_identity.ts).
 *
 * @module
 */

import { X509Certificate } from "node:crypto";
import type { TLSSocket } from "node:tls";
import type { CaBundle, Credentials } from "./credentials.ts";
import { validityProblem } from "./credentials.ts";
import { peerIdsOf, peerUri } from "./peer_identity.ts";

/** The caller of one connection. */
export type Caller =
  /** TLS is off: nobody is authenticated, and nothing is checked. */
  | { readonly kind: "plaintext" }
  /** A certificate the peer CA signed, naming member `id`. */
  | { readonly kind: "peer"; readonly id: number; readonly subject: string }
  /** A certificate the client CA signed; `name` is its CN. */
  | { readonly kind: "client"; readonly name: string; readonly subject: string }
  /** No certificate, or one that cannot be trusted: `why`, in words, for the refusal. */
  | { readonly kind: "unauthenticated"; readonly why: string };

/** How a caller is named in refusals: `client "alice"`, `node 2`. */
export function describeCaller(caller: Caller): string {
  switch (caller.kind) {
    case "plaintext":
      return "a plaintext caller";
    case "peer":
      return `node ${caller.id} (certificate ${caller.subject})`;
    case "client":
      return `client "${caller.name}"`;
    case "unauthenticated":
      return "an unauthenticated caller";
  }
}

function signedBy(cert: X509Certificate, ca: CaBundle | undefined): boolean {
  if (ca === undefined) return false;
  return ca.certs.some((c) => {
    try {
      return cert.checkIssued(c) && cert.verify(c.publicKey);
    } catch {
      return false;
    }
  });
}

function commonName(subject: string): string | undefined {
  for (const line of subject.split("\n")) {
    if (line.startsWith("CN=")) return line.slice(3);
  }
  return undefined;
}

/** The one-line subject of a certificate, for messages: `CN=alice`. */
function oneLine(subject: string): string {
  return subject.split("\n").join(", ");
}

/**
 * Classifies the certificate a client presented (`raw`, DER, or undefined when it
 * presented none) against the CAs in use at `now`.
 */
export function classifyCertificate(
  raw: Uint8Array | undefined,
  credentials: Pick<Credentials, "peerCa" | "clientCa">,
  now: Date = new Date(),
): Caller {
  if (raw === undefined || raw.length === 0) {
    return { kind: "unauthenticated", why: "it presented no client certificate" };
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(raw);
  } catch (err) {
    return { kind: "unauthenticated", why: `its certificate does not parse (${err})` };
  }
  const subject = oneLine(cert.subject);
  const problem = validityProblem(cert, now);
  if (problem !== undefined) {
    return { kind: "unauthenticated", why: `its certificate ${subject} is ${problem}` };
  }
  const ids = peerIdsOf(cert.subjectAltName);
  if (ids.length > 0 && signedBy(cert, credentials.peerCa)) {
    if (ids.length > 1) {
      return {
        kind: "unauthenticated",
        why: `its certificate ${subject} names more than one member (${
          ids.map(peerUri).join(", ")
        })`,
      };
    }
    return { kind: "peer", id: ids[0] as number, subject };
  }
  if (signedBy(cert, credentials.clientCa)) {
    const name = commonName(cert.subject);
    if (name === undefined || name === "") {
      return { kind: "unauthenticated", why: `its certificate ${subject} has no CN to name it` };
    }
    return { kind: "client", name, subject };
  }
  const cas = [credentials.peerCa, credentials.clientCa].filter((c) => c !== undefined)
    .map((c) => c.file);
  return {
    kind: "unauthenticated",
    why: `its certificate ${subject} (issuer ${oneLine(cert.issuer)}) is not signed by ${
      cas.length === 0 ? "any CA this node trusts" : [...new Set(cas)].join(" or ")
    }`,
  };
}

/** The caller of a connection: plaintext unless `socket` is TLS. */
export function callerOfSocket(
  socket: unknown,
  credentials: Pick<Credentials, "peerCa" | "clientCa"> | undefined,
): Caller {
  const tls = socket as Partial<TLSSocket> | undefined;
  if (credentials === undefined || typeof tls?.getPeerCertificate !== "function") {
    return { kind: "plaintext" };
  }
  const peer = tls.getPeerCertificate(false) as { raw?: Uint8Array } | null;
  return classifyCertificate(peer?.raw, credentials);
}
