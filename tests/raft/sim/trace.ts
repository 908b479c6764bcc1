/**
 * The event trace of a simulated run: a bounded ring of lines, so a failing run
 * can print what led up to it. Messages are kept as objects and rendered only
 * when the trace is read, which keeps tracing cheap on runs that pass.
 *
 * @module
 */

import { describeMessage } from "../../../src/raft/describe.ts";
import type { Message } from "../../../src/raft/types.ts";

interface TraceLine {
  readonly time: number;
  readonly text: string;
  readonly message: Message | undefined;
}

/** A ring of the last `capacity` trace lines. */
export class Trace {
  readonly capacity: number;
  #ring: (TraceLine | undefined)[];
  #next = 0;
  #total = 0;

  /** @param capacity how many lines to keep; the oldest are overwritten first */
  constructor(capacity = 2000) {
    if (!(capacity >= 1)) throw new Error(`Cannot keep a trace of ${capacity} lines`);
    this.capacity = capacity;
    this.#ring = [];
  }

  /** How many lines were ever added (the ring keeps at most `capacity`). */
  get total(): number {
    return this.#total;
  }

  /** Records `text` at virtual time `time`, followed by the message when there is one. */
  add(time: number, text: string, message?: Message): void {
    const line: TraceLine = { time, text, message };
    if (this.#ring.length < this.capacity) {
      this.#ring.push(line);
    } else {
      this.#ring[this.#next] = line;
    }
    this.#next = (this.#next + 1) % this.capacity;
    this.#total++;
  }

  /** The last `n` lines (all kept lines by default), oldest first, rendered. */
  lines(n: number = this.capacity): string[] {
    const kept = this.#ring.length;
    const count = Math.min(n, kept);
    const start = kept < this.capacity ? kept - count : (this.#next - count + kept) % kept;
    const out: string[] = [];
    for (let i = 0; i < count; i++) {
      const line = this.#ring[(start + i) % kept]!;
      const msg = line.message === undefined ? "" : ` ${describeMessage(line.message)}`;
      out.push(`${String(line.time).padStart(7)}ms ${line.text}${msg}`);
    }
    return out;
  }

  /** The last `n` lines as one string, with a note of how many older ones were lost. */
  dump(n: number = this.capacity): string {
    const lines = this.lines(n);
    const hidden = this.#total - lines.length;
    const head = hidden > 0 ? [`… ${hidden} earlier trace lines not shown`] : [];
    return [...head, ...lines].join("\n");
  }
}
