/**
 * `raftkv.v1.ClusterService`: what an operator asks a node about itself, and a
 * backup of its state (SnapshotSave: the snapshot file format of
 * src/snapshot/file.ts, in chunks of at most 1 MiB).
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  AddMemberResponseSchema,
  ClusterService,
  ListMembersResponseSchema,
  type Member,
  MemberSchema,
  PeerProgressSchema,
  PromoteMemberResponseSchema,
  RemoveMemberResponseSchema,
  Role,
  SnapshotSaveResponseSchema,
  StatusResponseSchema,
  TransferLeadershipResponseSchema,
} from "../gen/raftkv/v1/cluster_pb.ts";
import type { MemberRecord } from "../kv/members.ts";
import type { Role as CoreRole } from "../raft/types.ts";
import { toSafeNumber } from "./codec.ts";
import { MembershipRefused } from "./membership.ts";
import type { RaftKvNode } from "./node.ts";
import { type Router, toConnectError } from "./route.ts";
import { encodeSnapshotChunks } from "./snapshot_chunks.ts";

const ROLE: Record<CoreRole, Role> = {
  follower: Role.FOLLOWER,
  pre_candidate: Role.PRE_CANDIDATE,
  candidate: Role.CANDIDATE,
  leader: Role.LEADER,
};

const REFUSAL_CODES: Record<MembershipRefused["code"], Code> = {
  invalid_argument: Code.InvalidArgument,
  already_exists: Code.AlreadyExists,
  not_found: Code.NotFound,
  failed_precondition: Code.FailedPrecondition,
};

/** A membership call's error as the client gets it: a refusal with its code, else as for KV. */
function membershipError(err: unknown): ConnectError {
  if (err instanceof MembershipRefused) {
    return new ConnectError(err.message, REFUSAL_CODES[err.code]);
  }
  return toConnectError(err);
}

function membersPb(members: readonly MemberRecord[]): Member[] {
  return members.map((m) =>
    create(MemberSchema, { id: BigInt(m.id), peerAddress: m.peerAddress, learner: m.learner })
  );
}

/**
 * The member list and configuration index every membership answer carries
 * (ListMembers, AddMember, PromoteMember, RemoveMember), as their messages hold them.
 */
function membershipPb(
  m: { readonly members: readonly MemberRecord[]; readonly configIndex: number },
): { members: Member[]; configIndex: bigint } {
  return { members: membersPb(m.members), configIndex: BigInt(m.configIndex) };
}

/** A member id from a request: a positive safe integer. */
function memberId(value: bigint, what: string): number {
  let id: number;
  try {
    id = toSafeNumber(value, what);
  } catch (err) {
    throw new ConnectError((err as Error).message, Code.InvalidArgument);
  }
  if (id === 0) {
    throw new ConnectError(`${what} must be a positive node id, got 0`, Code.InvalidArgument);
  }
  return id;
}

/**
 * The ClusterService implementation for one node. Membership changes and
 * leadership transfers are served by the leader: `router` forwards them there.
 */
export function clusterService(
  node: Pick<
    RaftKvNode,
    | "status"
    | "bootstrap"
    | "fingerprints"
    | "backupSnapshot"
    | "membership"
    | "changeMembership"
    | "transferLeadership"
  >,
  router?: Router,
): Partial<ServiceImpl<typeof ClusterService>> {
  /** Runs `local` on the leader (here or there) and maps refusals to their codes. */
  const onLeader = async <T>(
    ctx: Parameters<Router["routeCluster"]>[0],
    local: (signal: AbortSignal) => Promise<T>,
    remote: Parameters<Router["routeCluster"]>[2],
  ): Promise<T> => {
    if (router === undefined) throw new ConnectError("no router", Code.Unimplemented);
    try {
      return await router.routeCluster(
        ctx,
        async (signal) => {
          try {
            return await local(signal);
          } catch (err) {
            throw membershipError(err);
          }
        },
        remote as never,
      );
    } catch (err) {
      throw membershipError(err);
    }
  };
  return {
    listMembers() {
      return create(ListMembersResponseSchema, membershipPb(node.membership()));
    },
    addMember(req, ctx) {
      const id = memberId(req.id, "id");
      return onLeader(ctx, async (signal) => {
        const r = await node.changeMembership(
          { op: "add", id, peerAddress: req.peerAddress, learner: req.learner },
          signal,
        );
        return create(AddMemberResponseSchema, membershipPb(r));
      }, (client, opts) => client.addMember(req, opts));
    },
    promoteMember(req, ctx) {
      const id = memberId(req.id, "id");
      return onLeader(ctx, async (signal) => {
        const r = await node.changeMembership({ op: "promote", id }, signal);
        return create(PromoteMemberResponseSchema, membershipPb(r));
      }, (client, opts) => client.promoteMember(req, opts));
    },
    removeMember(req, ctx) {
      const id = memberId(req.id, "id");
      return onLeader(ctx, async (signal) => {
        const r = await node.changeMembership({ op: "remove", id }, signal);
        return create(RemoveMemberResponseSchema, membershipPb(r));
      }, (client, opts) => client.removeMember(req, opts));
    },
    transferLeadership(req, ctx) {
      let target: number;
      try {
        target = toSafeNumber(req.targetId, "target_id");
      } catch (err) {
        throw new ConnectError((err as Error).message, Code.InvalidArgument);
      }
      return onLeader(ctx, async (signal) => {
        const r = await node.transferLeadership(target, signal);
        return create(TransferLeadershipResponseSchema, {
          leaderId: BigInt(r.leader),
          term: BigInt(r.term),
        });
      }, (client, opts) => client.transferLeadership(req, opts));
    },
    async *snapshotSave() {
      let snapshot;
      try {
        snapshot = await node.backupSnapshot();
      } catch (err) {
        throw toConnectError(err);
      }
      const file = await encodeSnapshotChunks(snapshot);
      let first = true;
      for (const chunk of file.chunks()) {
        yield create(
          SnapshotSaveResponseSchema,
          first
            ? {
              index: BigInt(snapshot.meta.index),
              term: BigInt(snapshot.meta.term),
              size: BigInt(file.length),
              chunk,
            }
            : { chunk },
        );
        first = false;
      }
    },
    status() {
      const s = node.status();
      const fingerprints = node.fingerprints();
      const { conf } = node.membership();
      return create(StatusResponseSchema, {
        id: BigInt(s.id),
        role: ROLE[s.role],
        term: BigInt(s.term),
        leaderId: BigInt(s.lead),
        commitIndex: BigInt(s.commit),
        appliedIndex: BigInt(s.kvApplied),
        lastLogIndex: BigInt(s.lastIndex),
        stateDigest: fingerprints.state,
        appliedChain: fingerprints.chain,
        snapshotIndex: BigInt(s.snapshotIndex),
        firstIndex: BigInt(s.firstIndex),
        voters: conf.voters.map(BigInt),
        learners: conf.learners.map(BigInt),
        votersOutgoing: (conf.votersOutgoing ?? []).map(BigInt),
        bootstrapVoters: node.bootstrap.map(BigInt),
        peers: [...(s.progress ?? new Map()).entries()].filter(([id]) => id !== s.id).map((
          [id, p],
        ) =>
          create(PeerProgressSchema, {
            id: BigInt(id),
            matchIndex: BigInt(p.match),
            nextIndex: BigInt(p.next),
            learner: conf.learners.includes(id),
          })
        ),
      });
    },
  };
}
