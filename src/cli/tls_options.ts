/**
 * The CLI's TLS options, `--cacert`, `--cert`, `--key` (curl's and etcdctl's
 * names), each with a variable (`RAFTKV_CACERT`, `RAFTKV_CERT`, `RAFTKV_KEY`):
 * parsed with the other options (main.ts), read before the first call so a missing
 * file is a usage error, not a failed request.
 *
 * @module
 */

/** A TLS option that cannot be used; main.ts reports it as a usage error (exit 2). */
export class TlsOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TlsOptionError";
  }
}

/** The TLS options the CLI takes. */
export type TlsOption = "--cacert" | "--cert" | "--key";

const OPTIONS: readonly TlsOption[] = ["--cacert", "--cert", "--key"];

/** Their variables, read when the option is absent. */
export const CLIENT_TLS_ENV: readonly string[] = ["RAFTKV_CACERT", "RAFTKV_CERT", "RAFTKV_KEY"];

/** Whether `name` is one of the TLS options. */
export function isTlsOption(name: string): name is TlsOption {
  return (OPTIONS as readonly string[]).includes(name);
}

/** Paths given for TLS. */
export interface ClientTlsFiles {
  readonly cacert: string;
  readonly cert: string | undefined;
  readonly key: string | undefined;
}

/** What node:http2 takes to dial with them: PEM texts. */
export interface ClientTlsPem {
  readonly ca: string;
  readonly cert?: string;
  readonly key?: string;
}

/**
 * The TLS files from the options given (`raw`) or their variables, or undefined when
 * none is set. A certificate needs its key and both need --cacert.
 *
 * @throws {TlsOptionError} on a lone --cert or --key, or either without --cacert
 */
export function parseTlsOptions(
  raw: ReadonlyMap<TlsOption, { value: string; source: string }>,
  env: Record<string, string | undefined>,
): ClientTlsFiles | undefined {
  const get = (option: TlsOption, variable: string) => {
    const given = raw.get(option);
    if (given !== undefined) return given;
    const value = env[variable];
    return value === undefined || value === "" ? undefined : { value, source: variable };
  };
  const cacert = get("--cacert", "RAFTKV_CACERT");
  const cert = get("--cert", "RAFTKV_CERT");
  const key = get("--key", "RAFTKV_KEY");
  if (cert !== undefined && key === undefined) {
    throw new TlsOptionError(`Cannot use ${cert.source} without --key (or RAFTKV_KEY)`);
  }
  if (key !== undefined && cert === undefined) {
    throw new TlsOptionError(`Cannot use ${key.source} without --cert (or RAFTKV_CERT)`);
  }
  if (cacert === undefined) {
    if (cert !== undefined) {
      throw new TlsOptionError(
        `Cannot use ${cert.source} without --cacert (or RAFTKV_CACERT): a client ` +
          `certificate is for TLS, which needs the CA that signed the nodes' certificates`,
      );
    }
    return undefined;
  }
  return { cacert: cacert.value, cert: cert?.value, key: key?.value };
}

async function read(option: string, file: string): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch (err) {
    throw new TlsOptionError(`Cannot read ${option} ${file}: ${(err as Error).message}`);
  }
}

/** Reads the files. @throws {TlsOptionError} naming the option and file that cannot be read */
export async function readClientTls(files: ClientTlsFiles): Promise<ClientTlsPem> {
  const ca = await read("--cacert", files.cacert);
  if (files.cert === undefined || files.key === undefined) return { ca };
  return { ca, cert: await read("--cert", files.cert), key: await read("--key", files.key) };
}
