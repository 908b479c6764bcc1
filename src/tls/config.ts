/**
 * What a node's TLS is made of, as the flags give it (flags.ts): file paths only.
 * The files are read, checked and watched by credentials.ts and reload.ts.
 *
 * @module
 */

/** The TLS settings of a node: on when {@link TlsConfig} is given at all. */
export interface TlsConfig {
  /** `--tls-cert`: this node's certificate (PEM), served to clients and presented to peers. */
  readonly certFile: string;
  /** `--tls-key`: the certificate's private key (PEM). */
  readonly keyFile: string;
  /**
   * `--peer-ca` (or `--ca`): CA certificates (PEM) that sign peer certificates.
   * When set, peer traffic is mutual TLS and RaftService takes calls only from a
   * peer certificate naming the sending member (peer_identity.ts).
   */
  readonly peerCaFile: string | undefined;
  /**
   * `--client-ca` (or `--ca`): CA certificates (PEM) that sign client certificates.
   * When set, KVService and ClusterService calls need a certificate it signed.
   */
  readonly clientCaFile: string | undefined;
  /** `--auth-policy`: who may read, write or administer what (policy.ts); needs a client CA. */
  readonly authPolicyFile: string | undefined;
}

/** Every file of a {@link TlsConfig}, for permission checks and messages. */
export function tlsFiles(config: TlsConfig): { flag: string; file: string }[] {
  const files = [
    { flag: "--tls-cert", file: config.certFile },
    { flag: "--tls-key", file: config.keyFile },
  ];
  if (config.peerCaFile !== undefined) files.push({ flag: "--peer-ca", file: config.peerCaFile });
  if (config.clientCaFile !== undefined) {
    files.push({ flag: "--client-ca", file: config.clientCaFile });
  }
  if (config.authPolicyFile !== undefined) {
    files.push({ flag: "--auth-policy", file: config.authPolicyFile });
  }
  return files;
}
