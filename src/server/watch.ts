/**
 * `KVService/Watch`: a server stream of the changes this node applies to a key, a
 * prefix or a range (see `src/kv/watch_hub.ts`). It never goes to the leader: a
 * follower serves a watch from its own applied state, in the same log order, so a
 * client can watch any node and resume on another from the last index it got.
 *
 * The stream sends what the watcher can take at once (whole indexes, about 1 MiB per
 * response) and, while nothing matching changes, a progress response with the node's
 * applied index every `progress_interval_ms`. A slow reader holds back only its own
 * stream: HTTP/2 flow control stops the writes, and since a watcher is a cursor into
 * the shared history, nothing piles up for it; if its cursor falls out of the history
 * the stream ends with RESOURCE_EXHAUSTED when it next reads.
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  type WatchEvent_Kind,
  WatchEvent_Kind as Kind,
  type WatchRequest,
  type WatchResponse,
  WatchResponseSchema,
} from "../gen/raftkv/v1/kv_pb.ts";
import { checkRangeQuery } from "../kv/range.ts";
import { KvInputError, validateKey } from "../kv/validate.ts";
import { type WatchBatch, WatchError, type WatchFilter, type WatchHub } from "../kv/watch_hub.ts";

/** The progress interval when the request sets none. */
export const DEFAULT_PROGRESS_MS = 1000;
/** The shortest progress interval a watch may ask for. */
export const MIN_PROGRESS_MS = 50;

/** The filter a WatchRequest asks for; INVALID_ARGUMENT when it breaks a rule. */
export function watchFilterOf(req: WatchRequest): WatchFilter {
  try {
    const forms = [req.key !== "", req.prefix !== "", req.start !== "" || req.end !== ""];
    if (forms.filter(Boolean).length > 1) {
      throw new KvInputError("Cannot watch: set one of key, prefix or start/end");
    }
    if (req.key !== "") {
      validateKey(req.key);
      return { kind: "key", key: req.key };
    }
    if (req.prefix !== "") {
      checkRangeQuery({ prefix: req.prefix });
      return { kind: "prefix", prefix: req.prefix };
    }
    checkRangeQuery({ start: req.start, end: req.end });
    return { kind: "range", start: req.start, end: req.end };
  } catch (err) {
    if (err instanceof KvInputError) {
      throw new ConnectError(
        err.message.replace(/^Cannot range/, "Cannot watch"),
        Code.InvalidArgument,
      );
    }
    throw err;
  }
}

/** A WatchError as the gRPC status a client acts on. */
export function watchErrorToConnect(err: WatchError): ConnectError {
  switch (err.kind) {
    case "compacted":
      return new ConnectError(err.message, Code.OutOfRange);
    case "slow":
      return new ConnectError(err.message, Code.ResourceExhausted);
    case "closed":
      return new ConnectError(err.message, Code.Unavailable);
  }
}

const KINDS: Record<"put" | "delete", WatchEvent_Kind> = { put: Kind.PUT, delete: Kind.DELETE };

function responseOf(batch: WatchBatch): WatchResponse {
  return create(WatchResponseSchema, {
    events: batch.events.map((e) => ({
      kind: KINDS[e.kind],
      key: e.key,
      value: e.value,
      index: BigInt(e.index),
      createIndex: BigInt(e.createIndex),
      lease: BigInt(e.lease),
    })),
    throughIndex: BigInt(batch.throughIndex),
  });
}

/** The Watch handler of the KVService implementation, over `hub`. */
export function watchHandler(
  hub: WatchHub,
): { watch(req: WatchRequest, ctx: HandlerContext): AsyncIterable<WatchResponse> } {
  return {
    async *watch(req, ctx) {
      const filter = watchFilterOf(req);
      const progressMs = req.progressIntervalMs === 0
        ? DEFAULT_PROGRESS_MS
        : req.progressIntervalMs;
      if (progressMs < MIN_PROGRESS_MS) {
        throw new ConnectError(
          `Cannot watch: progress_interval_ms ${progressMs} is below ${MIN_PROGRESS_MS}`,
          Code.InvalidArgument,
        );
      }
      if (req.startIndex > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new ConnectError(
          `Cannot watch: start_index ${req.startIndex} is above 2^53 - 1`,
          Code.InvalidArgument,
        );
      }
      let watcher;
      try {
        watcher = hub.watch(filter, Number(req.startIndex));
      } catch (err) {
        throw err instanceof WatchError ? watchErrorToConnect(err) : err;
      }
      try {
        // The first response goes out at once: the watch is established, and through
        // which index (history replayed up to it, if any).
        let lastSent = -Infinity;
        while (!ctx.signal.aborted) {
          const batch = watcher.take();
          const now = performance.now();
          if (batch.events.length > 0 || now - lastSent >= progressMs) {
            lastSent = now;
            yield responseOf(batch);
          }
          await watcher.wait(Math.max(1, lastSent + progressMs - performance.now()), ctx.signal);
        }
      } catch (err) {
        throw err instanceof WatchError ? watchErrorToConnect(err) : err;
      } finally {
        watcher.close();
      }
    },
  };
}
