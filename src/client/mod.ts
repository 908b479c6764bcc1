/**
 * The raftkv client library: {@link RaftKvClient} (leader following, safe retries,
 * exactly-once sessions, watches that resume, leases kept alive) and the lock recipe
 * built on leases and Txn.
 *
 * ```ts
 * import { acquireLock, RaftKvClient } from "./mod.ts";
 *
 * const client = new RaftKvClient({ endpoints: ["127.0.0.1:7001", "127.0.0.1:7002"] });
 * await client.put("config/mode", "blue");
 * for await (const page of client.rangeAll({ prefix: "config/" })) console.log(page.kvs);
 * const lock = await acquireLock(client, "locks/deploy", { ttl: 10 });
 * try {
 *   // ... only one holder at a time ...
 * } finally {
 *   await lock.release();
 * }
 * ```
 *
 * @module
 */

export {
  type ClientOptions,
  isRetryable,
  RaftKvClient,
  UnreachableError,
  type WatchBatch,
} from "./client.ts";
export { cannotConnect, codeName, shortReason } from "./reasons.ts";
export { acquireLock, type HeldLock, lockKey } from "./lock.ts";
export { guardStrayNetworkErrors } from "./stray_errors.ts";
