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

  /** A watcher of `endpoints`, over TLS with `tls` (PEM texts) on a TLS cluster. */
  constructor(
    endpoints: readonly string[],
    tls?: { readonly ca?: string; readonly cert?: string; readonly key?: string },
  ) {
    this.#client = new RaftKvClient({
      endpoints,
      timeoutMs: 5_000,
      ...(tls === undefined ? {} : { tls }),
    });
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

  /** Checks the events against the writes of `history` (see {@link checkWatchEvents}). */
  check(history: readonly HistoryOp[]): WatchReport {
    const events: SeenEvent[] = this.#events.map((e) => ({
      kind: e.kind === WatchEvent_Kind.PUT ? "put" : "delete",
      key: e.key,
      value: new TextDecoder().decode(e.value),
      index: e.index,
    }));
    const { problems, checked } = checkWatchEvents(events, this.#from, this.#through, history);
    const line = `watch: ${this.#events.length} events from index ${this.#from} through ` +
      `${this.#through}, resumed on another node ${this.#resumes} times; ${checked} ` +
      `acknowledged puts (Put and Txn) checked${
        problems.length === 0 ? ", all delivered once, in order, none that did not happen" : ""
      }` +
      (this.#lost === undefined ? "" : `; stopped early: ${this.#lost}`);
    return { problems, line };
  }
}

/** A watch event as the check sees it (the value decoded as text). */
export interface SeenEvent {
  readonly kind: "put" | "delete";
  readonly key: string;
  readonly value: string;
  readonly index: bigint;
}

/**
 * Checks a watch's events, delivered for every change from `from` through `through`,
 * against a history whose writes each wrote a value of their own:
 *
 * - the events come in log order, and no change (index, key) comes twice;
 * - no value is put twice (every write writes a fresh value, so a value seen at two
 *   indexes is a write applied twice);
 * - every event is a write that may have happened: a put event's value was written to
 *   its key by a Put, CompareAndSwap or Txn of the history that did not definitely fail,
 *   and a delete event's key had some Delete or Txn delete that did not definitely fail;
 * - every acknowledged write whose index the history knows (a Put's, a Txn's: the puts
 *   of the branch that ran) and that lies in [from, through] came, at that index, with
 *   its key and value.
 *
 * Returns the problems and how many acknowledged puts were checked.
 */
export function checkWatchEvents(
  events: readonly SeenEvent[],
  from: bigint,
  through: bigint,
  history: readonly HistoryOp[],
): { problems: string[]; checked: number } {
  const problems: string[] = [];
  const seen = new Map<string, SeenEvent>();
  const putAt = new Map<string, bigint>(); // value → the index it was put at
  let last = 0n;
  for (const e of events) {
    if (e.index < last) {
      problems.push(`watch: event ${e.index} ${e.key} came after index ${last} (out of log order)`);
    }
    last = e.index > last ? e.index : last;
    const id = `${e.index} ${e.key}`;
    if (seen.has(id)) problems.push(`watch: the change of ${e.key} at index ${e.index} came twice`);
    seen.set(id, e);
    if (e.kind === "put") {
      const before = putAt.get(e.value);
      if (before !== undefined && before !== e.index) {
        problems.push(
          `watch: value ${
            JSON.stringify(e.value)
          } was put at index ${before} and again at ${e.index} ` +
            `(a write applied twice)`,
        );
      }
      putAt.set(e.value, e.index);
    }
  }

  // What the history may have written: key + value of puts, keys of deletes.
  const mayPut = new Set<string>();
  const mayDelete = new Set<string>();
  const expected: { key: string; value: string; index: bigint }[] = [];
  for (const op of history) {
    if (op.outcome === "fail") continue;
    switch (op.kind) {
      case "put":
        mayPut.add(`${op.key}\u0000${op.input.value}`);
        if (op.outcome === "ok" && op.output.index !== undefined) {
          expected.push({ key: op.key, value: op.input.value, index: BigInt(op.output.index) });
        }
        break;
      case "cas":
        mayPut.add(`${op.key}\u0000${op.input.value}`);
        break;
      case "delete":
        mayDelete.add(op.key);
        break;
      case "txn": {
        for (const s of [...op.input.success, ...op.input.failure]) {
          if (s.op === "put") mayPut.add(`${s.key}\u0000${s.value}`);
          else if (s.op === "delete") mayDelete.add(s.key);
        }
        if (op.outcome === "ok" && op.output.index !== undefined) {
          for (const s of op.output.succeeded ? op.input.success : op.input.failure) {
            if (s.op === "put") {
              expected.push({ key: s.key, value: s.value, index: BigInt(op.output.index) });
            }
          }
        }
        break;
      }
    }
  }
  for (const e of events) {
    if (e.kind === "put" && !mayPut.has(`${e.key}\u0000${e.value}`)) {
      problems.push(
        `watch: a put of ${e.key}=${
          JSON.stringify(e.value)
        } at index ${e.index} that no write made`,
      );
    } else if (e.kind === "delete" && !mayDelete.has(e.key)) {
      problems.push(`watch: a delete of ${e.key} at index ${e.index} that no write made`);
    }
  }
  let checked = 0;
  for (const w of expected) {
    if (w.index < from || w.index > through) continue;
    checked++;
    const e = seen.get(`${w.index} ${w.key}`);
    if (e === undefined) {
      problems.push(`watch: the acknowledged put of ${w.key} at index ${w.index} never came`);
    } else if (e.kind !== "put" || e.value !== w.value) {
      problems.push(`watch: the put of ${w.key} at index ${w.index} came with another value`);
    }
  }
  return { problems, checked };
}
