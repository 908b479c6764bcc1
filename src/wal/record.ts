/**
 * Record framing and payload codecs of the write-ahead log.
 *
 * A segment file is a sequence of frames, each 8-byte aligned:
 *
 * ```
 * offset  size  field
 *  0       4    payload length in bytes (u32 LE), padding excluded
 *  4       1    record type (1 segment header, 2 entry, 3 hard state, 4 save; 0 is never valid)
 *  5       3    reserved, zero
 *  8       4    chain CRC (u32 LE): CRC-32C over bytes 0..8 and the payload and padding
 *               of this frame, continuing from the chain CRC of the previous frame (for
 *               a segment's first frame, the seed its header carries)
 * 12       4    header CRC (u32 LE): CRC-32C over bytes 0..12 (so including the chain
 *               CRC), seeded with the frame's position (the segment sequence number and
 *               byte offset)
 * 16       n    payload
 * 16+n     p    zero padding, 0..7 bytes, so the next frame starts 8-byte aligned
 * ```
 *
 * After etcd's WAL (`server/storage/wal/`): a length, a type, a CRC chained over
 * every record before it, the data, 8-byte alignment. The chain CRC covers the
 * payload and links each frame to all those before it, across segments, so damage
 * anywhere, or an intact frame from another history or position, is caught when the
 * log is read in order.
 *
 * The header CRC is ours. It covers only the 12 bytes before it, bound to the
 * frame's position, so deciding whether the WAL wrote a frame *at some offset* costs
 * the same for a 16-byte record as for a 16 MiB one. Recovery asks that question at
 * every 8-byte offset after damage, to tell a torn write from corruption (see
 * `segment.ts`); with a CRC over the whole frame (the previous format) each question
 * cost up to the rest of the file, and a torn 8 MiB record, whose bytes clients
 * choose, took about an hour to open. Because the header CRC covers the chain CRC,
 * which covers the payload, an intact header whose chain CRC follows its predecessor
 * is an intact frame. The position binding means a frame-shaped run of bytes inside
 * an entry's data, or a frame copied from elsewhere, does not pass by accident. (A
 * client who predicted the exact offset of its data could forge a header; the most
 * that buys it is that a crash inside that very save is taken for corruption, and
 * the node refuses to start rather than guess: nothing is lost.)
 *
 * **Saves.** Each call to `Wal.save` writes one *save*: a save record (type 4) whose
 * payload says how many bytes and records follow it, then those records. The reader
 * applies a save only once it has read all of it, so a save is recovered whole or not
 * at all, and it knows where the last save starts and ends, which is what tells a
 * torn write (damage inside the last save: its pages reached the disk in any order,
 * and none of it was acknowledged) from corruption (damage followed by a save written
 * later, which could only be written after the damaged one was durable). A length up
 * front was chosen over a commit marker at the end because it also bounds the save
 * when its end is what went missing.
 *
 * Numbers (terms, indexes, node ids) are stored as u64 LE and must be safe
 * integers (< 2^53), matching `types.ts`.
 *
 * @module
 */

import type { Entry, EntryType, HardState } from "../raft/types.ts";
import { crc32c, crc32cRange } from "./crc32c.ts";

/** Bytes in a frame header (length, type, reserved, chain CRC, header CRC). */
export const FRAME_HEADER_BYTES = 16;

/** The largest payload a record may carry (256 MiB); a larger length field is damage. */
export const MAX_PAYLOAD_BYTES: number = 256 * 1024 * 1024;

/** The on-disk format version, written in every segment header. */
export const FORMAT_VERSION = 2;

/** What a record holds. */
export const RecordType = {
  /** The first record of every segment: its identity and the chain seed. */
  segmentHeader: 1,
  /** One log entry; an index at or below the last one replaces the log from there. */
  entry: 2,
  /** A hard state; the last one replayed wins. */
  hardState: 3,
  /** The first record of every save: how many bytes and records of the save follow it. */
  save: 4,
} as const;

/** The numeric code of a record type. */
export type RecordTypeCode = typeof RecordType[keyof typeof RecordType];

/** The payload of a segment header record. */
export interface SegmentHeader {
  /** The segment's sequence number, as in its file name. */
  readonly seq: number;
  /** The log's last index + 1 when the segment was created, as in its file name. */
  readonly firstIndex: number;
  /** The chain CRC at the end of the previous segment (0 for the first): this segment's seed. */
  readonly prevCrc: number;
  /** {@link FORMAT_VERSION} of the writer. */
  readonly version: number;
}

/** The payload of a save record. */
export interface SaveHeader {
  /** Bytes of the frames that follow the save record and belong to the save. */
  readonly bytes: number;
  /** How many records (frames) those are; at least 1. */
  readonly records: number;
}

/** A frame header that passed its header CRC, as read from a segment. */
export interface FrameHeader {
  /** Byte offset of the frame in its segment. */
  readonly offset: number;
  /** The raw type byte; not necessarily a known {@link RecordType}. */
  readonly type: number;
  /** Payload bytes, padding excluded. */
  readonly length: number;
  /** The chain CRC stored in the frame. */
  readonly chainCrc: number;
  /** Bytes the frame occupies, padding included. */
  readonly size: number;
}

/** A frame whose header and chain CRC both check out. */
export interface Frame extends FrameHeader {
  /** The payload, a view into the segment's bytes. */
  readonly payload: Uint8Array;
}

/** Why the bytes at an offset are not an intact frame. */
export type FrameDamage = { readonly damage: string };

/** Rounds `n` up to a multiple of 8. */
export function align8(n: number): number {
  return (n + 7) & ~7;
}

/** Bytes a frame with a payload of `payloadBytes` occupies on disk. */
export function frameSize(payloadBytes: number): number {
  return FRAME_HEADER_BYTES + align8(payloadBytes);
}

const POSITION = new DataView(new ArrayBuffer(16));
const POSITION_BYTES = new Uint8Array(POSITION.buffer);

/** The seed of a header CRC: the CRC of the frame's segment sequence number and offset. */
function positionSeed(seq: number, offset: number): number {
  setU64(POSITION, 0, seq);
  setU64(POSITION, 8, offset);
  return crc32c(POSITION_BYTES);
}

/** The header CRC of the frame at `offset`: its first 12 bytes, seeded with its position. */
function headerCrc(bytes: Uint8Array, seq: number, offset: number): number {
  return crc32cRange(bytes, offset, offset + 12, positionSeed(seq, offset));
}

/** The u32 LE at `at`, without a DataView: the torn-tail search reads one per offset. */
function u32(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>>
    0;
}

/** The chain CRC of a frame: its first 8 header bytes, then payload and padding, after `prev`. */
function chainCrc(bytes: Uint8Array, offset: number, size: number, prev: number): number {
  const c = crc32c(bytes.subarray(offset, offset + 8), prev);
  return crc32c(bytes.subarray(offset + FRAME_HEADER_BYTES, offset + size), c);
}

/**
 * Writes one frame into `buf` at `at` (which must be zeroed, so padding is zero)
 * and returns the new chain CRC. `offset` is where the frame will sit in segment
 * `seq`; `prevChain` is the chain CRC before it.
 */
export function writeFrame(
  buf: Uint8Array,
  at: number,
  type: RecordTypeCode,
  payload: Uint8Array,
  seq: number,
  offset: number,
  prevChain: number,
): number {
  if (payload.length > MAX_PAYLOAD_BYTES) {
    throw new RangeError(
      `Cannot encode WAL record: payload of ${payload.length} bytes exceeds the limit of ${MAX_PAYLOAD_BYTES}`,
    );
  }
  const size = frameSize(payload.length);
  const view = new DataView(buf.buffer, buf.byteOffset + at, size);
  view.setUint32(0, payload.length, true);
  view.setUint8(4, type);
  buf.set(payload, at + FRAME_HEADER_BYTES);
  const chain = chainCrc(buf, at, size, prevChain);
  view.setUint32(8, chain, true);
  // The header CRC is computed over `buf` as laid out at `at`, bound to `offset`.
  const head = crc32c(buf.subarray(at, at + 12), positionSeed(seq, offset));
  view.setUint32(12, head, true);
  return chain;
}

/**
 * Reads the header of the frame at `offset` of segment `seq` if the WAL wrote one
 * there: 16 bytes present, reserved bytes zero, a header CRC that matches. Costs
 * the same whatever the frame's length (the length is not checked against the file).
 */
export function readHeader(
  bytes: Uint8Array,
  seq: number,
  offset: number,
): FrameHeader | FrameDamage {
  const remaining = bytes.length - offset;
  if (remaining < FRAME_HEADER_BYTES) {
    return { damage: `incomplete record header (${remaining} of ${FRAME_HEADER_BYTES} bytes)` };
  }
  if (bytes[offset + 5] !== 0 || bytes[offset + 6] !== 0 || bytes[offset + 7] !== 0) {
    return { damage: "bad record header (reserved bytes not zero)" };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, FRAME_HEADER_BYTES);
  const stored = view.getUint32(12, true);
  const actual = headerCrc(bytes, seq, offset);
  if (stored !== actual) {
    return { damage: `bad header CRC (stored ${hex32(stored)}, computed ${hex32(actual)})` };
  }
  const length = view.getUint32(0, true);
  return {
    offset,
    type: view.getUint8(4),
    length,
    chainCrc: view.getUint32(8, true),
    size: frameSize(length),
  };
}

/**
 * Whether the WAL wrote a frame header at `offset` of segment `seq` (of type `type`,
 * if given). O(1): a few byte comparisons, and a CRC of 28 bytes where they pass.
 */
export function isHeaderAt(bytes: Uint8Array, seq: number, offset: number, type?: number): boolean {
  if (offset + FRAME_HEADER_BYTES > bytes.length) return false;
  if (bytes[offset + 5] !== 0 || bytes[offset + 6] !== 0 || bytes[offset + 7] !== 0) return false;
  if (type !== undefined && bytes[offset + 4] !== type) return false;
  return u32(bytes, offset + 12) === headerCrc(bytes, seq, offset);
}

/**
 * Reads the frame at `offset` of segment `seq` (whose whole contents are `bytes`)
 * if it is intact: its header passes ({@link readHeader}), its length is sane, it
 * fits in the file, and its chain CRC follows `prevChain`. Otherwise says what is
 * wrong.
 */
export function readFrame(
  bytes: Uint8Array,
  seq: number,
  offset: number,
  prevChain: number,
): Frame | FrameDamage {
  const h = readHeader(bytes, seq, offset);
  if ("damage" in h) return h;
  if (h.length > MAX_PAYLOAD_BYTES) {
    return { damage: `impossible record length ${h.length} (limit ${MAX_PAYLOAD_BYTES})` };
  }
  const remaining = bytes.length - offset;
  if (h.size > remaining) {
    return {
      damage: `record of ${h.size} bytes runs past the end of the file (${remaining} bytes left)`,
    };
  }
  const expected = chainCrc(bytes, offset, h.size, prevChain);
  if (h.chainCrc !== expected) {
    return {
      damage: `bad CRC (stored ${hex32(h.chainCrc)}, expected ${hex32(expected)}): the record's ` +
        `data is damaged or it does not follow the record before it`,
    };
  }
  const start = offset + FRAME_HEADER_BYTES;
  return { ...h, payload: bytes.subarray(start, start + h.length) };
}

/** Formats a CRC as 8 hex digits. */
export function hex32(n: number): string {
  return "0x" + (n >>> 0).toString(16).padStart(8, "0");
}

// ---- payload codecs ----------------------------------------------------------------------------

const ENTRY_TYPES: readonly EntryType[] = ["normal", "conf_change"];
const HARD_STATE_BYTES = 24;
const SEGMENT_HEADER_BYTES = 24;
const SAVE_HEADER_BYTES = 16;
const ENTRY_FIXED_BYTES = 17;
const TWO_32 = 2 ** 32;

/** Where a segment header payload keeps the previous CRC (the seed of its own chain CRC). */
export const SEGMENT_HEADER_PREV_CRC_AT = 16;

function setU64(view: DataView, at: number, n: number): void {
  view.setUint32(at, n % TWO_32, true);
  view.setUint32(at + 4, Math.floor(n / TWO_32), true);
}

function getU64(view: DataView, at: number, what: string): number {
  const hi = view.getUint32(at + 4, true);
  if (hi > 0x1fffff) throw new RangeError(`${what} exceeds 2^53`);
  return hi * TWO_32 + view.getUint32(at, true);
}

function checkU64(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`${what} must be a non-negative safe integer, got ${n}`);
  }
}

function viewOf(payload: Uint8Array): DataView {
  return new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
}

/** Encodes an entry: index (u64), term (u64), type (u8: 0 normal, 1 conf_change), then the data. */
export function encodeEntry(entry: Entry): Uint8Array {
  checkU64(entry.index, "entry index");
  checkU64(entry.term, "entry term");
  const code = ENTRY_TYPES.indexOf(entry.type);
  if (code < 0) throw new RangeError(`unknown entry type "${entry.type}"`);
  const out = new Uint8Array(ENTRY_FIXED_BYTES + entry.data.length);
  const view = viewOf(out);
  setU64(view, 0, entry.index);
  setU64(view, 8, entry.term);
  view.setUint8(16, code);
  out.set(entry.data, ENTRY_FIXED_BYTES);
  return out;
}

/**
 * Decodes an entry payload, copying its data (unless its index is at or below
 * `viewUpTo`: then the data is a view into `payload`, for entries a snapshot already
 * holds, which recovery reads only to check the log and drops); throws a RangeError
 * naming what is wrong.
 */
export function decodeEntry(payload: Uint8Array, viewUpTo = 0): Entry {
  if (payload.length < ENTRY_FIXED_BYTES) {
    throw new RangeError(
      `entry payload of ${payload.length} bytes is shorter than ${ENTRY_FIXED_BYTES}`,
    );
  }
  const view = viewOf(payload);
  const index = getU64(view, 0, "entry index");
  const term = getU64(view, 8, "entry term");
  const code = view.getUint8(16);
  const type = ENTRY_TYPES[code];
  if (type === undefined) throw new RangeError(`unknown entry type code ${code}`);
  const data = index <= viewUpTo
    ? payload.subarray(ENTRY_FIXED_BYTES)
    : payload.slice(ENTRY_FIXED_BYTES);
  return { index, term, type, data };
}

/** Encodes a hard state: term, vote, commit, each u64. */
export function encodeHardState(hs: HardState): Uint8Array {
  checkU64(hs.term, "hard state term");
  checkU64(hs.vote, "hard state vote");
  checkU64(hs.commit, "hard state commit");
  const out = new Uint8Array(HARD_STATE_BYTES);
  const view = viewOf(out);
  setU64(view, 0, hs.term);
  setU64(view, 8, hs.vote);
  setU64(view, 16, hs.commit);
  return out;
}

/** Decodes a hard state payload; throws a RangeError naming what is wrong. */
export function decodeHardState(payload: Uint8Array): HardState {
  if (payload.length !== HARD_STATE_BYTES) {
    throw new RangeError(
      `hard state payload is ${payload.length} bytes, expected ${HARD_STATE_BYTES}`,
    );
  }
  const view = viewOf(payload);
  return {
    term: getU64(view, 0, "hard state term"),
    vote: getU64(view, 8, "hard state vote"),
    commit: getU64(view, 16, "hard state commit"),
  };
}

/** Encodes a segment header: seq (u64), first index (u64), previous CRC (u32), version (u32). */
export function encodeSegmentHeader(h: SegmentHeader): Uint8Array {
  checkU64(h.seq, "segment sequence number");
  checkU64(h.firstIndex, "segment first index");
  const out = new Uint8Array(SEGMENT_HEADER_BYTES);
  const view = viewOf(out);
  setU64(view, 0, h.seq);
  setU64(view, 8, h.firstIndex);
  view.setUint32(SEGMENT_HEADER_PREV_CRC_AT, h.prevCrc >>> 0, true);
  view.setUint32(20, h.version, true);
  return out;
}

/** Decodes a segment header payload; throws a RangeError naming what is wrong. */
export function decodeSegmentHeader(payload: Uint8Array): SegmentHeader {
  if (payload.length !== SEGMENT_HEADER_BYTES) {
    throw new RangeError(
      `segment header payload is ${payload.length} bytes, expected ${SEGMENT_HEADER_BYTES}`,
    );
  }
  const view = viewOf(payload);
  return {
    seq: getU64(view, 0, "segment sequence number"),
    firstIndex: getU64(view, 8, "segment first index"),
    prevCrc: view.getUint32(SEGMENT_HEADER_PREV_CRC_AT, true),
    version: view.getUint32(20, true),
  };
}

/** Encodes a save header: bytes that follow (u64), records that follow (u32), reserved (u32). */
export function encodeSaveHeader(h: SaveHeader): Uint8Array {
  checkU64(h.bytes, "save bytes");
  if (!Number.isSafeInteger(h.records) || h.records < 1 || h.records > 0xffffffff) {
    throw new RangeError(`save record count must be in 1..2^32-1, got ${h.records}`);
  }
  const out = new Uint8Array(SAVE_HEADER_BYTES);
  const view = viewOf(out);
  setU64(view, 0, h.bytes);
  view.setUint32(8, h.records, true);
  return out;
}

/** Decodes a save header payload; throws a RangeError naming what is wrong. */
export function decodeSaveHeader(payload: Uint8Array): SaveHeader {
  if (payload.length !== SAVE_HEADER_BYTES) {
    throw new RangeError(
      `save header payload is ${payload.length} bytes, expected ${SAVE_HEADER_BYTES}`,
    );
  }
  const view = viewOf(payload);
  const bytes = getU64(view, 0, "save bytes");
  const records = view.getUint32(8, true);
  if (records < 1) throw new RangeError("save of 0 records");
  if (bytes < records * FRAME_HEADER_BYTES || bytes % 8 !== 0) {
    throw new RangeError(`save of ${records} records cannot be ${bytes} bytes`);
  }
  if (view.getUint32(12, true) !== 0) throw new RangeError("save header reserved bytes not zero");
  return { bytes, records };
}
