/**
 * The requests of a client-streaming call as the stream fast lane
 * (stream_fast_lane.ts) parses them, offered two ways to the handler at the end of
 * the interceptor chain:
 *
 * - as an `AsyncIterable`, like the requests Connect hands a handler: every
 *   interceptor and handler works unchanged on it (the TLS access check wraps it in
 *   a generator of its own, which the handler then iterates);
 * - pushed: a handler that finds the feed itself (no interceptor replaced it) can
 *   {@link RequestFeed.drain} it, and is then called synchronously for each request
 *   as the lane parses it from a DATA frame, with no promise, generator or microtask
 *   between the socket and the handler. A peer's batch is stepped in the very turn
 *   its frame is read (Connect's pipeline took four async generators and ~0.25 ms
 *   per hop at load: notes/latency_report.md).
 *
 * Either way the order is the requests' order, and an error the lane ends the feed
 * with (a torn envelope, a malformed message, a reset) comes after the requests
 * parsed before it, where Connect's pipeline raises it.
 *
 * @module
 */

/** What ends a feed: its requests all came (`done`), or an error came after them. */
type End = { readonly done: true } | { readonly done: false; readonly error: unknown };

/** A client-streaming call's requests, fed by the lane; see the module doc. */
export class RequestFeed<T> implements AsyncIterable<T> {
  /** Requests not yet taken (by an iterator; a drain takes them at once). */
  readonly #queue: T[] = [];
  #end: End | undefined;
  /** The drain's callback, once drained. */
  #each: ((request: T) => void) | undefined;
  /** Settles the drain's promise. */
  #settle: ((end: End) => void) | undefined;
  /** Wakes an iterator waiting for the next request. */
  #wake: (() => void) | undefined;
  /** What interceptors check of each request as it arrives ({@link withCheck}). */
  readonly #checks: ((request: T) => void)[] = [];
  /** Set once the consumer wants nothing more (it stopped, or its callback threw). */
  #stopped = false;
  readonly #onStop: (reason: unknown) => void;

  /**
   * `onStop` is told when the consumer wants no more requests (it threw, or it
   * stopped the call early): the lane then stops reading the call's body.
   */
  constructor(onStop: (reason: unknown) => void = () => {}) {
    this.#onStop = onStop;
  }

  /**
   * Whether the feed takes no more requests (it ended, or the consumer wants no
   * more): the lane need not parse more.
   */
  get stopped(): boolean {
    return this.#stopped || this.#end !== undefined;
  }

  /**
   * Runs `check` on each request as it is pushed, before anyone takes it, and
   * returns this feed: an interceptor checks requests so (the TLS access check of
   * each batch's sender) without a generator around the feed, which the handler
   * then still drains. A check that throws ends the feed with its error, after the
   * requests before it, where a generator's check would have thrown.
   */
  withCheck(check: (request: T) => void): this {
    this.#checks.push(check);
    return this;
  }

  /** A request parsed, in order. Ignored once the feed ended or was stopped. */
  push(request: T): void {
    if (this.#end !== undefined || this.#stopped) return;
    for (const check of this.#checks) {
      try {
        check(request);
      } catch (err) {
        if (this.#each !== undefined) this.#fail(err);
        else this.end(err);
        return;
      }
    }
    const each = this.#each;
    if (each === undefined) {
      this.#queue.push(request);
      this.#wakeUp();
      return;
    }
    try {
      each(request);
    } catch (err) {
      this.#fail(err);
    }
  }

  /** The requests ended: `error` after them, or none (the client half-closed). */
  end(error?: unknown): void {
    if (this.#end !== undefined || this.#stopped) return;
    this.#end = error === undefined ? { done: true } : { done: false, error };
    if (this.#each !== undefined) this.#settle?.(this.#end);
    this.#wakeUp();
  }

  /** The consumer wants no more requests (the call is over for it). */
  stop(reason?: unknown): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#queue.length = 0;
    this.#wakeUp();
    this.#onStop(reason);
  }

  /**
   * Calls `each` synchronously for every request, those queued now first, until the
   * feed ends: resolves then, or rejects with the end's error or with what `each`
   * threw (the feed is then stopped). One drain per feed, and no iterator beside it.
   */
  drain(each: (request: T) => void): Promise<void> {
    if (this.#each !== undefined) {
      throw new Error("invariant: a request feed is drained once");
    }
    return new Promise<void>((resolve, reject) => {
      this.#settle = (end) => {
        this.#settle = undefined;
        if (end.done) resolve();
        else reject(end.error);
      };
      this.#each = each;
      try {
        while (this.#queue.length > 0 && !this.#stopped) each(this.#queue.shift()!);
      } catch (err) {
        this.#fail(err);
        return;
      }
      if (this.#end !== undefined) this.#settle(this.#end);
    });
  }

  /** Iterates the requests, as Connect's handler input: each, then the end. */
  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: async (): Promise<IteratorResult<T>> => {
        for (;;) {
          if (this.#queue.length > 0) return { done: false, value: this.#queue.shift()! };
          const end = this.#end;
          if (end !== undefined) {
            if (end.done) return { done: true, value: undefined };
            throw end.error;
          }
          if (this.#stopped) return { done: true, value: undefined };
          await new Promise<void>((resolve) => this.#wake = resolve);
        }
      },
      return: (): Promise<IteratorResult<T>> => {
        this.stop();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  /** The drain's callback threw: the feed stops, and the drain rejects with it. */
  #fail(err: unknown): void {
    const settle = this.#settle;
    this.stop(err);
    settle?.({ done: false, error: err });
  }

  #wakeUp(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }
}
