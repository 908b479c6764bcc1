/**
 * A durable write-ahead log for a Raft node, modelled on etcd's WAL: it persists
 * the hard state and the log entries in CRC-chained, 8-byte-aligned records, one
 * save at a time, across rolling segment files, and recovers them on open, cutting
 * off a torn last save and refusing to guess past any other damage.
 *
 * ```ts
 * import { Wal } from "./mod.ts";
 *
 * const dir = "/var/lib/raftkv/wal";
 * if (!(await Wal.exists(dir))) await (await Wal.create(dir)).close();
 * const { wal, recovery } = await Wal.open(dir);
 * await wal.save({ term: 1, vote: 1, commit: 0 }, [
 *   { term: 1, index: recovery.entries.length + 1, type: "normal", data: new Uint8Array() },
 * ]);
 * await wal.close();
 * ```
 *
 * @module
 */

export { crc32c } from "./crc32c.ts";
export {
  DIR_MODE,
  exists,
  FILE_MODE,
  fsync,
  mkdirDurable,
  type MkdirResult,
  syncDirectory,
  type SyncFn,
  writeFileAtomic,
} from "./durable_fs.ts";
export { FORMAT_VERSION, MAX_PAYLOAD_BYTES, RecordType, type RecordTypeCode } from "./record.ts";
export { parseSegmentFileName, segmentFileName, type SegmentId } from "./segment.ts";
export {
  DEFAULT_SEGMENT_BYTES,
  DENO_WAL_IO,
  type RecoveryCost,
  Wal,
  WalCorruptionError,
  type WalIo,
  type WalOptions,
  type WalRecovery,
} from "./wal.ts";
