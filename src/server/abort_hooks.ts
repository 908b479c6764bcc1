/**
 * Abort signals of calls whose abort reaches the node's own waiters by plain
 * callbacks, without an EventTarget listener: {@link HookedAbort} is an
 * AbortController whose `abort` also calls what {@link whenAborted} filed on its
 * signal.
 *
 * Why: a put on the leader added two "abort" listeners per call, and took them
 * off when answered: route.ts's on the call's signal (to end the call's time
 * budget) and the proposal's waiter on that budget (waiters.ts). Deno's
 * EventTarget makes a listener record, an options dictionary and array copies for
 * each; the two were 2.5 % of the leader's allocations at 64 puts in flight (issue
 * 11's heap profile), for aborts that nearly never happen. Only the node's own
 * signals (a fast lane call's, route.ts's budget) are hooked; any other signal
 * (Connect's, a caller's) is heard with a listener as before: {@link whenAborted}
 * says which.
 *
 * A hooked signal is aborted only through its {@link HookedAbort}; its callbacks
 * run once, after the signal's own "abort" listeners, in the order they were filed.
 *
 * @module
 */

/** Where a hooked signal keeps its controller (a property of the signal object). */
const HOOKS: unique symbol = Symbol("raftkv.abortHooks");

type Hooked = AbortSignal & { [HOOKS]?: HookedAbort };

/** An AbortController whose abort also calls the callbacks {@link whenAborted} filed. */
export class HookedAbort {
  readonly #controller = new AbortController();
  /** The first callback to call on abort (most signals have one, or none: no array). */
  #hook: (() => void) | undefined;
  /** Those filed after it, in filing order. */
  #more: (() => void)[] | undefined;

  constructor() {
    (this.#controller.signal as Hooked)[HOOKS] = this;
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** AbortController's abort, then the filed callbacks (nothing once aborted). */
  abort(reason?: unknown): void {
    if (this.#controller.signal.aborted) return;
    this.#controller.abort(reason);
    const hook = this.#hook;
    const more = this.#more;
    this.#hook = undefined;
    this.#more = undefined;
    if (more === undefined) {
      hook?.(); // most aborts: a call's end, with one callback or none
      return;
    }
    // Each is called, as each listener of an event is; the first failure is thrown after.
    let failed: { error: unknown } | undefined;
    for (const h of hook === undefined ? more : [hook, ...more]) {
      try {
        h();
      } catch (error) {
        failed ??= { error };
      }
    }
    if (failed !== undefined) throw failed.error;
  }

  /** {@link whenAborted} for this controller's signal (not aborted yet). */
  file(hook: () => void): void {
    if (this.#hook === undefined && this.#more === undefined) this.#hook = hook;
    else (this.#more ??= []).push(hook);
  }

  /** {@link forget} for this controller's signal. */
  unfile(hook: () => void): void {
    if (this.#hook === hook) {
      this.#hook = undefined;
      return;
    }
    const more = this.#more;
    if (more === undefined) return;
    const i = more.indexOf(hook);
    if (i >= 0) more.splice(i, 1);
  }
}

/**
 * Files `hook` to be called when `signal` aborts, if `signal` is a
 * {@link HookedAbort}'s that has not aborted yet, and says whether it did so;
 * false leaves the caller to listen as it would (or to act on an aborted signal).
 */
export function whenAborted(signal: AbortSignal, hook: () => void): boolean {
  const owner = (signal as Hooked)[HOOKS];
  if (owner === undefined || signal.aborted) return false;
  owner.file(hook);
  return true;
}

/** Takes back a hook {@link whenAborted} filed on `signal` (nothing if none). */
export function forget(signal: AbortSignal, hook: () => void): void {
  (signal as Hooked)[HOOKS]?.unfile(hook);
}
