/**
 * Logs a limit being hit once per source and limit, not once per stream or
 * connection refused: an attack refused ten thousand times is one warning, and
 * then one more per {@link QUIET_MS} while it goes on, with the count refused in
 * between.
 *
 * @module
 */

import type { Logger } from "../raft/logger.ts";

/** How long a (source, limit) stays quiet after it is logged. */
export const QUIET_MS = 60_000;

/** The most (source, limit) pairs remembered; the oldest is forgotten past it. */
const MAX_SOURCES = 1024;

interface Entry {
  loggedAt: number;
  suppressed: number;
}

/** Remembers which sources hit which limits, and when each was last logged. */
export class LimitLog {
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();

  constructor(logger: Logger, now: () => number = Date.now) {
    this.#logger = logger;
    this.#now = now;
  }

  /**
   * Records that `source` (a remote address) hit `limit`; logs a warning if this
   * is the first time, or the first time in {@link QUIET_MS}. `about`, from a small
   * fixed set chosen by the caller (never from the request), keeps hits that mean
   * different things apart: one does not quiet the other.
   */
  hit(
    limit: string,
    source: string,
    fields: Record<string, unknown> = {},
    about = "",
  ): void {
    const key = `${limit}\u0000${source}\u0000${about}`;
    const now = this.#now();
    const e = this.#entries.get(key);
    if (e !== undefined && now - e.loggedAt < QUIET_MS) {
      e.suppressed++;
      return;
    }
    const suppressed = e?.suppressed ?? 0;
    this.#entries.delete(key);
    this.#entries.set(key, { loggedAt: now, suppressed: 0 });
    if (this.#entries.size > MAX_SOURCES) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
    this.#logger.warn(`HTTP/2 limit hit: ${limit}`, {
      source,
      ...fields,
      ...(suppressed > 0 ? { since_last_log: suppressed } : {}),
    });
  }
}
