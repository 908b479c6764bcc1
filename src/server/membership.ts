/**
 * The rules of ClusterService's membership calls, apart from the node: what the
 * membership is as this node has applied it (voters and learners from the core's
 * configuration, addresses from the replicated registry or this node's `--peers`),
 * and which requests are refused before anything is proposed, with which status.
 *
 * Refusing early is what makes a bad request a definite error: nothing was proposed,
 * so nothing can take effect later. The core re-checks what it owns (one change at a
 * time, the last voter, nonsense transitions) and refuses with `ConfChangeRejected`,
 * also before anything enters the log.
 *
 * @module
 */

import {
  encodeMemberChange,
  type MemberChange,
  type MemberRecord,
  type MemberRegistry,
} from "../kv/members.ts";
import type { ConfChange } from "../raft/types.ts";
import { FlagError, formatHostPort, type HostPort, parseHostPort } from "./flags.ts";

/** The configuration in force, as far as these rules need it. */
export interface ConfView {
  /** Voters (incoming; ascending). */
  readonly voters: readonly number[];
  /** Learners (ascending). */
  readonly learners: readonly number[];
  /** Outgoing voters while joint (dissertation §4.3), else empty. */
  readonly votersOutgoing?: readonly number[];
}

/** How a refused membership request is answered (a gRPC status of the same name). */
export type RefusalCode =
  | "invalid_argument"
  | "already_exists"
  | "not_found"
  | "failed_precondition";

/** A membership request refused before anything was proposed. */
export class MembershipRefused extends Error {
  override name = "MembershipRefused";
  constructor(readonly code: RefusalCode, message: string) {
    super(message);
  }
}

/**
 * etcd's rule for a learner ready to be promoted (`isLearnerReady`): its match index
 * is at least 90% of the leader's. A voter far behind would count toward quorums
 * while it cannot yet acknowledge anything new, which can stall commits (§4.2.1).
 */
export const PROMOTE_READY_FRACTION = 0.9;

/** Every member, by ascending id, with the address this node dials it at ("" if unknown). */
export function listMembers(
  conf: ConfView,
  registry: MemberRegistry,
  localPeers: ReadonlyMap<number, HostPort>,
): MemberRecord[] {
  const voters = new Set([...conf.voters, ...(conf.votersOutgoing ?? [])]);
  const ids = [...new Set([...voters, ...conf.learners])].sort((a, b) => a - b);
  return ids.map((id) => ({
    id,
    peerAddress: peerAddressOf(id, registry, localPeers) ?? "",
    learner: !voters.has(id),
  }));
}

/**
 * Where this node dials member `id`: its own `--peers` entry first (the bootstrap
 * configuration, and the address as this node must dial it: behind a proxy or NAT
 * it differs from node to node), else the address the log recorded when the member
 * was added. Undefined when neither knows it.
 */
export function peerAddressOf(
  id: number,
  registry: MemberRegistry,
  localPeers: ReadonlyMap<number, HostPort>,
): string | undefined {
  const local = localPeers.get(id);
  if (local !== undefined) return formatHostPort(local);
  return registry.get(id)?.peerAddress;
}

function isMember(conf: ConfView, id: number): boolean {
  return conf.voters.includes(id) || conf.learners.includes(id) ||
    (conf.votersOutgoing ?? []).includes(id);
}

/**
 * Checks an AddMember request and returns its normalized peer address.
 *
 * @throws {MembershipRefused} INVALID_ARGUMENT for id 0 or a malformed address,
 * ALREADY_EXISTS when the id or the address is a member's.
 */
export function checkAdd(
  conf: ConfView,
  registry: MemberRegistry,
  localPeers: ReadonlyMap<number, HostPort>,
  id: number,
  peerAddress: string,
): string {
  if (!Number.isSafeInteger(id) || id <= 0) {
    throw new MembershipRefused("invalid_argument", `Cannot add member ${id}: ids are positive`);
  }
  let addr: HostPort;
  try {
    addr = parseHostPort(peerAddress, "peer_address");
  } catch (err) {
    const reason = err instanceof FlagError ? err.message : String(err);
    throw new MembershipRefused("invalid_argument", `Cannot add member ${id}: ${reason}`);
  }
  if (addr.port === 0) {
    throw new MembershipRefused(
      "invalid_argument",
      `Cannot add member ${id}: peer_address ${peerAddress} has port 0; the others need a fixed port`,
    );
  }
  const normalized = formatHostPort(addr);
  if (isMember(conf, id)) {
    throw new MembershipRefused(
      "already_exists",
      `Cannot add member ${id}: it is already a ${
        conf.learners.includes(id) ? "learner" : "voter"
      } (remove it first to replace it)`,
    );
  }
  for (const m of listMembers(conf, registry, localPeers)) {
    if (m.peerAddress === normalized) {
      throw new MembershipRefused(
        "already_exists",
        `Cannot add member ${id}: member ${m.id} already has peer address ${normalized}`,
      );
    }
  }
  return normalized;
}

/**
 * Checks a PromoteMember request against the leader's view of the learner's log.
 *
 * @throws {MembershipRefused} NOT_FOUND for a non-member, FAILED_PRECONDITION for a
 * voter or a learner too far behind (match below {@link PROMOTE_READY_FRACTION} of
 * the leader's last index).
 */
export function checkPromote(
  conf: ConfView,
  id: number,
  progress: { readonly learnerMatch: number | undefined; readonly leaderLast: number },
): void {
  if (!isMember(conf, id)) {
    throw new MembershipRefused("not_found", `Cannot promote member ${id}: no such member`);
  }
  if (!conf.learners.includes(id)) {
    throw new MembershipRefused(
      "failed_precondition",
      `Cannot promote member ${id}: it is already a voter`,
    );
  }
  const match = progress.learnerMatch ?? 0;
  if (match < progress.leaderLast * PROMOTE_READY_FRACTION) {
    throw new MembershipRefused(
      "failed_precondition",
      `Cannot promote member ${id}: it is too far behind the leader (its log matches up to ` +
        `index ${match}, the leader's ends at ${progress.leaderLast}); retry once it has caught up`,
    );
  }
}

/**
 * Checks a RemoveMember request.
 *
 * @throws {MembershipRefused} NOT_FOUND for a non-member, FAILED_PRECONDITION for
 * the last voter (a configuration without voters can never commit again).
 */
export function checkRemove(conf: ConfView, id: number): void {
  if (!isMember(conf, id)) {
    throw new MembershipRefused("not_found", `Cannot remove member ${id}: no such member`);
  }
  if (conf.voters.length === 1 && conf.voters[0] === id) {
    throw new MembershipRefused(
      "failed_precondition",
      `Cannot remove member ${id}: it is the last voter (add another voter first)`,
    );
  }
}

/**
 * Picks the target of a TransferLeadership: `target` if given (checked), else the
 * voter other than the leader whose log matches the most (the most up to date).
 *
 * @throws {MembershipRefused} NOT_FOUND for a non-member, FAILED_PRECONDITION for a
 * learner, or when there is no other voter.
 */
export function pickTransferTarget(
  conf: ConfView,
  leader: number,
  target: number,
  matchOf: (id: number) => number,
): number {
  if (target !== 0) {
    if (!isMember(conf, target)) {
      throw new MembershipRefused(
        "not_found",
        `Cannot transfer leadership to ${target}: no such member`,
      );
    }
    if (!conf.voters.includes(target)) {
      throw new MembershipRefused(
        "failed_precondition",
        `Cannot transfer leadership to ${target}: it is a learner (promote it first)`,
      );
    }
    return target;
  }
  const others = conf.voters.filter((id) => id !== leader);
  if (others.length === 0) {
    throw new MembershipRefused(
      "failed_precondition",
      "Cannot transfer leadership: there is no other voter",
    );
  }
  // Ties go to the lowest id: deterministic, for logs and tests.
  return others.reduce((best, id) => matchOf(id) > matchOf(best) ? id : best);
}

/** What {@link confChangeFor} checks a change against: the leader's view. */
export interface ChangeContext {
  /** The configuration in force. */
  readonly conf: ConfView;
  readonly members: MemberRegistry;
  /** This node's `--peers`. */
  readonly peers: ReadonlyMap<number, HostPort>;
  /** How far the leader knows member `id`'s log matches its own. */
  readonly learnerMatch: (id: number) => number | undefined;
  /** The leader's last log index. */
  readonly leaderLast: number;
}

/**
 * Checks a membership request (see checkAdd, checkPromote, checkRemove) and returns
 * the conf change to propose: one change, left automatically (a single change
 * needs no joint configuration), its context the registry's record of it.
 *
 * @throws {MembershipRefused} when the request is refused; nothing is proposed.
 */
export function confChangeFor(
  change: MemberChange & { readonly learner?: boolean },
  ctx: ChangeContext,
): ConfChange {
  const one = (type: ConfChange["changes"][number]["type"], context: MemberChange): ConfChange => ({
    changes: [{ type, nodeId: change.id }],
    transition: "auto",
    context: encodeMemberChange(context),
  });
  switch (change.op) {
    case "add": {
      const peerAddress = checkAdd(ctx.conf, ctx.members, ctx.peers, change.id, change.peerAddress);
      return one(change.learner ? "add_learner" : "add_voter", {
        op: "add",
        id: change.id,
        peerAddress,
      });
    }
    case "promote":
      checkPromote(ctx.conf, change.id, {
        learnerMatch: ctx.learnerMatch(change.id),
        leaderLast: ctx.leaderLast,
      });
      return one("add_voter", change);
    case "remove":
      checkRemove(ctx.conf, change.id);
      return one("remove", change);
  }
}
