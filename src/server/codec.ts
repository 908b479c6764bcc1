/**
 * The one place where the core's types meet the wire's. The core counts terms
 * and indexes in `number` (exact to 2^53); protobuf `uint64` arrives as `bigint`.
 * Decoding checks every value, so a hostile or broken peer gets a clear error
 * instead of a core that runs on nonsense.
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import * as pb from "../gen/raftkv/v1/raft_pb.ts";
import type { Entry, HardState, Message, MessageType } from "../raft/types.ts";

/** A peer sent something the core cannot take. */
export class CodecError extends Error {
  override name = "CodecError";
}

const TYPE_TO_PB: Record<MessageType, pb.MessageType> = {
  app: pb.MessageType.APP,
  app_resp: pb.MessageType.APP_RESP,
  vote: pb.MessageType.VOTE,
  vote_resp: pb.MessageType.VOTE_RESP,
  pre_vote: pb.MessageType.PRE_VOTE,
  pre_vote_resp: pb.MessageType.PRE_VOTE_RESP,
  heartbeat: pb.MessageType.HEARTBEAT,
  heartbeat_resp: pb.MessageType.HEARTBEAT_RESP,
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

export function entryToPb(e: Entry): pb.Entry {
  return create(pb.EntrySchema, {
    term: BigInt(e.term),
    index: BigInt(e.index),
    type: pb.EntryType.NORMAL,
    data: e.data,
  });
}

export function entryFromPb(e: pb.Entry): Entry {
  if (e.type !== pb.EntryType.NORMAL) {
    throw new CodecError(`Cannot decode entry: unknown entry type ${e.type}`);
  }
  return {
    term: toSafeNumber(e.term, "entry.term"),
    index: toSafeNumber(e.index, "entry.index"),
    type: "normal",
    data: e.data,
  };
}

export function messageToPb(m: Message): pb.Message {
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
 * Decodes a peer's message and checks what the core relies on: a known type,
 * safe integers, and entries that are consecutive and follow `index`.
 */
export function messageFromPb(m: pb.Message): Message {
  const type = TYPE_FROM_PB.get(m.type);
  if (type === undefined) throw new CodecError(`Cannot decode message: unknown type ${m.type}`);
  const index = toSafeNumber(m.index, "message.index");
  const entries = m.entries.map(entryFromPb);
  if (entries.length > 0 && type !== "app") {
    throw new CodecError(`Cannot decode ${type} message: only app messages carry entries`);
  }
  const term = toSafeNumber(m.term, "message.term");
  let expected = index + 1;
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
    expected++;
  }
  return {
    type,
    from: toSafeNumber(m.from, "message.from"),
    to: toSafeNumber(m.to, "message.to"),
    term,
    index,
    logTerm: toSafeNumber(m.logTerm, "message.logTerm"),
    entries,
    commit: toSafeNumber(m.commit, "message.commit"),
    reject: m.reject,
    rejectHint: toSafeNumber(m.rejectHint, "message.rejectHint"),
    context: toSafeNumber(m.context, "message.context"),
  };
}

export function hardStateToPb(hs: HardState): pb.HardState {
  return create(pb.HardStateSchema, {
    term: BigInt(hs.term),
    vote: BigInt(hs.vote),
    commit: BigInt(hs.commit),
  });
}
