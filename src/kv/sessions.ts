/**
 * Client sessions: exactly-once execution of retried writes (dissertation §6.3).
 *
 * A client opens a session through the log (its id is the index of the entry
 * that opened it) and tags each write with the session id and a sequence number.
 * The state machine remembers, per session, the last sequence number applied and
 * its result, so a retry of a write that already took effect (the client lost the
 * answer when a leader failed) is answered from the session instead of being
 * applied a second time.
 *
 * Sessions expire deterministically: each command carries the proposing leader's
 * clock (`time_ms`), the table's clock is the largest such time applied so far, and
 * a session idle for {@link SESSION_TTL_MS} of that log time is dropped on every
 * node at the same entry. No node's own clock is ever read here.
 *
 * @module
 */

import type { Hash } from "node:crypto";
import type { ApplyResult } from "./store.ts";

/** How long a session may stay idle, in log time, before it expires. */
export const SESSION_TTL_MS = 60 * 60 * 1000;

/** The most sessions kept; past it, the least recently used one is dropped. */
export const MAX_SESSIONS = 100_000;

/** What the table remembers of one session. */
export interface SessionState {
  /** The sequence number of the last write applied in this session; 0 before any. */
  lastSequence: number;
  /** That write's result, returned again to a retry. */
  lastResult: ApplyResult | undefined;
  /** Log time of the session's last use. */
  lastActiveMs: number;
}

/** One session as a snapshot holds it: its id and what the table remembers of it. */
export interface SessionImage extends Readonly<SessionState> {
  readonly id: number;
}

/** The sessions of a store, in least-recently-used order. */
export class SessionTable {
  // Insertion order is use order: a session is re-inserted when used, so the
  // first entries are always the idlest (expiry and eviction pop from the front).
  #sessions = new Map<number, SessionState>();
  #nowMs = 0;

  /** The table's clock: the largest leader time applied so far. */
  get nowMs(): number {
    return this.#nowMs;
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** Moves log time forward to `timeMs` (never back) and drops sessions idle too long. */
  advanceTime(timeMs: number): void {
    if (timeMs <= this.#nowMs) return;
    this.#nowMs = timeMs;
    for (const [id, s] of this.#sessions) {
      if (s.lastActiveMs + SESSION_TTL_MS >= this.#nowMs) break;
      this.#sessions.delete(id);
    }
  }

  /** Opens session `id` (the index of the entry that opened it). */
  open(id: number): void {
    this.#sessions.set(id, { lastSequence: 0, lastResult: undefined, lastActiveMs: this.#nowMs });
    if (this.#sessions.size > MAX_SESSIONS) {
      const oldest = this.#sessions.keys().next().value!;
      this.#sessions.delete(oldest);
    }
  }

  get(id: number): SessionState | undefined {
    return this.#sessions.get(id);
  }

  /** Records that the session applied `sequence` with `result`, now. */
  record(id: number, sequence: number, result: ApplyResult): void {
    this.#sessions.delete(id);
    this.#sessions.set(id, {
      lastSequence: sequence,
      lastResult: result,
      lastActiveMs: this.#nowMs,
    });
  }

  /**
   * The table's sessions in its own order, idlest first, for a snapshot. The order
   * is part of the state: expiry and eviction pop from the front, so a table rebuilt
   * in another order would drop different sessions than its peers. Results are
   * shared, not copied: the table never mutates a recorded result.
   */
  export(): SessionImage[] {
    return Array.from(this.#sessions, ([id, s]) => ({ id, ...s }));
  }

  /**
   * A table holding `sessions` in the given order (as {@link export} listed them)
   * with its clock at `nowMs`.
   *
   * @throws {Error} if an id repeats or there are more than {@link MAX_SESSIONS}.
   */
  static fromImage(nowMs: number, sessions: readonly SessionImage[]): SessionTable {
    if (sessions.length > MAX_SESSIONS) {
      throw new Error(
        `Cannot restore sessions: ${sessions.length} is more than the ${MAX_SESSIONS} a table keeps`,
      );
    }
    const table = new SessionTable();
    table.#nowMs = nowMs;
    for (const { id, lastSequence, lastResult, lastActiveMs } of sessions) {
      if (table.#sessions.has(id)) {
        throw new Error(`Cannot restore sessions: session ${id} appears twice`);
      }
      table.#sessions.set(id, { lastSequence, lastResult, lastActiveMs });
    }
    return table;
  }

  /** Feeds the table into a digest, in id order, so equal tables hash equally. */
  digestInto(hash: Hash, u64: (n: number) => Uint8Array): void {
    hash.update(u64(this.#nowMs));
    hash.update(u64(this.#sessions.size));
    const ids = [...this.#sessions.keys()].sort((a, b) => a - b);
    for (const id of ids) {
      const s = this.#sessions.get(id)!;
      hash.update(u64(id));
      hash.update(u64(s.lastSequence));
      hash.update(u64(s.lastActiveMs));
      hash.update(JSON.stringify(s.lastResult ?? null, bytesAsArrays));
    }
  }
}

/**
 * JSON.stringify's replacer for a digest: byte arrays as arrays of numbers, whatever
 * their class. It reads the holder's own value (`this[key]`): JSON.stringify calls
 * a value's toJSON before the replacer, and a Buffer's (a Uint8Array too) would
 * otherwise digest as `{"type":"Buffer","data":[...]}`, so equal states would
 * digest differently on a node whose bytes came as Buffers.
 */
function bytesAsArrays(this: unknown, key: string, value: unknown): unknown {
  const raw = (this as Record<string, unknown>)[key];
  return raw instanceof Uint8Array ? [...raw] : value;
}
