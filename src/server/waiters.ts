/**
 * How the node's calls wait for the Ready loop: a {@link Waiter} is filed where
 * the loop will find it (a proposal under its index, a read under its id) and
 * settled by the loop; {@link abortableWait} unfiles it and fails the call with a
 * deadline error when the caller's signal aborts first, so that nothing waits on
 * after its caller has gone.
 *
 * @module
 */

import { forget, whenAborted } from "./abort_hooks.ts";
import type { NodeError } from "./node_error.ts";

/** A promise that settles once, with its resolvers at hand. */
export interface Waiter<T> {
  resolve(value: T): void;
  reject(err: Error): void;
}

/**
 * Waits for a waiter that `register` files somewhere, or rejects with a
 * deadline error when `signal` aborts first; `register` returns how to unfile it.
 */
export function abortableWait<T>(
  signal: AbortSignal | undefined,
  onAbortError: () => NodeError,
  register: (waiter: Waiter<T>) => () => void,
): Promise<T> {
  if (signal?.aborted) return Promise.reject(onAbortError());
  return new Promise<T>((resolve, reject) => {
    // A hooked signal (abort_hooks.ts: a call's budget) calls onAbort without a listener.
    let hooked = false;
    const onAbort = () => {
      unregister();
      reject(onAbortError());
    };
    const unlisten = () => {
      if (signal === undefined) return;
      if (hooked) forget(signal, onAbort);
      else signal.removeEventListener("abort", onAbort);
    };
    const unregister = register({
      resolve: (v) => {
        unlisten();
        resolve(v);
      },
      reject: (e) => {
        unlisten();
        reject(e);
      },
    });
    if (signal === undefined) return;
    hooked = whenAborted(signal, onAbort);
    if (!hooked) signal.addEventListener("abort", onAbort, { once: true });
  });
}
