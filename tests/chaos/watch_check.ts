/**
 * The chaos run's watch client: one watch of every key, through the client library
 * (`src/client/`), which resumes it on another node from the last index delivered
 * whenever the node it watches dies, pauses or is cut off. At the end its event stream
 * is checked against the history: events in log order, no change delivered twice, and
 * every acknowledged Put (its index is in the history) delivered exactly once, at its
 * index, with its key and value.
 *
 * If every node refuses to resume from where the watch stood (OUT_OF_RANGE: their
 * history no longer reaches back that far, after restarts or snapshot installs), the
 * watch cannot go on; the check then covers what was delivered up to there and says so.
 *
 * @module
 */

import { Code, ConnectError } from "@connectrpc/connect";
import { RaftKvClient } from "../../src/client/client.ts";
import { type WatchEvent, WatchEvent_Kind } from "../../src/gen/raftkv/v1/kv_pb.ts";
import type { HistoryOp } from "./clients.ts";

/** What the watch client saw. */
export interface WatchReport {
  /** Problems with the events (a violation of the guarantees above). */
  readonly problems: string[];
  /** One line for the summary. */
  readonly line: string;
}

/** One watch of every key, resumed across failures, and its check. */
export class WatchChecker {
  readonly #client: RaftKvClient;
  readonly #events: WatchEvent[] = [];
  readonly #abort = new AbortController();
  #through = 0n;
  #lost: string | undefined;
  #resumes = 0;
  #done: Promise<void> = Promise.resolve();
  #from = 0n;

  constructor(endpoints: readonly string[]) {
    this.#client = new RaftKvClient({ endpoints, timeoutMs: 5_000 });
  }

  /** Starts watching every key from `fromIndex`. */
  start(fromIndex: bigint): void {
    this.#from = fromIndex;
    this.#through = fromIndex - 1n;
    this.#done = this.#run();
  }

  async #run(): Promise<void> {
    let refusals = 0;
    while (!this.#abort.signal.aborted) {
      try {
        let endpoint = "";
        for await (
          const batch of this.#client.watch({ progressIntervalMs: 200 }, {
            startIndex: this.#through + 1n,
            signal: this.#abort.signal,
          })
        ) {
          if (batch.endpoint !== endpoint) {
            if (endpoint !== "") this.#resumes++;
            endpoint = batch.endpoint;
          }
          refusals = 0;
          this.#events.push(...batch.events);
          this.#through = batch.throughIndex;
        }
        return;
      } catch (err) {
        if (this.#abort.signal.aborted) return;
        if (err instanceof ConnectError && err.code === Code.OutOfRange) {
          // This node's history does not reach back: another's may.
          if (++refusals > 3 * this.#client.endpoints.length) {
            this.#lost = `every node refused to resume at index ${this.#through + 1n}: ` +
              err.rawMessage;
            return;
          }
          await this.#client.findLeader();
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        this.#lost = `the watch failed: ${err instanceof Error ? err.message : String(err)}`;
        return;
      }
    }
  }

  /** The index through which every change has been delivered. */
  get throughIndex(): bigint {
    return this.#through;
  }

  /** True once the watch ended on its own (history lost, or an error). */
  get ended(): boolean {
    return this.#lost !== undefined;
  }

  /** Stops the watch. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#done;
    this.#client.close();
  }

  /** Checks the events against the acknowledged Puts of `history`. */
  check(history: readonly HistoryOp[]): WatchReport {
    const problems: string[] = [];
    const seen = new Map<string, WatchEvent>();
    let last = 0n;
    for (const e of this.#events) {
      if (e.index < last) {
        problems.push(
          `watch: event ${e.index} ${e.key} came after index ${last} (out of log order)`,
        );
      }
      last = e.index > last ? e.index : last;
      const id = `${e.index} ${e.key}`;
      if (seen.has(id)) {
        problems.push(`watch: the change of ${e.key} at index ${e.index} came twice`);
      }
      seen.set(id, e);
    }
    let checked = 0;
    for (const op of history) {
      if (op.kind !== "put" || op.outcome !== "ok" || op.output.index === undefined) continue;
      const index = BigInt(op.output.index);
      if (index < this.#from || index > this.#through) continue;
      checked++;
      const e = seen.get(`${index} ${op.key}`);
      if (e === undefined) {
        problems.push(`watch: the acknowledged put of ${op.key} at index ${index} never came`);
      } else if (
        e.kind !== WatchEvent_Kind.PUT || new TextDecoder().decode(e.value) !== op.input.value
      ) {
        problems.push(`watch: the put of ${op.key} at index ${index} came with another value`);
      }
    }
    const line = `watch: ${this.#events.length} events from index ${this.#from} through ` +
      `${this.#through}, resumed on another node ${this.#resumes} times; ${checked} ` +
      `acknowledged puts checked${problems.length === 0 ? ", all delivered once, in order" : ""}` +
      (this.#lost === undefined ? "" : `; stopped early: ${this.#lost}`);
    return { problems, line };
  }
}
