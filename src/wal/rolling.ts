/**
 * Starting segment files: the first one of a new WAL and each next one when the tail
 * passes the segment size (rolling). A segment is named by its sequence number and the
 * index of its first entry (`segment.ts`), and begins with a header frame seeded with
 * the chain CRC the previous segment ended with, so that the chain runs across
 * segments (etcd's `wal.cut`). A next segment is built as a `.tmp` file, fsynced,
 * renamed into place and the directory fsynced, so a crash leaves either no segment
 * or a complete one with only its header (recovery deletes leftover `.tmp` files).
 *
 * @module
 */

import { join } from "node:path";
import { FILE_MODE, syncDirectory } from "./durable_fs.ts";
import {
  encodeSegmentHeader,
  FORMAT_VERSION,
  frameSize,
  RecordType,
  writeFrame,
} from "./record.ts";
import { segmentFileName, type SegmentId } from "./segment.ts";
import type { WalIo } from "./wal_io.ts";

/** The segment being appended to. */
export interface Tail {
  readonly id: SegmentId;
  readonly path: string;
  readonly file: Deno.FsFile;
  /** Bytes known durable: everything up to the end of the last save that succeeded. */
  size: number;
  /** The chain CRC of the last frame. */
  chain: number;
}

/**
 * Writes segment `id` holding only its header (seeded with `prevCrc`) to
 * `<dir>/<name><suffix>` (mode 0600) and fsyncs it. Returns its size and chain CRC.
 */
export async function writeSegment(
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
export async function createSegment(
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
