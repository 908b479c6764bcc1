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
 * The waiter's `resolve` and `reject` are methods: call them on the waiter.
 */
export function abortableWait<T>(
  signal: AbortSignal | undefined,
  onAbortError: () => NodeError,
  register: (waiter: Waiter<T>) => () => void,
): Promise<T> {
  if (signal?.aborted) return Promise.reject(onAbortError());
  let waiter: AbortableWaiter<T> | undefined;
  const promise = new Promise<T>((resolve, reject) => {
    waiter = new AbortableWaiter(resolve, reject, signal, onAbortError);
  });
  if (waiter === undefined) throw new Error("invariant: a promise runs its executor at once");
  waiter.unregister = register(waiter);
  waiter.listen();
  return promise;
}

function unregistered(): void {}

/**
 * The waiter of one {@link abortableWait}: one object with methods rather than a
 * closure for each of resolve, reject, abort and unlisten, which were garbage per
 * call (a put's proposal, a read's two waits: issue 11's heap profile).
 */
class AbortableWaiter<T> implements Waiter<T> {
  /** How to unfile it ({@link abortableWait}'s `register` returns it). */
  unregister: () => void = unregistered;
  /** A hooked signal (abort_hooks.ts: a call's budget) calls onAbort without a listener. */
  #hooked = false;
  readonly #resolve: (value: T) => void;
  readonly #reject: (err: Error) => void;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbortError: () => NodeError;
  /** Filed on the signal; undefined without one. */
  readonly #onAbort: (() => void) | undefined;

  constructor(
    resolve: (value: T) => void,
    reject: (err: Error) => void,
    signal: AbortSignal | undefined,
    onAbortError: () => NodeError,
  ) {
    this.#resolve = resolve;
    this.#reject = reject;
    this.#signal = signal;
    this.#onAbortError = onAbortError;
    this.#onAbort = signal === undefined ? undefined : () => {
      this.unregister();
      this.#reject(this.#onAbortError());
    };
  }

  /** Hears its signal's abort (once registered). */
  listen(): void {
    const signal = this.#signal;
    const onAbort = this.#onAbort;
    if (signal === undefined || onAbort === undefined) return;
    this.#hooked = whenAborted(signal, onAbort);
    if (!this.#hooked) signal.addEventListener("abort", onAbort, { once: true });
  }

  resolve(value: T): void {
    this.#unlisten();
    this.#resolve(value);
  }

  reject(err: Error): void {
    this.#unlisten();
    this.#reject(err);
  }

  #unlisten(): void {
    const signal = this.#signal;
    const onAbort = this.#onAbort;
    if (signal === undefined || onAbort === undefined) return;
    if (this.#hooked) forget(signal, onAbort);
    else signal.removeEventListener("abort", onAbort);
  }
}
