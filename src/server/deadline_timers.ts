/**
 * Timers for calls' deadlines, many at a time: one `setTimeout` per duration for
 * the earliest of its deadlines, instead of one per call.
 *
 * Why: a client call on the leader set two timers (its deadline in the unary fast
 * lane, its time budget in route.ts), each a Timeout object and a runtime timer
 * in Deno 2.9.3 (about 1.7 KB of garbage each, and two runtime calls to set and
 * clear it: issue 11's heap profile of a leader at 64 puts in flight), and nearly
 * every one was cleared unfired. Calls with the same duration end in the order
 * they started, so their deadlines form a queue per duration in which only the
 * head needs a timer: Node's own timers keep a list per duration for the same
 * reason (lib/internal/timers.js). A timer here costs one small list entry; it
 * fires no earlier than `setTimeout` would (never before its duration has passed
 * on `performance.now()`), at most a few milliseconds later on a busy loop, as
 * any timer.
 *
 * A cancelled entry is unlinked at once (nothing is held until its deadline), and
 * a list that empties clears its timer, so an idle node holds no timer (and
 * tests see none left behind).
 *
 * @module
 */

/** The longest delay a runtime timer takes: 2^31 - 1 ms (a longer one fires at once). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A deadline started by {@link DeadlineTimers.start}. */
export interface DeadlineTimer {
  /** Stops it: its function is not called (nothing happens once it fired). */
  cancel(): void;
}

/** The deadlines of one duration, earliest first. */
class Queue {
  head: Entry | undefined;
  tail: Entry | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  constructor(readonly ms: number) {}
}

class Entry implements DeadlineTimer {
  prev: Entry | undefined;
  next: Entry | undefined;
  /** Its queue while it waits; undefined once fired or cancelled. */
  queue: Queue | undefined;
  constructor(
    readonly owner: DeadlineTimers,
    readonly at: number,
    readonly fn: () => void,
    queue: Queue,
  ) {
    this.queue = queue;
  }
  cancel(): void {
    this.owner.cancel(this);
  }
}

/** Deadline timers sharing one runtime timer per duration (see the module doc). */
export class DeadlineTimers {
  readonly #queues = new Map<number, Queue>();

  /**
   * Calls `fn` once `ms` milliseconds have passed, unless cancelled first. `ms`
   * must be a positive number no longer than {@link MAX_TIMER_MS} (a caller with
   * another keeps `setTimeout`'s own handling of it).
   */
  start(ms: number, fn: () => void): DeadlineTimer {
    if (!(ms > 0 && ms <= MAX_TIMER_MS)) {
      throw new RangeError(
        `Cannot start a deadline timer of ${ms} ms: not in (0, ${MAX_TIMER_MS}]`,
      );
    }
    let queue = this.#queues.get(ms);
    if (queue === undefined) {
      queue = new Queue(ms);
      this.#queues.set(ms, queue);
    }
    const entry = new Entry(this, performance.now() + ms, fn, queue);
    // performance.now() never goes back: a new deadline of a duration is its latest.
    const tail = queue.tail;
    if (tail === undefined) {
      queue.head = entry;
      queue.tail = entry;
      queue.timer = setTimeout(() => this.#fire(queue), ms);
    } else {
      tail.next = entry;
      entry.prev = tail;
      queue.tail = entry;
    }
    return entry;
  }

  /** Deadlines waiting (a test's view). */
  get waiting(): number {
    let n = 0;
    for (const q of this.#queues.values()) {
      for (let e = q.head; e !== undefined; e = e.next) n++;
    }
    return n;
  }

  /** {@link DeadlineTimer.cancel}. */
  cancel(entry: Entry): void {
    const queue = entry.queue;
    if (queue === undefined) return;
    this.#unlink(queue, entry);
    // An emptied queue lets its timer go; a queue whose head went keeps it: it fires
    // early for the new head and is set again for it.
    if (queue.head === undefined) this.#drop(queue);
  }

  #unlink(queue: Queue, entry: Entry): void {
    if (entry.prev === undefined) queue.head = entry.next;
    else entry.prev.next = entry.next;
    if (entry.next === undefined) queue.tail = entry.prev;
    else entry.next.prev = entry.prev;
    entry.prev = undefined;
    entry.next = undefined;
    entry.queue = undefined;
  }

  #drop(queue: Queue): void {
    clearTimeout(queue.timer);
    queue.timer = undefined;
    this.#queues.delete(queue.ms);
  }

  /** The queue's timer: calls every deadline that has passed, then waits for the next. */
  #fire(queue: Queue): void {
    queue.timer = undefined;
    const now = performance.now();
    try {
      for (let e = queue.head; e !== undefined && e.at <= now; e = queue.head) {
        this.#unlink(queue, e);
        e.fn();
      }
    } finally {
      const head = queue.head;
      if (head === undefined) {
        if (this.#queues.get(queue.ms) === queue) this.#queues.delete(queue.ms);
      } else if (queue.timer === undefined) {
        queue.timer = setTimeout(
          () => this.#fire(queue),
          Math.max(1, Math.ceil(head.at - performance.now())),
        );
      }
    }
  }
}

/** The process's deadline timers: calls of every server share them. */
export const deadlineTimers: DeadlineTimers = new DeadlineTimers();
