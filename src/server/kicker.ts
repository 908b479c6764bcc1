/**
 * The Ready loop's wake-up: the loop sleeps until there is work (a tick, a
 * message, a proposal, a finished snapshot) and whoever brings work kicks it.
 * Kicks coalesce, so a burst of work costs one turn of the loop, not one each.
 *
 * @module
 */

/** Wakes the Ready loop. Many kicks between two waits count as one. */
export class Kicker {
  #pending = false;
  #wake: (() => void) | undefined;

  kick(): void {
    this.#pending = true;
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  wait(): Promise<void> {
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.#wake = () => {
        this.#pending = false;
        resolve();
      };
    });
  }
}
