/**
 * The sending end of `RaftService/InstallSnapshot`: streams the snapshot of a
 * core's `snap` message to its follower, on its own call, never inside a Send
 * batch (etcd sends snapshots on their own path too: rafthttp's
 * snapshot_sender.go). The stream is a header (cluster id, membership, from, to,
 * term, the file's size) and then the snapshot file (src/snapshot/file.ts) in
 * chunks of at most 1 MiB.
 *
 * The core waits for the outcome: until the runtime calls
 * `RawNode.reportSnapshot(to, ...)` it sends that follower nothing else (§7;
 * etcd's StateSnapshot). So every send ends in exactly one report: `finish` when
 * the follower answered OK (the snapshot arrived intact and was stepped into its
 * core), `failure` otherwise (refused, broken, timed out), after which the core
 * probes the follower and sends the snapshot again from the start if it still
 * needs one. There is no resuming a transfer halfway: a snapshot is written once
 * and read once, and a retry is rare.
 *
 * At most one snapshot is in flight per follower. A `snap` for a follower that
 * already has one in flight is dropped, unreported: the one in flight will report,
 * and its report ends the core's wait either way (the core does not tell one
 * snapshot's report from another's, as in etcd).
 *
 * A transfer has no overall deadline (a big state on a slow link takes what it
 * takes) but must keep moving: when no chunk is taken by the connection, or no
 * answer comes after the last, for {@link SnapshotSenderOptions.stallTimeoutMs},
 * the call is cancelled and reported as failed.
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import {
  type InstallSnapshotRequest,
  InstallSnapshotRequestSchema,
  type RaftService,
} from "../gen/raftkv/v1/raft_pb.ts";
import type { Logger } from "../raft/logger.ts";
import type { Message, NodeId, Snapshot } from "../raft/types.ts";
import { invariant } from "../raft/invariant.ts";
import { ChunkedBytes, encodeSnapshotChunks, MAX_SNAPSHOT_CHUNK_BYTES } from "./snapshot_chunks.ts";
import { dataOnDisk } from "../snapshot/on_disk.ts";

/** Options of a {@link SnapshotSender}. */
export interface SnapshotSenderOptions {
  readonly clusterId: string;
  /** The membership this node believes in, ascending (as SendRequest states it). */
  readonly members: readonly bigint[];
  readonly logger: Logger;
  /** How long a transfer may make no progress before it is cancelled as failed. */
  readonly stallTimeoutMs: number;
  /**
   * Called once per snapshot sent, when its transfer ended: `failed` false when the
   * follower took the whole snapshot. node.ts passes it on to
   * `RawNode.reportSnapshot(to, failed ? "failure" : "finish")`.
   */
  readonly report: (to: NodeId, failed: boolean) => void;
  /** The size of each chunk, at most (and by default) 1 MiB; tests choose smaller. */
  readonly chunkBytes?: number;
  /**
   * The checked bytes of the snapshot file at `index` taken in `term`, for a `snap`
   * whose snapshot the storage holds without its data (src/snapshot/on_disk.ts):
   * node.ts reads it from its snapshot store. Without it, such a `snap` fails.
   */
  readonly readFile?: (term: number, index: number) => Promise<Uint8Array>;
}

/** One snapshot transfer under way. */
interface Transfer {
  readonly abort: AbortController;
  readonly done: Promise<void>;
}

/** Streams `snap` messages' snapshots to followers, one at a time per follower. */
export class SnapshotSender {
  readonly #options: SnapshotSenderOptions;
  readonly #chunkBytes: number;
  readonly #inflight = new Map<NodeId, Transfer>();
  #closed = false;

  constructor(options: SnapshotSenderOptions) {
    this.#options = options;
    this.#chunkBytes = options.chunkBytes ?? MAX_SNAPSHOT_CHUNK_BYTES;
    invariant(
      this.#chunkBytes > 0 && this.#chunkBytes <= MAX_SNAPSHOT_CHUNK_BYTES,
      () => `snapshot chunks of ${this.#chunkBytes} bytes (1 to ${MAX_SNAPSHOT_CHUNK_BYTES})`,
    );
  }

  /** True while a snapshot to `to` is in flight. */
  sending(to: NodeId): boolean {
    return this.#inflight.has(to);
  }

  /**
   * Starts streaming `m`'s snapshot to `m.to` through `client`, unless one is
   * already in flight to it (then `m` is dropped: see the module documentation).
   */
  send(client: Client<typeof RaftService>, m: Message): void {
    invariant(m.type === "snap", () => `SnapshotSender given a ${m.type} message`);
    const snapshot = m.snapshot;
    invariant(snapshot !== undefined, () => `snap message to ${m.to} without a snapshot`);
    if (this.#closed) return;
    const log = this.#options.logger;
    const label = `${snapshot.meta.term}/${snapshot.meta.index}`;
    if (this.#inflight.has(m.to)) {
      log.debug("a snapshot is already in flight to this follower; dropping another", {
        to: m.to,
        snapshot: label,
      });
      return;
    }
    const abort = new AbortController();
    const done = this.#transfer(client, m, label, abort).finally(() => {
      this.#inflight.delete(m.to);
    });
    this.#inflight.set(m.to, { abort, done });
  }

  /** Streams one snapshot and reports how it ended, whatever happens. */
  async #transfer(
    client: Client<typeof RaftService>,
    m: Message,
    label: string,
    abort: AbortController,
  ): Promise<void> {
    const log = this.#options.logger;
    const started = performance.now();
    const progress = { bytes: 0, sent: 0 };
    let failed = true;
    try {
      await this.#stream(client, m, label, abort, progress);
      failed = false;
      log.info("snapshot sent", {
        to: m.to,
        snapshot: label,
        bytes: progress.bytes,
        ms: Math.round(performance.now() - started),
      });
    } catch (err) {
      const reason = abort.signal.reason instanceof ConnectError ? abort.signal.reason : err;
      if (!this.#closed) {
        log.warn("snapshot send failed; the leader will retry", {
          to: m.to,
          snapshot: label,
          bytes: progress.bytes,
          sent: progress.sent,
          ms: Math.round(performance.now() - started),
          error: reason instanceof ConnectError
            ? `${Code[reason.code]}: ${reason.rawMessage}`
            : String(reason),
        });
      }
    }
    try {
      this.#options.report(m.to, failed);
    } catch (err) {
      log.error("reporting a snapshot's outcome to the core failed", {
        to: m.to,
        error: String(err),
      });
    }
  }

  /**
   * Encodes `m`'s snapshot and streams it: the header, then the chunks. Cancels the
   * call when it makes no progress for the stall timeout. Throws on any failure.
   */
  async #stream(
    client: Client<typeof RaftService>,
    m: Message,
    label: string,
    abort: AbortController,
    progress: { bytes: number; sent: number },
  ): Promise<void> {
    const file = await this.#file(m.snapshot!);
    progress.bytes = file.length;
    this.#options.logger.info("sending snapshot", {
      to: m.to,
      snapshot: label,
      bytes: file.length,
    });
    const stallMs = this.#options.stallTimeoutMs;
    let stall: ReturnType<typeof setTimeout> | undefined;
    const moved = () => {
      clearTimeout(stall);
      stall = setTimeout(
        () =>
          abort.abort(
            new ConnectError(
              `no progress for ${stallMs} ms after ${progress.sent} of ${file.length} bytes`,
              Code.DeadlineExceeded,
            ),
          ),
        stallMs,
      );
    };
    const chunkBytes = this.#chunkBytes;
    const header = {
      clusterId: this.#options.clusterId,
      members: [...this.#options.members],
      from: BigInt(m.from),
      to: BigInt(m.to),
      term: BigInt(m.term),
      size: BigInt(file.length),
    };
    async function* requests(): AsyncGenerator<InstallSnapshotRequest> {
      moved();
      yield create(InstallSnapshotRequestSchema, { part: { case: "header", value: header } });
      for (const chunk of file.chunks(chunkBytes)) {
        moved();
        yield create(InstallSnapshotRequestSchema, { part: { case: "chunk", value: chunk } });
        progress.sent += chunk.length;
      }
      // The last chunk is taken: now the answer must come within the stall timeout.
      moved();
    }
    try {
      await client.installSnapshot(requests(), { signal: abort.signal });
    } finally {
      clearTimeout(stall);
    }
  }

  /** The file to stream for `snapshot`: read back from disk, or encoded from its data. */
  async #file(snapshot: Snapshot): Promise<ChunkedBytes> {
    if (dataOnDisk(snapshot)) {
      const { term, index } = snapshot.meta;
      const readFile = this.#options.readFile;
      if (readFile === undefined) {
        throw new Error(`snapshot ${term}/${index} is on disk, and this sender cannot read files`);
      }
      return new ChunkedBytes([await readFile(term, index)]);
    }
    // Letting the Ready loop run while the file is encoded (snapshot_chunks.ts).
    return await encodeSnapshotChunks(snapshot);
  }

  /** Cancels every transfer under way and waits for them to end (each reports failure). */
  async close(): Promise<void> {
    this.#closed = true;
    const transfers = [...this.#inflight.values()];
    for (const t of transfers) t.abort.abort();
    await Promise.allSettled(transfers.map((t) => t.done));
  }
}
