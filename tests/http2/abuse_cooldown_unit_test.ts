/**
 * The abuse cooldown's bookkeeping, on a fake clock: three cuts within a minute
 * start a cooldown of the address alone; a repeat offender's cooldown doubles up
 * to ten minutes; 0 turns it off.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  AbuseCooldown,
  COOLDOWN_STRIKES,
  COOLDOWN_WINDOW_MS,
  MAX_COOLDOWN_MS,
} from "../../src/http2/abuse_cooldown.ts";

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => t += ms };
}

Deno.test("abuse cooldown: the third cut within the window refuses the address, and only it, for the cooldown", () => {
  const c = clock();
  const cd = new AbuseCooldown(60_000, c.now);
  assert.equal(COOLDOWN_STRIKES, 3);
  assert.equal(cd.cut("10.0.0.1"), undefined);
  c.advance(10_000);
  assert.equal(cd.cut("10.0.0.1"), undefined);
  assert.equal(cd.refuses("10.0.0.1"), false, "two cuts are not enough");
  c.advance(10_000);
  assert.equal(cd.cut("10.0.0.1"), 60_000, "the third cut starts the cooldown");
  assert.equal(cd.refuses("10.0.0.1"), true);
  assert.equal(cd.refuses("10.0.0.2"), false, "another address is not refused");
  c.advance(59_999);
  assert.equal(cd.refuses("10.0.0.1"), true);
  c.advance(1);
  assert.equal(cd.refuses("10.0.0.1"), false, "accepted again once the cooldown is over");
});

Deno.test("abuse cooldown: cuts spread wider than the window start none", () => {
  const c = clock();
  const cd = new AbuseCooldown(60_000, c.now);
  for (let i = 0; i < 10; i++) {
    assert.equal(cd.cut("10.0.0.1"), undefined, `cut ${i}`);
    c.advance(COOLDOWN_WINDOW_MS / 2);
  }
  assert.equal(cd.refuses("10.0.0.1"), false);
});

Deno.test("abuse cooldown: a repeat offender's cooldown doubles up to ten minutes, and is back to the first length after a quiet spell", () => {
  const c = clock();
  const cd = new AbuseCooldown(60_000, c.now);
  const lengths: number[] = [];
  for (let round = 0; round < 6; round++) {
    cd.cut("10.0.0.1");
    cd.cut("10.0.0.1");
    const ms = cd.cut("10.0.0.1");
    assert.ok(ms !== undefined, `round ${round} starts a cooldown`);
    lengths.push(ms);
    c.advance(ms);
  }
  assert.deepEqual(lengths, [60_000, 120_000, 240_000, 480_000, MAX_COOLDOWN_MS, MAX_COOLDOWN_MS]);
  c.advance(MAX_COOLDOWN_MS);
  cd.cut("10.0.0.1");
  cd.cut("10.0.0.1");
  assert.equal(cd.cut("10.0.0.1"), 60_000);
});

Deno.test("abuse cooldown: cuts during a cooldown do not prolong it, but count toward the next", () => {
  const c = clock();
  const cd = new AbuseCooldown(60_000, c.now);
  cd.cut("10.0.0.1");
  cd.cut("10.0.0.1");
  assert.equal(cd.cut("10.0.0.1"), 60_000);
  // Connections admitted before the cooldown, cut during it.
  c.advance(30_000);
  for (let i = 0; i < 3; i++) assert.equal(cd.cut("10.0.0.1"), undefined);
  assert.equal(cd.refuses("10.0.0.1"), true);
  c.advance(29_999);
  assert.equal(cd.refuses("10.0.0.1"), true, "not prolonged");
  c.advance(1);
  assert.equal(cd.refuses("10.0.0.1"), false);
  assert.equal(cd.cut("10.0.0.1"), 120_000, "three cuts in the window: a doubled cooldown");
});

Deno.test("abuse cooldown: 0 never refuses; a negative or fractional length is refused", () => {
  const c = clock();
  const cd = new AbuseCooldown(0, c.now);
  for (let i = 0; i < 10; i++) assert.equal(cd.cut("10.0.0.1"), undefined);
  assert.equal(cd.refuses("10.0.0.1"), false);
  assert.throws(() => new AbuseCooldown(-1), /whole number of ms/);
  assert.throws(() => new AbuseCooldown(1.5), /whole number of ms/);
});
