/**
 * The one place where the core's types meet the wire's. The core counts terms
 * and indexes in `number` (exact to 2^53); protobuf `uint64` arrives as `bigint`.
 * Decoding checks every value, so a hostile or broken peer gets a clear error
 * instead of a core that runs on nonsense.
 *
 * What is checked is what a message says about itself, never what it claims
 * about the receiver's state: a known type; safe integers; a term of at most
 * {@link MAX_TERM}, and of at least 1 on requests; a log term no greater than the
 * message term; entries only on `app`, consecutive from `index + 1`, with terms in
 * (0, term] that never decrease and start at or above `log_term`; a reject hint at
 * or below the rejected index; entry data the state machine can apply (see
 * {@link checkEntryData}); and, for a batch, a membership of positive ids in
 * ascending order. A message that passes can still lie (a forged leader of a
 * higher term); that is outside Raft's fault model and no codec can see it.
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import * as pb from "../gen/raftkv/v1/raft_pb.ts";
import { decodeCommand } from "../kv/command.ts";
import { decodeConfChange } from "../raft/confchange/codec.ts";
import type { Entry, EntryType, Message, MessageType, NodeId } from "../raft/types.ts";

/** A peer sent something the core cannot take. */
export class CodecError extends Error {
  override name = "CodecError";
}

// `snap` (InstallSnapshot) has no form inside a Send batch: it travels on its own
// call, RaftService/InstallSnapshot, streamed by snapshot_sender.ts and read by
// snapshot_receiver.ts (a snapshot can be far larger than a batch).
const TYPE_TO_PB: Record<Exclude<MessageType, "snap">, pb.MessageType> = {
  app: pb.MessageType.APP,
  app_resp: pb.MessageType.APP_RESP,
  vote: pb.MessageType.VOTE,
  vote_resp: pb.MessageType.VOTE_RESP,
  pre_vote: pb.MessageType.PRE_VOTE,
  pre_vote_resp: pb.MessageType.PRE_VOTE_RESP,
  heartbeat: pb.MessageType.HEARTBEAT,
  heartbeat_resp: pb.MessageType.HEARTBEAT_RESP,
  timeout_now: pb.MessageType.TIMEOUT_NOW,
  transfer_leader: pb.MessageType.TRANSFER_LEADER,
};

const TYPE_FROM_PB = new Map<pb.MessageType, MessageType>(
  Object.entries(TYPE_TO_PB).map(([k, v]) => [v, k as MessageType]),
);

/** A `uint64` as a safe integer, or a CodecError naming the field. */
export function toSafeNumber(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CodecError(`Cannot decode ${field}: ${value} is above 2^53 - 1`);
  }
  return Number(value);
}

const ENTRY_TYPE_TO_PB: Record<EntryType, pb.EntryType> = {
  normal: pb.EntryType.NORMAL,
  conf_change: pb.EntryType.CONF_CHANGE,
};

export function entryToPb(e: Entry): pb.Entry {
  return create(pb.EntrySchema, {
    term: BigInt(e.term),
    index: BigInt(e.index),
    type: ENTRY_TYPE_TO_PB[e.type],
    data: e.data,
  });
}

export function entryFromPb(e: pb.Entry): Entry {
  const index = toSafeNumber(e.index, "entry.index");
  let type: EntryType;
  if (e.type === pb.EntryType.NORMAL) {
    type = "normal";
    checkEntryData(index, e.data);
  } else if (e.type === pb.EntryType.CONF_CHANGE) {
    type = "conf_change";
    // Every node decodes it when applying; bytes no node can decode would stop
    // them all once committed.
    try {
      decodeConfChange(e.data);
    } catch (err) {
      throw new CodecError(`Cannot decode entry ${index}: ${(err as Error).message}`);
    }
  } else {
    throw new CodecError(`Cannot decode entry: unknown entry type ${e.type}`);
  }
  return {
    term: toSafeNumber(e.term, "entry.term"),
    index,
    type,
    data: e.data,
  };
}

/**
 * Checks that the state machine can apply an entry's data: empty (a no-op), or a
 * Command whose numbers are below 2^53. A Command with a larger `time_ms`,
 * `session_id` or `sequence` cannot come from a correct leader (it stamps its own
 * clock and checks sessions), and applying it would throw on every node, at every
 * restart, once committed. Data that is not a Command at all is let through: the
 * runtime applies it as a no-op, the same way on every node (see node.ts).
 */
export function checkEntryData(index: number, data: Uint8Array): void {
  if (data.length === 0) return;
  let command;
  try {
    command = decodeCommand(data);
  } catch {
    return;
  }
  const limit = BigInt(Number.MAX_SAFE_INTEGER);
  for (
    const [field, value] of [
      ["time_ms", command.timeMs],
      ["session_id", command.sessionId],
      ["sequence", command.sequence],
    ] as const
  ) {
    if (value > limit) {
      throw new CodecError(
        `Cannot decode entry ${index}: its command's ${field} ${value} is above 2^53 - 1`,
      );
    }
  }
}

/**
 * A membership as a SendRequest carries it: the member ids in ascending order
 * (see `SendRequest.members` in raft.proto).
 */
export function membersToPb(ids: Iterable<NodeId>): bigint[] {
  return [...ids].sort((a, b) => a - b).map(BigInt);
}

/**
 * Decodes the membership a peer says it believes in: positive safe integers in
 * strictly ascending order (what {@link membersToPb} writes), else a CodecError.
 * Empty stays empty: the sender did not say.
 */
export function membersFromPb(values: readonly bigint[]): NodeId[] {
  const ids: NodeId[] = [];
  for (const v of values) {
    const id = toSafeNumber(v, "members");
    if (id === 0) throw new CodecError("Cannot decode members: node id 0 is not a node");
    const prev = ids[ids.length - 1];
    if (prev !== undefined && id <= prev) {
      throw new CodecError(`Cannot decode members: ${id} after ${prev} (ascending, no repeats)`);
    }
    ids.push(id);
  }
  return ids;
}

export function messageToPb(m: Message): pb.Message {
  if (m.type === "snap") {
    throw new CodecError(
      "Cannot encode snap message in a Send batch: snapshots travel on InstallSnapshot " +
        "(snapshot_sender.ts)",
    );
  }
  return create(pb.MessageSchema, {
    type: TYPE_TO_PB[m.type],
    from: BigInt(m.from),
    to: BigInt(m.to),
    term: BigInt(m.term),
    index: BigInt(m.index),
    logTerm: BigInt(m.logTerm),
    entries: m.entries.map(entryToPb),
    commit: BigInt(m.commit),
    reject: m.reject,
    rejectHint: BigInt(m.rejectHint),
    context: BigInt(m.context),
  });
}

/**
 * The largest term a message may carry: 2^53 - 2. A node that took a larger one
 * could be made (by forged votes) to campaign in term 2^53, which it cannot persist
 * (the WAL stores safe integers), and would stop. No real cluster comes near: a term
 * is one election.
 */
export const MAX_TERM = Number.MAX_SAFE_INTEGER - 1;

/** Requests, which only a leader or a candidate sends, always in a term >= 1. */
const REQUESTS: ReadonlySet<MessageType> = new Set(["app", "heartbeat", "vote", "pre_vote"]);

/**
 * Decodes a peer's message and checks what the core relies on (see the module
 * documentation); throws a {@link CodecError} naming the first problem.
 */
export function messageFromPb(m: pb.Message): Message {
  const type = TYPE_FROM_PB.get(m.type);
  if (type === undefined) throw new CodecError(`Cannot decode message: unknown type ${m.type}`);
  const term = toSafeNumber(m.term, "message.term");
  const index = toSafeNumber(m.index, "message.index");
  const logTerm = toSafeNumber(m.logTerm, "message.logTerm");
  const rejectHint = toSafeNumber(m.rejectHint, "message.rejectHint");
  if (term > MAX_TERM) {
    throw new CodecError(
      `Cannot decode ${type} message: term ${term} is above the largest term, 2^53 - 2`,
    );
  }
  if (term === 0 && REQUESTS.has(type)) {
    throw new CodecError(
      `Cannot decode ${type} message: term 0 (a ${type} is sent in term 1 or later)`,
    );
  }
  // No node holds an entry of a term later than its own: every log term a message
  // carries (prevLogTerm, a candidate's last term, a hint term) is <= its term.
  if (logTerm > term) {
    throw new CodecError(
      `Cannot decode ${type} message: log term ${logTerm} above its term ${term}`,
    );
  }
  if (m.reject && rejectHint > index) {
    throw new CodecError(
      `Cannot decode ${type} message: reject hint ${rejectHint} above the rejected index ${index}`,
    );
  }
  if (m.entries.length > 0 && type !== "app") {
    throw new CodecError(`Cannot decode ${type} message: only app messages carry entries`);
  }
  const entries = m.entries.map(entryFromPb);
  let expected = index + 1;
  let prevTerm = logTerm;
  for (const e of entries) {
    if (e.index !== expected) {
      throw new CodecError(
        `Cannot decode app message: entry index ${e.index} where ${expected} was expected`,
      );
    }
    if (e.term > term || e.term === 0) {
      throw new CodecError(
        `Cannot decode app message: entry ${e.index} has term ${e.term} outside (0, ${term}]`,
      );
    }
    // Terms never decrease along a log (§5.3): the leader's entries follow
    // prevLogTerm and each other in term order.
    if (e.term < prevTerm) {
      throw new CodecError(
        `Cannot decode app message: entry ${e.index} has term ${e.term}, below the term ${prevTerm} before it`,
      );
    }
    prevTerm = e.term;
    expected++;
  }
  return {
    type,
    from: toSafeNumber(m.from, "message.from"),
    to: toSafeNumber(m.to, "message.to"),
    term,
    index,
    logTerm,
    entries,
    commit: toSafeNumber(m.commit, "message.commit"),
    reject: m.reject,
    rejectHint,
    context: toSafeNumber(m.context, "message.context"),
  };
}
