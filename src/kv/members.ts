/**
 * The member registry: which peer address each member added through the log has,
 * and whether it is a learner. It is replicated state, like the keys: it changes
 * only when a committed conf-change entry is applied, from that entry's `context`
 * (the runtime's bytes, opaque to the core) and the configuration the core returns
 * from `applyConfChange`, so every node that applied the same entries holds the same
 * registry, and a snapshot carries it (state_codec.ts) to a node that catches up
 * from one.
 *
 * The core's configuration (ConfState) says who votes and who learns; the registry
 * adds where they are. Members of the bootstrap configuration (a new cluster's
 * `--peers`) are not in it until a change names them: their addresses come from each
 * node's own `--peers` (which may differ per node, behind proxies or NAT).
 *
 * A conf-change context is JSON: `{"v":1,"op":"add","id":4,"peerAddress":"h:p"}`,
 * `{"v":1,"op":"promote","id":4}`, `{"v":1,"op":"remove","id":4}`. It says what the
 * operator asked for; the applied configuration is the truth about roles.
 *
 * @module
 */

/** One member as the registry records it. */
export interface MemberRecord {
  /** The member's node id. */
  readonly id: number;
  /** host:port where the others dial it for Raft traffic. */
  readonly peerAddress: string;
  /** Whether it is a learner in the applied configuration. */
  readonly learner: boolean;
}

/** What a conf-change entry's context says the operator asked for. */
export type MemberChange =
  | { readonly op: "add"; readonly id: number; readonly peerAddress: string }
  | { readonly op: "promote"; readonly id: number }
  | { readonly op: "remove"; readonly id: number };

/** The roles of an applied configuration, as far as the registry needs them. */
export interface AppliedRoles {
  /** Every voter (incoming and outgoing while joint). */
  readonly voters: readonly number[];
  /** Every learner (learnersNext included). */
  readonly learners: readonly number[];
}

/** A conf-change context that is not one this code writes. */
export class MemberContextError extends Error {
  override name = "MemberContextError";
  constructor(reason: string) {
    super(`Cannot decode a membership change context: ${reason}`);
  }
}

const CONTEXT_VERSION = 1;

/** The context bytes of `change`, for the conf-change entry that makes it. */
export function encodeMemberChange(change: MemberChange): Uint8Array {
  assertId(change.id);
  return new TextEncoder().encode(JSON.stringify({ v: CONTEXT_VERSION, ...change }));
}

/**
 * Decodes a context written by {@link encodeMemberChange}. An empty context (a change
 * proposed by something else than this runtime, or leaving a joint configuration)
 * decodes to undefined: nothing for the registry but the roles.
 *
 * @throws {MemberContextError} naming what is wrong.
 */
export function decodeMemberChange(bytes: Uint8Array): MemberChange | undefined {
  if (bytes.length === 0) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw new MemberContextError(`not UTF-8 JSON (${(err as Error).message})`);
  }
  if (typeof v !== "object" || v === null) throw new MemberContextError("not a JSON object");
  const o = v as Record<string, unknown>;
  if (o.v !== CONTEXT_VERSION) throw new MemberContextError(`version ${String(o.v)}`);
  const id = o.id;
  if (typeof id !== "number" || !Number.isSafeInteger(id) || id <= 0) {
    throw new MemberContextError(`id ${String(id)} is not a positive integer`);
  }
  switch (o.op) {
    case "add":
      if (typeof o.peerAddress !== "string" || o.peerAddress === "") {
        throw new MemberContextError(`"add" of ${id} has no peer address`);
      }
      return { op: "add", id, peerAddress: o.peerAddress };
    case "promote":
    case "remove":
      return { op: o.op, id };
    default:
      throw new MemberContextError(`unknown op ${JSON.stringify(o.op)}`);
  }
}

function assertId(id: number): void {
  if (!Number.isSafeInteger(id) || id <= 0) {
    throw new Error(`Invariant: a member id is a positive integer, got ${id}`);
  }
}

/** The registry (module documentation). */
export class MemberRegistry {
  readonly #members = new Map<number, MemberRecord>();

  /** A registry holding `records` (from a snapshot), or an empty one. */
  constructor(records: readonly MemberRecord[] = []) {
    for (const r of records) {
      assertId(r.id);
      if (this.#members.has(r.id)) {
        throw new Error(`Invariant: member ${r.id} appears twice in a registry image`);
      }
      this.#members.set(r.id, r);
    }
  }

  /**
   * Applies one committed conf change: `change` (its decoded context, if any) and the
   * configuration `roles` that applying it put in force. An added member is recorded
   * with its address; a member no longer in the configuration is forgotten; every
   * recorded member's learner flag follows the configuration.
   */
  apply(change: MemberChange | undefined, roles: AppliedRoles): void {
    if (change?.op === "add") {
      this.#members.set(change.id, {
        id: change.id,
        peerAddress: change.peerAddress,
        learner: false,
      });
    }
    const voters = new Set(roles.voters);
    const learners = new Set(roles.learners);
    for (const [id, r] of [...this.#members]) {
      if (!voters.has(id) && !learners.has(id)) this.#members.delete(id);
      else this.#members.set(id, { ...r, learner: !voters.has(id) && learners.has(id) });
    }
  }

  /** The record of member `id`, or undefined if the log never named its address. */
  get(id: number): MemberRecord | undefined {
    return this.#members.get(id);
  }

  /** The member whose peer address is `address`, or undefined. */
  byAddress(address: string): MemberRecord | undefined {
    for (const r of this.#members.values()) if (r.peerAddress === address) return r;
    return undefined;
  }

  /** Every record, by ascending id (the order snapshots encode: deterministic). */
  list(): MemberRecord[] {
    return [...this.#members.values()].sort((a, b) => a.id - b.id);
  }
}
