/**
 * The receiving end of `RaftService/InstallSnapshot`: reads one stream of
 * {@link InstallSnapshotRequest}s (a header, then the snapshot file in chunks) and
 * returns the snapshot only when every byte arrived and the file checks out. Who
 * may send (cluster, membership, addressee) is checked by raft_service.ts, as for
 * Send; this module checks the stream itself: the header comes first and only
 * first, the announced size is within this node's limit, the chunks are non-empty,
 * at most {@link MAX_SNAPSHOT_CHUNK_BYTES} each, and add up to exactly that size,
 * and the bytes are a valid snapshot file (magic, version, lengths, CRC-32C:
 * src/snapshot/file.ts). Anything else is a {@link ConnectError} with a message
 * that says what was wrong, and nothing reaches the core.
 *
 * Where the bytes wait: in memory, not in a temporary file. The core takes a
 * snapshot as a {@link Snapshot} whose `data` is a byte array, and the runtime's
 * storage holds it that way until the next one, so the whole state is in memory
 * once stepped whatever the transfer does; a file would add a write and a read of
 * the same bytes without lowering the peak. The durable copy is the one the
 * snapshot store writes (temporary name, fsync, rename) when the core hands the
 * snapshot back in `Ready.snapshot`, before the node acknowledges it; a second,
 * non-durable file here would only be something to clean up after a crash. The
 * memory is bounded: the buffer is the announced size, which must be within
 * {@link SnapshotReceiveLimits.maxBytes}, and raft_service.ts lets each peer have
 * one transfer under way at a time (a newer one supersedes it).
 *
 * @module
 */

import { Code, ConnectError } from "@connectrpc/connect";
import type { InstallSnapshotHeader, InstallSnapshotRequest } from "../gen/raftkv/v1/raft_pb.ts";
import type { Snapshot } from "../raft/types.ts";
import { decodeSnapshotFile, SnapshotCorruptionError } from "../snapshot/file.ts";
import { CodecError, toSafeNumber } from "./codec.ts";
import { MAX_SNAPSHOT_CHUNK_BYTES } from "./snapshot_chunks.ts";

/**
 * The largest snapshot file a node accepts by default: 1 GiB. The whole state
 * must fit in memory (see the module documentation), and a state this large is
 * far beyond what raftkv is built for; a bigger announced size is refused before
 * any byte is read.
 */
export const DEFAULT_MAX_SNAPSHOT_BYTES = 1024 * 1024 * 1024;

/** What a receiver accepts. */
export interface SnapshotReceiveLimits {
  /** The largest snapshot file, in bytes. */
  readonly maxBytes: number;
}

/**
 * `p`, or a rejection with `signal`'s reason as soon as it aborts: a stream whose
 * sender went silent without closing it must not hold its slot forever.
 */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

/**
 * The header of a stream: its first request, which must carry one. Throws
 * INVALID_ARGUMENT for an empty stream or a stream that starts with a chunk.
 */
export async function readSnapshotHeader(
  requests: AsyncIterator<InstallSnapshotRequest>,
): Promise<InstallSnapshotHeader> {
  const first = await requests.next();
  if (first.done) {
    throw invalid("Cannot install snapshot: the stream ended before its header");
  }
  const part = first.value.part;
  if (part.case !== "header") {
    throw invalid(
      `Cannot install snapshot: the first request must carry the header, not ${
        part.case === undefined ? "nothing" : `a ${part.case}`
      }`,
    );
  }
  return part.value;
}

/**
 * The announced size of the file, checked against `limits`: INVALID_ARGUMENT for 0
 * or a size beyond 2^53 - 1, RESOURCE_EXHAUSTED above the limit.
 */
export function checkSnapshotSize(size: bigint, limits: SnapshotReceiveLimits): number {
  if (size > BigInt(limits.maxBytes)) {
    throw new ConnectError(
      `Cannot install snapshot: its ${size} bytes are over this node's limit of ` +
        `${limits.maxBytes} bytes`,
      Code.ResourceExhausted,
    );
  }
  let n: number;
  try {
    n = toSafeNumber(size, "header.size");
  } catch (err) {
    if (err instanceof CodecError) throw invalid(err.message);
    throw err;
  }
  if (n === 0) throw invalid("Cannot install snapshot: header.size is 0 (no file is that small)");
  return n;
}

/**
 * Reads the rest of a stream whose header announced `size` bytes (already
 * checked by {@link checkSnapshotSize}) and decodes the file. `source` names the
 * sender in errors ("stream from node 2"). Throws INVALID_ARGUMENT when the stream
 * breaks the framing (another header, an empty or oversized chunk, more or fewer
 * bytes than announced) and DATA_LOSS when the bytes are not a valid snapshot file
 * (a flipped bit, a damaged header).
 */
export async function readSnapshotFile(
  requests: AsyncIterator<InstallSnapshotRequest>,
  size: number,
  source: string,
  signal?: AbortSignal,
): Promise<Snapshot> {
  // Allocated once, at the announced (bounded) size: no copying as chunks arrive.
  const file = new Uint8Array(size);
  let received = 0;
  const next = () => signal === undefined ? requests.next() : abortable(requests.next(), signal);
  for (let r = await next(); !r.done; r = await next()) {
    const part = r.value.part;
    if (part.case !== "chunk") {
      throw invalid(
        `Cannot install snapshot: after ${received} bytes the ${source} sent ${
          part.case === "header" ? "a second header" : "a request with no part"
        }`,
      );
    }
    const chunk = part.value;
    if (chunk.length === 0 || chunk.length > MAX_SNAPSHOT_CHUNK_BYTES) {
      throw invalid(
        `Cannot install snapshot: a chunk of ${chunk.length} bytes (chunks are 1 to ` +
          `${MAX_SNAPSHOT_CHUNK_BYTES} bytes)`,
      );
    }
    if (received + chunk.length > size) {
      throw invalid(
        `Cannot install snapshot: the ${source} sent more than the ${size} bytes its header ` +
          `announced (${received + chunk.length} so far)`,
      );
    }
    file.set(chunk, received);
    received += chunk.length;
  }
  if (received < size) {
    throw invalid(
      `Cannot install snapshot: the ${source} ended after ${received} of the ${size} bytes ` +
        "its header announced (truncated transfer)",
    );
  }
  try {
    return decodeSnapshotFile(file, source);
  } catch (err) {
    if (err instanceof SnapshotCorruptionError) {
      throw new ConnectError(err.message, Code.DataLoss);
    }
    throw err;
  }
}
