/**
 * Shared fixtures for the WAL tests: temp dirs, entries, a model of what was
 * saved, an independent walk over the frames of a segment file, an io that
 * counts (and can fail) writes and fsyncs, and a model of what a power loss keeps.
 *
 * @module
 */

import { join } from "node:path";
import type { LogFields, Logger } from "../../src/raft/logger.ts";
import { EMPTY_HARD_STATE, type Entry, type HardState } from "../../src/raft/types.ts";
import { DENO_WAL_IO, Wal, type WalIo } from "../../src/wal/mod.ts";

/** Runs `fn` with a fresh temp dir, removed afterwards. */
export async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "raftkv_wal_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Runs `fn` with the path of a WAL directory that does not exist yet, inside a
 * fresh temp dir (removed afterwards): where {@link Wal.create} makes a new WAL.
 */
export async function withWalDir(fn: (dir: string) => Promise<void>): Promise<void> {
  await withTempDir((root) => fn(join(root, "wal")));
}

const enc = new TextEncoder();

/** An entry whose data names it, with a length that varies so padding varies. */
export function entry(index: number, term: number): Entry {
  const data = enc.encode(`i${index}t${term}` + "x".repeat((index * 7 + term) % 13));
  return { index, term, type: "normal", data };
}

/** Entries `from..to` inclusive, all in `term`. */
export function entries(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term));
  return out;
}

/** One saved record, as the model of the WAL sees it. */
export type ModelRecord =
  | { readonly kind: "entry"; readonly entry: Entry }
  | { readonly kind: "hardState"; readonly hardState: HardState };

/** The state after applying records in order, as recovery should. */
export interface ModelState {
  hardState: HardState;
  entries: Entry[];
}

/** Applies `records` with the WAL's semantics (an entry at or below the last index truncates). */
export function applyRecords(records: readonly ModelRecord[]): ModelState {
  let hardState = EMPTY_HARD_STATE;
  const log: Entry[] = [];
  for (const r of records) {
    if (r.kind === "hardState") {
      hardState = r.hardState;
    } else {
      log.length = r.entry.index - 1;
      log.push(r.entry);
    }
  }
  return { hardState, entries: log };
}

/** The records one save writes, in the documented order: entries, then the hard state. */
export function saveRecords(
  hardState: HardState | undefined,
  saved: readonly Entry[],
): ModelRecord[] {
  const out: ModelRecord[] = saved.map((e) => ({ kind: "entry" as const, entry: e }));
  if (hardState !== undefined) out.push({ kind: "hardState", hardState });
  return out;
}

/** A frame found by {@link walkFrames}. */
export interface FrameSpan {
  readonly offset: number;
  readonly end: number;
  readonly type: number;
}

/** Record types, as the format documents them (src/wal/record.ts). */
export const SEGMENT_HEADER = 1;
/** An entry record. */
export const ENTRY = 2;
/** A hard state record. */
export const HARD_STATE = 3;
/** The record that begins every save. */
export const SAVE = 4;

/**
 * Walks the frames of an undamaged segment file by their length fields alone:
 * an oracle independent of the reader under test.
 */
export function walkFrames(bytes: Uint8Array): FrameSpan[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: FrameSpan[] = [];
  let o = 0;
  while (o < bytes.length) {
    const len = view.getUint32(o, true);
    const end = o + 16 + ((len + 7) & ~7);
    if (end > bytes.length) throw new Error(`walkFrames: frame at ${o} runs past the end`);
    out.push({ offset: o, end, type: bytes[o + 4]! });
    o = end;
  }
  return out;
}

/** The names of the `.wal` files in `dir`, sorted. */
export async function segmentNames(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".wal")) names.push(e.name);
  return names.sort();
}

/** Every file of `dir` with its bytes. */
export async function readFiles(dir: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) {
    out.set(e.name, await Deno.readFile(join(dir, e.name)));
  }
  return out;
}

/** Writes `files` into `dir` (which must exist). */
export async function writeFiles(dir: string, files: Map<string, Uint8Array>): Promise<void> {
  for (const [name, bytes] of files) await Deno.writeFile(join(dir, name), bytes);
}

/** A logger that keeps every line. */
export class RecordingLogger implements Logger {
  readonly lines: { level: string; msg: string; fields?: LogFields }[] = [];
  debug(msg: string, fields?: LogFields): void {
    this.lines.push({ level: "debug", msg, fields });
  }
  info(msg: string, fields?: LogFields): void {
    this.lines.push({ level: "info", msg, fields });
  }
  warn(msg: string, fields?: LogFields): void {
    this.lines.push({ level: "warn", msg, fields });
  }
  error(msg: string, fields?: LogFields): void {
    this.lines.push({ level: "error", msg, fields });
  }
  /** The messages logged at `level`. */
  at(level: string): string[] {
    return this.lines.filter((l) => l.level === level).map((l) => l.msg);
  }
}

/**
 * The faults the test disks below inject on demand: set `failWrite` to write that
 * many bytes of the next write and then throw ENOSPC; set `failSyncAt` to make the
 * n-th next fsync (1 = the next one) throw EIO.
 */
abstract class FailingIo implements WalIo {
  /** Writes that many bytes of the next write, then throws ENOSPC. */
  failWrite: number | undefined = undefined;
  /** Makes the n-th next fsync (1 = the next one) throw EIO. */
  failSyncAt: number | undefined = undefined;

  async write(file: Deno.FsFile, bytes: Uint8Array, path: string): Promise<void> {
    const keep = this.failWrite;
    if (keep !== undefined) {
      this.failWrite = undefined;
      await DENO_WAL_IO.write(file, bytes.subarray(0, keep), path);
      throw new Error("No space left on device (os error 28)");
    }
    await DENO_WAL_IO.write(file, bytes, path);
  }

  /** Throws EIO if this fsync is the one `failSyncAt` named; call it first in `sync`. */
  protected failSyncIfDue(): void {
    if (this.failSyncAt !== undefined && --this.failSyncAt === 0) {
      this.failSyncAt = undefined;
      throw new Error("Input/output error (os error 5)");
    }
  }

  abstract sync(file: Deno.FsFile, path: string): Promise<void>;

  truncate(file: Deno.FsFile, size: number, path: string): Promise<void> {
    return DENO_WAL_IO.truncate(file, size, path);
  }
}

/**
 * A {@link WalIo} that counts writes, fsyncs and truncations and fails on demand
 * (see {@link FailingIo}). It records the path of every fsync, in order.
 */
export class FaultyIo extends FailingIo {
  writes = 0;
  syncs = 0;
  truncates = 0;
  readonly synced: string[] = [];

  override write(file: Deno.FsFile, bytes: Uint8Array, path: string): Promise<void> {
    this.writes++;
    return super.write(file, bytes, path);
  }

  async sync(file: Deno.FsFile, path: string): Promise<void> {
    this.syncs++;
    this.synced.push(path);
    this.failSyncIfDue();
    await DENO_WAL_IO.sync(file, path);
  }

  override truncate(file: Deno.FsFile, size: number, path: string): Promise<void> {
    this.truncates++;
    return super.truncate(file, size, path);
  }
}

/**
 * A model of what survives a power loss, as a {@link WalIo}: a file's contents as
 * of its last fsync, and a directory's names as of its last fsync (files and
 * directories are known by inode, so a rename keeps what was synced). Writes go
 * to the real file (the page cache, which a restarted process reads); fsyncs
 * record; {@link SimDisk.powerLoss} puts every file under `root` back to its
 * durable contents and removes every name that was never fsynced into its
 * directory. `root` itself is durable, with the names it holds when the model is made.
 *
 * Simplifications, each on the side of losing more: unsynced writes are lost
 * whole (a real disk may keep some pages), and a file whose name is durable but
 * whose contents were never fsynced comes back empty.
 */
export class SimDisk extends FailingIo {
  readonly root: string;
  /** Durable contents of files, by inode. */
  readonly #files = new Map<number, Uint8Array>();
  /** Durable names in directories, by inode. */
  readonly #dirs = new Map<number, Set<string>>();
  /**
   * While true, fsyncs succeed without making anything durable: the writes of a
   * process that died before its fsync took effect.
   */
  forgetSyncs = false;

  private constructor(root: string) {
    super();
    this.root = root;
  }

  /** Models the disk under `root`, taking what is there now as durable. */
  static async over(root: string): Promise<SimDisk> {
    const disk = new SimDisk(root);
    await disk.#record(root);
    return disk;
  }

  async #record(path: string): Promise<void> {
    const info = await Deno.stat(path);
    if (info.isDirectory) {
      const names = new Set<string>();
      for await (const e of Deno.readDir(path)) {
        names.add(e.name);
        await this.#record(join(path, e.name));
      }
      this.#dirs.set(info.ino!, names);
    } else {
      this.#files.set(info.ino!, await Deno.readFile(path));
    }
  }

  /** Records what is durable; a failing fsync (see {@link FailingIo}) makes nothing durable. */
  async sync(file: Deno.FsFile, path: string): Promise<void> {
    this.failSyncIfDue();
    if (this.forgetSyncs) return;
    const info = await file.stat();
    if (info.isDirectory) {
      const names = new Set<string>();
      for await (const e of Deno.readDir(path)) names.add(e.name);
      this.#dirs.set(info.ino!, names);
    } else {
      this.#files.set(info.ino!, await Deno.readFile(path));
    }
  }

  /** Loses everything not durable, as a power loss would. */
  async powerLoss(): Promise<void> {
    await this.#restore(this.root);
  }

  async #restore(dir: string): Promise<void> {
    const durable = this.#dirs.get((await Deno.stat(dir)).ino!) ?? new Set<string>();
    const entries: Deno.DirEntry[] = [];
    for await (const e of Deno.readDir(dir)) entries.push(e);
    for (const e of entries) {
      const path = join(dir, e.name);
      if (!durable.has(e.name)) {
        await Deno.remove(path, { recursive: true });
      } else if (e.isDirectory) {
        await this.#restore(path);
      } else {
        const bytes = this.#files.get((await Deno.stat(path)).ino!) ?? new Uint8Array();
        await Deno.writeFile(path, bytes);
      }
    }
  }
}

/** One frame of a built WAL, and which model record (if any) and save it holds. */
export interface LaidOutFrame extends FrameSpan {
  /** The segment file's name. */
  readonly name: string;
  /** Index into {@link BuiltWal.records}, or undefined for segment headers and save records. */
  readonly record: number | undefined;
  /** Index of the save (into {@link BuiltWal.afterSave}) the frame belongs to; undefined for segment headers. */
  readonly save: number | undefined;
}

/** A WAL written by {@link buildWal}: its files, and the model of what it holds. */
export interface BuiltWal {
  /** Segment file names in order. */
  readonly names: string[];
  /** The bytes of every file. */
  readonly files: Map<string, Uint8Array>;
  /** Every record saved, in order. */
  readonly records: ModelRecord[];
  /** Every frame of every segment, in order. */
  readonly frames: LaidOutFrame[];
  /** Where each save lies: its segment file, its first and end offsets, the records before it. */
  readonly saves: { name: string; offset: number; end: number; recordsBefore: number }[];
  /** The hard state after each save, and the last index after it. */
  readonly afterSave: { hardState: HardState; lastIndex: number }[];
}

/** The saves to perform: a hard state (or none) and entries, each. */
export type Saves = readonly (readonly [HardState | undefined, readonly Entry[]])[];

/** Performs `saves` on a fresh WAL created at `dir` and describes the result. */
export async function buildWal(
  dir: string,
  saves: Saves,
  segmentBytes?: number,
): Promise<BuiltWal> {
  const wal = await Wal.create(dir, { segmentBytes });
  const records: ModelRecord[] = [];
  const afterSave: { hardState: HardState; lastIndex: number }[] = [];
  for (const [hs, es] of saves) {
    await wal.save(hs, es);
    records.push(...saveRecords(hs, es));
    const s = applyRecords(records);
    afterSave.push({ hardState: s.hardState, lastIndex: s.entries.length });
  }
  await wal.close();
  const names = await segmentNames(dir);
  const files = await readFiles(dir);
  const frames: LaidOutFrame[] = [];
  const laid: BuiltWal["saves"] = [];
  let next = 0;
  for (const name of names) {
    for (const f of walkFrames(files.get(name)!)) {
      if (f.type === SAVE) laid.push({ name, offset: f.offset, end: f.end, recordsBefore: next });
      const save = f.type === SEGMENT_HEADER ? undefined : laid.length - 1;
      const record = f.type === SEGMENT_HEADER || f.type === SAVE ? undefined : next++;
      if (save !== undefined) laid[save]!.end = f.end;
      frames.push({ ...f, name, record, save });
    }
  }
  if (next !== records.length) throw new Error(`buildWal: ${next} frames for ${records.length}`);
  if (laid.length !== saves.length) throw new Error(`buildWal: ${laid.length} saves`);
  return { names, files, records, frames, saves: laid, afterSave };
}
