/**
 * The bytes of a membership change: what a `conf_change` entry carries as its
 * data. Pure and versioned, so every node (and every later version of raftkv)
 * decodes an entry the same way on every replay.
 *
 * Layout (all integers little-endian):
 *
 * | offset | size | field                                                   |
 * |--------|------|---------------------------------------------------------|
 * | 0      | 1    | version: 1                                              |
 * | 1      | 1    | transition: 0 auto, 1 explicit                          |
 * | 2      | 4    | n, the number of changes                                |
 * | 6      | 9·n  | each: type (1: 0 add_voter, 1 add_learner, 2 remove), node id (u64) |
 * | …      | 4    | context length                                          |
 * | …      | …    | context                                                 |
 * | …      | 1    | 1 if a base configuration follows, else 0 (or absent)   |
 * | …      | …    | base: voters, learners, votersOutgoing, learnersNext, each a u32 count and u64 ids; autoLeave (1) |
 *
 * The base is the configuration the leader validated the change against, the
 * one in force where the entry sits in the log (at most one change is ever
 * unapplied). A node that started with an empty configuration to join a running
 * cluster, and replays the log from its start, has no other way to know it: the
 * bootstrap configuration is in no entry. It applies the change to the base
 * (see membership.ts); every other node applies it to its own, which is equal.
 *
 * Empty data decodes to the empty "leave joint" change (etcd-io/raft proposes
 * its automatic leave as an entry with no data, too).
 *
 * @module
 */

import type { ConfChange, ConfChangeType, ConfState, NodeId } from "../types.ts";

const VERSION = 1;
const TYPES: readonly ConfChangeType[] = ["add_voter", "add_learner", "remove"];
const TRANSITIONS: readonly ConfChange["transition"][] = ["auto", "explicit"];
const TWO_32 = 2 ** 32;

/** The empty change: leave the joint configuration. */
export const LEAVE_JOINT: ConfChange = {
  changes: [],
  transition: "auto",
  context: new Uint8Array(),
};

/** Encodes `cc` as a `conf_change` entry's data; throws a RangeError for an invalid node id. */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  const base = cc.base;
  const baseIds = base === undefined
    ? 0
    : base.voters.length + base.learners.length + base.votersOutgoing.length +
      base.learnersNext.length;
  const baseBytes = base === undefined ? 0 : 1 + 16 + 8 * baseIds + 1;
  const out = new Uint8Array(2 + 4 + 9 * cc.changes.length + 4 + cc.context.length + baseBytes);
  const view = new DataView(out.buffer);
  view.setUint8(0, VERSION);
  view.setUint8(1, TRANSITIONS.indexOf(cc.transition));
  view.setUint32(2, cc.changes.length, true);
  let at = 6;
  for (const c of cc.changes) {
    const code = TYPES.indexOf(c.type);
    if (code < 0) throw new RangeError(`Cannot encode conf change: unknown type "${c.type}"`);
    if (!Number.isSafeInteger(c.nodeId) || c.nodeId < 0) {
      throw new RangeError(`Cannot encode conf change: node id ${c.nodeId} is not a safe integer`);
    }
    view.setUint8(at, code);
    view.setUint32(at + 1, c.nodeId % TWO_32, true);
    view.setUint32(at + 5, Math.floor(c.nodeId / TWO_32), true);
    at += 9;
  }
  view.setUint32(at, cc.context.length, true);
  out.set(cc.context, at + 4);
  at += 4 + cc.context.length;
  if (base !== undefined) {
    view.setUint8(at++, 1);
    for (const ids of [base.voters, base.learners, base.votersOutgoing, base.learnersNext]) {
      view.setUint32(at, ids.length, true);
      at += 4;
      for (const id of ids) {
        view.setUint32(at, id % TWO_32, true);
        view.setUint32(at + 4, Math.floor(id / TWO_32), true);
        at += 8;
      }
    }
    view.setUint8(at, base.autoLeave ? 1 : 0);
  }
  return out;
}

/**
 * Decodes a `conf_change` entry's data; throws a RangeError that says what is
 * wrong ("Cannot decode conf change: ...") for bytes {@link encodeConfChange}
 * did not write.
 */
export function decodeConfChange(data: Uint8Array): ConfChange {
  if (data.length === 0) return LEAVE_JOINT;
  const bad = (why: string) => new RangeError(`Cannot decode conf change: ${why}`);
  if (data.length < 10) throw bad(`${data.length} bytes is shorter than the 10-byte minimum`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const version = view.getUint8(0);
  if (version !== VERSION) throw bad(`unknown version ${version} (expected ${VERSION})`);
  const transition = TRANSITIONS[view.getUint8(1)];
  if (transition === undefined) throw bad(`unknown transition code ${view.getUint8(1)}`);
  const n = view.getUint32(2, true);
  if (6 + 9 * n + 4 > data.length) throw bad(`${n} changes do not fit in ${data.length} bytes`);
  const changes = [];
  let at = 6;
  for (let i = 0; i < n; i++) {
    const type = TYPES[view.getUint8(at)];
    if (type === undefined) throw bad(`change ${i} has unknown type code ${view.getUint8(at)}`);
    const hi = view.getUint32(at + 5, true);
    if (hi > 0x1fffff) throw bad(`change ${i} has a node id above 2^53`);
    changes.push({ type, nodeId: hi * TWO_32 + view.getUint32(at + 1, true) });
    at += 9;
  }
  const contextLength = view.getUint32(at, true);
  const contextEnd = at + 4 + contextLength;
  if (contextEnd > data.length) {
    throw bad(`context of ${contextLength} bytes at offset ${at + 4} ends past the data`);
  }
  const context = data.slice(at + 4, contextEnd);
  at = contextEnd;
  if (at === data.length) return { changes, transition, context };
  if (view.getUint8(at) !== 1) throw bad(`unexpected byte ${view.getUint8(at)} after the context`);
  at++;
  const lists: NodeId[][] = [];
  for (const what of ["voters", "learners", "votersOutgoing", "learnersNext"]) {
    if (at + 4 > data.length) throw bad(`base ${what} cut short`);
    const n = view.getUint32(at, true);
    at += 4;
    if (at + 8 * n > data.length) throw bad(`base ${what}: ${n} ids do not fit`);
    const ids: NodeId[] = [];
    for (let i = 0; i < n; i++) {
      const hi = view.getUint32(at + 4, true);
      if (hi > 0x1fffff) throw bad(`base ${what} has a node id above 2^53`);
      ids.push(hi * TWO_32 + view.getUint32(at, true));
      at += 8;
    }
    lists.push(ids);
  }
  if (at + 1 !== data.length) throw bad(`base does not end the ${data.length} bytes`);
  const base: ConfState = {
    voters: lists[0]!,
    learners: lists[1]!,
    votersOutgoing: lists[2]!,
    learnersNext: lists[3]!,
    autoLeave: view.getUint8(at) === 1,
  };
  return { changes, transition, context, base };
}

/** `add_voter 4, remove 2 (explicit)`, or `leave joint`, for logs and tests. */
export function describeConfChange(cc: ConfChange): string {
  if (cc.changes.length === 0) return "leave joint";
  const s = cc.changes.map((c) => `${c.type} ${c.nodeId}`).join(", ");
  return cc.transition === "explicit" ? `${s} (explicit)` : s;
}
