/**
 * Record framing and payload codecs of the write-ahead log.
 *
 * A segment file is a sequence of frames, each 8-byte aligned:
 *
 * ```
 * offset  size  field
 *  0       4    payload length in bytes (u32 LE), padding excluded
 *  4       1    record type (1 segment header, 2 entry, 3 hard state; 0 is never valid)
 *  5       3    reserved, zero
 *  8       4    chain CRC (u32 LE): CRC-32C over bytes 0..8 and the payload and padding
 *               of this frame, continuing from the chain CRC of the previous frame (for
 *               a segment's first frame, the seed its header carries)
 * 12       4    frame CRC (u32 LE): CRC-32C over bytes 0..12 (so including the chain
 *               CRC) and the payload and padding, seeded with the frame's position (the
 *               segment sequence number and byte offset), independent of other frames
 * 16       n    payload
 * 16+n     p    zero padding, 0..7 bytes, so the next frame starts 8-byte aligned
 * ```
 *
 * Every byte of a frame is covered by the frame CRC (but the CRC itself), so any
 * damage inside a frame makes it fail. The chain CRC links each frame to all those
 * before it, across segments, so an intact frame from another history or position
 * in the sequence is caught. The frame CRC lets a reader decide whether the bytes at some
 * offset are a frame the WAL wrote *there*, without knowing the chain: that is how
 * recovery tells a torn tail from damage in the middle (see `segment.ts`). Binding
 * it to the position means a frame-shaped run of bytes inside an entry's data, or a
 * frame copied from elsewhere, does not validate.
 *
 * Numbers (terms, indexes, node ids) are stored as u64 LE and must be safe
 * integers (< 2^53), matching `types.ts`.
 *
 * @module
 */

import type { Entry, EntryType, HardState } from "../raft/types.ts";
import { crc32c } from "./crc32c.ts";

/** Bytes in a frame header (length, type, reserved, chain CRC, frame CRC). */
export const FRAME_HEADER_BYTES = 16;

/** The largest payload a record may carry (256 MiB); a larger length field is damage. */
export const MAX_PAYLOAD_BYTES: number = 256 * 1024 * 1024;

/** The on-disk format version, written in every segment header. */
export const FORMAT_VERSION = 1;

/** What a record holds. */
export const RecordType = {
  /** The first record of every segment: its identity and the chain seed. */
  segmentHeader: 1,
  /** One log entry; an index at or below the last one replaces the log from there. */
  entry: 2,
  /** A hard state; the last one replayed wins. */
  hardState: 3,
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

/** A frame that passed its frame CRC, as read from a segment. */
export interface Frame {
  /** Byte offset of the frame in its segment. */
  readonly offset: number;
  /** The raw type byte; not necessarily a known {@link RecordType}. */
  readonly type: number;
  /** The payload, a view into the segment's bytes. */
  readonly payload: Uint8Array;
  /** The chain CRC stored in the frame. */
  readonly chainCrc: number;
  /** Bytes the frame occupies, padding included. */
  readonly size: number;
}

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

/** The seed of a frame CRC: the CRC of the frame's segment sequence number and offset. */
function positionSeed(seq: number, offset: number): number {
  setU64(POSITION, 0, seq);
  setU64(POSITION, 8, offset);
  return crc32c(POSITION_BYTES);
}

/**
 * CRC-32C of the first `head` header bytes of the frame at `offset` (8 for the
 * chain CRC, 12 for the frame CRC), then its payload and padding, continuing from `seed`.
 */
function bodyCrc(
  bytes: Uint8Array,
  offset: number,
  size: number,
  head: 8 | 12,
  seed: number,
): number {
  const c = crc32c(bytes.subarray(offset, offset + head), seed);
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
  const chain = bodyCrc(buf, at, size, 8, prevChain);
  view.setUint32(8, chain, true);
  view.setUint32(12, bodyCrc(buf, at, size, 12, positionSeed(seq, offset)), true);
  return chain;
}

/** Why the bytes at an offset are not an intact frame. */
export type FrameDamage = { readonly damage: string };

/**
 * Reads the frame at `offset` of segment `seq` (whose whole contents are `bytes`)
 * if it is intact: complete, with a sane length, zero reserved bytes and a frame
 * CRC that matches. Otherwise says what is wrong. The chain CRC is not checked here.
 */
export function readFrame(bytes: Uint8Array, seq: number, offset: number): Frame | FrameDamage {
  const remaining = bytes.length - offset;
  if (remaining < FRAME_HEADER_BYTES) {
    return { damage: `incomplete record header (${remaining} of ${FRAME_HEADER_BYTES} bytes)` };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, FRAME_HEADER_BYTES);
  const length = view.getUint32(0, true);
  if (length > MAX_PAYLOAD_BYTES) {
    return { damage: `impossible record length ${length} (limit ${MAX_PAYLOAD_BYTES})` };
  }
  const size = frameSize(length);
  if (size > remaining) {
    return {
      damage: `record of ${size} bytes runs past the end of the file (${remaining} bytes left)`,
    };
  }
  if (bytes[offset + 5] !== 0 || bytes[offset + 6] !== 0 || bytes[offset + 7] !== 0) {
    return { damage: "bad record header (reserved bytes not zero)" };
  }
  const stored = view.getUint32(12, true);
  const actual = bodyCrc(bytes, offset, size, 12, positionSeed(seq, offset));
  if (stored !== actual) {
    return {
      damage: `bad CRC (stored ${hex32(stored)}, computed ${hex32(actual)})`,
    };
  }
  return {
    offset,
    type: view.getUint8(4),
    payload: bytes.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + length),
    chainCrc: view.getUint32(8, true),
    size,
  };
}

/** The chain CRC a frame read from `bytes` should carry, given the chain before it. */
export function expectedChainCrc(bytes: Uint8Array, frame: Frame, prevChain: number): number {
  return bodyCrc(bytes, frame.offset, frame.size, 8, prevChain);
}

/** Formats a CRC as 8 hex digits. */
export function hex32(n: number): string {
  return "0x" + (n >>> 0).toString(16).padStart(8, "0");
}

// ---- payload codecs ----------------------------------------------------------------------------

const ENTRY_TYPES: readonly EntryType[] = ["normal"];
const HARD_STATE_BYTES = 24;
const SEGMENT_HEADER_BYTES = 24;
const ENTRY_FIXED_BYTES = 17;
const TWO_32 = 2 ** 32;

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

/** Encodes an entry: index (u64), term (u64), type (u8: 0 normal), then the data. */
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

/** Decodes an entry payload, copying its data; throws a RangeError naming what is wrong. */
export function decodeEntry(payload: Uint8Array): Entry {
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
  return { index, term, type, data: payload.slice(ENTRY_FIXED_BYTES) };
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
  view.setUint32(16, h.prevCrc >>> 0, true);
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
    prevCrc: view.getUint32(16, true),
    version: view.getUint32(20, true),
  };
}
