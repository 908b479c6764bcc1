/**
 * Segment files: naming, listing, and scanning one segment's frames.
 *
 * A segment is named `<seq>-<firstIndex>.wal`, both 16 lowercase hex digits:
 * `seq` counts segments from 0 with no gaps, `firstIndex` is the log's last index
 * + 1 when the segment was created (entries in it may start lower, when a save
 * replaces a suffix). A new segment is written under `<name>.tmp`, fsynced, then
 * renamed, so a `.wal` file always begins with a complete header; leftover `.tmp`
 * files are the remains of a crash and are deleted on open.
 *
 * @module
 */

import { type Frame, readFrame } from "./record.ts";

/** The identity of a segment, as its file name spells it. */
export interface SegmentId {
  readonly seq: number;
  readonly firstIndex: number;
}

/** The suffix of a segment file. */
export const SEGMENT_SUFFIX = ".wal";

/** The suffix of a segment being created. */
export const TEMP_SUFFIX = ".wal.tmp";

const NAME = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

/** The file name of a segment: `0000000000000002-0000000000000101.wal`. */
export function segmentFileName(id: SegmentId): string {
  return `${hex16(id.seq)}-${hex16(id.firstIndex)}${SEGMENT_SUFFIX}`;
}

/** Parses a segment file name, or returns undefined if `name` is not one. */
export function parseSegmentFileName(name: string): SegmentId | undefined {
  const m = NAME.exec(name);
  if (m === null) return undefined;
  const seq = parseInt(m[1]!, 16);
  const firstIndex = parseInt(m[2]!, 16);
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(firstIndex)) return undefined;
  return { seq, firstIndex };
}

function hex16(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`bad segment number ${n}`);
  return n.toString(16).padStart(16, "0");
}

/** The first damaged frame of a segment, if any. */
export interface SegmentDamage {
  /** Offset of the first byte that is not part of an intact frame. */
  readonly offset: number;
  /** What is wrong there. */
  readonly reason: string;
  /**
   * The offset of the first intact frame after the damage, if one exists: proof
   * that the damage is not a torn tail.
   */
  readonly nextIntactOffset: number | undefined;
}

/** The intact frames at the start of a segment, and where they stop. */
export interface SegmentScan {
  /** Consecutive intact frames from offset 0. */
  readonly frames: Frame[];
  /** The end of the last intact frame: the size the file would have without its damage. */
  readonly end: number;
  /** Set when `end` is short of the file size. */
  readonly damage: SegmentDamage | undefined;
}

/**
 * Reads consecutive intact frames of segment `seq` from offset 0 until the end of
 * `bytes` or the first frame that is not intact. In the latter case, looks at every
 * later 8-byte-aligned offset for an intact frame (a frame CRC that validates
 * there), which would mean data the WAL wrote follows the damage.
 *
 * The search costs, per candidate offset, a few byte comparisons, and a CRC only
 * where the header looks plausible (reserved bytes zero, length within the file).
 */
export function scanSegment(bytes: Uint8Array, seq: number): SegmentScan {
  if (bytes.length === 0) {
    const damage = {
      offset: 0,
      reason: "empty file (no segment header)",
      nextIntactOffset: undefined,
    };
    return { frames: [], end: 0, damage };
  }
  const frames: Frame[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const f = readFrame(bytes, seq, offset);
    if ("damage" in f) {
      return {
        frames,
        end: offset,
        damage: {
          offset,
          reason: f.damage,
          nextIntactOffset: findIntactFrame(bytes, seq, offset + 8),
        },
      };
    }
    frames.push(f);
    offset += f.size;
  }
  return { frames, end: offset, damage: undefined };
}

/** The first offset at or after `from` (8-aligned) holding an intact frame, if any. */
export function findIntactFrame(bytes: Uint8Array, seq: number, from: number): number | undefined {
  for (let o = from; o + 16 <= bytes.length; o += 8) {
    if (bytes[o + 5] !== 0 || bytes[o + 6] !== 0 || bytes[o + 7] !== 0) continue;
    const f = readFrame(bytes, seq, o);
    if (!("damage" in f)) return o;
  }
  return undefined;
}
