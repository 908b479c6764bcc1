/**
 * A node's snapshot directory (`<data-dir>/snap/`): the snapshot files it took or
 * received, named like etcd's `%016x-%016x.snap` (term, then index, in hex).
 *
 * **Saving** is the durable-replace dance of `durable_fs.ts`: the file is written
 * to `<name>.tmp` (0600), fsynced, renamed into place, and the directory fsynced;
 * only then is the snapshot durable, and only then may the log behind it be
 * compacted (etcd's `snap.Snapshotter.SaveSnap` does the same). A leftover `.tmp`
 * is what a crash in the middle leaves: it never counted, and opening removes it.
 *
 * **Keeping.** Once a newer snapshot is durable, all but the newest
 * {@link KEEP_SNAPSHOTS} are deleted: the one before the newest is kept so a node
 * whose newest file is damaged can fall back to it, when its WAL still reaches back
 * that far (the caller decides that, see {@link SnapshotStore.loadNewest}).
 *
 * **Loading** checks every byte (`file.ts`: magic, version, lengths, CRC-32C) and
 * that the header agrees with the file's name. A damaged file is never used; it
 * is reported with its path and its damage, and renamed to `<name>.broken` once
 * the node has decided to go on without it (etcd does the same), so the evidence
 * stays on disk but no later start trips on it again.
 *
 * @module
 */

import { basename, join } from "node:path";
import { type Logger, SILENT_LOGGER } from "../raft/logger.ts";
import type { Snapshot, SnapshotMeta } from "../raft/types.ts";
import { FILE_MODE, fsync, mkdirDurable, syncDirectory, type SyncFn } from "../wal/durable_fs.ts";
import {
  checkSnapshotFileInSteps,
  decodeSnapshotFile,
  encodeSnapshotFile,
  SnapshotCorruptionError,
} from "./file.ts";

/** The name of the snapshot directory in a data dir. */
export const SNAP_DIR = "snap";

/** How many snapshot files are kept: the newest and the one before it. */
export const KEEP_SNAPSHOTS = 2;

const SUFFIX = ".snap";
const TEMP_SUFFIX = ".tmp";
const BROKEN_SUFFIX = ".broken";
const NAME = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;

/** A snapshot file's place in the directory, from its name. */
export interface SnapshotFileInfo {
  /** The file's full path. */
  readonly path: string;
  readonly term: number;
  readonly index: number;
}

/** A snapshot file that could not be used, and why. */
export interface DamagedSnapshot {
  readonly path: string;
  readonly error: SnapshotCorruptionError;
}

/** What {@link SnapshotStore.loadNewest} found. */
export interface LoadedSnapshots {
  /** The newest snapshot that passed every check, if any. */
  readonly snapshot: Snapshot | undefined;
  /** Its path, if any. */
  readonly path: string | undefined;
  /** Every newer file that failed a check, newest first. */
  readonly damaged: readonly DamagedSnapshot[];
}

/** The file name of a snapshot at `index` taken in `term`: `%016x-%016x.snap`. */
export function snapshotFileName(term: number, index: number): string {
  return `${hex16(term)}-${hex16(index)}${SUFFIX}`;
}

/** The term and index a snapshot file name carries, or undefined if it is not one. */
export function parseSnapshotFileName(name: string): { term: number; index: number } | undefined {
  const m = NAME.exec(name);
  if (m === null) return undefined;
  const term = parseInt(m[1]!, 16);
  const index = parseInt(m[2]!, 16);
  if (!Number.isSafeInteger(term) || !Number.isSafeInteger(index)) return undefined;
  return { term, index };
}

function hex16(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`Cannot name a snapshot file: ${n} is not an index or term`);
  }
  return n.toString(16).padStart(16, "0");
}

/** Options of {@link SnapshotStore.open}. */
export interface SnapshotStoreOptions {
  readonly logger?: Logger;
  /** Replaces fsync, for tests. */
  readonly sync?: SyncFn;
}

/** The snapshot files of one data dir. One process at a time (the data dir's lock). */
export class SnapshotStore {
  /** The directory. */
  readonly dir: string;
  readonly #logger: Logger;
  readonly #sync: SyncFn;
  #saving = false;

  private constructor(dir: string, logger: Logger, sync: SyncFn) {
    this.dir = dir;
    this.#logger = logger;
    this.#sync = sync;
  }

  /**
   * Opens (creating it, 0700, if absent) the snapshot directory `dir` and removes
   * the `.tmp` files an interrupted save left.
   */
  static async open(dir: string, options: SnapshotStoreOptions = {}): Promise<SnapshotStore> {
    const logger = options.logger ?? SILENT_LOGGER;
    const sync = options.sync ?? fsync;
    await mkdirDurable(dir, sync);
    let removed = false;
    for await (const e of Deno.readDir(dir)) {
      if (e.name.endsWith(TEMP_SUFFIX)) {
        await Deno.remove(join(dir, e.name));
        logger.info("snapshot: removed an unfinished snapshot file", { file: e.name });
        removed = true;
      }
    }
    if (removed) await syncDirectory(dir, sync);
    return new SnapshotStore(dir, logger, sync);
  }

  /** The snapshot files, newest (highest index, then term) first. Other files are ignored. */
  async list(): Promise<SnapshotFileInfo[]> {
    const found: SnapshotFileInfo[] = [];
    for await (const e of Deno.readDir(this.dir)) {
      if (!e.isFile) continue;
      const parsed = parseSnapshotFileName(e.name);
      if (parsed === undefined) {
        if (e.name.endsWith(SUFFIX)) {
          this.#logger.warn("snapshot: ignoring a file with a malformed name", { file: e.name });
        }
        continue;
      }
      found.push({ path: join(this.dir, e.name), ...parsed });
    }
    return found.sort((a, b) => b.index - a.index || b.term - a.term);
  }

  /**
   * Writes `snapshot` durably (temp file, fsync, rename, directory fsync), then
   * deletes all but the newest {@link KEEP_SNAPSHOTS} files. Resolves with its path
   * once it is durable. One save at a time: a second call while one runs throws
   * (the caller takes one snapshot at a time).
   */
  async save(snapshot: Snapshot): Promise<string> {
    return await this.saveParts(snapshot.meta.term, snapshot.meta.index, [
      encodeSnapshotFile(snapshot),
    ]);
  }

  /**
   * {@link save} for a file already encoded in the snapshot file format, as parts
   * written one after the other (see `encodeSnapshotFileInSteps`), so that the
   * state is never copied into one buffer with its header.
   */
  async saveParts(term: number, index: number, parts: readonly Uint8Array[]): Promise<string> {
    if (this.#saving) {
      throw new Error(`Cannot save snapshot ${index}: another save is under way in ${this.dir}`);
    }
    this.#saving = true;
    try {
      const path = this.#path(term, index);
      const temp = path + TEMP_SUFFIX;
      const f = await Deno.open(temp, {
        write: true,
        create: true,
        truncate: true,
        mode: FILE_MODE,
      });
      try {
        for (const part of parts) {
          let done = 0;
          while (done < part.length) {
            const n = await f.write(part.subarray(done));
            if (n <= 0) throw new Deno.errors.WriteZero(`wrote 0 of ${part.length - done} bytes`);
            done += n;
          }
        }
        await this.#sync(f, temp);
      } finally {
        f.close();
      }
      await Deno.rename(temp, path);
      await syncDirectory(this.dir, this.#sync);
      this.#logger.info("snapshot: saved", { file: basename(path), index, term });
      await this.prune();
      return path;
    } finally {
      this.#saving = false;
    }
  }

  /**
   * Deletes every snapshot file but the newest {@link KEEP_SNAPSHOTS}, oldest
   * first, then fsyncs the directory. Called after each save.
   */
  async prune(): Promise<void> {
    const old = (await this.list()).slice(KEEP_SNAPSHOTS).reverse();
    if (old.length === 0) return;
    for (const f of old) {
      await Deno.remove(f.path);
      this.#logger.info("snapshot: deleted an old snapshot", { file: basename(f.path) });
    }
    await syncDirectory(this.dir, this.#sync);
  }

  /**
   * Reads and checks one snapshot file.
   *
   * @throws {SnapshotCorruptionError} naming the file and its damage, including a
   * header that disagrees with the file name.
   */
  async load(info: SnapshotFileInfo): Promise<Snapshot> {
    const snap = decodeSnapshotFile(await readOrVanished(info.path), info.path);
    checkName(info, snap.meta);
    return snap;
  }

  /**
   * The bytes of the snapshot file at `index` taken in `term`, checked as
   * {@link load} checks them but not copied, the checksum a slice at a time with a
   * turn of the event loop between slices: what a leader streams to a follower (its
   * storage holds the snapshot's metadata only: on_disk.ts).
   *
   * @throws {SnapshotCorruptionError} when the file is gone or damaged.
   */
  async readFile(term: number, index: number): Promise<Uint8Array> {
    const info = { path: this.#path(term, index), term, index };
    const bytes = await readOrVanished(info.path);
    const steps = checkSnapshotFileInSteps(bytes, info.path);
    for (let step = steps.next();; step = steps.next()) {
      if (step.done) {
        checkName(info, step.value.meta);
        return bytes;
      }
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }

  /** The path of the snapshot file at `index` taken in `term`. */
  #path(term: number, index: number): string {
    return join(this.dir, snapshotFileName(term, index));
  }

  /**
   * Loads the newest snapshot that passes every check, and reports each newer
   * file that does not. Whether the node may go on with an older snapshot when a
   * newer one is damaged depends on its WAL (it must still hold every entry after
   * the older snapshot's index), which this store does not know: the caller
   * decides, then calls {@link markBroken} on the damaged files, or refuses to start.
   */
  async loadNewest(): Promise<LoadedSnapshots> {
    const damaged: DamagedSnapshot[] = [];
    for (const info of await this.list()) {
      try {
        const snapshot = await this.load(info);
        return { snapshot, path: info.path, damaged };
      } catch (err) {
        if (!(err instanceof SnapshotCorruptionError)) throw err;
        damaged.push({ path: info.path, error: err });
      }
    }
    return { snapshot: undefined, path: undefined, damaged };
  }

  /** Renames a damaged file to `<name>.broken` (out of every later listing) and fsyncs the dir. */
  async markBroken(path: string): Promise<string> {
    const broken = path + BROKEN_SUFFIX;
    await Deno.rename(path, broken);
    await syncDirectory(this.dir, this.#sync);
    this.#logger.warn("snapshot: set a damaged snapshot file aside", {
      file: basename(path),
      renamedTo: basename(broken),
    });
    return broken;
  }
}

/** The bytes of the file at `path`; one that is gone is damage, named as such. */
async function readOrVanished(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    throw new SnapshotCorruptionError(path, "the file vanished while it was being read");
  }
}

/** Throws unless the header of the file at `info.path` agrees with its name. */
function checkName(info: SnapshotFileInfo, meta: SnapshotMeta): void {
  if (meta.index !== info.index || meta.term !== info.term) {
    throw new SnapshotCorruptionError(
      info.path,
      `its header says index ${meta.index} term ${meta.term}, its name ` +
        `index ${info.index} term ${info.term}`,
    );
  }
}
