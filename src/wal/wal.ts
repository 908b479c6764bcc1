/**
 * The write-ahead log of a Raft node, modelled on etcd's WAL
 * (`server/storage/wal/`): the hard state and the log entries, appended to
 * segment files and fsynced before {@link Wal.save} resolves.
 *
 * **Saves.** One save writes all of its records (entries first, then the hard
 * state, so a torn save never leaves a commit index beyond the entries it covers)
 * with one write and then issues one fsync. An entry whose index is at or below the
 * last saved index replaces the log from that index on; replay applies records in
 * order, so the recovered log is exactly what the last saves said.
 *
 * **Segments.** When a save finds the current segment at or past `segmentBytes`,
 * it first starts a new one (written as a `.tmp` file, fsynced, renamed, then the
 * directory fsynced). A save's records are never split across segments, so a
 * segment may exceed `segmentBytes` by up to one save. Rolling costs that save two
 * more fsyncs (the new file and the directory).
 *
 * **Recovery.** {@link Wal.open} replays every segment. Damage that only a crash
 * during a write can explain, a *torn tail*, is cut off with a warning: the last
 * segment ends in bytes that are not an intact frame, and no intact frame follows
 * them at any 8-byte-aligned offset (each frame carries a CRC of its own bytes
 * bound to its position, so this is decidable without the chain; see
 * `record.ts`). Anything else throws {@link WalCorruptionError}: damage in a
 * segment that is not the last, damage followed by an intact frame, a record
 * whose chain CRC does not follow its predecessor, an unknown record type, a
 * malformed payload, an entry index gap, a missing or misnamed segment.
 *
 * **Failures.** If a write, an fsync or a segment roll fails, `save()` rejects
 * and the WAL refuses every later save: its tail is then unknown (part of the
 * records may be on disk, and after a failed fsync the kernel may have dropped
 * dirty pages while reporting them clean). Close it and reopen the directory,
 * preferably from a restarted process, to recover what is really durable.
 *
 * One process at a time: the WAL takes no lock on its directory.
 *
 * @module
 */

import { basename, join } from "node:path";
import { type Logger, SILENT_LOGGER } from "../raft/logger.ts";
import { EMPTY_HARD_STATE, type Entry, type HardState } from "../raft/types.ts";
import {
  decodeEntry,
  decodeHardState,
  decodeSegmentHeader,
  encodeEntry,
  encodeHardState,
  encodeSegmentHeader,
  expectedChainCrc,
  FORMAT_VERSION,
  frameSize,
  hex32,
  MAX_PAYLOAD_BYTES,
  RecordType,
  type RecordTypeCode,
  writeFrame,
} from "./record.ts";
import {
  parseSegmentFileName,
  scanSegment,
  SEGMENT_SUFFIX,
  segmentFileName,
  type SegmentId,
  TEMP_SUFFIX,
} from "./segment.ts";

/** The default size at which a segment is rolled: 64 MiB. */
export const DEFAULT_SEGMENT_BYTES: number = 64 * 1024 * 1024;

/**
 * The file operations on the WAL's durability path. Injectable so that tests can
 * count fsyncs and simulate failing disks; the defaults are {@link DENO_WAL_IO}.
 */
export interface WalIo {
  /** Writes all of `bytes` at the end of `file`, or throws. */
  write(file: Deno.FsFile, bytes: Uint8Array): Promise<void>;
  /** Flushes `file` (a segment file or the WAL directory) to stable storage. */
  sync(file: Deno.FsFile): Promise<void>;
}

/** The real file operations: a write loop and `fsync`. */
export const DENO_WAL_IO: WalIo = {
  async write(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      const n = await file.write(bytes.subarray(done));
      if (n <= 0) throw new Deno.errors.WriteZero(`wrote 0 of ${bytes.length - done} bytes`);
      done += n;
    }
  },
  sync(file: Deno.FsFile): Promise<void> {
    return file.sync();
  },
};

/** Options of {@link Wal.open}. */
export interface WalOptions {
  /** Where torn-tail warnings (and debug/info lines) go; silent by default. */
  readonly logger?: Logger;
  /** The size at which the next save starts a new segment; {@link DEFAULT_SEGMENT_BYTES} by default. */
  readonly segmentBytes?: number;
  /** Replaces some file operations, for tests; {@link DENO_WAL_IO} by default. */
  readonly io?: Partial<WalIo>;
}

/** What {@link Wal.open} found on disk. */
export interface WalRecovery {
  /** The last hard state saved, or {@link EMPTY_HARD_STATE}. */
  hardState: HardState;
  /** The log after replay: contiguous from index 1. */
  entries: Entry[];
  /** One line per repair made (a torn tail cut off), also sent to the logger. */
  warnings: string[];
}

/** A WAL that cannot be replayed without losing or inventing data. Nothing was modified. */
export class WalCorruptionError extends Error {
  /** The path of the segment file at fault. */
  readonly file: string;
  /** The byte offset in `file` of the first thing wrong. */
  readonly offset: number;
  /** What is wrong, without the file and offset. */
  readonly reason: string;

  /** Builds the error; the message names the file's base name, the reason and the offset. */
  constructor(file: string, offset: number, reason: string) {
    super(`Cannot open WAL segment ${basename(file)}: ${reason} at offset ${offset}`);
    this.name = "WalCorruptionError";
    this.file = file;
    this.offset = offset;
    this.reason = reason;
  }
}

/** The segment being appended to. */
interface Tail {
  readonly id: SegmentId;
  readonly path: string;
  readonly file: Deno.FsFile;
  size: number;
  /** The chain CRC of the last frame. */
  chain: number;
}

/** A durable, append-only log of Raft hard states and entries. */
export class Wal {
  /** The directory holding the segment files. */
  readonly dir: string;
  readonly #logger: Logger;
  readonly #io: WalIo;
  readonly #segmentBytes: number;
  #tail: Tail;
  #lastIndex: number;
  #failure: Error | undefined;
  #closed = false;
  #queue: Promise<void> = Promise.resolve();

  private constructor(
    dir: string,
    logger: Logger,
    io: WalIo,
    segmentBytes: number,
    tail: Tail,
    lastIndex: number,
  ) {
    this.dir = dir;
    this.#logger = logger;
    this.#io = io;
    this.#segmentBytes = segmentBytes;
    this.#tail = tail;
    this.#lastIndex = lastIndex;
  }

  /** Opens (creating if absent) the WAL in `dir`, replays it, and returns the recovered state. */
  static async open(
    dir: string,
    options: WalOptions = {},
  ): Promise<{ wal: Wal; recovery: WalRecovery }> {
    const logger = options.logger ?? SILENT_LOGGER;
    // Bound, not spread: `io` may be a class instance whose methods live on its prototype.
    const custom = options.io;
    const io: WalIo = {
      write: custom?.write?.bind(custom) ?? DENO_WAL_IO.write,
      sync: custom?.sync?.bind(custom) ?? DENO_WAL_IO.sync,
    };
    const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    if (!Number.isSafeInteger(segmentBytes) || segmentBytes <= 0) {
      throw new RangeError(
        `Cannot open WAL in ${dir}: segmentBytes must be a positive integer, got ${segmentBytes}`,
      );
    }
    await Deno.mkdir(dir, { recursive: true });
    const segments = await listSegments(dir, logger);
    const replay = await replaySegments(dir, segments, logger, io);

    let tail: Tail;
    if (replay.tail === undefined) {
      tail = await createSegment(dir, io, { seq: 0, firstIndex: 1 }, 0);
      logger.info("wal: created", { dir, segment: basename(tail.path) });
    } else {
      const { id, path, size, chain } = replay.tail;
      const file = await Deno.open(path, { append: true });
      try {
        if (replay.truncated) await io.sync(file);
      } catch (err) {
        file.close();
        throw err;
      }
      tail = { id, path, file, size, chain };
    }
    const { hardState, entries, warnings } = replay;
    logger.info("wal: opened", {
      dir,
      segments: segments.length,
      lastIndex: entries.length,
      term: hardState.term,
      commit: hardState.commit,
      warnings: warnings.length,
    });
    const wal = new Wal(dir, logger, io, segmentBytes, tail, entries.length);
    return { wal, recovery: { hardState, entries, warnings } };
  }

  /** The index of the last entry saved (0 for an empty log). */
  get lastIndex(): number {
    return this.#lastIndex;
  }

  /**
   * Appends a hard state (if given) and entries, then fsyncs once. Entries whose
   * first index is <= the last saved index replace the saved suffix from that
   * index on (a Raft follower overwriting a conflicting suffix). An entry that
   * would leave a gap throws. Saves run one at a time, in call order.
   *
   * Rejects if the WAL is closed, if an earlier save failed (see the module
   * documentation), or if this save's write or fsync fails; in the last case the
   * WAL refuses all later saves.
   */
  save(hardState: HardState | undefined, entries: readonly Entry[]): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new Error(`Cannot save to WAL in ${this.dir}: it is closed`));
    }
    const run = this.#queue.then(() => this.#save(hardState, entries));
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Waits for pending saves, then closes the segment file. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue;
    this.#tail.file.close();
  }

  async #save(hardState: HardState | undefined, entries: readonly Entry[]): Promise<void> {
    if (this.#failure !== undefined) {
      throw new Error(
        `Cannot save to WAL in ${this.dir}: an earlier write failed (${this.#failure.message}), ` +
          `so the end of the log on disk is unknown; reopen the WAL to recover`,
        { cause: this.#failure },
      );
    }
    const records = this.#encode(hardState, entries);
    if (records.length === 0) return;

    if (this.#tail.size >= this.#segmentBytes) await this.#roll();

    const tail = this.#tail;
    let bytes = 0;
    for (const [, payload] of records) bytes += frameSize(payload.length);
    const buf = new Uint8Array(bytes);
    let at = 0;
    let chain = tail.chain;
    for (const [type, payload] of records) {
      chain = writeFrame(buf, at, type, payload, tail.id.seq, tail.size + at, chain);
      at += frameSize(payload.length);
    }
    try {
      await this.#io.write(tail.file, buf);
      await this.#io.sync(tail.file);
    } catch (err) {
      throw this.#fail(
        err,
        `Cannot save to WAL segment ${basename(tail.path)} at offset ${tail.size}`,
      );
    }
    tail.size += bytes;
    tail.chain = chain;
    const last = entries[entries.length - 1];
    if (last !== undefined) this.#lastIndex = last.index;
    this.#logger.debug("wal: saved", {
      entries: entries.length,
      hardState: hardState !== undefined,
      bytes,
      lastIndex: this.#lastIndex,
    });
  }

  /** Validates and encodes a save's records: entries first, then the hard state. */
  #encode(
    hardState: HardState | undefined,
    entries: readonly Entry[],
  ): [RecordTypeCode, Uint8Array][] {
    const records: [RecordTypeCode, Uint8Array][] = [];
    const first = entries[0];
    try {
      if (first !== undefined) {
        if (!(first.index >= 1)) throw new RangeError(`entry index ${first.index} is below 1`);
        if (!(first.index <= this.#lastIndex + 1)) {
          throw new RangeError(
            `entry ${first.index} would leave a gap after last index ${this.#lastIndex}`,
          );
        }
        for (let k = 0; k < entries.length; k++) {
          const e = entries[k]!;
          if (e.index !== first.index + k) {
            throw new RangeError(
              `entries are not contiguous: index ${e.index} follows ${first.index + k - 1}`,
            );
          }
          const payload = encodeEntry(e);
          if (payload.length > MAX_PAYLOAD_BYTES) {
            throw new RangeError(
              `entry ${e.index} of ${e.data.length} bytes exceeds the record limit of ${MAX_PAYLOAD_BYTES}`,
            );
          }
          records.push([RecordType.entry, payload]);
        }
      }
      if (hardState !== undefined) {
        records.push([RecordType.hardState, encodeHardState(hardState)]);
      }
    } catch (err) {
      throw new Error(`Cannot save to WAL in ${this.dir}: ${message(err)}`, { cause: err });
    }
    return records;
  }

  /** Starts the next segment, seeded with the current chain CRC. */
  async #roll(): Promise<void> {
    const old = this.#tail;
    const id = { seq: old.id.seq + 1, firstIndex: this.#lastIndex + 1 };
    try {
      this.#tail = await createSegment(this.dir, this.#io, id, old.chain);
    } catch (err) {
      throw this.#fail(err, `Cannot create WAL segment ${segmentFileName(id)}`);
    }
    old.file.close();
    this.#logger.info("wal: started segment", {
      segment: basename(this.#tail.path),
      previousBytes: old.size,
    });
  }

  /** Marks the WAL failed and returns the error to throw. */
  #fail(err: unknown, what: string): Error {
    this.#failure = err instanceof Error ? err : new Error(String(err));
    this.#logger.error("wal: write failed; refusing further saves", {
      dir: this.dir,
      error: message(err),
    });
    return new Error(
      `${what}: ${message(err)}; the WAL refuses further saves until it is reopened`,
      { cause: err },
    );
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A segment file found in the directory. */
interface FoundSegment {
  readonly id: SegmentId;
  readonly path: string;
}

/**
 * Lists the segments of `dir` in sequence order, deleting leftover `.tmp` files.
 * Throws {@link WalCorruptionError} for a `.wal` file with a malformed name and for
 * a sequence that does not run 0, 1, 2, … without gaps.
 */
async function listSegments(dir: string, logger: Logger): Promise<FoundSegment[]> {
  const found: FoundSegment[] = [];
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
  for (let i = 0; i < found.length; i++) {
    const s = found[i]!;
    if (s.id.seq !== i) {
      const after = i === 0 ? "" : ` after ${basename(found[i - 1]!.path)}`;
      const what = s.id.seq < i ? "is duplicated" : "is missing";
      throw new WalCorruptionError(
        s.path,
        0,
        `sequence number ${s.id.seq} found where ${i} was expected${after} (segment ${i} ${what})`,
      );
    }
  }
  return found;
}

/** The outcome of replaying all segments. */
interface Replay {
  hardState: HardState;
  entries: Entry[];
  warnings: string[];
  /** The segment to append to, or undefined if there is none left. */
  tail: { id: SegmentId; path: string; size: number; chain: number } | undefined;
  /** True if the tail file was truncated (and so needs an fsync). */
  truncated: boolean;
}

/** Replays `segments` in order; cuts a torn tail, throws on any other damage. */
async function replaySegments(
  dir: string,
  segments: readonly FoundSegment[],
  logger: Logger,
  io: WalIo,
): Promise<Replay> {
  let hardState = EMPTY_HARD_STATE;
  const entries: Entry[] = [];
  const warnings: string[] = [];
  let chain = 0;
  let tail: Replay["tail"] = undefined;
  let truncated = false;

  for (let i = 0; i < segments.length; i++) {
    const { id, path } = segments[i]!;
    const isLast = i === segments.length - 1;
    const bytes = await Deno.readFile(path);
    const scan = scanSegment(bytes, id.seq);
    const corrupt = (offset: number, reason: string): WalCorruptionError =>
      new WalCorruptionError(path, offset, reason);

    for (const f of scan.frames) {
      if (f.offset === 0) {
        if (f.type !== RecordType.segmentHeader) {
          throw corrupt(0, `first record has type ${f.type}, expected a segment header`);
        }
        let h;
        try {
          h = decodeSegmentHeader(f.payload);
        } catch (err) {
          throw corrupt(0, `bad segment header: ${message(err)}`);
        }
        if (h.version !== FORMAT_VERSION) {
          throw corrupt(0, `unsupported format version ${h.version}`);
        }
        if (h.seq !== id.seq || h.firstIndex !== id.firstIndex) {
          throw corrupt(
            0,
            `segment header says ${segmentFileName(h)}, which does not match the file name`,
          );
        }
        if (h.firstIndex !== entries.length + 1) {
          throw corrupt(
            0,
            `segment starts at index ${h.firstIndex} but the log before it ends at ${entries.length}`,
          );
        }
        if (h.prevCrc !== chain) {
          throw corrupt(
            0,
            `segment header carries previous CRC ${hex32(h.prevCrc)} but the previous segment ` +
              `ends with ${hex32(chain)}`,
          );
        }
      }
      const expected = expectedChainCrc(bytes, f, chain);
      if (f.chainCrc !== expected) {
        throw corrupt(
          f.offset,
          `chain CRC mismatch (stored ${hex32(f.chainCrc)}, expected ${hex32(expected)}): ` +
            `the record does not follow the one before it`,
        );
      }
      chain = f.chainCrc;
      switch (f.type) {
        case RecordType.segmentHeader:
          if (f.offset !== 0) throw corrupt(f.offset, "segment header in the middle of a segment");
          break;
        case RecordType.entry: {
          let e: Entry;
          try {
            e = decodeEntry(f.payload);
          } catch (err) {
            throw corrupt(f.offset, `bad entry record: ${message(err)}`);
          }
          if (e.index < 1 || e.index > entries.length + 1) {
            throw corrupt(
              f.offset,
              `entry index ${e.index} leaves a gap after last index ${entries.length}`,
            );
          }
          entries.length = e.index - 1;
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
        default:
          throw corrupt(f.offset, `unknown record type ${f.type}`);
      }
    }

    const damage = scan.damage;
    if (damage !== undefined) {
      if (!isLast) {
        throw corrupt(damage.offset, `${damage.reason} in a segment that is not the last one`);
      }
      if (damage.nextIntactOffset !== undefined) {
        throw corrupt(
          damage.offset,
          `${damage.reason}, followed by an intact record at offset ${damage.nextIntactOffset}`,
        );
      }
      const cut = bytes.length - scan.end;
      const msg = `WAL segment ${basename(path)}: torn tail at offset ${scan.end} ` +
        `(${damage.reason}); cut ${cut} bytes`;
      warnings.push(msg);
      logger.warn(msg, { file: path, offset: scan.end, cut });
      if (scan.frames.length === 0) {
        // Not even the header survived: drop the file; the previous segment (if
        // any) becomes the tail again.
        await Deno.remove(path);
        await syncDirectory(dir, io);
        break;
      }
      await Deno.truncate(path, scan.end);
      truncated = true;
    }
    tail = { id, path, size: scan.end, chain };
  }
  return { hardState, entries, warnings, tail, truncated };
}

/**
 * Creates segment `id` holding only its header (seeded with `prevCrc`): written
 * to a `.tmp` file, fsynced, renamed into place, directory fsynced. Returns it
 * opened for appending.
 */
async function createSegment(
  dir: string,
  io: WalIo,
  id: SegmentId,
  prevCrc: number,
): Promise<Tail> {
  const path = join(dir, segmentFileName(id));
  const temp = path + ".tmp";
  const header = encodeSegmentHeader({ ...id, prevCrc, version: FORMAT_VERSION });
  const buf = new Uint8Array(frameSize(header.length));
  const chain = writeFrame(buf, 0, RecordType.segmentHeader, header, id.seq, 0, prevCrc);
  const f = await Deno.open(temp, { write: true, create: true, truncate: true });
  try {
    await io.write(f, buf);
    await io.sync(f);
  } finally {
    f.close();
  }
  await Deno.rename(temp, path);
  await syncDirectory(dir, io);
  const file = await Deno.open(path, { append: true });
  return { id, path, file, size: buf.length, chain };
}

/** Fsyncs a directory, so that files created, renamed or removed in it are durable. */
async function syncDirectory(dir: string, io: WalIo): Promise<void> {
  const d = await Deno.open(dir, { read: true });
  try {
    await io.sync(d);
  } finally {
    d.close();
  }
}
