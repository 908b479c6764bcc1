/**
 * Reloading without a restart: every {@link RELOAD_POLL_MS} and on SIGHUP, each
 * reloadable (the TLS files of credentials.ts, the policy of authorizer.ts) reads
 * its files again and takes them if they changed and are whole. etcd checks its
 * files on every handshake; polling once a second costs less under load and catches
 * a rotation within a second, whether the files are rewritten in place, renamed
 * over, or swapped by a symlink (Kubernetes Secret volumes), none of which a file
 * watch sees alike. A reload that fails keeps what is in use and is logged once
 * per distinct error, not every second.
 *
 * @module
 */

import type { Logger } from "../raft/logger.ts";

/** How often files are checked for changes. */
export const RELOAD_POLL_MS = 1_000;

/** Something that can read its files again. */
export interface Reloadable {
  /** What it is, for the log: "TLS certificates", "authorization policy". */
  readonly name: string;
  /** Reads its files; true if it took a change, false if nothing changed; throws if unusable. */
  reload(): Promise<boolean>;
  /** Log fields describing what is now in use, after a change. */
  describe(): Record<string, unknown>;
}

/** Polls and listens for SIGHUP; {@link Reloader.stop} ends both. */
export class Reloader {
  readonly #items: readonly Reloadable[];
  readonly #logger: Logger;
  readonly #lastError = new Map<string, string>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #running: Promise<void> | undefined;
  #signal: (() => void) | undefined;

  constructor(items: readonly Reloadable[], logger: Logger) {
    this.#items = items;
    this.#logger = logger;
  }

  /** Starts polling every `intervalMs` and, if `sighup`, reloading on SIGHUP. */
  start(intervalMs: number = RELOAD_POLL_MS, sighup = true): void {
    this.#timer = setInterval(() => void this.reloadNow("poll"), intervalMs);
    if (sighup && Deno.build.os !== "windows") {
      this.#signal = () => void this.reloadNow("SIGHUP");
      Deno.addSignalListener("SIGHUP", this.#signal);
    }
  }

  /** Reloads everything now, one pass at a time (a pass under way is awaited, not doubled). */
  reloadNow(cause: string): Promise<void> {
    if (this.#running !== undefined) return this.#running;
    this.#running = this.#pass(cause).finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #pass(cause: string): Promise<void> {
    for (const item of this.#items) {
      try {
        const changed = await item.reload();
        if (this.#lastError.delete(item.name) && !changed) {
          this.#logger.info(`${item.name} readable again, unchanged`, { cause });
        }
        if (changed) this.#logger.info(`reloaded ${item.name}`, { cause, ...item.describe() });
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        if (this.#lastError.get(item.name) === message) continue;
        this.#lastError.set(item.name, message);
        this.#logger.warn(`cannot reload ${item.name}: keeping the ones in use`, {
          cause,
          error: message,
        });
      }
    }
  }

  /** Stops polling and listening; waits for a pass under way. */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#signal !== undefined) Deno.removeSignalListener("SIGHUP", this.#signal);
    this.#signal = undefined;
    await this.#running;
  }
}
