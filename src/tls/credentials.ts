/**
 * A node's certificate, key and CA certificates, read from their files and checked
 * before use: {@link loadCredentials} refuses a key that does not match its
 * certificate, a certificate not valid now, a file that holds no PEM of the kind
 * it should, and (with a peer CA) a node certificate that does not name this
 * member. {@link CredentialsStore} holds the set in use and swaps in a new one
 * only when it loads whole and checked, so a rotation caught half-way (the new
 * certificate written, the old key still there) keeps the old pair until the next
 * try (reload.ts), as etcd does when it reloads on handshake
 * (client/pkg/transport/listener.go).
 *
 * @module
 */

import { createPrivateKey, X509Certificate } from "node:crypto";
import type { TlsConfig } from "./config.ts";
import { peerIdsOf, peerUri } from "./peer_identity.ts";

/** A file that cannot be used as the flag says; the message names flag, file and why. */
export class CredentialsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CredentialsError";
  }
}

/** CA certificates from one file (a bundle may hold several). */
export interface CaBundle {
  readonly file: string;
  readonly pem: string;
  readonly certs: readonly X509Certificate[];
}

/** One checked set of TLS files, as they were when read. */
export interface Credentials {
  readonly certPem: string;
  readonly keyPem: string;
  readonly cert: X509Certificate;
  readonly peerCa: CaBundle | undefined;
  readonly clientCa: CaBundle | undefined;
  /** Every file's text, to tell whether a reload changes anything. */
  readonly fingerprint: string;
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

async function readText(flag: string, file: string): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch (err) {
    if (err instanceof Deno.errors.NotCapable) {
      throw new CredentialsError(
        `Cannot read ${flag} ${file}: Deno's permissions do not grant it ` +
          `(\`deno task node\` grants ./data and ./tls; README, "Securing a cluster")`,
      );
    }
    throw new CredentialsError(`Cannot read ${flag} ${file}: ${(err as Error).message}`);
  }
}

function parseCerts(flag: string, file: string, pem: string): X509Certificate[] {
  const blocks = pem.match(CERT_BLOCK) ?? [];
  if (blocks.length === 0) {
    throw new CredentialsError(`Cannot use ${flag} ${file}: it holds no PEM certificate`);
  }
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new CredentialsError(
        `Cannot use ${flag} ${file}: certificate ${i + 1} does not parse (${
          (err as Error).message
        })`,
      );
    }
  });
}

async function loadCa(flag: string, file: string | undefined): Promise<CaBundle | undefined> {
  if (file === undefined) return undefined;
  const pem = await readText(flag, file);
  return { file, pem, certs: parseCerts(flag, file, pem) };
}

/** Whether `cert` is valid at `now`; else why not, in words. */
export function validityProblem(cert: X509Certificate, now: Date): string | undefined {
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  if (now < from) return `not valid before ${from.toISOString()}`;
  if (now > to) return `expired on ${to.toISOString()}`;
  return undefined;
}

/**
 * Reads and checks the files of `config`, for member `selfId`.
 *
 * @throws {CredentialsError} naming the flag and file at fault
 */
export async function loadCredentials(
  config: TlsConfig,
  selfId: number,
  now: Date = new Date(),
): Promise<Credentials> {
  const [certPem, keyPem, peerCa, clientCa] = await Promise.all([
    readText("--tls-cert", config.certFile),
    readText("--tls-key", config.keyFile),
    loadCa("--peer-ca", config.peerCaFile),
    loadCa("--client-ca", config.clientCaFile),
  ]);
  const [cert] = parseCerts("--tls-cert", config.certFile, certPem) as [X509Certificate];
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new CredentialsError(
      `Cannot use --tls-key ${config.keyFile}: it holds no PEM private key (${
        (err as Error).message
      })`,
    );
  }
  if (!cert.checkPrivateKey(key)) {
    throw new CredentialsError(
      `Cannot use --tls-key ${config.keyFile}: it is not the key of --tls-cert ${config.certFile}`,
    );
  }
  const problem = validityProblem(cert, now);
  if (problem !== undefined) {
    throw new CredentialsError(`Cannot use --tls-cert ${config.certFile}: it is ${problem}`);
  }
  if (peerCa !== undefined && !peerIdsOf(cert.subjectAltName).includes(selfId)) {
    // Peers would refuse every message of this node: say so now, not in their logs.
    throw new CredentialsError(
      `Cannot use --tls-cert ${config.certFile} with --peer-ca: it does not name this node ` +
        `(its SAN must hold URI:${peerUri(selfId)}; it has ${cert.subjectAltName ?? "no SAN"})`,
    );
  }
  return {
    certPem,
    keyPem,
    cert,
    peerCa,
    clientCa,
    fingerprint: [certPem, keyPem, peerCa?.pem ?? "", clientCa?.pem ?? ""].join("\0"),
  };
}

/** The credentials in use, and who to tell when they change. */
export class CredentialsStore {
  #current: Credentials;
  #generation = 0;
  readonly #config: TlsConfig;
  readonly #selfId: number;
  readonly #listeners = new Set<(c: Credentials) => void>();

  private constructor(config: TlsConfig, selfId: number, first: Credentials) {
    this.#config = config;
    this.#selfId = selfId;
    this.#current = first;
  }

  /** Loads the files once; throws {@link CredentialsError} if they cannot be used. */
  static async open(config: TlsConfig, selfId: number): Promise<CredentialsStore> {
    return new CredentialsStore(config, selfId, await loadCredentials(config, selfId));
  }

  get config(): TlsConfig {
    return this.#config;
  }

  /** The set in use. */
  get current(): Credentials {
    return this.#current;
  }

  /** Goes up by one on every change, so dialers can tell their connections are stale. */
  get generation(): number {
    return this.#generation;
  }

  /** Calls `listener` with every new set, after it is in use. */
  onChange(listener: (c: Credentials) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Reads the files again; if they changed and load whole and checked, puts them
   * in use and returns true. Unchanged: false.
   *
   * @throws {CredentialsError} when the files changed but cannot be used (the old
   *   set stays in use)
   */
  async reload(): Promise<boolean> {
    const next = await loadCredentials(this.#config, this.#selfId);
    if (next.fingerprint === this.#current.fingerprint) return false;
    this.#current = next;
    this.#generation++;
    for (const l of this.#listeners) l(next);
    return true;
  }
}
