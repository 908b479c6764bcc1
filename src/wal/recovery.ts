/**
 * Opening a WAL: listing its segments, replaying them in order, cutting a torn tail,
 * and making what was recovered durable before it is used.
 *
 * Damage inside the last save of the last segment, with nothing the WAL wrote after
 * that save, is a *torn write* (a crash before the save's fsync finished): the save is
 * cut off with a warning. Anything else throws {@link WalCorruptionError}: damage in a
 * segment that is not the last, damage followed by a record of a later save, an intact
 * record out of place or of an unknown type, a malformed payload, an entry index gap,
 * a missing or misnamed segment (see `segment.ts`), a gap between the snapshot and the
 * first segment left (see `compaction.ts`). Then the tail segment, the WAL directory
 * and its parent are fsynced: what was recovered may have been read from the page
 * cache of a process that died before its fsync, and must be on disk before anything
 * is promised on the strength of it.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import type { Logger } from "../raft/logger.ts";
import { EMPTY_HARD_STATE, type Entry, type HardState } from "../raft/types.ts";
import { gapAfterSnapshot, type SegmentFile } from "./compaction.ts";
import { crc32cBytesChecked } from "./crc32c.ts";
import { syncDirectory } from "./durable_fs.ts";
import {
  decodeEntry,
  decodeHardState,
  decodeSegmentHeader,
  FORMAT_VERSION,
  frameSize,
  hex32,
  RecordType,
} from "./record.ts";
import { createSegment, type Tail } from "./rolling.ts";
import {
  parseSegmentFileName,
  scanSegment,
  SEGMENT_SUFFIX,
  segmentFileName,
  type SegmentId,
  TEMP_SUFFIX,
} from "./segment.ts";
import type { WalIo } from "./wal_io.ts";

/**
 * The work of a replay, counted rather than timed. Recovery must stay linear in the
 * size of the WAL: the search for records after damage asks at every 8-byte offset
 * whether the WAL wrote a frame there, and must answer with a CRC of the 12-byte
 * frame header (and its 16-byte position seed), never of the frame it announces
 * (issue 8: that made an 8 MiB torn tail, whose bytes clients choose, take an hour).
 */
export interface RecoveryCost {
  /** Bytes of segment files read. */
  segmentBytes: number;
  /** Bytes the CRC checks read while scanning them (each byte read counts once per CRC). */
  crcBytes: number;
}

/** What `Wal.open` found on disk. */
export interface WalRecovery {
  /** The last hard state saved, or {@link EMPTY_HARD_STATE}. */
  hardState: HardState;
  /**
   * The log after replay: contiguous from {@link firstIndex}. Entries at or below
   * the snapshot's index may be among them (the ones kept for slow followers);
   * their data is a view into the segment's bytes, not a copy (keeping one keeps
   * the segment's bytes).
   */
  entries: Entry[];
  /** The index of `entries[0]`; with no entries, the index the next entry will have. */
  firstIndex: number;
  /** One line per repair made (a torn tail cut off), also sent to the logger. */
  warnings: string[];
}

/** A WAL that cannot be replayed without losing or inventing data. Nothing was modified. */
export class WalCorruptionError extends Error {
  /** The path of the segment file at fault (or of the WAL directory, if it is the directory). */
  readonly file: string;
  /** The byte offset in `file` of the first thing wrong. */
  readonly offset: number;
  /** What is wrong, without the file and offset. */
  readonly reason: string;

  /**
   * Builds the error; the message names the file's base name, the reason and the
   * offset, unless `message` is given.
   */
  constructor(file: string, offset: number, reason: string, message?: string) {
    super(message ?? `Cannot open WAL segment ${basename(file)}: ${reason} at offset ${offset}`);
    this.name = "WalCorruptionError";
    this.file = file;
    this.offset = offset;
    this.reason = reason;
  }
}

/** What {@link recover} leaves ready for appending. */
export interface Recovered {
  /** The segment to append to, open. */
  readonly tail: Tail;
  /** Every segment kept, in order; the last one is the tail. */
  readonly segments: SegmentFile[];
  readonly hardState: HardState;
  readonly entries: Entry[];
  /** The index before `entries[0]`. */
  readonly base: number;
  readonly warnings: string[];
  /** What the replay read and checksummed. */
  readonly cost: RecoveryCost;
}

/**
 * Replays the WAL in `dir` (which exists), cutting a torn tail, opens the segment to
 * append to and makes what was recovered durable (see the module documentation).
 * `snapshotIndex` is the index of the snapshot the node holds (0 for none).
 *
 * @throws {WalCorruptionError} if it cannot be replayed, including when it holds no
 *   segment at all
 */
export async function recover(
  dir: string,
  logger: Logger,
  io: WalIo,
  snapshotIndex: number,
): Promise<Recovered> {
  const segments = await listSegments(dir, logger, snapshotIndex);
  if (segments.length === 0) {
    const reason = "the WAL directory holds no segment files (they were deleted or lost)";
    throw new WalCorruptionError(dir, 0, reason, `Cannot open WAL in ${dir}: ${reason}`);
  }
  const replay = await replaySegments(dir, segments, logger, io, snapshotIndex);

  let tail: Tail;
  let kept = segments.filter((s) => replay.tail !== undefined && s.id.seq <= replay.tail.id.seq);
  if (replay.tail === undefined) {
    // The only segment was torn inside its header: start again from an empty one
    // in its place (its predecessors, if any, were released).
    const id = segments[0]!.id;
    tail = await createSegment(dir, io, id, 0);
    kept = [{ id, path: tail.path }];
  } else {
    const { id, path, size, chain } = replay.tail;
    const file = await Deno.open(path, { append: true });
    tail = { id, path, file, size, chain };
  }
  try {
    // What was read may be only in the page cache (a process that died before
    // its fsync): make it durable before anyone acts on it. The parent too, for
    // WAL directories made before creation fsynced it.
    await io.sync(tail.file, tail.path);
    await syncDirectory(dir, io.sync);
    await syncDirectory(dirname(dir), io.sync);
  } catch (err) {
    tail.file.close();
    throw err;
  }
  const { hardState, entries, warnings, base, cost } = replay;
  return { tail, segments: kept, hardState, entries, base, warnings, cost };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Lists the segments of `dir` in sequence order, deleting leftover `.tmp` files.
 * Throws {@link WalCorruptionError} for a `.wal` file with a malformed name, for a
 * sequence with a gap, and for a first segment after 0 (its predecessors released)
 * that starts beyond `snapshotIndex + 1`: the entries in between are lost.
 */
async function listSegments(
  dir: string,
  logger: Logger,
  snapshotIndex: number,
): Promise<SegmentFile[]> {
  const found: SegmentFile[] = [];
  for await (const e of Deno.readDir(dir)) {
    const path = join(dir, e.name);
    if (e.name.endsWith(TEMP_SUFFIX)) {
      // A segment whose creation did not finish: no save ever wrote to it.
      await Deno.remove(path);
      logger.info("wal: removed unfinished segment", { file: e.name });
      continue;
    }
    if (!e.name.endsWith(SEGMENT_SUFFIX)) continue;
    const id = parseSegmentFileName(e.name);
    if (id === undefined) {
      throw new WalCorruptionError(
        path,
        0,
        "not a segment file name (expected <16 hex digits>-<16 hex digits>.wal)",
      );
    }
    found.push({ id, path });
  }
  found.sort((a, b) => a.id.seq - b.id.seq);
  const first = found[0];
  const gap = gapAfterSnapshot(first, snapshotIndex);
  if (gap !== undefined) throw new WalCorruptionError(first!.path, 0, gap);
  const start = first?.id.seq ?? 0;
  for (let i = 0; i < found.length; i++) {
    const s = found[i]!;
    if (s.id.seq !== start + i) {
      const after = i === 0 ? "" : ` after ${basename(found[i - 1]!.path)}`;
      const what = s.id.seq < start + i ? "is duplicated" : "is missing";
      throw new WalCorruptionError(
        s.path,
        0,
        `sequence number ${s.id.seq} found where ${start + i} was expected${after} ` +
          `(segment ${start + i} ${what})`,
      );
    }
  }
  return found;
}

/** The outcome of replaying all segments. */
interface Replay {
  hardState: HardState;
  entries: Entry[];
  /** The index before `entries[0]`. */
  base: number;
  warnings: string[];
  /** The segment to append to, or undefined if there is none left. */
  tail: { id: SegmentId; path: string; size: number; chain: number } | undefined;
  /** What the replay read and checksummed. */
  cost: RecoveryCost;
}

/** Replays `segments` in order; cuts a torn tail, throws on any other damage. */
async function replaySegments(
  dir: string,
  segments: readonly SegmentFile[],
  logger: Logger,
  io: WalIo,
  snapshotIndex: number,
): Promise<Replay> {
  let hardState = EMPTY_HARD_STATE;
  let entries: Entry[] = [];
  // The index before entries[0]: 0, unless the segments before the first were released.
  let base = segments[0]!.id.firstIndex - 1;
  const warnings: string[] = [];
  // The first segment's predecessor was released: its chain CRC is taken on trust
  // from the header (the segment's own CRCs still check every record in it).
  let chain: number | undefined = segments[0]!.id.seq === 0 ? 0 : undefined;
  let tail: Replay["tail"] = undefined;
  const cost: RecoveryCost = { segmentBytes: 0, crcBytes: 0 };

  for (let i = 0; i < segments.length; i++) {
    const { id, path } = segments[i]!;
    const isLast = i === segments.length - 1;
    const bytes = await Deno.readFile(path);
    // scanSegment is synchronous and does all the CRC work of a segment, so the
    // counter's difference across it is this scan's, whatever else awaits meanwhile.
    const checkedBefore = crc32cBytesChecked();
    const scan = scanSegment(bytes, id.seq);
    cost.crcBytes += crc32cBytesChecked() - checkedBefore;
    cost.segmentBytes += bytes.length;
    const corrupt = (offset: number, reason: string): WalCorruptionError =>
      new WalCorruptionError(path, offset, reason);

    if (scan.header !== undefined) {
      let h;
      try {
        h = decodeSegmentHeader(scan.header.payload);
      } catch (err) {
        throw corrupt(0, `bad segment header: ${message(err)}`);
      }
      if (h.version !== FORMAT_VERSION) {
        throw corrupt(0, `unsupported format version ${h.version} (expected ${FORMAT_VERSION})`);
      }
      if (h.seq !== id.seq || h.firstIndex !== id.firstIndex) {
        throw corrupt(
          0,
          `segment header says ${segmentFileName(h)}, which does not match the file name`,
        );
      }
      const lastIndex = base + entries.length;
      if (h.firstIndex !== lastIndex + 1) {
        if (i === 0 || h.firstIndex > snapshotIndex + 1) {
          throw corrupt(
            0,
            `segment starts at index ${h.firstIndex} but the log before it ends at ${lastIndex}` +
              (i === 0 ? "" : ` and the snapshot covers only up to index ${snapshotIndex}`),
          );
        }
        // A segment Wal.resetTo started after a snapshot from the leader: the log
        // starts over after it (the snapshot replaces every entry before).
        entries = [];
        base = h.firstIndex - 1;
      }
      chain ??= h.prevCrc;
      if (h.prevCrc !== chain) {
        throw corrupt(
          0,
          `segment header carries previous CRC ${hex32(h.prevCrc)} but the previous segment ` +
            `ends with ${hex32(chain)}`,
        );
      }
    }

    // Only complete saves come out of the scan, so applying record by record
    // recovers each save whole; a bad record throws before anything is used.
    for (const save of scan.saves) {
      for (const f of save.records) {
        switch (f.type) {
          case RecordType.entry: {
            let e: Entry;
            try {
              // Entries the snapshot holds are only checked, not kept: no copy of their data.
              e = decodeEntry(f.payload, snapshotIndex);
            } catch (err) {
              throw corrupt(f.offset, `bad entry record: ${message(err)}`);
            }
            if (e.index <= base) {
              throw corrupt(
                f.offset,
                `entry index ${e.index} rewrites the log below its first index ${base + 1}`,
              );
            }
            if (e.index > base + entries.length + 1) {
              throw corrupt(
                f.offset,
                `entry index ${e.index} leaves a gap after last index ${base + entries.length}`,
              );
            }
            entries.length = e.index - 1 - base;
            entries.push(e);
            break;
          }
          case RecordType.hardState:
            try {
              hardState = decodeHardState(f.payload);
            } catch (err) {
              throw corrupt(f.offset, `bad hard state record: ${message(err)}`);
            }
            break;
          case RecordType.segmentHeader:
          case RecordType.save:
            throw corrupt(f.offset, `record of type ${f.type} inside a save`);
          default:
            throw corrupt(f.offset, `unknown record type ${f.type}`);
        }
      }
    }

    const problem = scan.problem;
    if (problem !== undefined) {
      if (problem.intact) throw corrupt(problem.offset, problem.reason);
      const version = scan.header === undefined ? otherFormatVersion(bytes) : undefined;
      if (version !== undefined) {
        // Never taken for a torn header and cut: it is a whole log in another format.
        throw corrupt(
          0,
          `the segment is in format version ${version}, which this version of raftkv cannot ` +
            `read (it reads version ${FORMAT_VERSION})`,
        );
      }
      if (!isLast) {
        throw corrupt(problem.offset, `${problem.reason} in a segment that is not the last one`);
      }
      if (problem.laterRecord !== undefined) {
        throw corrupt(
          problem.offset,
          `${problem.reason}, followed by an intact record of a later save at offset ` +
            problem.laterRecord,
        );
      }
      const cut = bytes.length - scan.end;
      const where = problem.offset === scan.end ? "" : ` at offset ${problem.offset}`;
      const msg = `WAL segment ${basename(path)}: torn tail at offset ${scan.end} ` +
        `(${problem.reason}${where}); cut ${cut} bytes`;
      warnings.push(msg);
      logger.warn(msg, { file: path, offset: scan.end, damage: problem.offset, cut });
      if (scan.header === undefined) {
        // Not even the header survived: drop the file; the previous segment (if
        // any) becomes the tail again.
        await Deno.remove(path);
        await syncDirectory(dir, io.sync);
        break;
      }
      const f = await Deno.open(path, { write: true });
      try {
        await io.truncate(f, scan.end, path);
      } finally {
        f.close();
      }
    }
    chain = scan.chain;
    tail = { id, path, size: scan.end, chain };
  }
  return { hardState, entries, base, warnings, tail, cost };
}

/**
 * The format version a segment's header names, if its first bytes are laid out as
 * a segment header (length 24, type 1, reserved bytes zero) naming a version other
 * than {@link FORMAT_VERSION}: a log written by another version of raftkv, whose
 * CRCs this version does not compute the same way.
 */
function otherFormatVersion(bytes: Uint8Array): number | undefined {
  if (bytes.length < frameSize(24)) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== 24 || bytes[4] !== RecordType.segmentHeader) return undefined;
  if (bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) return undefined;
  const version = view.getUint32(16 + 20, true);
  return version !== FORMAT_VERSION && version >= 1 && version <= 255 ? version : undefined;
}
