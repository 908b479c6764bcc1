/**
 * File-system steps that survive a power loss: creating a directory (and the
 * directories above it) so that its name is on disk, writing a small file
 * atomically, and fsyncing a directory.
 *
 * On Linux a new name (a file or directory created, renamed or removed) is durable
 * only once the directory holding it is fsynced; fsyncing the file is not enough
 * (ext4 and XFS document this; "All File Systems Are Not Created Equal", OSDI'14,
 * found applications that forget it). etcd's `fileutil` does these same steps. In
 * Deno, `Deno.open(dir, { read: true })` then `.sync()` is an `fsync(2)` on a
 * read-only descriptor of the directory, which Linux allows (checked with strace
 * on Deno 2.9.3).
 *
 * Files are created 0600 and directories 0700: a node's log holds every value ever
 * written, and nobody but its owner needs to read it.
 *
 * @module
 */

import { dirname } from "node:path";

/** Mode of the files the WAL and the data dir create. */
export const FILE_MODE = 0o600;

/** Mode of the directories the WAL and the data dir create. */
export const DIR_MODE = 0o700;

/**
 * Flushes a file or a directory to stable storage; `path` names it (for tests that
 * model a disk). The WAL's {@link WalIo.sync} has this shape.
 */
export type SyncFn = (file: Deno.FsFile, path: string) => Promise<void>;

/** `fsync` itself. */
export const fsync: SyncFn = (file) => file.sync();

/** Fsyncs a directory, so that the names created, renamed or removed in it are durable. */
export async function syncDirectory(dir: string, sync: SyncFn = fsync): Promise<void> {
  const d = await Deno.open(dir, { read: true });
  try {
    await sync(d, dir);
  } finally {
    d.close();
  }
}

/** Whether anything (a file or a directory) exists at `path`. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** What {@link mkdirDurable} did. */
export interface MkdirResult {
  /** The directories it created, outermost first. */
  readonly created: string[];
  /**
   * Parents of created directories that could not be fsynced because Deno's
   * permissions do not let this process open them (`deno task node` grants only
   * `./data`, not the directory above it). Their new entries become durable when the
   * file system next commits its metadata (seconds, on ext4), not at once.
   */
  readonly unsynced: string[];
}

/**
 * Creates `dir` and any missing directories above it, mode 0700, fsyncing each
 * parent after creating a directory in it, so that the new names survive a power
 * loss. A `dir` that exists as a directory is left alone. Throws the OS error (with
 * its `code`) if `dir` or a directory above it is a file, or if it may not be created.
 */
export async function mkdirDurable(dir: string, sync: SyncFn = fsync): Promise<MkdirResult> {
  const result: MkdirResult = { created: [], unsynced: [] };
  await makeDir(dir, sync, result);
  return result;
}

async function makeDir(dir: string, sync: SyncFn, result: MkdirResult): Promise<void> {
  try {
    // Not recursive: the parent's existence is learned from the error, so no
    // directory above `dir` is ever opened or stat'ed unless one must be created.
    await Deno.mkdir(dir, { mode: DIR_MODE });
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      const info = await Deno.stat(dir);
      if (info.isDirectory) return;
      throw err;
    }
    const parent = dirname(dir);
    if (!(err instanceof Deno.errors.NotFound) || parent === dir) throw err;
    try {
      await makeDir(parent, sync, result);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotCapable)) throw e;
      // Deno's permissions cover `dir` but not the directories above it: create
      // them all at once, as `mkdir -p` does (Deno checks only `dir` for that), and
      // report that they could not be fsynced.
      await Deno.mkdir(dir, { recursive: true, mode: DIR_MODE });
      result.created.push(dir);
      result.unsynced.push(parent);
      return;
    }
    await Deno.mkdir(dir, { mode: DIR_MODE });
  }
  result.created.push(dir);
  const parent = dirname(dir);
  try {
    await syncDirectory(parent, sync);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotCapable)) throw err;
    result.unsynced.push(parent);
  }
}

/**
 * Replaces `path` with `bytes` atomically and durably: writes `<path>.tmp` (mode
 * 0600), fsyncs it, renames it over `path`, fsyncs the directory. After a crash the
 * file holds either its old contents or the new ones, never a mix; a leftover
 * `.tmp` is the remains of a crash and may be deleted.
 */
export async function writeFileAtomic(
  path: string,
  bytes: Uint8Array,
  sync: SyncFn = fsync,
): Promise<void> {
  const temp = `${path}.tmp`;
  const f = await Deno.open(temp, { write: true, create: true, truncate: true, mode: FILE_MODE });
  try {
    let done = 0;
    while (done < bytes.length) {
      const n = await f.write(bytes.subarray(done));
      if (n <= 0) throw new Deno.errors.WriteZero(`wrote 0 of ${bytes.length - done} bytes`);
      done += n;
    }
    await sync(f, temp);
  } finally {
    f.close();
  }
  await Deno.rename(temp, path);
  await syncDirectory(dirname(path), sync);
}
