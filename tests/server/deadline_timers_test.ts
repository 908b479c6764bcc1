/**
 * Deadline timers share one runtime timer per duration (src/server/deadline_timers.ts):
 * each fires once its duration has passed, in the order they started; a cancelled
 * one never fires and is let go at once; and none is left waiting (nor a runtime
 * timer: Deno's test sanitizer would fail these tests) once all fired or were
 * cancelled. Each test waits for a timer's own call, never a fixed sleep.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DeadlineTimers, MAX_TIMER_MS } from "../../src/server/deadline_timers.ts";

/** A promise and its resolve, for a timer's function to settle. */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => resolve = r);
  return { promise, resolve };
}

Deno.test("deadline timers: each fires once its duration has passed, in the order they started", async () => {
  const timers = new DeadlineTimers();
  const fired: string[] = [];
  const last = signal();
  const started = performance.now();
  const at: Record<string, number> = {};
  for (const name of ["a", "b", "c"]) {
    timers.start(20, () => {
      at[name] = performance.now() - started;
      fired.push(name);
      if (name === "c") last.resolve();
    });
  }
  assert.equal(timers.waiting, 3);
  await last.promise;
  assert.deepEqual(fired, ["a", "b", "c"]);
  for (const name of fired) assert.ok(at[name]! >= 20, `${name} fired after ${at[name]} ms`);
  assert.equal(timers.waiting, 0);
});

Deno.test("deadline timers: a cancelled timer never fires, and the others of its duration still do", async () => {
  const timers = new DeadlineTimers();
  const fired: string[] = [];
  const last = signal();
  // The first (the one the queue's runtime timer was set for) and a middle one are cancelled.
  const first = timers.start(15, () => fired.push("first"));
  timers.start(15, () => fired.push("second"));
  const third = timers.start(15, () => fired.push("third"));
  timers.start(15, () => {
    fired.push("fourth");
    last.resolve();
  });
  first.cancel();
  third.cancel();
  third.cancel(); // twice: nothing more happens
  assert.equal(timers.waiting, 2, "a cancelled timer is let go at once");
  await last.promise;
  assert.deepEqual(fired, ["second", "fourth"]);
  first.cancel(); // after the others fired: nothing happens
  assert.equal(timers.waiting, 0);
});

Deno.test("deadline timers: timers of different durations fire by their own deadlines", async () => {
  const timers = new DeadlineTimers();
  const fired: number[] = [];
  const last = signal();
  for (const ms of [120, 10, 60]) {
    timers.start(ms, () => {
      fired.push(ms);
      if (fired.length === 3) last.resolve();
    });
  }
  await last.promise;
  assert.deepEqual(fired, [10, 60, 120]);
});

Deno.test("deadline timers: once every timer is cancelled, no runtime timer is left", () => {
  const timers = new DeadlineTimers();
  const started = Array.from({ length: 100 }, (_, i) => timers.start(1_000 + (i % 3), () => {}));
  assert.equal(timers.waiting, 100);
  for (const t of started) t.cancel();
  assert.equal(timers.waiting, 0);
  // (The test sanitizer fails this test if a runtime timer was left behind.)
});

Deno.test("deadline timers: a timer started by another's function, of the same duration, fires too", async () => {
  const timers = new DeadlineTimers();
  const done = signal();
  timers.start(5, () => timers.start(5, done.resolve));
  await done.promise;
  assert.equal(timers.waiting, 0);
});

Deno.test("deadline timers: a duration outside (0, 2^31 - 1] ms is refused with a clear error", () => {
  const timers = new DeadlineTimers();
  for (const ms of [0, -1, MAX_TIMER_MS + 1, Number.NaN]) {
    assert.throws(() => timers.start(ms, () => {}), {
      name: "RangeError",
      message: new RegExp(`^Cannot start a deadline timer of ${ms} ms`),
    });
  }
  assert.equal(timers.waiting, 0);
});
