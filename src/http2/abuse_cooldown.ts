/**
 * Refuses, for a while, new connections from a remote address whose connections
 * the node keeps cutting for abuse. A cut bounds what one connection holds, but
 * not what an attacker who reconnects each time makes the node do over and over
 * (measured, Deno 2.9.3: each HPACK-bomb connection cut after 100 refused streams
 * still grows RSS by about 15 MiB, which V8 and the allocator only partly give
 * back: see /work/notes/issue15_numbers.md). After {@link COOLDOWN_STRIKES} cuts
 * within {@link COOLDOWN_WINDOW_MS} the address is refused for the cooldown; each
 * cooldown that follows another one within {@link MAX_COOLDOWN_MS} of its end
 * lasts twice as long, up to {@link MAX_COOLDOWN_MS}.
 *
 * Connections the address already has are left alone: a well-behaved client
 * behind the same address (or NAT) keeps what it has open. Pure bookkeeping with
 * an injected clock: `guard.ts` tells it of cuts and asks it on every new
 * connection.
 *
 * @module
 */

/** Cuts within {@link COOLDOWN_WINDOW_MS} that start a cooldown. */
export const COOLDOWN_STRIKES = 3;

/** The window in which {@link COOLDOWN_STRIKES} cuts start a cooldown (ms). */
export const COOLDOWN_WINDOW_MS = 60_000;

/** The longest cooldown (ms), however often it doubles. */
export const MAX_COOLDOWN_MS = 10 * 60_000;

/** The most addresses remembered; the least recently cut is forgotten past it. */
const MAX_ADDRESSES = 4096;

interface Strikes {
  /** Times of the cuts in the current window, oldest first. */
  cuts: number[];
  /** The end of the current or last cooldown (0: none yet). */
  until: number;
  /** The length of the last cooldown (0: none yet). */
  lastMs: number;
}

/** Cuts per address and the cooldowns they started. */
export class AbuseCooldown {
  readonly #baseMs: number;
  readonly #now: () => number;
  readonly #records = new Map<string, Strikes>();

  /** `baseMs`: the first cooldown's length; 0 disables cooldowns. */
  constructor(baseMs: number, now: () => number = Date.now) {
    if (!(Number.isInteger(baseMs) && baseMs >= 0)) {
      throw new Error(`AbuseCooldown: the cooldown must be a whole number of ms >= 0 (${baseMs})`);
    }
    this.#baseMs = baseMs;
    this.#now = now;
  }

  /** Whether new connections from `address` are refused now. */
  refuses(address: string): boolean {
    const r = this.#records.get(address);
    return r !== undefined && this.#now() < r.until;
  }

  /**
   * Records that the node cut a connection from `address` for abuse. Returns the
   * length of the cooldown this cut starts (ms), or undefined if it starts none.
   */
  cut(address: string): number | undefined {
    if (this.#baseMs === 0) return undefined;
    const now = this.#now();
    const r = this.#records.get(address) ?? { cuts: [], until: 0, lastMs: 0 };
    // Most recently cut last, so that the first key is the one to forget.
    this.#records.delete(address);
    this.#records.set(address, r);
    if (this.#records.size > MAX_ADDRESSES) {
      this.#records.delete(this.#records.keys().next().value!);
    }
    // A connection admitted before the cooldown began may be cut during it: it
    // counts toward the next one, not toward prolonging this one.
    r.cuts = r.cuts.filter((t) => now - t < COOLDOWN_WINDOW_MS);
    r.cuts.push(now);
    if (r.cuts.length < COOLDOWN_STRIKES || now < r.until) return undefined;
    const again = r.lastMs > 0 && now - r.until < MAX_COOLDOWN_MS;
    const ms = again
      ? Math.min(2 * r.lastMs, Math.max(MAX_COOLDOWN_MS, this.#baseMs))
      : this.#baseMs;
    r.cuts = [];
    r.until = now + ms;
    r.lastMs = ms;
    return ms;
  }
}
