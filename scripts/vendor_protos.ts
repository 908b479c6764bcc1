/**
 * Fetches the npm packages that ship the gRPC reflection and health `.proto`
 * files into `.cache/vendor_protos/`, where `buf.gen.yaml` reads them as
 * `tarball:` inputs. `deno task generate` runs it before `buf generate`.
 *
 * | Package             | Version | Protos (inside the tarball)                                    |
 * | ------------------- | ------- | -------------------------------------------------------------- |
 * | `@grpc/reflection`  | 1.0.4   | `build/proto/grpc/reflection/{v1,v1alpha}/reflection.proto`    |
 * | `grpc-health-check` | 2.1.0   | `proto/health/v1/health.proto`                                 |
 *
 * Each tarball is downloaded from the npm registry (`$NPM_CONFIG_REGISTRY`, or
 * registry.npmjs.org) and checked against the `dist.integrity` the registry
 * published for that version, pinned below; a tarball already in the cache is
 * kept if it still matches. The cache directory ignores itself for git (it holds
 * a `.gitignore` of `*`), so nothing here is committed: only what buf generates
 * from it, under `src/gen/`.
 *
 * To move a pin, change the version and the integrity (`npm view PKG@VER dist.integrity`)
 * together, and the file names in `buf.gen.yaml`.
 *
 * ```sh
 * deno run --allow-net --allow-read=. --allow-write=.cache --allow-env=NPM_CONFIG_REGISTRY scripts/vendor_protos.ts
 * ```
 *
 * @module
 */

/** One pinned npm package whose tarball holds `.proto` files. */
export interface VendorPackage {
  /** The npm name, `@grpc/reflection`. */
  readonly name: string;
  /** The exact version. */
  readonly version: string;
  /** The registry's `dist.integrity` of that version: `sha512-<base64>`. */
  readonly integrity: string;
}

/** The packages `buf.gen.yaml` takes protos from. */
export const VENDOR_PACKAGES: readonly VendorPackage[] = [
  {
    name: "@grpc/reflection",
    version: "1.0.4",
    integrity:
      "sha512-znA8v4AviOD3OPOxy11pxrtP8k8DanpefeTymS8iGW1fVr1U2cHuzfhYqDPHnVNDf4qvF9E25KtSihPy2DBWfQ==",
  },
  {
    name: "grpc-health-check",
    version: "2.1.0",
    integrity:
      "sha512-HH3WjwNtusMTEQAtRelFgsFyNcOdihvpjusNDIrGYfWG8tPNSHqELrSyriIjm70k65YSxetsKG1y4H1L5gi1wQ==",
  },
];

/** Where the tarballs go, relative to the repository root (buf.gen.yaml names the same path). */
export const CACHE_DIR = ".cache/vendor_protos";

/**
 * The file name of a package's tarball, as `npm pack` names it:
 * `@grpc/reflection@1.0.4` → `grpc-reflection-1.0.4.tgz`.
 */
export function tarballName(pkg: VendorPackage): string {
  return `${pkg.name.replace(/^@/, "").replace("/", "-")}-${pkg.version}.tgz`;
}

/** The registry URL of a package's tarball: `<registry>/@grpc/reflection/-/reflection-1.0.4.tgz`. */
export function tarballUrl(pkg: VendorPackage, registry: string): string {
  const base = registry.endsWith("/") ? registry : `${registry}/`;
  const unscoped = pkg.name.replace(/^@[^/]+\//, "");
  return `${base}${pkg.name}/-/${unscoped}-${pkg.version}.tgz`;
}

/** The Subresource-Integrity string of bytes, `sha512-<base64>`, as npm computes it. */
export async function sha512Integrity(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-512", bytes));
  let binary = "";
  for (const b of digest) binary += String.fromCharCode(b);
  return `sha512-${btoa(binary)}`;
}

async function readIfPresent(path: string): Promise<Uint8Array<ArrayBuffer> | undefined> {
  try {
    return await Deno.readFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/**
 * Makes sure `dir` holds every package's tarball, matching its pinned integrity;
 * downloads the missing or mismatching ones. Returns the paths, in package order.
 *
 * @throws {Error} when a download fails or its bytes do not match the pin
 */
export async function ensureVendorTarballs(
  dir: string,
  registry: string,
  packages: readonly VendorPackage[] = VENDOR_PACKAGES,
): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/.gitignore`,
    "# Written by scripts/vendor_protos.ts: downloaded tarballs, never committed.\n*\n",
  );
  const paths: string[] = [];
  for (const pkg of packages) {
    const path = `${dir}/${tarballName(pkg)}`;
    paths.push(path);
    const cached = await readIfPresent(path);
    if (cached !== undefined && (await sha512Integrity(cached)) === pkg.integrity) continue;
    const url = tarballUrl(pkg, registry);
    const res = await fetch(url);
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`GET ${url}: HTTP ${res.status} ${res.statusText}`);
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    const got = await sha512Integrity(bytes);
    if (got !== pkg.integrity) {
      throw new Error(
        `${pkg.name}@${pkg.version} from ${url} does not match its pinned integrity:\n` +
          `  pinned ${pkg.integrity}\n  got    ${got}`,
      );
    }
    const tmp = `${path}.${crypto.randomUUID()}.tmp`;
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  }
  return paths;
}

if (import.meta.main) {
  const registry = Deno.env.get("NPM_CONFIG_REGISTRY") ?? "https://registry.npmjs.org/";
  try {
    await ensureVendorTarballs(CACHE_DIR, registry);
  } catch (err) {
    console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    Deno.exit(1);
  }
}
