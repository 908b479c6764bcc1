/**
 * The snapshot file format: one file holds one {@link Snapshot} (§7 of the Raft
 * paper: the state machine's state as of `meta.index`, with the term there and the
 * membership in force). The same bytes are what a node writes to its data dir, what
 * a leader streams to a follower that fell behind the compacted log, and what
 * `deno task client snapshot save` writes for a backup, so one decoder checks all
 * three.
 *
 * Layout (all integers little-endian):
 *
 * | offset | size | field                                                        |
 * |--------|------|--------------------------------------------------------------|
 * | 0      | 8    | magic `RKVSNAP1`                                             |
 * | 8      | 4    | format version (1)                                           |
 * | 12     | 4    | header length H                                              |
 * | 16     | H    | header: UTF-8 JSON `{"index","term","conf":{"voters",...},"dataLength"}` |
 * | 16+H   | D    | the state machine's bytes (opaque here)                      |
 * | 16+H+D | 4    | CRC-32C of every byte before it                              |
 *
 * The header is JSON so that the membership can grow fields (learners, joint
 * configurations) without a new version; its `dataLength` and the trailing
 * checksum let a reader tell a truncated or damaged file from a good one before
 * it trusts a single byte of state. `conf` always has `voters`; `learners`,
 * `votersOutgoing`, `learnersNext` and `autoLeave` are written only when not
 * empty (false), so a file of a simple configuration is byte for byte what
 * versions before membership change wrote, and a missing field reads as empty.
 *
 * @module
 */

import type { ConfState, NodeId, Snapshot, SnapshotMeta } from "../raft/types.ts";
import { crc32c, crc32cRange } from "../wal/crc32c.ts";

/** The first eight bytes of every snapshot file. */
export const SNAPSHOT_MAGIC: Uint8Array = new TextEncoder().encode("RKVSNAP1");
/** The version this code writes and reads. */
export const SNAPSHOT_FORMAT_VERSION = 1;
/** The largest header accepted: a membership is small; anything bigger is damage. */
const MAX_HEADER_BYTES = 1 << 20;
const FIXED_BYTES = 16;
const TRAILER_BYTES = 4;

/** A snapshot file that cannot be trusted: truncated, damaged, or not a snapshot. */
export class SnapshotCorruptionError extends Error {
  override name = "SnapshotCorruptionError";
  /** Where the bytes came from (a file path, or "stream from node 2"). */
  readonly source: string;

  constructor(source: string, reason: string) {
    super(`Cannot read snapshot ${source}: ${reason}`);
    this.source = source;
  }
}

interface Header {
  readonly index: number;
  readonly term: number;
  readonly conf: {
    readonly voters: readonly NodeId[];
    readonly learners?: readonly NodeId[];
    readonly votersOutgoing?: readonly NodeId[];
    readonly learnersNext?: readonly NodeId[];
    readonly autoLeave?: boolean;
  };
  readonly dataLength: number;
}

/** The bytes of a snapshot file holding `snapshot`. */
export function encodeSnapshotFile(snapshot: Snapshot): Uint8Array {
  const steps = encodeSnapshotFileInSteps(snapshot, Infinity);
  let next = steps.next();
  while (!next.done) next = steps.next();
  const parts = next.value;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * The snapshot file holding `snapshot` as parts (the fixed fields and header, the
 * state itself, uncopied, and the checksum) whose concatenation is
 * {@link encodeSnapshotFile}'s result. The checksum is computed a slice of about
 * `bytesPerStep` bytes at a time, yielding between slices, so a node writing a
 * snapshot of many megabytes can let its Ready loop run meanwhile.
 */
export function* encodeSnapshotFileInSteps(
  snapshot: Snapshot,
  bytesPerStep = 1 << 20,
): Generator<void, Uint8Array[]> {
  const { meta, data } = snapshot;
  const header: Header = {
    index: meta.index,
    term: meta.term,
    conf: confHeader(meta.conf),
    dataLength: data.length,
  };
  const h = new TextEncoder().encode(JSON.stringify(header));
  const head = new Uint8Array(FIXED_BYTES + h.length);
  const view = new DataView(head.buffer);
  head.set(SNAPSHOT_MAGIC, 0);
  view.setUint32(8, SNAPSHOT_FORMAT_VERSION, true);
  view.setUint32(12, h.length, true);
  head.set(h, FIXED_BYTES);
  let crc = crc32c(head);
  for (let at = 0; at < data.length; at += bytesPerStep) {
    crc = crc32cRange(data, at, Math.min(data.length, at + bytesPerStep), crc);
    if (at + bytesPerStep < data.length) yield;
  }
  const trailer = new Uint8Array(TRAILER_BYTES);
  new DataView(trailer.buffer).setUint32(0, crc, true);
  return [head, data, trailer];
}

function isNodeId(x: unknown): x is NodeId {
  return typeof x === "number" && Number.isSafeInteger(x) && x > 0;
}

function isIndex(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/**
 * Decodes and checks a snapshot file. Throws {@link SnapshotCorruptionError},
 * naming `source` and what is wrong, unless every check passes: magic, version,
 * lengths, checksum, and a header that makes sense (a snapshot at index i > 0
 * has a term > 0 and at least one voter).
 */
export function decodeSnapshotFile(bytes: Uint8Array, source: string): Snapshot {
  const steps = checkSnapshotFileInSteps(bytes, source, Infinity);
  let next = steps.next();
  while (!next.done) next = steps.next();
  const { meta, dataStart, dataEnd } = next.value;
  // A copy: the caller may reuse or free `bytes`.
  return { meta, data: bytes.slice(dataStart, dataEnd) };
}

/** A snapshot file that passed every check: its metadata, and where its state lies in it. */
export interface CheckedSnapshotFile {
  readonly meta: SnapshotMeta;
  readonly dataStart: number;
  readonly dataEnd: number;
}

/**
 * The checks of {@link decodeSnapshotFile}, without copying the state out: the
 * checksum is computed a slice of about `bytesPerStep` bytes at a time, yielding
 * between slices, so that a leader checking a file of many megabytes before it
 * sends it lets its Ready loop run meanwhile (as {@link encodeSnapshotFileInSteps}
 * does when it writes one).
 */
export function* checkSnapshotFileInSteps(
  bytes: Uint8Array,
  source: string,
  bytesPerStep = 1 << 20,
): Generator<void, CheckedSnapshotFile> {
  const bad = (reason: string) => new SnapshotCorruptionError(source, reason);
  if (bytes.length < FIXED_BYTES + TRAILER_BYTES) {
    throw bad(`it is ${bytes.length} bytes, shorter than any snapshot file`);
  }
  for (let i = 0; i < SNAPSHOT_MAGIC.length; i++) {
    if (bytes[i] !== SNAPSHOT_MAGIC[i]) throw bad("it does not start with RKVSNAP1");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== SNAPSHOT_FORMAT_VERSION) {
    throw bad(`format version ${version}; this node reads version ${SNAPSHOT_FORMAT_VERSION}`);
  }
  const headerLength = view.getUint32(12, true);
  if (
    headerLength > MAX_HEADER_BYTES || FIXED_BYTES + headerLength + TRAILER_BYTES > bytes.length
  ) {
    throw bad(`header length ${headerLength} does not fit in ${bytes.length} bytes (truncated?)`);
  }
  const end = bytes.length - TRAILER_BYTES;
  const want = view.getUint32(end, true);
  let got = 0;
  for (let at = 0; at < end; at += bytesPerStep) {
    got = crc32cRange(bytes, at, Math.min(end, at + bytesPerStep), got);
    if (at + bytesPerStep < end) yield;
  }
  if (want !== got) {
    throw bad(
      `checksum mismatch (stored ${want.toString(16)}, computed ${got.toString(16)}): ` +
        "the file is truncated or damaged",
    );
  }
  let header: Partial<Header>;
  try {
    header = JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(
        bytes.subarray(FIXED_BYTES, FIXED_BYTES + headerLength),
      ),
    );
  } catch (e) {
    throw bad(`header is not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  const { index, term, conf, dataLength } = header ?? {};
  const voters = conf?.voters;
  if (!isIndex(index) || !isIndex(term) || !isIndex(dataLength) || !Array.isArray(voters)) {
    throw bad("header lacks index, term, conf.voters or dataLength");
  }
  const lists = {
    voters,
    learners: conf?.learners ?? [],
    votersOutgoing: conf?.votersOutgoing ?? [],
    learnersNext: conf?.learnersNext ?? [],
  };
  for (const [what, ids] of Object.entries(lists)) {
    if (!Array.isArray(ids) || !ids.every(isNodeId) || new Set(ids).size !== ids.length) {
      throw bad(`${what} ${JSON.stringify(ids)} are not distinct positive ids`);
    }
  }
  const autoLeave = conf?.autoLeave ?? false;
  if (typeof autoLeave !== "boolean") throw bad(`autoLeave ${JSON.stringify(autoLeave)}`);
  if (index > 0 && (term === 0 || voters.length === 0)) {
    throw bad(`a snapshot at index ${index} needs a term and at least one voter`);
  }
  if (FIXED_BYTES + headerLength + dataLength !== end) {
    throw bad(
      `header says ${dataLength} bytes of state, the file holds ${
        end - FIXED_BYTES - headerLength
      }`,
    );
  }
  const asc = (ids: readonly NodeId[]) => [...ids].sort((a, b) => a - b);
  const meta: SnapshotMeta = {
    index,
    term,
    conf: {
      voters: asc(lists.voters),
      learners: asc(lists.learners),
      votersOutgoing: asc(lists.votersOutgoing),
      learnersNext: asc(lists.learnersNext),
      autoLeave,
    },
  };
  return { meta, dataStart: FIXED_BYTES + headerLength, dataEnd: end };
}

/** The header's form of `cs`: voters, and the other fields only when set. */
function confHeader(cs: ConfState): Header["conf"] {
  return {
    voters: [...cs.voters],
    ...(cs.learners.length > 0 ? { learners: [...cs.learners] } : {}),
    ...(cs.votersOutgoing.length > 0 ? { votersOutgoing: [...cs.votersOutgoing] } : {}),
    ...(cs.learnersNext.length > 0 ? { learnersNext: [...cs.learnersNext] } : {}),
    ...(cs.autoLeave ? { autoLeave: true } : {}),
  };
}
