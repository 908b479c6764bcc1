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
 * InstallSnapshot checks its header the same way (cluster id, membership, addressee,
 * sender), then reads the snapshot file (snapshot_receiver.ts) and steps it into the
 * core as a `snap` message only when it arrived whole and intact.
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  InstallSnapshotResponseSchema,
  RaftService,
  type SendRequest,
  SendResponseSchema,
  type StreamRequest,
  StreamResponseSchema,
} from "../gen/raftkv/v1/raft_pb.ts";
import { type Message, message, type NodeId, type Snapshot } from "../raft/types.ts";
import { CodecError, MAX_TERM, membersFromPb, messageFromPb, toSafeNumber } from "./codec.ts";
import type { RaftKvNode } from "./node.ts";
import { RequestFeed } from "./request_feed.ts";
import {
  checkSnapshotSize,
  DEFAULT_MAX_SNAPSHOT_BYTES,
  readSnapshotFile,
  readSnapshotHeader,
  type SnapshotReceiveLimits,
} from "./snapshot_receiver.ts";

/**
 * The most messages one Send may carry: what a sender queues for one peer at most
 * (`MAX_QUEUED` in peer_queue.ts), so a correct peer never sends more. A larger
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

/**
 * What RaftService needs of a node: who it is, and where received messages go; and,
 * once membership can change, its bootstrap membership and who it knows (without
 * them: --peers, fixed); and when it stops (onLeaderChange's final report), which
 * ends the peer streams it serves.
 */
export type RaftServiceNode =
  & Pick<RaftKvNode, "options" | "status" | "receive">
  & Partial<Pick<RaftKvNode, "bootstrap" | "knows" | "onLeaderChange" | "logEnd">>;

/** The RaftService implementation for one node. */
export function raftService(
  node: RaftServiceNode,
  limits: SnapshotReceiveLimits = { maxBytes: DEFAULT_MAX_SNAPSHOT_BYTES },
  // Forward is served by server.ts, which owns the KV and cluster handlers (forward.ts).
): Omit<ServiceImpl<typeof RaftService>, "forward"> {
  const { id, clusterId, peers, logger } = node.options;
  // The membership compared is the one the cluster was bootstrapped with (the data
  // dir's --peers), which never changes, like etcd's cluster id derived from its
  // initial members: it keeps out a node started with the wrong --peers (issue 16).
  // The configuration in force changes through the log (membership changes), and
  // two members may hold different ones for a while (a change in flight): the
  // core, not this check, deals with that. A node that joined a running cluster
  // has no bootstrap membership: it states none and checks none.
  const members = [...(node.bootstrap ?? peers.keys())].sort((a, b) => a - b);
  const knows = (from: NodeId) => node.knows?.(from) ?? peers.has(from);
  /**
   * Senders with an InstallSnapshot stream under way, one each, and how to cancel
   * it. A newer stream from the same sender supersedes the one under way: the
   * sender has given up on it (its stall timeout, a leader's retry after a failure)
   * even if this side never saw the stream end (a connection that died silently).
   * Refusing the newer one instead would block that sender's snapshots for as long
   * as the dead stream looks alive.
   */
  const receiving = new Map<NodeId, AbortController>();

  /**
   * The last membership list a batch stated and this node accepted: every batch of
   * a peer states the same one, so the next is compared with it, not decoded again.
   */
  let accepted: readonly bigint[] = [];
  const sameList = (a: readonly bigint[], b: readonly bigint[]) =>
    a.length === b.length && a.every((v, k) => v === b[k]);

  /** Refuses a sender of another cluster, or one that believes in another membership. */
  const checkIdentity = (sender: string, theirCluster: string, theirMembers: bigint[]) => {
    if (theirCluster !== clusterId) {
      throw new ConnectError(
        `Cannot accept messages from ${sender}: cluster id "${theirCluster}" does not match ` +
          `this node's "${clusterId}"`,
        Code.FailedPrecondition,
      );
    }
    // An empty list comes from a sender that predates the field (a rolling upgrade):
    // its messages are still checked one by one, as before.
    if (theirMembers.length > 0 && members.length > 0 && !sameList(theirMembers, accepted)) {
      let theirs: NodeId[];
      try {
        theirs = membersFromPb(theirMembers);
      } catch (err) {
        if (err instanceof CodecError) throw new ConnectError(err.message, Code.InvalidArgument);
        throw err;
      }
      const refused = refusedByMembership(sender, theirs, id, members);
      if (refused !== undefined) throw new ConnectError(refused, Code.FailedPrecondition);
      accepted = [...theirMembers];
    }
  };

  /** Refuses a message not addressed to this node, or not from another member. */
  const checkEnds = (from: number, to: number) => {
    if (to !== id) {
      throw new ConnectError(`message for node ${to} sent to node ${id}`, Code.InvalidArgument);
    }
    if (from === id || !knows(from)) {
      throw new ConnectError(`node ${from} is not a member of this cluster`, Code.PermissionDenied);
    }
  };

  /** Checks one batch (a Send, or one request of a Stream) and steps its messages in order. */
  const deliver = (req: SendRequest): void => {
    const first = req.messages[0]?.from;
    const sender = first === undefined ? "the sender" : `node ${first}`;
    checkIdentity(sender, req.clusterId, req.members);
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
      checkEnds(m.from, m.to);
      messages.push(m);
    }
    for (const m of messages) {
      if (m.type === "app_resp") {
        // logEnd: the three fields this check reads, without status()'s copies of
        // the configuration and every follower's progress (once per acknowledgement).
        const refused = refusedByState(m, node.logEnd?.() ?? node.status());
        if (refused !== undefined) throw new ConnectError(refused, Code.InvalidArgument);
      }
      node.receive([m]);
    }
  };

  /** Checks one request of a Stream call and steps its batch (both paths of `stream`). */
  const deliverStreamRequest = (req: StreamRequest): void => {
    const batch = req.batch;
    if (batch === undefined) {
      throw new ConnectError("a Stream request without a batch", Code.InvalidArgument);
    }
    deliver(batch);
  };

  return {
    send(req) {
      deliver(req);
      return create(SendResponseSchema, {});
    },

    async stream(requests) {
      // Each batch is stepped as it arrives: the sender does not wait for an answer
      // per batch, only for this one at the end of the call (see raft.proto). The
      // call ends early when this node stops: a server that is closing lets calls
      // under way finish, and a peer's would otherwise hold it for up to 2 s.
      let off = () => {};
      const stopped = new Promise<undefined>((resolve) => {
        off = node.onLeaderChange?.((c) => c.final && resolve(undefined)) ?? off;
      });
      try {
        if (requests instanceof RequestFeed) {
          // The stream fast lane's requests, not wrapped by an interceptor: each
          // batch is stepped in the turn its frame is read (request_feed.ts).
          const feed = requests as RequestFeed<StreamRequest>;
          const done = await Promise.race([feed.drain(deliverStreamRequest), stopped]);
          if (done === undefined) feed.stop();
        } else {
          const it = requests[Symbol.asyncIterator]();
          for (;;) {
            const next = await Promise.race([it.next(), stopped]);
            if (next === undefined || next.done === true) break;
            deliverStreamRequest(next.value);
          }
        }
      } finally {
        off();
      }
      return create(StreamResponseSchema, {});
    },

    async installSnapshot(requests, ctx) {
      const started = performance.now();
      const it = requests[Symbol.asyncIterator]();
      const header = await readSnapshotHeader(it);
      let from: number, to: number, term: number;
      try {
        from = toSafeNumber(header.from, "header.from");
        to = toSafeNumber(header.to, "header.to");
        term = toSafeNumber(header.term, "header.term");
      } catch (err) {
        if (err instanceof CodecError) throw new ConnectError(err.message, Code.InvalidArgument);
        throw err;
      }
      const sender = `node ${from}`;
      checkIdentity(sender, header.clusterId, header.members);
      if (
        header.members.length === 0 && members.length > 0 &&
        (members.includes(from) || !knows(from))
      ) {
        // Only a node that joined a running cluster states no membership: a founding
        // member always does, and a stranger is refused anyway (checkEnds).
        throw new ConnectError(
          `Cannot install snapshot from ${sender}: its header names no members`,
          Code.InvalidArgument,
        );
      }
      checkEnds(from, to);
      if (term === 0 || term > MAX_TERM) {
        throw new ConnectError(
          `Cannot install snapshot from ${sender}: term ${term} is outside [1, 2^53 - 2]`,
          Code.InvalidArgument,
        );
      }
      const size = checkSnapshotSize(header.size, limits);
      receiving.get(from)?.abort(
        new ConnectError(
          `Cannot install snapshot from ${sender}: superseded by a newer transfer from it`,
          Code.Aborted,
        ),
      );
      const mine = new AbortController();
      receiving.set(from, mine);
      logger.info("receiving snapshot", { from, bytes: size });
      let snapshot: Snapshot;
      try {
        snapshot = await readSnapshotFile(
          it,
          size,
          `stream from ${sender}`,
          AbortSignal.any([mine.signal, ctx.signal]),
        );
      } catch (err) {
        logger.warn("refused a snapshot", {
          from,
          bytes: size,
          error: err instanceof ConnectError ? `${Code[err.code]}: ${err.rawMessage}` : String(err),
        });
        throw err;
      } finally {
        if (receiving.get(from) === mine) receiving.delete(from);
      }
      const { index, term: snapTerm } = snapshot.meta;
      // As for the log terms of any message (codec.ts): no leader holds an entry of a
      // term later than its own, and a snapshot at index 0 stands for nothing.
      if (index === 0 || snapTerm > term) {
        throw new ConnectError(
          `Cannot install snapshot from ${sender}: a snapshot at ${snapTerm}/${index} sent ` +
            `in term ${term} (the index must be at least 1, the term at most the sender's)`,
          Code.InvalidArgument,
        );
      }
      logger.info("received snapshot", {
        from,
        snapshot: `${snapTerm}/${index}`,
        bytes: size,
        ms: Math.round(performance.now() - started),
      });
      node.receive([message({ type: "snap", from, to, term, snapshot })]);
      return create(InstallSnapshotResponseSchema, {});
    },
  };
}
