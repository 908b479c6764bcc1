/**
 * Test certificates, made by the tests themselves with `openssl` in a temp dir:
 * no private key is ever committed.
 *
 * {@link makePki} makes a CA and, on demand, certificates it signs:
 * - node certificates as raftkv expects them (README, "Securing a cluster"): a SAN
 *   URI `raftkv://node/<id>` naming the member, plus `DNS:localhost` and
 *   `IP:127.0.0.1` so that peers dialing 127.0.0.1 can verify the host, usable
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

async function makeCa(dir: string, name: string): Promise<TestCa> {
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
    "30",
    "-subj",
    `/CN=${name}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ], dir);
  await Deno.writeTextFile(`${dir}/${name}.cnf`, caConfig(name));
  await Deno.writeTextFile(`${dir}/${name}.index`, "");
  await Deno.writeTextFile(`${dir}/${name}.serial`, "1000\n");
  let serial = 0;

  const issue = async (
    file: string,
    cn: string,
    extensions: string,
    expired: boolean,
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
        "30",
        "-out",
        `${file}.crt`,
        "-extfile",
        ext,
        "-extensions",
        "v3",
      ], dir);
    }
    return { cert: `${dir}/${file}.crt`, key: `${dir}/${file}.key` };
  };

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
          `subjectAltName=URI:raftkv://node/${id},DNS:localhost,IP:127.0.0.1`,
        ].join("\n"),
        options.expired ?? false,
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
