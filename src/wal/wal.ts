/**
 * The write-ahead log of a Raft node, modelled on etcd's WAL
 * (`server/storage/wal/`): the hard state and the log entries, appended to
 * segment files and fsynced before {@link Wal.save} resolves.
 *
 * **Saves.** One save writes a save record, then all of its records (entries
 * first, then the hard state), with one write, and then issues one fsync. It is
 * recovered whole or not at all (see `record.ts`). An entry whose index is at or
 * below the last saved index replaces the log from that index on; replay applies
 * saves in order, so the recovered log is exactly what the last saves said.
 *
 * **Creation.** {@link Wal.create} builds the WAL the way etcd does: the first
 * segment in `<dir>.tmp`, fsynced, the directory renamed to `<dir>`, the parent
 * fsynced. So a WAL directory either exists complete, with its name durable, or
 * not at all, and {@link Wal.open} treats a missing directory or one without
 * segments as damage rather than as a new node (which would forget its term and
 * vote). Files are 0600, directories 0700.
 *
 * **Segments.** When a save finds the current segment at or past `segmentBytes`,
 * it first starts a new one (written as a `.tmp` file, fsynced, renamed, then the
 * directory fsynced). A save's records are never split across segments, so a
 * segment may exceed `segmentBytes` by up to one save. Rolling costs that save two
 * more fsyncs (the new file and the directory).
 *
 * **Recovery.** {@link Wal.open} replays every segment. Damage inside the last save
 * of the last segment, with nothing the WAL wrote after that save, is a *torn
 * write* (a crash before the save's fsync finished): the save is cut off with a
 * warning. Anything else throws {@link WalCorruptionError}: damage in a segment
 * that is not the last, damage followed by a record of a later save, an intact
 * record out of place or of an unknown type, a malformed payload, an entry index
 * gap, a missing or misnamed segment (see `segment.ts`). Then open fsyncs the tail
 * segment, the WAL directory and its parent: what it recovered may have been read
 * from the page cache of a process that died before its fsync, and must be on disk
 * before anything is promised on the strength of it.
 *
 * **Failures.** If a write, an fsync or a segment roll fails, `save()` rejects
 * and the WAL refuses every later save. It first cuts the segment back to its size
 * before the save: after a failed fsync the kernel may have dropped the dirty
 * pages while reporting them clean ("Can Applications Recover from fsync
 * Failures?", ATC'20), and a restart would otherwise read the failed save back from
 * the page cache and build on records the disk may not have. Reopen the directory,
 * preferably from a restarted process, to go on.
 *
 * **Compaction.** Once a snapshot is durable the segments wholly below what the
 * node keeps are deleted ({@link Wal.releaseBefore}), or all of them after a
 * snapshot from the leader ({@link Wal.resetTo}); {@link Wal.open} is told the
 * snapshot's index ({@link WalOptions.snapshotIndex}). See `compaction.ts`.
 *
 * One process at a time: the WAL takes no lock on its directory.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { type Logger, SILENT_LOGGER } from "../raft/logger.ts";
import { EMPTY_HARD_STATE, type Entry, type HardState } from "../raft/types.ts";
import {
  deleteOldestSegments,
  gapAfterSnapshot,
  type SegmentFile,
  segmentsWhollyBelow,
} from "./compaction.ts";
import { crc32cBytesChecked } from "./crc32c.ts";
import { DIR_MODE, exists, FILE_MODE, mkdirDurable, syncDirectory } from "./durable_fs.ts";
import {
  decodeEntry,
  decodeHardState,
  decodeSegmentHeader,
  encodeEntry,
  encodeHardState,
  encodeSaveHeader,
  encodeSegmentHeader,
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
 * count fsyncs, simulate failing disks and model what a power loss keeps; the
 * defaults are {@link DENO_WAL_IO}. `path` names the file or directory.
 */
export interface WalIo {
  /** Writes all of `bytes` at the end of `file`, or throws. */
  write(file: Deno.FsFile, bytes: Uint8Array, path: string): Promise<void>;
  /** Flushes `file` (a segment file or a directory) to stable storage. */
  sync(file: Deno.FsFile, path: string): Promise<void>;
  /** Cuts `file` (opened for writing) to `size` bytes. */
  truncate(file: Deno.FsFile, size: number, path: string): Promise<void>;
}

/** The real file operations: a write loop, `fsync` and `ftruncate`. */
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
  truncate(file: Deno.FsFile, size: number): Promise<void> {
    return file.truncate(size);
  },
};

/** Options of {@link Wal.open} and {@link Wal.create}. */
export interface WalOptions {
  /** Where torn-tail warnings (and debug/info lines) go; silent by default. */
  readonly logger?: Logger;
  /** The size at which the next save starts a new segment; {@link DEFAULT_SEGMENT_BYTES} by default. */
  readonly segmentBytes?: number;
  /** Replaces some file operations, for tests; {@link DENO_WAL_IO} by default. */
  readonly io?: Partial<WalIo>;
  /**
   * The index of the snapshot the node holds (0, the default, for none). Entries
   * at or below it may have been released: {@link Wal.open} accepts a first
   * segment that starts after index 1, or a segment started by {@link Wal.resetTo},
   * only when it starts at or before `snapshotIndex + 1`.
   */
  readonly snapshotIndex?: number;
  /**
   * A tally {@link Wal.open} adds its replay's work to (see {@link RecoveryCost});
   * for tests that bound that work without a clock.
   */
  readonly recoveryCost?: RecoveryCost;
}

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

/** What {@link Wal.open} found on disk. */
export interface WalRecovery {
  /** The last hard state saved, or {@link EMPTY_HARD_STATE}. */
  hardState: HardState;
  /**
   * The log after replay: contiguous from {@link firstIndex}. Entries at or below
   * the snapshot's index may be among them (the ones kept for slow followers).
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

/** The segment being appended to. */
interface Tail {
  readonly id: SegmentId;
  readonly path: string;
  readonly file: Deno.FsFile;
  /** Bytes known durable: everything up to the end of the last save that succeeded. */
  size: number;
  /** The chain CRC of the last frame. */
  chain: number;
}

function resolveIo(custom: Partial<WalIo> | undefined): WalIo {
  // Bound, not spread: `io` may be a class instance whose methods live on its prototype.
  return {
    write: custom?.write?.bind(custom) ?? DENO_WAL_IO.write,
    sync: custom?.sync?.bind(custom) ?? DENO_WAL_IO.sync,
    truncate: custom?.truncate?.bind(custom) ?? DENO_WAL_IO.truncate,
  };
}

function resolveSegmentBytes(dir: string, options: WalOptions): number {
  const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  if (!Number.isSafeInteger(segmentBytes) || segmentBytes <= 0) {
    throw new RangeError(
      `Cannot open WAL in ${dir}: segmentBytes must be a positive integer, got ${segmentBytes}`,
    );
  }
  return segmentBytes;
}

/** A durable, append-only log of Raft hard states and entries. */
export class Wal {
  /** The directory holding the segment files. */
  readonly dir: string;
  readonly #logger: Logger;
  readonly #io: WalIo;
  readonly #segmentBytes: number;
  #tail: Tail;
  /** Every segment on disk, in order; the last one is the tail. */
  #segments: SegmentFile[];
  #lastIndex: number;
  /**
   * No entry at or below this index may be saved: a replay starts the log after
   * it (the index before the first segment, or a reset's snapshot).
   */
  #floor: number;
  /** The last hard state saved (or recovered), saved again before segments are deleted. */
  #hardState: HardState;
  #failure: Error | undefined;
  #closed = false;
  #queue: Promise<void> = Promise.resolve();

  private constructor(
    dir: string,
    logger: Logger,
    io: WalIo,
    segmentBytes: number,
    tail: Tail,
    segments: SegmentFile[],
    lastIndex: number,
    hardState: HardState,
    floor: number,
  ) {
    this.dir = dir;
    this.#logger = logger;
    this.#io = io;
    this.#segmentBytes = segmentBytes;
    this.#tail = tail;
    this.#segments = segments;
    this.#lastIndex = lastIndex;
    this.#hardState = hardState;
    this.#floor = floor;
  }

  /** Whether a WAL directory exists at `dir` (whatever its state). */
  static exists(dir: string): Promise<boolean> {
    return exists(dir);
  }

  /**
   * Creates a new, empty WAL at `dir`, which must not exist: the first segment is
   * built in `<dir>.tmp` (a leftover one is removed), fsynced, renamed to `dir`, and
   * the parent fsynced; missing directories above `dir` are created (0700) with
   * their parents fsynced too.
   */
  static async create(dir: string, options: WalOptions = {}): Promise<Wal> {
    const logger = options.logger ?? SILENT_LOGGER;
    const io = resolveIo(options.io);
    const segmentBytes = resolveSegmentBytes(dir, options);
    if (await exists(dir)) throw new Error(`Cannot create WAL in ${dir}: it already exists`);
    const parent = dirname(dir);
    await mkdirDurable(parent, io.sync);
    const temp = `${dir}.tmp`;
    // Left by a crash during an earlier create: it never held a save.
    await Deno.remove(temp, { recursive: true }).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
    await Deno.mkdir(temp, { mode: DIR_MODE });
    const id = { seq: 0, firstIndex: 1 };
    const built = await writeSegment(temp, io, id, 0);
    await syncDirectory(temp, io.sync);
    await Deno.rename(temp, dir);
    await syncDirectory(parent, io.sync);
    const path = join(dir, segmentFileName(id));
    const file = await Deno.open(path, { append: true });
    logger.info("wal: created", { dir, segment: basename(path) });
    return new Wal(
      dir,
      logger,
      io,
      segmentBytes,
      { id, path, file, ...built },
      [{ id, path }],
      0,
      EMPTY_HARD_STATE,
      0,
    );
  }

  /**
   * Opens the WAL in `dir`, replays it (cutting a torn tail), makes what it
   * recovered durable, and returns the recovered state. Throws if `dir` does not
   * exist (a new WAL is made with {@link Wal.create}) and
   * {@link WalCorruptionError} if it cannot be replayed, including when it holds no
   * segment at all.
   */
  static async open(
    dir: string,
    options: WalOptions = {},
  ): Promise<{ wal: Wal; recovery: WalRecovery }> {
    const logger = options.logger ?? SILENT_LOGGER;
    const io = resolveIo(options.io);
    const segmentBytes = resolveSegmentBytes(dir, options);
    if (!(await exists(dir))) {
      throw new Error(`Cannot open WAL in ${dir}: it does not exist`);
    }
    const snapshotIndex = options.snapshotIndex ?? 0;
    if (!Number.isSafeInteger(snapshotIndex) || snapshotIndex < 0) {
      throw new RangeError(
        `Cannot open WAL in ${dir}: snapshotIndex must be an index, got ${snapshotIndex}`,
      );
    }
    const segments = await listSegments(dir, logger, snapshotIndex);
    if (segments.length === 0) {
      const reason = "the WAL directory holds no segment files (they were deleted or lost)";
      throw new WalCorruptionError(dir, 0, reason, `Cannot open WAL in ${dir}: ${reason}`);
    }
    const replay = await replaySegments(dir, segments, logger, io, snapshotIndex);
    if (options.recoveryCost !== undefined) {
      options.recoveryCost.segmentBytes += replay.cost.segmentBytes;
      options.recoveryCost.crcBytes += replay.cost.crcBytes;
    }

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
    const { hardState, entries, warnings, base } = replay;
    const lastIndex = base + entries.length;
    logger.info("wal: opened", {
      dir,
      segments: kept.length,
      firstIndex: base + 1,
      lastIndex,
      term: hardState.term,
      commit: hardState.commit,
      warnings: warnings.length,
    });
    const wal = new Wal(dir, logger, io, segmentBytes, tail, kept, lastIndex, hardState, base);
    return { wal, recovery: { hardState, entries, firstIndex: base + 1, warnings } };
  }

  /** The last hard state saved (or recovered): what a restart would find. */
  get savedHardState(): HardState {
    return this.#hardState;
  }

  /** The index of the last entry saved (0 for an empty log). */
  get lastIndex(): number {
    return this.#lastIndex;
  }

  /**
   * Appends a hard state (if given) and entries as one save, then fsyncs once.
   * Entries whose first index is <= the last saved index replace the saved suffix
   * from that index on (a Raft follower overwriting a conflicting suffix). An entry
   * that would leave a gap throws. Saves run one at a time, in call order.
   *
   * Rejects if the WAL is closed, if an earlier save failed (see the module
   * documentation), or if this save's write or fsync fails; in the last case the
   * segment is cut back to where the save began and the WAL refuses all later saves.
   */
  save(hardState: HardState | undefined, entries: readonly Entry[]): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new Error(`Cannot save to WAL in ${this.dir}: it is closed`));
    }
    return this.#enqueue(() => this.#save(hardState, entries));
  }

  /** The index the first segment on disk starts at: no entry below it is held. */
  get firstSegmentIndex(): number {
    return this.#segments[0]!.id.firstIndex;
  }

  /** How many segment files the WAL holds. */
  get segmentCount(): number {
    return this.#segments.length;
  }

  /**
   * Deletes the segments wholly below `index`, the first entry the node keeps
   * (a segment is wholly below it when the next segment starts at or before
   * `index`); the tail segment is never deleted. Call it only once a snapshot at
   * or beyond `index - 1` is durable. The latest hard state is saved into the tail
   * first, so that it survives; segments go oldest first, then the directory is
   * fsynced. Runs in turn with saves. Resolves with the number of segments deleted.
   */
  releaseBefore(index: number): Promise<number> {
    return this.#enqueue(() => this.#release(index));
  }

  /**
   * Starts the log over after a snapshot installed from the leader (§7): a new
   * segment beginning at `snapshotIndex + 1` takes the following saves, the
   * latest hard state is saved into it, and every older segment is deleted (the
   * snapshot replaces all they held). Call it only once the snapshot is durable;
   * a later {@link open} must then be given that snapshot's index.
   */
  resetTo(snapshotIndex: number): Promise<void> {
    return this.#enqueue(async () => {
      this.#checkUsable("reset");
      this.#lastIndex = snapshotIndex;
      this.#floor = snapshotIndex;
      await this.#roll();
      await this.#save(this.#hardState, []);
      await this.#deleteSegments(this.#segments.length - 1);
    });
  }

  #enqueue<T>(step: () => Promise<T>): Promise<T> {
    if (this.#closed) {
      return Promise.reject(new Error(`Cannot use WAL in ${this.dir}: it is closed`));
    }
    const run = this.#queue.then(step);
    this.#queue = run.then(() => {}, () => {});
    return run;
  }

  #checkUsable(what: string): void {
    if (this.#failure !== undefined) {
      throw new Error(
        `Cannot ${what} WAL in ${this.dir}: an earlier write failed (${this.#failure.message}); ` +
          `reopen the WAL to recover`,
        { cause: this.#failure },
      );
    }
  }

  async #release(index: number): Promise<number> {
    this.#checkUsable("release segments of");
    if (segmentsWhollyBelow(this.#segments, index) === 0) return 0;
    // This save may start a new segment, which can release one more.
    await this.#save(this.#hardState, []);
    const n = segmentsWhollyBelow(this.#segments, index);
    await this.#deleteSegments(n);
    this.#floor = Math.max(this.#floor, this.firstSegmentIndex - 1);
    return n;
  }

  /** Deletes the first `n` segments, oldest first, then fsyncs the directory. */
  async #deleteSegments(n: number): Promise<void> {
    if (n <= 0) return;
    const gone = this.#segments.slice(0, n);
    try {
      await deleteOldestSegments(this.dir, this.#segments, n, this.#io.sync);
    } catch (err) {
      throw this.#fail(err, `Cannot delete released WAL segments in ${this.dir}`);
    }
    this.#logger.info("wal: released segments", {
      deleted: gone.length,
      through: basename(gone[gone.length - 1]!.path),
      firstIndex: this.firstSegmentIndex,
    });
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
    let body = 0;
    for (const [, payload] of records) body += frameSize(payload.length);
    const head = encodeSaveHeader({ bytes: body, records: records.length });
    const bytes = frameSize(head.length) + body;
    const buf = new Uint8Array(bytes);
    let chain = writeFrame(buf, 0, RecordType.save, head, tail.id.seq, tail.size, tail.chain);
    let at = frameSize(head.length);
    for (const [type, payload] of records) {
      chain = writeFrame(buf, at, type, payload, tail.id.seq, tail.size + at, chain);
      at += frameSize(payload.length);
    }
    try {
      await this.#io.write(tail.file, buf, tail.path);
      await this.#io.sync(tail.file, tail.path);
    } catch (err) {
      await this.#cutFailedSave(tail);
      throw this.#fail(
        err,
        `Cannot save to WAL segment ${basename(tail.path)} at offset ${tail.size}`,
      );
    }
    tail.size += bytes;
    tail.chain = chain;
    const last = entries[entries.length - 1];
    if (last !== undefined) this.#lastIndex = last.index;
    if (hardState !== undefined) this.#hardState = hardState;
    this.#logger.debug("wal: saved", {
      entries: entries.length,
      hardState: hardState !== undefined,
      bytes,
      lastIndex: this.#lastIndex,
    });
  }

  /**
   * Cuts the segment back to the end of the last save that succeeded, so that no
   * restart reads the failed save back from the page cache. Best effort: if even
   * this fails (a file system gone read-only), it is logged, and the failed save
   * may come back on reopen, whole (as if its fsync had worked) or torn.
   */
  async #cutFailedSave(tail: Tail): Promise<void> {
    try {
      await this.#io.truncate(tail.file, tail.size, tail.path);
    } catch (err) {
      this.#logger.error("wal: cannot cut the failed save off; it may be read back on reopen", {
        segment: basename(tail.path),
        offset: tail.size,
        error: message(err),
      });
      return;
    }
    try {
      await this.#io.sync(tail.file, tail.path);
    } catch {
      // The cut is in the page cache, which is what a restart reads; on disk, the
      // failed save is at most a torn last save, which recovery cuts.
    }
    this.#logger.warn("wal: cut the failed save off", {
      segment: basename(tail.path),
      offset: tail.size,
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
        if (first.index <= this.#floor) {
          throw new RangeError(
            `entry ${first.index} would rewrite the log below its first index ${this.#floor + 1}`,
          );
        }
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
    this.#segments.push({ id, path: this.#tail.path });
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
              e = decodeEntry(f.payload);
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

/**
 * Writes segment `id` holding only its header (seeded with `prevCrc`) to
 * `<dir>/<name><suffix>` (mode 0600) and fsyncs it. Returns its size and chain CRC.
 */
async function writeSegment(
  dir: string,
  io: WalIo,
  id: SegmentId,
  prevCrc: number,
  suffix = "",
): Promise<{ size: number; chain: number }> {
  const path = join(dir, segmentFileName(id) + suffix);
  const header = encodeSegmentHeader({ ...id, prevCrc, version: FORMAT_VERSION });
  const buf = new Uint8Array(frameSize(header.length));
  const chain = writeFrame(buf, 0, RecordType.segmentHeader, header, id.seq, 0, prevCrc);
  const f = await Deno.open(path, { write: true, create: true, truncate: true, mode: FILE_MODE });
  try {
    await io.write(f, buf, path);
    await io.sync(f, path);
  } finally {
    f.close();
  }
  return { size: buf.length, chain };
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
  const built = await writeSegment(dir, io, id, prevCrc, ".tmp");
  await Deno.rename(path + ".tmp", path);
  await syncDirectory(dir, io.sync);
  const file = await Deno.open(path, { append: true });
  return { id, path, file, ...built };
}
