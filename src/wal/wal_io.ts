/**
 * The file operations on the WAL's durability path (write, fsync, truncate), behind
 * an interface so that tests can count fsyncs, simulate failing disks and model what a
 * power loss keeps. Used by the appender (`wal.ts`), segment rolling (`rolling.ts`)
 * and recovery (`recovery.ts`).
 *
 * @module
 */

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

/**
 * The real file operations: a write loop, `fsync` and `ftruncate`.
 *
 * The write is synchronous, on the calling thread. A save's write only copies its
 * bytes into the page cache (a few microseconds for a batch of entries), while
 * Deno's asynchronous `write` hands it to a blocking thread and back: a thread
 * wake-up each way, and a duplicated and closed descriptor, for every save, on
 * every put's path (a follower's save comes before its acknowledgement). etcd's
 * raft loop writes its WAL the same way, in line, and only the fsync waits.
 * The fsync, which waits for the device, stays asynchronous.
 */
export const DENO_WAL_IO: WalIo = {
  // deno-lint-ignore require-await
  async write(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      const n = file.writeSync(bytes.subarray(done));
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

/** The operations `custom` gives, the others from {@link DENO_WAL_IO}. */
export function resolveIo(custom: Partial<WalIo> | undefined): WalIo {
  // Bound, not spread: `io` may be a class instance whose methods live on its prototype.
  return {
    write: custom?.write?.bind(custom) ?? DENO_WAL_IO.write,
    sync: custom?.sync?.bind(custom) ?? DENO_WAL_IO.sync,
    truncate: custom?.truncate?.bind(custom) ?? DENO_WAL_IO.truncate,
  };
}
