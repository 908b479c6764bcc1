/**
 * `raftkv.v1.ClusterService`: what an operator asks a node about itself, and a
 * backup of its state (SnapshotSave: the snapshot file format of
 * src/snapshot/file.ts, in chunks of at most 1 MiB).
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  ClusterService,
  ListMembersResponseSchema,
  MemberSchema,
  PeerProgressSchema,
  Role,
  SnapshotSaveResponseSchema,
  StatusResponseSchema,
} from "../gen/raftkv/v1/cluster_pb.ts";
import type { Role as CoreRole } from "../raft/types.ts";
import type { RaftKvNode } from "./node.ts";
import { toConnectError } from "./route.ts";
import { encodeSnapshotChunks } from "./snapshot_chunks.ts";

const ROLE: Record<CoreRole, Role> = {
  follower: Role.FOLLOWER,
  pre_candidate: Role.PRE_CANDIDATE,
  candidate: Role.CANDIDATE,
  leader: Role.LEADER,
};

/** The ClusterService implementation for one node. */
export function clusterService(
  node: Pick<RaftKvNode, "status" | "fingerprints" | "backupSnapshot" | "membership">,
): Partial<ServiceImpl<typeof ClusterService>> {
  return {
    listMembers() {
      const { members } = node.membership();
      return create(ListMembersResponseSchema, {
        members: members.map((m) =>
          create(MemberSchema, { id: BigInt(m.id), peerAddress: m.peerAddress, learner: m.learner })
        ),
      });
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
