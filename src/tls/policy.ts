/**
 * The authorization policy file (`--auth-policy FILE`): which client identities
 * (the CN of their certificate, caller.ts) may read, write or administer, by key
 * prefix. YAML (or JSON, which YAML reads too):
 *
 * ```yaml
 * rules:
 *   - identity: alice          # a client certificate's CN; "*" is every client
 *     read: ["app/"]           # key prefixes; "" is every key
 *     write: ["app/"]
 *   - identity: ops
 *     read: [""]
 *     admin: true              # ClusterService: Status, SnapshotSave (every key!)
 * ```
 *
 * Rules only grant; what no rule grants is refused. Like etcd's roles, a
 * permission is a key prefix; unlike them, identities are named in the file, not
 * in the cluster's state, so the file is the whole truth and reloading it (SIGHUP,
 * or a change seen by reload.ts) is the whole update.
 *
 * @module
 */

// The YAML parser is imported when a policy is read, not with this module: the
// server imports this module for its permission checks, and a node without a
// policy file need not load a YAML parser at start (README, "Start-up time").

/** The three permissions. */
export type Permission = "read" | "write" | "admin";

/** What one identity may do. */
export interface Grant {
  readonly read: readonly string[];
  readonly write: readonly string[];
  readonly admin: boolean;
}

/** A parsed policy: grants by identity, `*` for every client. */
export interface Policy {
  readonly file: string;
  readonly grants: ReadonlyMap<string, Grant>;
}

/** A policy that cannot be used; the message names the file and the rule. */
export class PolicyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PolicyError";
  }
}

const RULE_FIELDS = new Set(["identity", "read", "write", "admin"]);

function prefixes(value: unknown, where: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw new PolicyError(`${where} must be a list of key prefixes (strings)`);
  }
  return value as string[];
}

/**
 * Parses the text of a policy file.
 *
 * @throws {PolicyError} `Cannot use --auth-policy FILE: ...`, naming the rule at fault
 */
export async function parsePolicy(text: string, file: string): Promise<Policy> {
  const fail = (why: string): never => {
    throw new PolicyError(`Cannot use --auth-policy ${file}: ${why}`);
  };
  const { parse } = await import("yaml");
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    fail(`it is not YAML (${(err as Error).message.split("\n")[0]})`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    return fail('expected a mapping with a "rules" list');
  }
  const top = doc as Record<string, unknown>;
  for (const k of Object.keys(top)) {
    if (k !== "rules") fail(`unknown field "${k}" (only "rules")`);
  }
  if (!Array.isArray(top.rules)) return fail('"rules" must be a list');
  const grants = new Map<string, { read: string[]; write: string[]; admin: boolean }>();
  top.rules.forEach((rule: unknown, i: number) => {
    const where = `rule ${i + 1}`;
    if (typeof rule !== "object" || rule === null || Array.isArray(rule)) {
      fail(`${where} must be a mapping`);
    }
    const r = rule as Record<string, unknown>;
    for (const k of Object.keys(r)) {
      if (!RULE_FIELDS.has(k)) {
        fail(`${where} has unknown field "${k}" (identity, read, write, admin)`);
      }
    }
    if (typeof r.identity !== "string" || r.identity === "") {
      fail(`${where} needs an "identity" (a client certificate's CN, or "*")`);
    }
    if (r.admin !== undefined && typeof r.admin !== "boolean") {
      fail(`${where}: "admin" must be true or false`);
    }
    let read: string[] = [], write: string[] = [];
    try {
      read = prefixes(r.read, `${where}: "read"`);
      write = prefixes(r.write, `${where}: "write"`);
    } catch (err) {
      fail((err as Error).message);
    }
    const g = grants.get(r.identity as string) ?? { read: [], write: [], admin: false };
    g.read.push(...read);
    g.write.push(...write);
    g.admin ||= r.admin === true;
    grants.set(r.identity as string, g);
  });
  return { file, grants };
}

/** Reads and parses a policy file. */
export async function loadPolicy(file: string): Promise<Policy> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (err) {
    throw new PolicyError(`Cannot read --auth-policy ${file}: ${(err as Error).message}`);
  }
  return await parsePolicy(text, file);
}

/** Whether `policy` grants `identity` the `permission` on `key` (undefined: any key). */
export function allows(
  policy: Policy,
  identity: string,
  permission: Permission,
  key: string | undefined,
): boolean {
  for (const who of [identity, "*"]) {
    const g = policy.grants.get(who);
    if (g === undefined) continue;
    if (permission === "admin") {
      if (g.admin) return true;
      continue;
    }
    const list = permission === "read" ? g.read : g.write;
    if (key === undefined ? list.length > 0 : list.some((p) => key.startsWith(p))) return true;
  }
  return false;
}

/**
 * Whether `policy` grants `identity` the `permission` on every key in `range`: one
 * granted prefix must hold the whole range (its start has the prefix, and its end
 * has it too or is the prefix's end; "" grants everything).
 */
export function allowsRange(
  policy: Policy,
  identity: string,
  permission: "read" | "write" | "admin",
  range: { readonly start: string; readonly end: string },
): boolean {
  if (permission === "admin") return allows(policy, identity, permission, undefined);
  for (const who of [identity, "*"]) {
    const g = policy.grants.get(who);
    if (g === undefined) continue;
    const list = permission === "read" ? g.read : g.write;
    for (const p of list) {
      if (p === "") return true;
      if (!range.start.startsWith(p) || range.end === "") continue;
      if (range.end.startsWith(p) || range.end === prefixEnd(p)) return true;
    }
  }
  return false;
}

/** The first key after every key with prefix `p` ("" when there is none), as etcd's prefix end. */
export function prefixEnd(p: string): string {
  for (let i = p.length - 1; i >= 0; i--) {
    const c = p.charCodeAt(i);
    if (c < 0xffff) return p.slice(0, i) + String.fromCharCode(c + 1);
  }
  return "";
}
