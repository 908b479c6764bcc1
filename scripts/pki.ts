/**
 * Certificates for raftkv, made with `openssl`: for the tests (in a temp dir, so no
 * private key is ever committed) and for operators, as `deno task certs`:
 *
 * ```sh
 * deno task certs --dir ./tls --nodes 3 --clients ops,alice [--hosts raftkv-0.raftkv,...]
 * ```
 *
 * writes `ca.crt`/`ca.key` (reused if present), `node-<id>.crt`/`.key` for ids
 * 1..N and `<name>.crt`/`.key` per client (README, "Securing a cluster").
 *
 * {@link makePki} makes a CA and, on demand, certificates it signs:
 * - node certificates as raftkv expects them (README, "Securing a cluster"): a SAN
 *   URI `raftkv://node/<id>` naming the member, plus `DNS:localhost` and
 *   `IP:127.0.0.1` (and any `hosts` given) so that peers dialing them can verify
 *   the host, usable
 *   as server and client (EKU serverAuth, clientAuth);
 * - client certificates whose identity is their CN (EKU clientAuth);
 * - an expired client certificate, and a CA of its own for "another CA" cases.
 *
 * Keys are EC P-256: quick to make, and what Deno's TLS (rustls) accepts.
 *
 * @module
 */

/** A certificate and its key, as PEM file paths. */
export interface CertFiles {
  readonly cert: string;
  readonly key: string;
}

/** A CA: its certificate and key files, and the certificates it issues. */
export interface TestCa {
  /** The CA certificate (PEM path): what `--peer-ca`/`--client-ca`/`--cacert` take. */
  readonly cert: string;
  readonly key: string;
  /** A node certificate for member `id`, written as `<name>.crt`/`.key` (name defaults to node-<id>). */
  node(id: number, options?: IssueOptions): Promise<CertFiles>;
  /** A client certificate with CN `name`. */
  client(name: string, options?: IssueOptions): Promise<CertFiles>;
}

/** Options of one issued certificate. */
export interface IssueOptions {
  /** File base name in the PKI dir (default: node-<id> or client-<name>). */
  readonly file?: string;
  /** Validity ended in the past (2020-01-01 to 2020-01-02). */
  readonly expired?: boolean;
  /** More DNS names or IPs for a node certificate, beside localhost and 127.0.0.1. */
  readonly hosts?: readonly string[];
  /** Days of validity (30 by default). */
  readonly days?: number;
}

/** A temp dir holding test CAs and their certificates. */
export interface TestPki {
  readonly dir: string;
  /** The main CA. */
  readonly ca: TestCa;
  /** Makes another, unrelated CA (for "a certificate from another CA"). */
  otherCa(name: string): Promise<TestCa>;
  /** Removes the temp dir. */
  cleanup(): Promise<void>;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `openssl ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}

/** An `openssl ca` configuration: only needed for certificates with chosen dates (expired). */
function caConfig(name: string): string {
  return `[ca]
default_ca = this
[this]
database = ${name}.index
new_certs_dir = .
serial = ${name}.serial
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[any]
commonName = supplied
`;
}

/** Makes CA `name` in `dir`, or takes the one there (`<name>.crt`, `<name>.key`). */
export async function makeCa(dir: string, name: string, days = 30): Promise<TestCa> {
  const exists = await Deno.stat(`${dir}/${name}.key`).then(() => true, () => false);
  if (!exists) await newCa(dir, name, days);
  await Deno.writeTextFile(`${dir}/${name}.cnf`, caConfig(name));
  await Deno.writeTextFile(`${dir}/${name}.index`, "");
  await Deno.writeTextFile(`${dir}/${name}.serial`, "1000\n");
  return issuer(dir, name);
}

async function newCa(dir: string, name: string, days: number): Promise<void> {
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.crt`,
    "-days",
    String(days),
    "-subj",
    `/CN=${name}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ], dir);
}

function issuer(dir: string, name: string): TestCa {
  let serial = 0;
  const issue = async (
    file: string,
    cn: string,
    extensions: string,
    expired: boolean,
    days: number,
  ): Promise<CertFiles> => {
    const ext = `${file}.ext`;
    await Deno.writeTextFile(`${dir}/${ext}`, `[v3]\n${extensions}\n`);
    await openssl([
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      `${file}.key`,
      "-out",
      `${file}.csr`,
      "-subj",
      `/CN=${cn}`,
    ], dir);
    if (expired) {
      await openssl([
        "ca",
        "-batch",
        "-config",
        `${name}.cnf`,
        "-cert",
        `${name}.crt`,
        "-keyfile",
        `${name}.key`,
        "-in",
        `${file}.csr`,
        "-out",
        `${file}.crt`,
        "-startdate",
        "200101000000Z",
        "-enddate",
        "200102000000Z",
        "-extfile",
        ext,
        "-extensions",
        "v3",
        "-notext",
      ], dir);
    } else {
      serial++;
      await openssl([
        "x509",
        "-req",
        "-in",
        `${file}.csr`,
        "-CA",
        `${name}.crt`,
        "-CAkey",
        `${name}.key`,
        "-set_serial",
        String(Date.now() * 100 + serial),
        "-days",
        String(days),
        "-out",
        `${file}.crt`,
        "-extfile",
        ext,
        "-extensions",
        "v3",
      ], dir);
    }
    await Promise.all([`${file}.csr`, ext].map((f) => Deno.remove(`${dir}/${f}`)));
    await Deno.chmod(`${dir}/${file}.key`, 0o600);
    return { cert: `${dir}/${file}.crt`, key: `${dir}/${file}.key` };
  };
  const san = (id: number, hosts: readonly string[]) =>
    [
      `URI:raftkv://node/${id}`,
      "DNS:localhost",
      "IP:127.0.0.1",
      ...hosts.map((h) => /^[0-9.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`),
    ].join(",");

  return {
    cert: `${dir}/${name}.crt`,
    key: `${dir}/${name}.key`,
    node: (id, options = {}) =>
      issue(
        options.file ?? `${name}-node-${id}`,
        `node-${id}`,
        [
          "basicConstraints=critical,CA:FALSE",
          "keyUsage=critical,digitalSignature,keyEncipherment",
          "extendedKeyUsage=serverAuth,clientAuth",
          `subjectAltName=${san(id, options.hosts ?? [])}`,
        ].join("\n"),
        options.expired ?? false,
        options.days ?? 30,
      ),
    client: (cn, options = {}) =>
      issue(
        options.file ?? `${name}-client-${cn}`,
        cn,
        [
          "basicConstraints=critical,CA:FALSE",
          "keyUsage=critical,digitalSignature,keyEncipherment",
          "extendedKeyUsage=clientAuth",
        ].join("\n"),
        options.expired ?? false,
        options.days ?? 30,
      ),
  };
}

/** Makes a temp dir with a CA named "ca"; remove it with {@link TestPki.cleanup}. */
export async function makePki(): Promise<TestPki> {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-pki-" });
  const ca = await makeCa(dir, "ca");
  return {
    dir,
    ca,
    otherCa: (name) => makeCa(dir, name),
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

/** `deno task certs`: see the module comment. */
async function main(args: string[]): Promise<number> {
  const value = (name: string, fallback: string): string => {
    const i = args.indexOf(`--${name}`);
    return i < 0 ? fallback : args[i + 1] ?? "";
  };
  if (args.includes("--help")) {
    console.log(
      "Usage: deno task certs [--dir ./tls] [--nodes 3] [--clients ops] [--hosts H1,H2] " +
        "[--days 365]\nWrites a CA (reused if DIR has one), node-<id>.crt/.key for ids 1..N " +
        "(SAN URI raftkv://node/<id>, localhost, 127.0.0.1, HOSTS) and <client>.crt/.key (CN " +
        "= the client's identity).",
    );
    return 0;
  }
  const dir = value("dir", "./tls");
  const nodes = Number(value("nodes", "3"));
  const days = Number(value("days", "365"));
  if (!Number.isSafeInteger(nodes) || nodes < 0 || !Number.isSafeInteger(days) || days < 1) {
    console.error("error: --nodes and --days take whole numbers (see --help)");
    return 2;
  }
  const split = (s: string) => s.split(",").map((x) => x.trim()).filter((x) => x !== "");
  const clients = split(value("clients", "ops"));
  const hosts = split(value("hosts", ""));
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = await makeCa(dir, "ca", days);
  for (let id = 1; id <= nodes; id++) {
    await ca.node(id, { file: `node-${id}`, hosts, days });
    console.log(`${dir}/node-${id}.crt, ${dir}/node-${id}.key: node ${id}`);
  }
  for (const name of clients) {
    await ca.client(name, { file: name, days });
    console.log(`${dir}/${name}.crt, ${dir}/${name}.key: client "${name}"`);
  }
  console.log(`${dir}/ca.crt: the CA (keep ${dir}/ca.key safe, or offline)`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
