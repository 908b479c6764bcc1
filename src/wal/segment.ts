/**
 * Segment files: naming, listing, and scanning one segment's saves.
 *
 * A segment is named `<seq>-<firstIndex>.wal`, both 16 lowercase hex digits:
 * `seq` counts segments from 0 with no gaps, `firstIndex` is the log's last index
 * + 1 when the segment was created (entries in it may start lower, when a save
 * replaces a suffix). A new segment is written under `<name>.tmp`, fsynced, then
 * renamed, so a `.wal` file always begins with a complete header; leftover `.tmp`
 * files are the remains of a crash and are deleted on open.
 *
 * A segment holds its header record, then whole saves (see `record.ts`): a save
 * record saying how many bytes and records follow, then the records. A save is
 * never split across segments.
 *
 * **Torn write or corruption.** A save is acknowledged only after its fsync, and the
 * next save is written only after that, so:
 * - damage inside the *last* save of the last segment is a torn write: the crash
 *   came before its fsync finished, its pages reached the disk in any order (a hole
 *   of zeros or stale bytes with intact records of the same save after it is
 *   possible), and none of it was promised to anyone. Recovery cuts the whole save.
 * - damage followed by any record of a *later* save is corruption: the damaged save
 *   was durable before the later one was written. Recovery refuses.
 *
 * To tell them apart the scan looks, after the damage, for a frame header the WAL
 * wrote: from the end of the damaged save when its save record is intact (so its
 * extent is known), else for a save record (the only record that begins a save).
 * Each candidate offset costs O(1) (a header CRC), so the search is linear in the
 * tail however its bytes were chosen. etcd decides the same question by looking for
 * zeroed sectors in the last record (`isTornEntry`); knowing where the save starts
 * and ends also covers holes that are not zeros.
 *
 * @module
 */

import {
  decodeSaveHeader,
  type Frame,
  FRAME_HEADER_BYTES,
  isHeaderAt,
  readFrame,
  RecordType,
  SEGMENT_HEADER_PREV_CRC_AT,
} from "./record.ts";

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

/** One complete save read from a segment. */
export interface ScannedSave {
  /** Offset of its save record. */
  readonly offset: number;
  /** Offset just past its last record. */
  readonly end: number;
  /** Its records after the save record, in order (types not yet checked). */
  readonly records: Frame[];
}

/** Where and why a segment stops making sense. */
export interface SegmentProblem {
  /** Offset of the first frame that is wrong. */
  readonly offset: number;
  /** What is wrong there. */
  readonly reason: string;
  /**
   * True when the frame is intact (its CRCs hold) but out of place (a record where a
   * save should begin, a save whose records do not add up): what some writer wrote,
   * never what a crash leaves, so corruption wherever it is.
   */
  readonly intact: boolean;
  /**
   * For damage (not `intact`): the offset of a frame header of a later save (or,
   * for damage in the segment header, of any record), if one exists: proof that the
   * damage is not a torn write.
   */
  readonly laterRecord: number | undefined;
}

/** The segment header and complete saves at the start of a segment, and where they stop. */
export interface SegmentScan {
  /** The segment header frame, if intact (its payload is not yet decoded). */
  readonly header: Frame | undefined;
  /** The complete saves after the header, in order. */
  readonly saves: ScannedSave[];
  /**
   * The end of the header or of the last complete save (0 if the header is not
   * intact): where a torn tail is cut.
   */
  readonly end: number;
  /** The chain CRC at `end`. */
  readonly chain: number;
  /** Set when `end` is short of the file size. */
  readonly problem: SegmentProblem | undefined;
}

/**
 * Reads segment `seq` (whose whole contents are `bytes`): the header frame, then
 * saves, until the end of `bytes` or the first frame that is not intact or not in
 * its place. The header's chain CRC is checked against the seed its own payload
 * carries; the caller checks that seed against the previous segment.
 */
export function scanSegment(bytes: Uint8Array, seq: number): SegmentScan {
  const saves: ScannedSave[] = [];
  const stop = (
    end: number,
    chain: number,
    header: Frame | undefined,
    problem: SegmentProblem,
  ): SegmentScan => ({ header, saves, end, chain, problem });
  const damaged = (offset: number, reason: string, laterRecord: number | undefined) => ({
    offset,
    reason,
    intact: false,
    laterRecord,
  });
  const misplaced = (offset: number, reason: string) => ({
    offset,
    reason,
    intact: true,
    laterRecord: undefined,
  });

  if (bytes.length === 0) {
    return stop(0, 0, undefined, damaged(0, "empty file (no segment header)", undefined));
  }
  const seedAt = FRAME_HEADER_BYTES + SEGMENT_HEADER_PREV_CRC_AT;
  const seed = bytes.length >= seedAt + 4
    ? new DataView(bytes.buffer, bytes.byteOffset).getUint32(seedAt, true)
    : 0;
  const header = readFrame(bytes, seq, 0, seed);
  if ("damage" in header) {
    return stop(0, 0, undefined, damaged(0, header.damage, findHeader(bytes, seq, 8)));
  }
  if (header.type !== RecordType.segmentHeader) {
    return stop(
      0,
      0,
      undefined,
      misplaced(0, `first record has type ${header.type}, expected a segment header`),
    );
  }

  let end = header.size;
  let chain = header.chainCrc;
  while (end < bytes.length) {
    const start = end;
    const f = readFrame(bytes, seq, start, chain);
    if ("damage" in f) {
      // The save record itself is damaged, so where the save ends is unknown: only
      // another save record proves that a later save was written.
      const later = findHeader(bytes, seq, start + 8, RecordType.save);
      return stop(end, chain, header, damaged(start, f.damage, later));
    }
    if (f.type !== RecordType.save) {
      return stop(
        end,
        chain,
        header,
        misplaced(start, `record of type ${f.type} where a save record should begin a save`),
      );
    }
    let h;
    try {
      h = decodeSaveHeader(f.payload);
    } catch (err) {
      return stop(end, chain, header, misplaced(start, `bad save record: ${message(err)}`));
    }
    const saveEnd = start + f.size + h.bytes;
    const records: Frame[] = [];
    let at = start + f.size;
    let c = f.chainCrc;
    while (at < saveEnd) {
      const r = at >= bytes.length
        ? {
          damage: `the save of ${h.bytes} bytes at offset ${start} runs past the end of the file`,
        }
        : readFrame(bytes, seq, at, c);
      if ("damage" in r) {
        // Anything the WAL wrote at or after the save's end belongs to a later save.
        const later = findHeader(bytes, seq, saveEnd);
        return stop(end, chain, header, damaged(at, r.damage, later));
      }
      if (at + r.size > saveEnd) {
        return stop(
          end,
          chain,
          header,
          misplaced(at, `record runs past the end of its save (offset ${saveEnd})`),
        );
      }
      records.push(r);
      c = r.chainCrc;
      at += r.size;
    }
    if (records.length !== h.records) {
      return stop(
        end,
        chain,
        header,
        misplaced(start, `save says it holds ${h.records} records but holds ${records.length}`),
      );
    }
    saves.push({ offset: start, end: saveEnd, records });
    end = saveEnd;
    chain = c;
  }
  return { header, saves, end, chain, problem: undefined };
}

/**
 * The first 8-aligned offset at or after `from` holding a frame header the WAL
 * wrote there (of type `type`, if given), if any. O(1) per offset.
 */
export function findHeader(
  bytes: Uint8Array,
  seq: number,
  from: number,
  type?: number,
): number | undefined {
  for (let o = from; o + FRAME_HEADER_BYTES <= bytes.length; o += 8) {
    if (isHeaderAt(bytes, seq, o, type)) return o;
  }
  return undefined;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
