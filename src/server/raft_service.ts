/**
 * `raftkv.v1.RaftService`: how peers deliver Raft messages to this node. It
 * accepts only messages of its own cluster, from a sender that believes in the
 * same membership, addressed to it, from members, that the codec accepts (see
 * codec.ts), and no acknowledgement of entries this node, as leader, does not have.
 *
 * The membership check is what keeps a node started with the wrong `--peers` out
 * of the cluster: without it, a node that believes in another member set counts
 * votes and quorums over that set, and two such nodes can both commit different
 * entries at one index (a fork; issue 16). etcd refuses such a peer by its cluster
 * id, which it derives from the initial member set; here the sender states the
 * membership it believes in and the receiver compares it with its own.
 *
 * Every message of a batch is checked before any is stepped, except the last
 * check, which depends on the node's state as it stands when the message is
 * stepped; a batch refused at that point has had its earlier messages stepped,
 * which Raft takes like any partial delivery.
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { RaftService, SendResponseSchema } from "../gen/raftkv/v1/raft_pb.ts";
import type { Message, NodeId } from "../raft/types.ts";
import { CodecError, membersFromPb, messageFromPb } from "./codec.ts";
import type { RaftKvNode } from "./node.ts";

/**
 * The most messages one Send may carry: what a sender queues for one peer at most
 * (`MAX_QUEUED` in transport.ts), so a correct peer never sends more. A larger
 * batch (a 4 MiB request holds some 300,000 empty messages) is refused before any
 * is stepped.
 */
export const MAX_MESSAGES_PER_SEND = 4096;

/**
 * Why the node, as it stands, must not step `m`, or undefined. A leader that took
 * an acknowledgement of an index past its own log would try to send that follower
 * entries from beyond its log and stop on a broken invariant; no correct follower
 * acknowledges what its leader never sent (a leader's log only grows in its term).
 */
export function refusedByState(
  m: Message,
  state: { readonly role: string; readonly term: number; readonly lastIndex: number },
): string | undefined {
  if (
    m.type === "app_resp" && !m.reject && state.role === "leader" && m.term === state.term &&
    m.index > state.lastIndex
  ) {
    return `node ${m.from} acknowledges index ${m.index} in term ${m.term}, but this leader's ` +
      `log ends at ${state.lastIndex}`;
  }
  return undefined;
}

/** A membership as messages show it: `{1,2,3}`. */
export function describeMembers(ids: readonly NodeId[]): string {
  return `{${ids.join(",")}}`;
}

/**
 * Why a batch from a sender that believes in the membership `theirs` must be
 * refused by a node that believes in `ours` (both ascending), or undefined when
 * they agree. The text names both sets and what to check, for the sender's log.
 */
export function refusedByMembership(
  sender: string,
  theirs: readonly NodeId[],
  self: NodeId,
  ours: readonly NodeId[],
): string | undefined {
  if (theirs.length === ours.length && theirs.every((id, k) => id === ours[k])) return undefined;
  return `Cannot accept messages from ${sender}: it believes the members are ` +
    `${describeMembers(theirs)}, node ${self} believes they are ${describeMembers(ours)}; ` +
    `one of the two was started with another --peers (compare their --peers and data dirs)`;
}

/** The RaftService implementation for one node. */
export function raftService(node: RaftKvNode): ServiceImpl<typeof RaftService> {
  const { id, clusterId, peers } = node.options;
  // The membership this node believes in. Today it is fixed at start from --peers
  // (which the data dir's identity check holds to the membership the cluster was
  // bootstrapped with). When membership can change at runtime, this must become the
  // configuration the core holds at the moment of the check, and the check must allow
  // for a change in flight (a leader that has appended a new configuration and a
  // follower that has not yet received it believe in different sets for a while):
  // compare configurations as of a log index, not merely the latest ones.
  const members = [...peers.keys()].sort((a, b) => a - b);
  return {
    send(req) {
      const first = req.messages[0]?.from;
      const sender = first === undefined ? "the sender" : `node ${first}`;
      if (req.clusterId !== clusterId) {
        throw new ConnectError(
          `Cannot accept messages from ${sender}: cluster id "${req.clusterId}" does not match ` +
            `this node's "${clusterId}"`,
          Code.FailedPrecondition,
        );
      }
      // An empty list comes from a sender that predates the field (a rolling upgrade):
      // its messages are still checked one by one below, as before.
      if (req.members.length > 0) {
        let theirs: NodeId[];
        try {
          theirs = membersFromPb(req.members);
        } catch (err) {
          if (err instanceof CodecError) throw new ConnectError(err.message, Code.InvalidArgument);
          throw err;
        }
        const refused = refusedByMembership(sender, theirs, id, members);
        if (refused !== undefined) throw new ConnectError(refused, Code.FailedPrecondition);
      }
      if (req.messages.length > MAX_MESSAGES_PER_SEND) {
        throw new ConnectError(
          `a batch of ${req.messages.length} messages is over the limit of ${MAX_MESSAGES_PER_SEND}`,
          Code.InvalidArgument,
        );
      }
      const messages: Message[] = [];
      for (const pm of req.messages) {
        let m: Message;
        try {
          m = messageFromPb(pm);
        } catch (err) {
          if (err instanceof CodecError) throw new ConnectError(err.message, Code.InvalidArgument);
          throw err;
        }
        if (m.to !== id) {
          throw new ConnectError(
            `message for node ${m.to} sent to node ${id}`,
            Code.InvalidArgument,
          );
        }
        if (m.from === id || !peers.has(m.from)) {
          throw new ConnectError(
            `node ${m.from} is not a member of this cluster`,
            Code.PermissionDenied,
          );
        }
        messages.push(m);
      }
      for (const m of messages) {
        if (m.type === "app_resp") {
          const refused = refusedByState(m, node.status());
          if (refused !== undefined) throw new ConnectError(refused, Code.InvalidArgument);
        }
        node.receive([m]);
      }
      return create(SendResponseSchema, {});
    },
  };
}
