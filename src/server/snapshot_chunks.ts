/**
 * A snapshot file as it goes over the wire: in chunks of at most
 * {@link MAX_SNAPSHOT_CHUNK_BYTES}, on RaftService/InstallSnapshot (a leader to a
 * follower) and ClusterService/SnapshotSave (a backup). The file is encoded with its
 * checksum computed a slice at a time, yielding to the event loop between slices,
 * and without copying the state into one buffer ({@link ChunkedBytes}): a state of
 * many megabytes would otherwise stall the node's Ready loop while it is encoded.
 *
 * @module
 */

import { invariant } from "../raft/invariant.ts";
import type { Snapshot } from "../raft/types.ts";
import { encodeSnapshotFileInSteps } from "../snapshot/file.ts";

/** The most bytes one chunk of an InstallSnapshot or SnapshotSave stream carries: 1 MiB. */
export const MAX_SNAPSHOT_CHUNK_BYTES = 1024 * 1024;

/**
 * Bytes held as consecutive parts (a snapshot file's head, state and checksum),
 * read by range without joining the parts: a range within one part is a view of
 * it, one across parts a copy of just that range.
 */
export class ChunkedBytes {
  readonly #parts: readonly Uint8Array[];
  readonly length: number;

  constructor(parts: readonly Uint8Array[]) {
    this.#parts = parts;
    this.length = parts.reduce((n, p) => n + p.length, 0);
  }

  /** The bytes from `start` to `end` (exclusive), `0 <= start <= end <= length`. */
  slice(start: number, end: number): Uint8Array {
    invariant(
      0 <= start && start <= end && end <= this.length,
      () => `range [${start}, ${end}) outside [0, ${this.length})`,
    );
    let base = 0;
    for (const p of this.#parts) {
      if (start >= base && end <= base + p.length) return p.subarray(start - base, end - base);
      if (start < base + p.length) break;
      base += p.length;
    }
    const out = new Uint8Array(end - start);
    base = 0;
    for (const p of this.#parts) {
      const from = Math.max(start, base);
      const to = Math.min(end, base + p.length);
      if (from < to) out.set(p.subarray(from - base, to - base), from - start);
      base += p.length;
    }
    return out;
  }

  /** The bytes in order, `size` at a time (the last chunk may be shorter). */
  *chunks(size: number = MAX_SNAPSHOT_CHUNK_BYTES): Generator<Uint8Array> {
    invariant(size > 0, () => `chunks of ${size} bytes`);
    for (let off = 0; off < this.length; off += size) {
      yield this.slice(off, Math.min(off + size, this.length));
    }
  }
}

/**
 * The snapshot file of `snapshot` (src/snapshot/file.ts), its checksum computed a
 * slice at a time with a turn of the event loop between slices.
 */
export async function encodeSnapshotChunks(snapshot: Snapshot): Promise<ChunkedBytes> {
  const steps = encodeSnapshotFileInSteps(snapshot);
  for (let step = steps.next();; step = steps.next()) {
    if (step.done) return new ChunkedBytes(step.value);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}
