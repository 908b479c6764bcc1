/**
 * `raftkv.v1.RaftService`: how peers deliver Raft messages to this node. It
 * accepts only messages of its own cluster, addressed to it, from members, that
 * the codec accepts (see codec.ts), and no acknowledgement of entries this node,
 * as leader, does not have.
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
import type { Message } from "../raft/types.ts";
import { CodecError, messageFromPb } from "./codec.ts";
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

/** The RaftService implementation for one node. */
export function raftService(node: RaftKvNode): ServiceImpl<typeof RaftService> {
  const { id, clusterId, peers } = node.options;
  return {
    send(req) {
      if (req.clusterId !== clusterId) {
        throw new ConnectError(
          `cluster id "${req.clusterId}" does not match this node's "${clusterId}"`,
          Code.FailedPrecondition,
        );
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
