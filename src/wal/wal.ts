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
 * it first starts a new one (see `rolling.ts`). A save's records are never split
 * across segments, so a segment may exceed `segmentBytes` by up to one save. Rolling
 * costs that save two more fsyncs (the new file and the directory).
 *
 * **Recovery.** {@link Wal.open} replays every segment, cutting a torn last save
 * with a warning and throwing {@link WalCorruptionError} on any other damage, then
 * makes what it recovered durable (see `recovery.ts`).
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
 * The files: this one appends (saves, failures, the queue that orders them);
 * `recovery.ts` opens; `rolling.ts` starts segment files; `compaction.ts` releases
 * old ones; `segment.ts` names and scans them; `record.ts` frames records;
 * `wal_io.ts` is the injectable file I/O; `durable_fs.ts` the fsync'd directory
 * operations.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { type Logger, SILENT_LOGGER } from "../raft/logger.ts";
import { EMPTY_HARD_STATE, type Entry, type HardState } from "../raft/types.ts";
import { deleteOldestSegments, type SegmentFile, segmentsWhollyBelow } from "./compaction.ts";
import { DIR_MODE, exists, mkdirDurable, syncDirectory } from "./durable_fs.ts";
import {
  encodeEntry,
  encodeHardState,
  encodeSaveHeader,
  frameSize,
  MAX_PAYLOAD_BYTES,
  RecordType,
  type RecordTypeCode,
  writeFrame,
} from "./record.ts";
import { recover, type RecoveryCost, type WalRecovery } from "./recovery.ts";
import { createSegment, type Tail, writeSegment } from "./rolling.ts";
import { segmentFileName } from "./segment.ts";
import { resolveIo, type WalIo } from "./wal_io.ts";

export { type RecoveryCost, WalCorruptionError, type WalRecovery } from "./recovery.ts";
export { DENO_WAL_IO, type WalIo } from "./wal_io.ts";

/** The default size at which a segment is rolled: 64 MiB. */
export const DEFAULT_SEGMENT_BYTES: number = 64 * 1024 * 1024;

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
  /** Steps (saves, releases, resets) enqueued and not settled yet. */
  #running = 0;

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
    const recovered = await recover(dir, logger, io, snapshotIndex);
    if (options.recoveryCost !== undefined) {
      options.recoveryCost.segmentBytes += recovered.cost.segmentBytes;
      options.recoveryCost.crcBytes += recovered.cost.crcBytes;
    }
    const { tail, segments: kept, hardState, entries, warnings, base } = recovered;
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
    // With nothing under way the step starts now, not on a later microtask: a save
    // encodes its records and hands its write to the thread pool before the caller
    // goes on, so the disk works while the caller does (the node applies committed
    // entries after starting a Ready's save, and a follower's save is on every
    // put's path). Order is the same: a step starts only when every earlier one
    // has settled.
    let run: Promise<T>;
    if (this.#running > 0) run = this.#queue.then(step);
    else {
      try {
        run = step();
      } catch (err) {
        run = Promise.reject(err);
      }
    }
    this.#running++;
    const settled = () => {
      this.#running--;
    };
    this.#queue = run.then(settled, settled);
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
