/**
 * Chaos clients: concurrent loops of random KV calls against a real cluster, each call
 * recorded as the checker's {@link Operation} in a shared {@link History}.
 *
 * ## How a call becomes an operation
 *
 * - `invoke` is taken just before the first attempt is sent and `complete` just after
 *   the answer that settles it arrives, both `performance.now()` milliseconds relative
 *   to the run's start (one monotonic clock for every client).
 * - **Answered** (any attempt): `"ok"` with the answer as output.
 * - **INVALID_ARGUMENT / FAILED_PRECONDITION**: `"fail"`; the API promises the write
 *   did not and will not take effect (input refused before proposing, or a session
 *   refusal, which the state machine answers without applying anything).
 * - **Connection refused** on every attempt: `"fail"`; no byte of the request left this
 *   process (the node it was sent to is down), so it cannot have taken effect.
 * - **Anything else** (UNAVAILABLE, DEADLINE_EXCEEDED, a reset connection...): the call
 *   may or may not have taken effect.
 *   - A write in a session is retried, the *same* write with the same session and
 *     sequence, up to {@link ClientOptions.maxAttempts} attempts, each to a random node.
 *     The state machine applies a (session, sequence) at most once and answers every
 *     retry with the first application's result, so if a retry is answered the write
 *     happened exactly once, at a point after the first attempt was sent and before
 *     that answer arrived: the operation is `"ok"` over [first invoke, retry's
 *     complete], with the retry's answer, which is the single application's. If no
 *     attempt is answered the operation is `"unknown"`: applied once at any later
 *     time, or never. The client then abandons the session and opens a new one for its
 *     next write, as kv.proto asks (sequence n + 1 only after n answered OK or a
 *     definite error); the abandoned write can still be applied later, which
 *     `"unknown"` allows.
 *   - A plain write (a client without sessions) is not retried: `"unknown"`.
 *   - A read is `"unknown"` (dropped by the checker: a read has no effect).
 *
 * @module
 */

import { Code, ConnectError } from "@connectrpc/connect";
import type { Operation, TxnCompare, TxnInput, TxnStep, Value } from "./linearizability.ts";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { RequestOpSchema } from "../../src/gen/raftkv/v1/kv_pb.ts";
import type { Client } from "@connectrpc/connect";
import { type ClientTlsOptions, codeName, sleep, text, utf8 } from "../e2e/_harness.ts";
import { RaftKvClient } from "../../src/client/client.ts";
import type { KVService } from "../../src/gen/raftkv/v1/kv_pb.ts";
import { type Random, randomInt } from "../../src/raft/rand.ts";

/** An operation as the chaos history records it: the checker's fields plus notes for people. */
export type HistoryOp = Operation & {
  /** The node the (last) attempt was sent to. */
  readonly node?: number;
  /** How many attempts were sent (more than one: retries in the same session). */
  readonly attempts?: number;
};

/** `Omit` on each member of a union (plain `Omit` would merge the members). */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** What an operation asked, whatever its outcome: a {@link HistoryOp} without the outcome. */
type Asked = DistributiveOmit<
  HistoryOp,
  "outcome" | "complete" | "output" | "error" | "node" | "attempts"
>;

/** How a write that got no answer ended. */
interface Unanswered {
  readonly outcome: "fail" | "unknown";
  readonly complete: number;
  readonly error: string;
}

/** The history of a run: every operation, on one monotonic clock started with the run. */
export class History {
  /** `performance.now()` at the start of the run: time 0 of the history. */
  readonly origin: number;
  /** The operations, in the order they completed (or were given up). */
  readonly ops: HistoryOp[] = [];
  #nextId = 1;
  readonly #onAdd: ((op: HistoryOp) => void) | undefined;

  /** A history starting now; `onAdd` hears of every operation as it is recorded. */
  constructor(onAdd?: (op: HistoryOp) => void, origin = performance.now()) {
    this.origin = origin;
    this.#onAdd = onAdd;
  }

  /**
   * Milliseconds since the start of the run (monotonic, sub-millisecond). Not rounded:
   * an invoke rounded up or a completion rounded down could claim an order the
   * clock did not see.
   */
  now(): number {
    return performance.now() - this.origin;
  }

  /** A fresh operation id. */
  nextId(): number {
    return this.#nextId++;
  }

  /** Records one operation. */
  add(op: HistoryOp): void {
    this.ops.push(op);
    this.#onAdd?.(op);
  }
}

/** The value most recently seen for each key by any client: what CAS calls expect. */
export class KnownValues {
  readonly #latest = new Map<string, Value | undefined>();
  readonly #seen = new Map<string, Value[]>();

  /** Notes that `key` was seen holding `value` (undefined: absent). */
  saw(key: string, value: Value | undefined): void {
    this.#latest.set(key, value);
    if (value === undefined) return;
    const list = this.#seen.get(key) ?? [];
    list.push(value);
    if (list.length > 50) list.shift();
    this.#seen.set(key, list);
  }

  /** The latest value seen for `key` (undefined: absent, or never seen). */
  latest(key: string): Value | undefined {
    return this.#latest.get(key);
  }

  /** Some value seen for `key` in the recent past, or undefined. */
  older(key: string, random: Random): Value | undefined {
    const list = this.#seen.get(key);
    if (list === undefined || list.length === 0) return undefined;
    return list[randomInt(random, 0, list.length)];
  }
}

/** Options of one chaos client. */
export interface ClientOptions {
  /** The client's number, also in its values (`c<id>-<n>`). */
  readonly id: number;
  /** Writes go through a session (exactly-once, retried) or not (at least once, not retried). */
  readonly sessions: boolean;
  /** The keys to pick from. */
  readonly keys: readonly string[];
  /**
   * A group of keys for multi-key calls (Txn and Range), apart from `keys`: its name
   * (the history's `key` for those calls), the prefix its keys share and nothing else
   * has, and the keys. Undefined: no multi-key calls.
   */
  readonly group?: { readonly name: string; readonly prefix: string; readonly keys: string[] };
  /** The nodes to send calls to (any node: followers forward). */
  readonly nodes: readonly number[];
  /** The address of a node's KV service, `127.0.0.1:port`. */
  readonly endpoint: (node: number) => string;
  /** TLS to dial with (a TLS cluster), or undefined for plaintext. */
  readonly tls?: ClientTlsOptions;
  /** Deadline of one call, in milliseconds. */
  readonly timeoutMs: number;
  /** Attempts of one write in a session (1 = no retry). */
  readonly maxAttempts: number;
  /** Mean pause between two calls, in milliseconds (drawn uniformly in [0, 2 × mean)). */
  readonly thinkMs: number;
  /** The client's own seeded randomness. */
  readonly random: Random;
  /**
   * A deliberately broken client, to prove the checker catches bugs: with this
   * probability an answered read reports a stale value instead of the real answer: the
   * latest value this client saw for the key before it saw a different one (so the
   * read is certainly not linearizable: values are written once, and the client
   * itself saw the key move on). 0 (the default) for real runs.
   */
  readonly fakeStaleReads?: number;
}

/** Counters a client keeps besides the history. */
export interface ClientStats {
  sessionsOpened: number;
  openSessionFailures: number;
  /** Session writes answered only by a retry (recorded "ok"). */
  retriedOk: number;
  /** Session writes whose every attempt failed (recorded "unknown"). */
  retriesExhausted: number;
  /** Reads whose answer was replaced on purpose ({@link ClientOptions.fakeStaleReads}). */
  fakedReads: number;
  /** Error codes seen on any attempt (OpenSession included), by name. */
  readonly errors: Record<string, number>;
  /** The first message seen with each error code. */
  readonly samples: Record<string, string>;
}

/** Codes that say the call did not and will not take effect. */
const DEFINITE = new Set([Code.InvalidArgument, Code.FailedPrecondition]);

/**
 * Whether a failed attempt never left this process: the connection to the node could
 * not even be opened (the node is down), so no byte of the request was sent. (A
 * follower's failure to reach the leader is reported as UNAVAILABLE "leader N could
 * not serve the call", never as this.)
 */
function notSent(a: { ok: false; code: Code; message: string }): boolean {
  return a.code === Code.Unavailable && /^connect ECONNREFUSED /.test(a.message);
}

/** The KVService of one node, through the client library's lower-level API. */
interface NodeConnection {
  readonly kv: Client<typeof KVService>;
}

type Attempt<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly code: Code; readonly message: string };

/** One chaos client: a loop of random calls until told to stop. */
export class ChaosClient {
  readonly options: ClientOptions;
  readonly stats: ClientStats = {
    sessionsOpened: 0,
    openSessionFailures: 0,
    retriedOk: 0,
    retriesExhausted: 0,
    fakedReads: 0,
    errors: {},
    samples: {},
  };
  readonly #history: History;
  readonly #known: KnownValues;
  /**
   * The client library, for its lower-level API only ({@link RaftKvClient.kvAt}: one
   * call to one node, no retry): the history must record each call as this client
   * made it, to the node it chose, with its own retries in its own session.
   */
  readonly #client: RaftKvClient;
  #session: { id: bigint; next: bigint } | undefined;
  #writes = 0;
  /**
   * What this client's recorded, genuine (not faked) answers said each key held, in
   * order, `undefined` for absent; the last few only (for the stale-read fault).
   */
  readonly #observed = new Map<string, (Value | undefined)[]>();

  constructor(options: ClientOptions, history: History, known: KnownValues) {
    this.options = options;
    this.#history = history;
    this.#known = known;
    this.#client = new RaftKvClient({
      endpoints: options.nodes.map((n) => options.endpoint(n)),
      ...(options.tls === undefined ? {} : { tls: options.tls }),
    });
  }

  /** Runs random calls until `stop` aborts; the call under way (retries included) finishes. */
  async run(stop: AbortSignal): Promise<void> {
    const r = this.options.random;
    while (!stop.aborted) {
      const key = this.options.keys[randomInt(r, 0, this.options.keys.length)]!;
      const dice = r();
      if (this.options.group !== undefined && r() < 0.25) {
        // A fifth of the calls (or so) on the group: half transactions, half ranges.
        if (dice < 0.5) await this.txn(this.options.group);
        else await this.range(this.options.group);
      } else if (dice < 0.25) await this.get(key);
      else if (dice < 0.55) await this.put(key);
      else if (dice < 0.9) await this.cas(key);
      else await this.delete(key);
      if (stop.aborted) break;
      // Pacing between calls (a client's think time), not a wait for a condition.
      const pause = randomInt(r, 0, Math.max(1, 2 * this.options.thinkMs));
      if (pause > 0) await sleep(pause);
    }
  }

  /** Closes the client's connections. */
  close(): Promise<void> {
    this.#client.close();
    return Promise.resolve();
  }

  #connection(node: number): NodeConnection {
    return { kv: this.#client.kvAt(this.options.endpoint(node)) };
  }

  #randomNode(): number {
    const nodes = this.options.nodes;
    return nodes[randomInt(this.options.random, 0, nodes.length)]!;
  }

  async #attempt<T>(
    node: number,
    call: (c: NodeConnection, opts: { timeoutMs: number }) => Promise<T>,
  ): Promise<Attempt<T>> {
    try {
      return {
        ok: true,
        value: await call(this.#connection(node), { timeoutMs: this.options.timeoutMs }),
      };
    } catch (err) {
      const e = ConnectError.from(err);
      const name = codeName(e.code);
      this.stats.errors[name] = (this.stats.errors[name] ?? 0) + 1;
      this.stats.samples[name] ??= e.rawMessage;
      return { ok: false, code: e.code, message: e.rawMessage };
    }
  }

  #nextValue(): Value {
    return `c${this.options.id}-${++this.#writes}`;
  }

  /** Opens a session if the client has none; false if that failed (the write is not sent). */
  async #ensureSession(): Promise<boolean> {
    if (!this.options.sessions || this.#session !== undefined) return true;
    const res = await this.#attempt(this.#randomNode(), (c, o) => c.kv.openSession({}, o));
    if (!res.ok) {
      this.stats.openSessionFailures++;
      return false;
    }
    this.stats.sessionsOpened++;
    this.#session = { id: res.value.sessionId, next: 1n };
    return true;
  }

  /**
   * Sends one write (retrying it in its session when the outcome is unknown) and
   * records it. `send` gets the session to put in the request (undefined without).
   */
  async #write<T>(
    send: (
      c: NodeConnection,
      session: { id: bigint; sequence: bigint } | undefined,
      opts: { timeoutMs: number },
    ) => Promise<T>,
    record: (
      outcome: { outcome: "ok"; complete: number; value: T } | Unanswered,
      node: number,
      attempts: number,
    ) => void,
  ): Promise<void> {
    const s = this.#session;
    const session = s === undefined ? undefined : { id: s.id, sequence: s.next };
    const maxAttempts = session === undefined ? 1 : this.options.maxAttempts;
    const errors: string[] = [];
    let sentAny = false;
    let node = this.#randomNode();
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      if (attempt > 1) {
        // Backing off before a retry (100, 200, 400... ms, jittered), then another
        // node: the first may be down or cut off, or still know a dead leader.
        const backoff = Math.min(1_000, 100 * 2 ** (attempt - 2));
        await sleep(backoff + randomInt(this.options.random, 0, backoff));
        node = this.#randomNode();
      }
      const res = await this.#attempt(node, (c, o) => send(c, session, o));
      const complete = this.#history.now();
      if (res.ok) {
        if (s !== undefined) s.next++;
        if (attempt > 1) this.stats.retriedOk++;
        record({ outcome: "ok", complete, value: res.value }, node, attempt);
        return;
      }
      errors.push(`${codeName(res.code)}: ${res.message}`);
      if (!notSent(res)) sentAny = true;
      if (DEFINITE.has(res.code)) {
        // A refused session (it should never be) is dropped; a new one is opened.
        if (res.code === Code.FailedPrecondition) this.#session = undefined;
        else if (s !== undefined) s.next++;
        record({ outcome: "fail", complete, error: errors.join(" | ") }, node, attempt);
        return;
      }
    }
    if (!sentAny) {
      // No attempt ever reached a node: the write did not happen, and the session's
      // sequence was never used, so it stays valid for the next write.
      record(
        { outcome: "fail", complete: this.#history.now(), error: errors.join(" | ") },
        node,
        maxAttempts,
      );
      return;
    }
    if (session !== undefined) {
      this.stats.retriesExhausted++;
      this.#session = undefined; // sequence n + 1 only after n is settled: a new session
    }
    record(
      { outcome: "unknown", complete: this.#history.now(), error: errors.join(" | ") },
      node,
      maxAttempts,
    );
  }

  #base(key: string): { id: number; client: number; key: string; invoke: number } {
    return {
      id: this.#history.nextId(),
      client: this.options.id,
      key,
      invoke: this.#history.now(),
    };
  }

  /**
   * Records a write that got no answer: `asked` (what was asked), with how it ended
   * (failed, or unknown) and the error, the node and the attempts.
   */
  #unanswered(asked: Asked, res: Unanswered, node: number, attempts: number): void {
    this.#history.add({
      ...asked,
      outcome: res.outcome,
      complete: res.complete,
      error: res.error,
      node,
      attempts,
    });
  }

  #observe(key: string, value: Value | undefined): void {
    const list = this.#observed.get(key) ?? [];
    list.push(value);
    if (list.length > 20) list.shift();
    this.#observed.set(key, list);
  }

  /**
   * A value this client saw for `key` before it saw another one: the latest such, or
   * undefined if there is none.
   */
  #stale(key: string): Value | undefined {
    const list = this.#observed.get(key) ?? [];
    const last = list[list.length - 1];
    for (let i = list.length - 2; i >= 0; i--) {
      const v = list[i];
      if (v !== undefined && v !== last) return v;
    }
    return undefined;
  }

  /** A linearizable read of `key`. */
  async get(key: string): Promise<void> {
    const node = this.#randomNode();
    const base = this.#base(key);
    const res = await this.#attempt(node, (c, o) => c.kv.get({ key }, o));
    const complete = this.#history.now();
    if (!res.ok) {
      const outcome = DEFINITE.has(res.code) || notSent(res) ? "fail" : "unknown";
      this.#history.add({
        ...base,
        kind: "get",
        outcome,
        complete,
        error: `${codeName(res.code)}: ${res.message}`,
        node,
      });
      return;
    }
    let found = res.value.found;
    let value = found ? text(res.value.value) : "";
    let note: string | undefined;
    this.#known.saw(key, found ? value : undefined);
    const fake = this.options.fakeStaleReads ?? 0;
    const stale = fake > 0 ? this.#stale(key) : undefined;
    if (stale !== undefined && (!found || stale !== value) && this.options.random() < fake) {
      note = `FAKED: a stale read injected by the harness (the node answered ${
        found ? JSON.stringify(value) : "absent"
      })`;
      found = true;
      value = stale;
      this.stats.fakedReads++;
    } else {
      this.#observe(key, found ? value : undefined);
    }
    this.#history.add({
      ...base,
      kind: "get",
      outcome: "ok",
      complete,
      output: { found, value },
      node,
      ...(note === undefined ? {} : { error: note }),
    });
  }

  /** A put of a fresh unique value. */
  async put(key: string): Promise<void> {
    if (!(await this.#ensureSession())) return;
    const value = this.#nextValue();
    const base = this.#base(key);
    await this.#write(
      (c, session, o) => c.kv.put({ key, value: utf8(value), session }, o),
      (r, node, attempts) => {
        if (r.outcome === "ok") {
          this.#known.saw(key, value);
          this.#observe(key, value);
          this.#history.add({
            ...base,
            kind: "put",
            input: { value },
            outcome: "ok",
            complete: r.complete,
            output: { index: Number(r.value.index) },
            node,
            attempts,
          });
        } else this.#unanswered({ ...base, kind: "put", input: { value } }, r, node, attempts);
      },
    );
  }

  /** A delete. */
  async delete(key: string): Promise<void> {
    if (!(await this.#ensureSession())) return;
    const base = this.#base(key);
    await this.#write(
      (c, session, o) => c.kv.delete({ key, session }, o),
      (r, node, attempts) => {
        if (r.outcome === "ok") {
          this.#known.saw(key, undefined);
          this.#observe(key, undefined);
          this.#history.add({
            ...base,
            kind: "delete",
            outcome: "ok",
            complete: r.complete,
            output: { deleted: r.value.deleted },
            node,
            attempts,
          });
        } else this.#unanswered({ ...base, kind: "delete" }, r, node, attempts);
      },
    );
  }

  /**
   * A compare-and-swap to a fresh unique value, expecting (mostly) the latest value
   * any client saw, sometimes absence, sometimes an older value (likely to fail).
   */
  async cas(key: string): Promise<void> {
    if (!(await this.#ensureSession())) return;
    const r = this.options.random();
    const expected = r < 0.7
      ? this.#known.latest(key)
      : r < 0.85
      ? undefined
      : this.#known.older(key, this.options.random);
    const value = this.#nextValue();
    const base = this.#base(key);
    const input = expected === undefined ? { value } : { expected, value };
    await this.#write(
      (c, session, o) =>
        c.kv.compareAndSwap({
          key,
          expected: expected === undefined ? undefined : utf8(expected),
          value: utf8(value),
          session,
        }, o),
      (res, node, attempts) => {
        if (res.outcome === "ok") {
          const found = res.value.found;
          const now = found ? text(res.value.value) : "";
          this.#known.saw(key, found ? now : undefined);
          this.#observe(key, found ? now : undefined);
          this.#history.add({
            ...base,
            kind: "cas",
            input,
            outcome: "ok",
            complete: res.complete,
            output: { succeeded: res.value.succeeded, found, value: now },
            node,
            attempts,
          });
        } else this.#unanswered({ ...base, kind: "cas", input }, res, node, attempts);
      },
    );
  }

  /**
   * A Range of the whole group (its prefix), linearizable: recorded as a `range` of
   * every key of the group.
   */
  async range(group: NonNullable<ClientOptions["group"]>): Promise<void> {
    const node = this.#randomNode();
    const base = { ...this.#base(group.name), kind: "range" as const, input: { keys: group.keys } };
    const res = await this.#attempt(node, (c, o) => c.kv.range({ prefix: group.prefix }, o));
    const complete = this.#history.now();
    if (!res.ok) {
      const outcome = DEFINITE.has(res.code) || notSent(res) ? "fail" : "unknown";
      this.#history.add({
        ...base,
        outcome,
        complete,
        error: `${codeName(res.code)}: ${res.message}`,
        node,
      });
      return;
    }
    const kvs = res.value.kvs.map((kv) => [kv.key, text(kv.value)] as const);
    const present = new Map(kvs);
    for (const k of group.keys) this.#known.saw(k, present.get(k));
    this.#history.add({ ...base, outcome: "ok", complete, output: { kvs }, node });
  }

  /**
   * A Txn on two keys of the group: half the time conditional on the first key
   * holding the latest value seen (or being absent), it puts fresh values to both (or
   * puts the first and deletes the second); its failure branch reads both.
   */
  async txn(group: NonNullable<ClientOptions["group"]>): Promise<void> {
    if (!(await this.#ensureSession())) return;
    const r = this.options.random;
    const a = group.keys[randomInt(r, 0, group.keys.length)]!;
    const others = group.keys.filter((k) => k !== a);
    const b = others[randomInt(r, 0, others.length)] ?? a;
    const compares: TxnCompare[] = r() < 0.5 ? [] : [{ key: a, value: this.#known.latest(a) }];
    const success: TxnStep[] = [{ op: "put", key: a, value: this.#nextValue() }];
    if (b !== a) {
      success.push(
        r() < 0.2 ? { op: "delete", key: b } : { op: "put", key: b, value: this.#nextValue() },
      );
    }
    const failure: TxnStep[] = [
      { op: "get", key: a },
      ...(b === a ? [] : [
        { op: "get", key: b } as const,
      ]),
    ];
    const input: TxnInput = { compares, success, failure };
    const toOp = (st: TxnStep): MessageInitShape<typeof RequestOpSchema> =>
      st.op === "put"
        ? { op: { case: "put", value: { key: st.key, value: utf8(st.value) } } }
        : st.op === "delete"
        ? { op: { case: "delete", value: { key: st.key } } }
        : { op: { case: "get", value: { key: st.key } } };
    const base = this.#base(group.name);
    await this.#write(
      (c, session, o) =>
        c.kv.txn({
          compares: compares.map((cmp) => ({
            key: cmp.key,
            check: cmp.value === undefined
              ? { case: "exists" as const, value: false }
              : { case: "valueEquals" as const, value: utf8(cmp.value) },
          })),
          success: success.map(toOp),
          failure: failure.map(toOp),
          session,
        }, o),
      (res, node, attempts) => {
        if (res.outcome !== "ok") {
          this.#unanswered({ ...base, kind: "txn", input }, res, node, attempts);
          return;
        }
        const succeeded = res.value.succeeded;
        const gets: (Value | null)[] = [];
        const branch = succeeded ? success : failure;
        branch.forEach((st, i) => {
          const answer = res.value.responses[i]?.op;
          if (st.op === "put") this.#known.saw(st.key, st.value);
          else if (st.op === "delete") this.#known.saw(st.key, undefined);
          else if (answer?.case === "get") {
            const v = answer.value.found ? text(answer.value.value) : null;
            gets.push(v);
            this.#known.saw(st.key, v ?? undefined);
          } else gets.push("\u0000no get answer"); // malformed: the checker rejects it
        });
        this.#history.add({
          ...base,
          kind: "txn",
          input,
          outcome: "ok",
          complete: res.complete,
          output: { succeeded, gets, index: Number(res.value.index) },
          node,
          attempts,
        });
      },
    );
  }
}
