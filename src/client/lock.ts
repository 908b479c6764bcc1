/**
 * A distributed lock on leases and Txn (etcd's `concurrency.Mutex` recipe,
 * `client/v3/concurrency/mutex.go`): each contender puts a key under the lock's
 * prefix, attached to its own lease; keys sort in lease order (a lease's id is the log
 * index that granted it, written zero-padded), so the contenders queue in the order
 * they got their leases. The one whose key is first holds the lock; each other waits
 * (with a watch) for the key just before its own to go, then looks again. A holder
 * that dies stops renewing its lease, the lease expires, its key is deleted, and the
 * next in line gets the lock: the lock is never held by two live contenders at once,
 * and never stuck with a dead one for longer than the TTL.
 *
 * @module
 */

import { Code, ConnectError } from "@connectrpc/connect";
import { WatchEvent_Kind } from "../gen/raftkv/v1/kv_pb.ts";
import type { RaftKvClient } from "./client.ts";

/** A held lock. */
export interface HeldLock {
  /** The key that holds it (under the lock's prefix). */
  readonly key: string;
  /** The lease the key is attached to. */
  readonly lease: bigint;
  /** Rejects if the lease is lost while held (the lock may then pass to another). */
  readonly lost: Promise<never>;
  /** Releases the lock: deletes the key (revokes the lease) and stops renewing. */
  release(): Promise<void>;
}

/** The key of lease `lease` under lock `name`: zero-padded so keys sort by lease. */
export function lockKey(name: string, lease: bigint): string {
  return `${name}/${lease.toString().padStart(20, "0")}`;
}

/**
 * Acquires lock `name`, waiting as long as it takes (or until `signal` aborts), with a
 * lease of `ttl` seconds kept alive while held.
 */
export async function acquireLock(
  client: RaftKvClient,
  name: string,
  options: { ttl?: number; signal?: AbortSignal } = {},
): Promise<HeldLock> {
  const ttl = options.ttl ?? 10;
  const grant = await client.leaseGrant(ttl);
  const lease = grant.id;
  const stop = new AbortController();
  const signal = options.signal === undefined
    ? stop.signal
    : AbortSignal.any([stop.signal, options.signal]);
  const lost = client.keepAlive(lease, Number(grant.ttl), signal).then(
    () => new Promise<never>(() => {}),
  );
  lost.catch(() => {}); // the holder awaits it if it cares
  const release = async () => {
    stop.abort();
    await client.leaseRevoke(lease);
  };
  try {
    const key = lockKey(name, lease);
    const prefix = `${name}/`;
    await client.put(key, "", { lease });
    for (;;) {
      // The contenders before this one, the nearest last.
      const before = await client.range({ prefix, end: "", keysOnly: true, limit: 0 });
      const mine = before.kvs.findIndex((kv) => kv.key === key);
      if (mine < 0) {
        throw new Error(`lock ${name}: this contender's key ${key} is gone (lease lost)`);
      }
      if (mine === 0) return { key, lease, lost, release };
      const predecessor = before.kvs[mine - 1]!.key;
      // Wait for the predecessor to go: watch it from the index this read saw.
      try {
        for await (
          const batch of client.watch({ key: predecessor }, {
            startIndex: before.index + 1n,
            signal,
          })
        ) {
          if (batch.events.some((e) => e.kind === WatchEvent_Kind.DELETE)) break;
        }
      } catch (err) {
        // The node no longer holds history from that read: read again.
        if (!(err instanceof ConnectError && err.code === Code.OutOfRange)) throw err;
      }
      if (signal.aborted) throw new Error(`lock ${name}: stopped while waiting`);
    }
  } catch (err) {
    await release().catch(() => {});
    throw err;
  }
}
