/**
 * A small seeded pseudo-random source. The core never calls `Math.random`: its
 * only randomness (the election timeout, §5.2) comes from a function injected
 * through the config, so a simulated cluster replays exactly from its seed.
 *
 * @module
 */

/** A source of uniform numbers in [0, 1). */
export type Random = () => number;

/**
 * mulberry32: a 32-bit generator, fast and good enough for timeouts and fault
 * schedules. The same seed always yields the same sequence.
 */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A whole number in [lo, hi). */
export function randomInt(random: Random, lo: number, hi: number): number {
  if (!(hi > lo)) throw new Error(`empty range [${lo}, ${hi})`);
  return lo + Math.floor(random() * (hi - lo));
}
