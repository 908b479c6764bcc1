/**
 * Compacting the WAL behind a snapshot (§7 of the Raft paper; etcd's
 * `ReleaseLockTo` and `purgeFile`): which segments may go, how they go, and what
 * the segments left must look like when the WAL is opened again. wal.ts calls
 * these from {@link Wal.releaseBefore}, {@link Wal.resetTo} and {@link Wal.open}.
 *
 * Once a snapshot is durable, the segments wholly below the first entry the node
 * keeps are deleted, oldest first, so that what is left is always a run of
 * consecutive segments; the tail segment is never deleted. The WAL saves the
 * latest hard state into the tail first, so no deleted segment held the only copy.
 * A node that installs a snapshot from its leader starts a segment at the entry
 * after it and deletes all before. On open, the WAL is told the index of the
 * snapshot the node holds: the first segment left may then begin after index 1,
 * as long as it begins at or before the entry after the snapshot; a segment
 * missing in the middle, or a gap between the snapshot and the first entry left,
 * is damage.
 *
 * @module
 */

import { syncDirectory, type SyncFn } from "./durable_fs.ts";
import type { SegmentId } from "./segment.ts";

/** A segment file of the WAL: its id (sequence number, first index) and path. */
export interface SegmentFile {
  readonly id: SegmentId;
  readonly path: string;
}

/**
 * How many of `segments` (in sequence order) lie wholly below `index`, the first
 * entry the node keeps: a segment does when the next one starts at or before
 * `index`. The last segment never counts (it is the tail the WAL appends to).
 */
export function segmentsWhollyBelow(segments: readonly SegmentFile[], index: number): number {
  let n = 0;
  while (n + 1 < segments.length && segments[n + 1]!.id.firstIndex <= index) n++;
  return n;
}

/**
 * Deletes the first `n` of `segments`, oldest first, removing each from the array
 * as its file goes (so the array matches the directory if a removal fails), then
 * fsyncs the directory. Throws what the file system threw.
 */
export async function deleteOldestSegments(
  dir: string,
  segments: SegmentFile[],
  n: number,
  sync: SyncFn,
): Promise<void> {
  const gone = segments.slice(0, n);
  for (const s of gone) {
    await Deno.remove(s.path);
    segments.shift();
  }
  await syncDirectory(dir, sync);
}

/**
 * Why the first segment left in a WAL directory cannot follow the snapshot at
 * `snapshotIndex` (0 for none), or undefined when it can: a first segment after
 * sequence 0 (its predecessors released) must start at or before the entry after
 * the snapshot, or the entries in between are in neither.
 */
export function gapAfterSnapshot(
  first: SegmentFile | undefined,
  snapshotIndex: number,
): string | undefined {
  if (first === undefined || first.id.seq === 0 || first.id.firstIndex <= snapshotIndex + 1) {
    return undefined;
  }
  const covered = snapshotIndex === 0
    ? "there is no snapshot"
    : `the snapshot covers up to index ${snapshotIndex}`;
  return `the first segment left starts at index ${first.id.firstIndex}, but ${covered}: ` +
    `entries ${snapshotIndex + 1} to ${first.id.firstIndex - 1} are in neither ` +
    `(segment ${first.id.seq - 1} is missing)`;
}
