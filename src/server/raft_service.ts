/**
 * `raftkv.v1.RaftService`: how peers deliver Raft messages to this node. It
 * accepts only messages of its own cluster, addressed to it, from members.
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { RaftService, SendResponseSchema } from "../gen/raftkv/v1/raft_pb.ts";
import type { Message } from "../raft/types.ts";
import { CodecError, messageFromPb } from "./codec.ts";
import type { RaftKvNode } from "./node.ts";

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
      node.receive(messages);
      return create(SendResponseSchema, {});
    },
  };
}
