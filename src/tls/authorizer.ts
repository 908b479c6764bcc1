/**
 * Authorization of client calls against the policy in use (policy.ts): which
 * permission each KVService and ClusterService method needs, on which key, and the
 * refusal that names the identity and the key. Without a policy file, any
 * authenticated client may do anything (as etcd before auth is enabled).
 *
 * @module
 */

import type { Reloadable } from "./reload.ts";
import {
  allows,
  allowsRange,
  loadPolicy,
  type Permission,
  type Policy,
  prefixEnd,
} from "./policy.ts";

/** What a method needs: permissions, and whether they apply to the request's key. */
export interface Need {
  readonly permissions: readonly Permission[];
  /** The key the request names, or undefined for a method that names none. */
  readonly key: string | undefined;
  /** Range and Watch over a range or prefix: every key in it (see {@link allowsRange}). */
  readonly range?: KeyRange;
  /** Txn: the need of each compare and operation; every one must be met. */
  readonly parts?: readonly Need[];
}

/** Keys in [start, end); an empty `end` runs to the end of the key space. */
export interface KeyRange {
  readonly start: string;
  readonly end: string;
}

/** What a Range, Watch or range operation covers: one key, a prefix, [start, end), or all. */
function rangeOf(message: unknown): Pick<Need, "key" | "range"> {
  const m = (message ?? {}) as { key?: unknown; prefix?: unknown; start?: unknown; end?: unknown };
  const str = (v: unknown) => (typeof v === "string" ? v : "");
  if (str(m.key) !== "") return { key: str(m.key) };
  if (str(m.prefix) !== "") {
    return { key: undefined, range: { start: str(m.prefix), end: prefixEnd(str(m.prefix)) } };
  }
  if (str(m.start) === "" && str(m.end) === "") {
    return { key: undefined, range: { start: "", end: "" } };
  }
  return { key: undefined, range: { start: str(m.start), end: str(m.end) } };
}

/** A Txn's parts: read for each compare, and per operation what the method alone would need. */
function txnParts(message: unknown): Need[] {
  const m = (message ?? {}) as {
    compares?: { key?: string }[];
    success?: { op?: { case?: string; value?: unknown } }[];
    failure?: { op?: { case?: string; value?: unknown } }[];
  };
  const parts: Need[] = [];
  for (const c of m.compares ?? []) parts.push({ permissions: ["read"], key: c.key ?? "" });
  for (const op of [...(m.success ?? []), ...(m.failure ?? [])]) {
    const v = op.op?.value as { key?: string } | undefined;
    switch (op.op?.case) {
      case "put":
      case "delete":
        parts.push({ permissions: ["write"], key: v?.key ?? "" });
        break;
      case "get":
        parts.push({ permissions: ["read"], key: v?.key ?? "" });
        break;
      case "range":
        parts.push({ permissions: ["read"], ...rangeOf(v) });
        break;
      default:
        parts.push({ permissions: ["admin"], key: undefined }); // an operation added later
    }
  }
  return parts;
}

/**
 * The permissions a call needs. CompareAndSwap reads as well as writes (it answers
 * the current value), as etcd's Txn needs read for its compares. OpenSession names
 * no key and needs no permission: it is one log entry, like any refused write
 * would cost, and the write that follows it is refused naming its key.
 * ClusterService methods, and any method not listed (a method added later), need
 * admin: refusing what nobody decided is the safe default.
 */
export function needOf(service: string, method: string, message: unknown): Need {
  const key = (message as { key?: unknown } | undefined)?.key;
  const k = typeof key === "string" ? key : undefined;
  if (service === "raftkv.v1.KVService") {
    switch (method) {
      case "Get":
        return { permissions: ["read"], key: k };
      case "Put":
      case "Delete":
        return { permissions: ["write"], key: k };
      case "CompareAndSwap":
        return { permissions: ["read", "write"], key: k };
      case "OpenSession":
        return { permissions: [], key: undefined };
      case "Range":
      case "Watch":
        return { permissions: ["read"], ...rangeOf(message) };
      case "Txn":
        return { permissions: [], key: undefined, parts: txnParts(message) };
      // A lease names no key; revoking one deletes the keys attached to it, which
      // only a writer could attach: leases need write on some key.
      case "LeaseGrant":
      case "LeaseRevoke":
      case "LeaseKeepAlive":
      case "LeaseKeepAliveStream":
      case "LeaseTimeToLive":
        return { permissions: ["write"], key: undefined };
    }
  }
  return { permissions: ["admin"], key: undefined };
}

/** The policy in use, if any, reloadable. */
export class Authorizer implements Reloadable {
  readonly name = "authorization policy";
  readonly #file: string | undefined;
  #policy: Policy | undefined;
  #text = "";

  private constructor(file: string | undefined, policy: Policy | undefined) {
    this.#file = file;
    this.#policy = policy;
  }

  /** With `file` undefined, allows everything; else loads it (throws PolicyError). */
  static async open(file: string | undefined): Promise<Authorizer> {
    const a = new Authorizer(file, undefined);
    if (file !== undefined) await a.reload();
    return a;
  }

  /** An authorizer over a parsed policy (tests). */
  static of(policy: Policy | undefined): Authorizer {
    return new Authorizer(policy?.file, policy);
  }

  async reload(): Promise<boolean> {
    if (this.#file === undefined) return false;
    const text = await Deno.readTextFile(this.#file).catch(() => undefined);
    if (text !== undefined && text === this.#text) return false;
    const policy = await loadPolicy(this.#file);
    this.#policy = policy;
    this.#text = text ?? "";
    return true;
  }

  describe(): Record<string, unknown> {
    return { file: this.#file, identities: [...(this.#policy?.grants.keys() ?? [])].join(",") };
  }

  /**
   * Why client `identity` may not make a call that needs `need`, or undefined if it may.
   * The text names the identity, the permission and the key.
   */
  refusal(identity: string, need: Need): string | undefined {
    const policy = this.#policy;
    if (policy === undefined) return undefined;
    for (const part of need.parts ?? []) {
      const refused = this.refusal(identity, part);
      if (refused !== undefined) return refused;
    }
    for (const p of need.permissions) {
      if (
        need.range === undefined
          ? allows(policy, identity, p, need.key)
          : allowsRange(policy, identity, p, need.range)
      ) continue;
      const what = p === "admin"
        ? "administer the cluster"
        : need.range !== undefined
        ? `${p} keys [${JSON.stringify(need.range.start)}, ${
          need.range.end === "" ? "the end" : JSON.stringify(need.range.end)
        })`
        : need.key === undefined
        ? `${p} any key`
        : `${p} key "${need.key}"`;
      return `client "${identity}" may not ${what} (no rule of --auth-policy ${policy.file} ` +
        `grants it)`;
    }
    return undefined;
  }
}
