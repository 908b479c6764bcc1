/**
 * The linearizability checker judged against hand-made stories, a brute-force
 * permutation checker, and seeded random histories that are linearizable by
 * construction (then broken on purpose).
 *
 * Environment: `LIN_SEEDS=2000` runs more random seeds (default 200).
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  checkHistory,
  type CheckResult,
  type KeyResult,
  type Operation,
  type OpId,
  type OpKind,
  stepCas,
  stepDelete,
  stepGet,
  stepPut,
} from "./linearizability.ts";
import { type Random, randomInt, seededRandom } from "../../src/raft/rand.ts";

// ---------------------------------------------------------------------------------
// Building histories by hand
// ---------------------------------------------------------------------------------

/** A history under construction; each method records one call and returns its id. */
class Story {
  readonly ops: Operation[] = [];

  #add(op: Omit<Operation, "id">): OpId {
    const id = this.ops.length + 1;
    this.ops.push({ ...op, id } as Operation);
    return id;
  }

  /** An acknowledged put. */
  put(client: number, key: string, value: string, invoke: number, complete: number): OpId {
    return this.#add({
      client,
      key,
      kind: "put",
      input: { value },
      invoke,
      complete,
      outcome: "ok",
      output: {},
    });
  }

  /** A put whose outcome is unknown (the client gave up at `gaveUp`, if given). */
  putUnknown(client: number, key: string, value: string, invoke: number, gaveUp?: number): OpId {
    return this.#add({
      client,
      key,
      kind: "put",
      input: { value },
      invoke,
      complete: gaveUp,
      outcome: "unknown",
      error: "DEADLINE_EXCEEDED",
    });
  }

  /** A put that definitely did not happen. */
  putFailed(client: number, key: string, value: string, invoke: number, complete: number): OpId {
    return this.#add({
      client,
      key,
      kind: "put",
      input: { value },
      invoke,
      complete,
      outcome: "fail",
      error: "INVALID_ARGUMENT",
    });
  }

  /** An answered get that saw `seen` (undefined: the key was absent). */
  get(
    client: number,
    key: string,
    seen: string | undefined,
    invoke: number,
    complete: number,
  ): OpId {
    return this.#add({
      client,
      key,
      kind: "get",
      invoke,
      complete,
      outcome: "ok",
      output: { found: seen !== undefined, value: seen ?? "" },
    });
  }

  /** A get whose answer never came. */
  getUnknown(client: number, key: string, invoke: number): OpId {
    return this.#add({ client, key, kind: "get", invoke, outcome: "unknown" });
  }

  /** An answered delete. */
  del(client: number, key: string, deleted: boolean, invoke: number, complete: number): OpId {
    return this.#add({
      client,
      key,
      kind: "delete",
      invoke,
      complete,
      outcome: "ok",
      output: { deleted },
    });
  }

  /** A CAS answered `succeeded = true`. */
  casOk(
    client: number,
    key: string,
    expected: string | undefined,
    value: string,
    invoke: number,
    complete: number,
  ): OpId {
    return this.#add({
      client,
      key,
      kind: "cas",
      input: { expected, value },
      invoke,
      complete,
      outcome: "ok",
      output: { succeeded: true, found: true, value },
    });
  }

  /** A CAS answered `succeeded = false`, the key holding `current` (undefined: absent). */
  casFailed(
    client: number,
    key: string,
    expected: string | undefined,
    value: string,
    current: string | undefined,
    invoke: number,
    complete: number,
  ): OpId {
    return this.#add({
      client,
      key,
      kind: "cas",
      input: { expected, value },
      invoke,
      complete,
      outcome: "ok",
      output: { succeeded: false, found: current !== undefined, value: current ?? "" },
    });
  }

  /** A CAS whose outcome is unknown. */
  casUnknown(
    client: number,
    key: string,
    expected: string | undefined,
    value: string,
    invoke: number,
  ): OpId {
    return this.#add({
      client,
      key,
      kind: "cas",
      input: { expected, value },
      invoke,
      outcome: "unknown",
    });
  }
}

function keyResult(result: CheckResult, key: string): KeyResult {
  const found = result.perKey.find((r) => r.key === key);
  assert.ok(found, `no result for key ${key}`);
  return found;
}

// ---------------------------------------------------------------------------------
// An independent sequential model, brute force, and witness validation
// ---------------------------------------------------------------------------------

type State = string | undefined;

/** What a sequential store does: the next state and the answer it gives. */
function sequential(
  state: State,
  op: Operation,
): { next: State; output: Record<string, unknown> } {
  switch (op.kind) {
    case "get":
      return { next: state, output: { found: state !== undefined, value: state ?? "" } };
    case "put":
      return { next: op.input.value, output: {} };
    case "delete":
      return { next: undefined, output: { deleted: state !== undefined } };
    case "cas": {
      const { expected, value } = op.input;
      const matches = expected === undefined ? state === undefined : state === expected;
      const next = matches ? value : state;
      return {
        next,
        output: { succeeded: matches, found: next !== undefined, value: next ?? "" },
      };
    }
    case "txn":
    case "range":
      throw new Error("single-key model only");
  }
}

/** Whether `op`'s recorded answer equals what a sequential store would say. */
function answersMatch(op: Operation, state: State): boolean {
  if (op.outcome !== "ok") return true;
  const want = sequential(state, op).output;
  switch (op.kind) {
    case "get":
      return op.output.found === want.found && (!op.output.found || op.output.value === want.value);
    case "put":
      return true;
    case "delete":
      return op.output.deleted === want.deleted;
    case "cas":
      return op.output.succeeded === want.succeeded && op.output.found === want.found &&
        (!op.output.found || op.output.value === want.value);
    case "txn":
    case "range":
      throw new Error("single-key model only");
  }
}

function returnTime(op: Operation): number {
  return op.outcome === "ok" ? op.complete : Infinity;
}

/**
 * Brute force: tries every order of the operations (all keys at once, one map as
 * state) that respects real time, each unknown write placed anywhere or nowhere.
 * Exponential; for histories of a handful of operations.
 */
function bruteForceLinearizable(history: readonly Operation[]): boolean {
  const live = history.filter((op) =>
    op.outcome === "ok" || (op.outcome === "unknown" && op.kind !== "get")
  );
  const exact = live.filter((op) => op.outcome === "ok").length;
  const used = live.map(() => false);
  const state = new Map<string, string>();
  const dfs = (placedExact: number): boolean => {
    if (placedExact === exact) return true;
    for (let i = 0; i < live.length; i++) {
      const x = live[i] as Operation;
      if (used[i]) continue;
      if (live.some((y, j) => !used[j] && j !== i && returnTime(y) < x.invoke)) continue;
      const before = state.get(x.key);
      if (!answersMatch(x, before)) continue;
      const { next } = sequential(before, x);
      used[i] = true;
      if (next === undefined) state.delete(x.key);
      else state.set(x.key, next);
      if (dfs(placedExact + (x.outcome === "ok" ? 1 : 0))) return true;
      if (before === undefined) state.delete(x.key);
      else state.set(x.key, before);
      used[i] = false;
    }
    return false;
  };
  return dfs(0);
}

/** Asserts that a linearizable key's witness really is one. */
function assertWitness(history: readonly Operation[], r: KeyResult): void {
  assert.equal(r.ok, true, `key ${r.key} should be linearizable`);
  const order = r.linearization ?? [];
  const skipped = r.notApplied ?? [];
  const byId = new Map(history.map((op) => [op.id, op]));
  const expected = history.filter((op) =>
    op.key === r.key &&
    (op.outcome === "ok" || (op.outcome === "unknown" && op.kind !== "get"))
  ).map((op) => op.id).sort((a, b) => a - b);
  assert.deepEqual([...order, ...skipped].sort((a, b) => a - b), expected);
  for (const id of skipped) assert.equal(byId.get(id)?.outcome, "unknown");
  let state: State = undefined;
  order.forEach((id, i) => {
    const op = byId.get(id) as Operation;
    for (const later of order.slice(i + 1)) {
      const l = byId.get(later) as Operation;
      assert.ok(!(returnTime(l) < op.invoke), `witness puts ${later} before ${id} against time`);
    }
    assert.ok(answersMatch(op, state), `witness: op ${id} does not answer as the state says`);
    state = sequential(state, op).next;
  });
}

/** An answered operation relaxed to "unknown": its answer and completion forgotten. */
function relax(op: Operation): Operation {
  if (op.outcome !== "ok") return op;
  return { ...op, outcome: "unknown", complete: undefined, output: undefined } as Operation;
}

/**
 * Asserts, by brute force, what a failure core claims: with every other operation of
 * its key relaxed it is not linearizable, and relaxing any one member makes it so.
 */
function assertCoreMinimal(history: readonly Operation[], key: string, core: OpId[]): void {
  const keyOps = history.filter((op) => op.key === key);
  const keep = (ids: Set<OpId>): Operation[] => keyOps.map((op) => ids.has(op.id) ? op : relax(op));
  assert.ok(core.length > 0);
  assert.equal(
    bruteForceLinearizable(keep(new Set(core))),
    false,
    `core ${core} should fail: ${JSON.stringify(keyOps)}`,
  );
  for (const id of core) {
    const rest = new Set(core.filter((c) => c !== id));
    assert.equal(
      bruteForceLinearizable(keep(rest)),
      true,
      `core ${core} without ${id} should be linearizable`,
    );
  }
}

// ---------------------------------------------------------------------------------
// Random histories, linearizable by construction
// ---------------------------------------------------------------------------------

interface GenConfig {
  readonly ops: number;
  readonly clients: number;
  readonly keys: readonly string[];
  /** Values are drawn from this pool; empty: a fresh, unique value per write. */
  readonly pool: readonly string[];
  readonly pUnknown: number;
  readonly pFail: number;
}

function pick<T>(random: Random, items: readonly T[]): T {
  return items[randomInt(random, 0, items.length)] as T;
}

/**
 * A linearizable history: each client makes one call at a time; every call gets a
 * linearization point inside a random interval [invoke, complete], and the answers
 * come from a sequential store applying the calls in linearization-point order. An
 * unknown write takes effect (possibly after the client gave up) or not, at random;
 * a failed call never does.
 */
function generateLinearizable(random: Random, config: GenConfig): Operation[] {
  interface Draft {
    id: number;
    client: number;
    key: string;
    kind: OpKind;
    input: { value: string; expected?: string | undefined } | undefined;
    invoke: number;
    point: number;
    complete: number | undefined;
    outcome: "ok" | "fail" | "unknown";
    applied: boolean;
    output?: Record<string, unknown>;
  }
  const free = new Array<number>(config.clients).fill(0);
  const written: string[] = [];
  let fresh = 0;
  const drafts: Draft[] = [];
  for (let id = 1; id <= config.ops; id++) {
    let client = 0;
    for (let c = 1; c < config.clients; c++) {
      if ((free[c] as number) < (free[client] as number)) client = c;
    }
    const invoke = (free[client] as number) + randomInt(random, 0, 6);
    let point = invoke + randomInt(random, 0, 12);
    let complete: number | undefined = point + randomInt(random, 0, 12);
    const roll = random();
    const kind: OpKind = roll < 0.4 ? "get" : roll < 0.7 ? "put" : roll < 0.9 ? "cas" : "delete";
    const value = config.pool.length > 0 ? pick(random, config.pool) : `v${fresh++}`;
    let input: Draft["input"];
    if (kind === "put") input = { value };
    if (kind === "cas") {
      const recent = written.slice(-3);
      const expected = random() < 0.25
        ? undefined
        : config.pool.length > 0
        ? pick(random, config.pool)
        : recent.length > 0
        ? pick(random, recent)
        : undefined;
      input = { expected, value };
    }
    if (kind === "put" || kind === "cas") written.push(value);
    const outcomeRoll = random();
    const outcome = outcomeRoll < config.pUnknown
      ? "unknown"
      : outcomeRoll < config.pUnknown + config.pFail
      ? "fail"
      : "ok";
    let applied = outcome === "ok";
    if (outcome === "unknown") {
      applied = kind !== "get" && random() < 0.5;
      point = invoke + randomInt(random, 0, 40); // may land after the client gave up
      complete = random() < 0.5 ? undefined : invoke + randomInt(random, 0, 20);
    }
    free[client] = complete ?? invoke + 20;
    drafts.push({
      id,
      client,
      key: pick(random, config.keys),
      kind,
      input,
      invoke,
      point,
      complete,
      outcome,
      applied,
    });
  }
  const state = new Map<string, string>();
  for (const d of [...drafts].sort((a, b) => a.point - b.point || a.id - b.id)) {
    if (!d.applied) continue;
    const { id, client, key, kind, input, invoke } = d;
    const { next, output } = sequential(
      state.get(d.key),
      { id, client, key, kind, input, invoke, outcome: "unknown" } as Operation,
    );
    d.output = output;
    if (next === undefined) state.delete(d.key);
    else state.set(d.key, next);
  }
  return drafts.map((d) => {
    const { id, client, key, kind, input, invoke, complete, outcome } = d;
    const op: Record<string, unknown> = { id, client, key, kind, invoke, outcome };
    if (input !== undefined) op.input = input;
    if (complete !== undefined) op.complete = complete;
    if (outcome === "ok") op.output = d.output;
    if (outcome === "fail") op.error = "INVALID_ARGUMENT";
    if (outcome === "unknown") op.error = "UNAVAILABLE";
    return op as unknown as Operation;
  });
}

function shuffled<T>(random: Random, items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = randomInt(random, 0, i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** `op` with its answer replaced. */
function withOutput(op: Operation, output: Record<string, unknown>): Operation {
  return { ...op, output } as Operation;
}

/**
 * `op` (an answered one) with a different answer drawn from `pool`: another value or
 * absent for a get, a flipped or altered CAS result, a flipped delete. Undefined for
 * a put (its answer is not checked).
 */
function mutateOutput(
  random: Random,
  op: Operation,
  pool: readonly string[],
): Operation | undefined {
  if (op.outcome !== "ok") return undefined;
  switch (op.kind) {
    case "put":
      return undefined;
    case "delete":
      return withOutput(op, { deleted: !op.output.deleted });
    case "get": {
      const choices: (string | undefined)[] = [undefined, ...pool].filter((v) =>
        op.output.found ? v !== op.output.value : v !== undefined
      );
      const seen = pick(random, choices);
      return withOutput(op, { found: seen !== undefined, value: seen ?? "" });
    }
    case "cas": {
      if (random() < 0.5) return withOutput(op, { ...op.output, succeeded: !op.output.succeeded });
      const seen = pick(random, [undefined, ...pool]);
      return withOutput(op, {
        succeeded: op.output.succeeded,
        found: seen !== undefined,
        value: seen ?? "",
      });
    }
  }
}

const SEEDS = Number(Deno.env.get("LIN_SEEDS") ?? 200);

// ---------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------

Deno.test("the register model", async (t) => {
  await t.step("a get is consistent only with the state it reports", () => {
    assert.deepEqual(stepGet("1", { found: true, value: "1" }), { ok: true, next: "1" });
    assert.deepEqual(stepGet(undefined, { found: false, value: "" }), {
      ok: true,
      next: undefined,
    });
    assert.equal(stepGet("1", { found: false, value: "" }).ok, false);
    assert.equal(stepGet(undefined, { found: true, value: "" }).ok, false);
    assert.equal(stepGet("", { found: true, value: "" }).ok, true, "empty is a value");
  });

  await t.step("a put always applies; a delete reports whether the key existed", () => {
    assert.deepEqual(stepPut(undefined, { value: "x" }), { ok: true, next: "x" });
    assert.deepEqual(stepDelete("x", { deleted: true }), { ok: true, next: undefined });
    assert.equal(stepDelete("x", { deleted: false }).ok, false);
    assert.equal(stepDelete(undefined, { deleted: true }).ok, false);
    assert.deepEqual(stepDelete(undefined, undefined), { ok: true, next: undefined });
  });

  await t.step("a CAS writes only on a match and reports the key after the call", () => {
    const hit = { succeeded: true, found: true, value: "4" };
    assert.deepEqual(stepCas("3", { expected: "3", value: "4" }, hit), { ok: true, next: "4" });
    assert.equal(stepCas("5", { expected: "3", value: "4" }, hit).ok, false);
    const miss = { succeeded: false, found: true, value: "5" };
    assert.deepEqual(stepCas("5", { expected: "3", value: "4" }, miss), { ok: true, next: "5" });
    assert.equal(stepCas("6", { expected: "3", value: "4" }, miss).ok, false);
    assert.deepEqual(stepCas(undefined, { value: "1" }, { ...hit, value: "1" }), {
      ok: true,
      next: "1",
    });
    assert.equal(
      stepCas(undefined, { expected: "", value: "1" }, { ...hit, value: "1" }).ok,
      false,
    );
    assert.deepEqual(stepCas("7", { expected: "3", value: "4" }, undefined), {
      ok: true,
      next: "7",
    });
  });
});

Deno.test("linearizable stories", async (t) => {
  await t.step("sequential puts and gets", () => {
    const s = new Story();
    const ids = [
      s.put(1, "x", "1", 0, 10),
      s.get(2, "x", "1", 20, 30),
      s.put(1, "x", "2", 40, 50),
      s.get(2, "x", "2", 60, 70),
    ];
    const result = checkHistory(s.ops);
    assert.equal(result.ok, true);
    assert.deepEqual(keyResult(result, "x").linearization, ids);
  });

  await t.step("a get concurrent with a put may see the old or the new value", () => {
    for (const seen of ["1", "2"]) {
      const s = new Story();
      s.put(1, "x", "1", 0, 10);
      s.put(1, "x", "2", 20, 40);
      s.get(2, "x", seen, 25, 35);
      const result = checkHistory(s.ops);
      assert.equal(result.ok, true, `seeing ${seen}`);
      assertWitness(s.ops, keyResult(result, "x"));
    }
  });

  await t.step("intervals that only touch count as concurrent", () => {
    const s = new Story();
    s.put(1, "x", "1", 0, 10);
    s.get(2, "x", undefined, 10, 20);
    assert.equal(checkHistory(s.ops).ok, true);
  });

  await t.step("overlapping writes, with reads that pin their order", () => {
    const s = new Story();
    const a = s.put(1, "x", "1", 0, 50);
    const b = s.put(2, "x", "2", 10, 60);
    const sees2 = s.get(3, "x", "2", 20, 30);
    const sees1 = s.get(3, "x", "1", 40, 45);
    const after = s.get(3, "x", "1", 70, 80);
    const result = checkHistory(s.ops);
    assert.equal(result.ok, true);
    assert.deepEqual(keyResult(result, "x").linearization, [b, sees2, a, sees1, after]);
  });

  await t.step("a CAS chain, with a CAS that loses and a concurrent race", () => {
    const s = new Story();
    s.casOk(1, "x", undefined, "a", 0, 10);
    s.casOk(1, "x", "a", "b", 20, 30);
    s.casFailed(2, "x", "a", "c", "b", 40, 50);
    s.casOk(2, "x", "b", "c", 60, 70);
    // Two clients race from c; exactly one wins and the loser sees the winner's value.
    s.casFailed(1, "x", "c", "d", "e", 80, 100);
    s.casOk(2, "x", "c", "e", 85, 95);
    s.get(3, "x", "e", 110, 120);
    const result = checkHistory(s.ops);
    assert.equal(result.ok, true);
    assertWitness(s.ops, keyResult(result, "x"));
  });

  await t.step("a delete, then a get that finds the key absent", () => {
    const s = new Story();
    s.put(1, "x", "1", 0, 10);
    s.del(1, "x", true, 20, 30);
    s.get(2, "x", undefined, 40, 50);
    s.del(2, "x", false, 60, 70);
    s.casOk(1, "x", undefined, "2", 80, 90);
    assert.equal(checkHistory(s.ops).ok, true);
  });

  await t.step("an unknown put that took effect: a later read sees it", () => {
    const s = new Story();
    s.put(1, "x", "1", 0, 10);
    const lost = s.putUnknown(1, "x", "2", 20, 30);
    s.get(2, "x", "1", 40, 50); // not yet applied, though the client gave up at 30
    s.get(2, "x", "2", 60, 70);
    const result = checkHistory(s.ops);
    assert.equal(result.ok, true);
    const r = keyResult(result, "x");
    assertWitness(s.ops, r);
    assert.ok(r.linearization?.includes(lost));
  });

  await t.step("an unknown put that did not take effect: no read ever sees it", () => {
    const s = new Story();
    s.put(1, "x", "1", 0, 10);
    const lost = s.putUnknown(1, "x", "2", 20);
    s.get(2, "x", "1", 40, 50);
    s.get(2, "x", "1", 60, 70);
    s.put(1, "x", "3", 80, 90);
    s.get(2, "x", "3", 100, 110);
    const result = checkHistory(s.ops);
    assert.equal(result.ok, true);
    const r = keyResult(result, "x");
    assertWitness(s.ops, r);
    assert.deepEqual(r.notApplied, [lost]);
  });

  await t.step("an unknown CAS compares against the state it meets", () => {
    const s = new Story();
    s.put(1, "x", "1", 0, 10);
    s.casUnknown(1, "x", "1", "2", 20);
    s.get(2, "x", "2", 40, 50);
    s.put(2, "x", "3", 60, 70);
    s.get(2, "x", "3", 80, 90);
    assert.equal(checkHistory(s.ops).ok, true);
  });

  await t.step("failed calls and unknown reads are left out", () => {
    const s = new Story();
    s.put(1, "x", "1", 0, 10);
    s.putFailed(2, "x", "9", 20, 30);
    s.getUnknown(3, "x", 25);
    s.get(2, "x", "1", 40, 50);
    const result = checkHistory(s.ops);
    assert.equal(result.ok, true);
    assert.equal(result.stats.failed, 1);
    assert.equal(result.stats.unknownReads, 1);
    assert.deepEqual(keyResult(result, "x").linearization, [1, 4]);
  });

  await t.step("keys that exist before the history starts", () => {
    const s = new Story();
    s.get(1, "x", "0", 0, 10);
    assert.equal(checkHistory(s.ops).ok, false);
    assert.equal(checkHistory(s.ops, { initial: new Map([["x", "0"]]) }).ok, true);
  });
});

Deno.test("non-linearizable stories", async (t) => {
  /** Checks that key x fails, and returns its failure core. */
  const failsOnX = (ops: Operation[]): OpId[] => {
    const result = checkHistory(ops);
    assert.equal(result.ok, false);
    const r = keyResult(result, "x");
    assert.equal(r.ok, false);
    assert.equal(r.linearization, undefined);
    assert.ok(r.failure);
    assertCoreMinimal(ops, "x", r.failure.core);
    return [...r.failure.core].sort((a, b) => a - b);
  };

  await t.step("a stale read: the old value after a put completed", () => {
    const s = new Story();
    const old = s.put(1, "x", "1", 0, 10);
    const update = s.put(1, "x", "2", 20, 30);
    const stale = s.get(2, "x", "1", 40, 50);
    assert.deepEqual(failsOnX(s.ops), [old, update, stale]);
  });

  await t.step("a lost write: acknowledged, then never seen, earlier value seen instead", () => {
    const s = new Story();
    s.put(1, "x", "1", 0, 10);
    const sawFirst = s.get(2, "x", "1", 12, 18);
    const acked = s.put(1, "x", "2", 20, 30);
    const stale = s.get(2, "x", "1", 40, 50);
    s.get(3, "x", "1", 60, 70);
    assert.deepEqual(failsOnX(s.ops), [sawFirst, acked, stale]);
  });

  await t.step("a double-applied CAS: two CAS from the same value both succeed in sequence", () => {
    const s = new Story();
    s.put(1, "x", "a", 0, 10);
    const one = s.casOk(1, "x", "a", "b", 20, 30);
    const two = s.casOk(2, "x", "a", "c", 40, 50);
    // The put need not be in the core: even free to happen at any time, it writes "a"
    // only once, and the two CAS need "a" twice.
    assert.deepEqual(failsOnX(s.ops), [one, two]);
  });

  await t.step("a read of a value never written", () => {
    const s = new Story();
    s.put(1, "x", "1", 0, 10);
    const bogus = s.get(2, "x", "7", 20, 30);
    assert.deepEqual(failsOnX(s.ops), [bogus]);
  });

  await t.step("a read that goes back in time: new, then a later read sees old", () => {
    const s = new Story();
    const old = s.put(1, "x", "1", 0, 10);
    s.put(1, "x", "2", 20, 100); // still running: reads may see either, but not go back
    const sawNew = s.get(2, "x", "2", 30, 40);
    const sawOld = s.get(2, "x", "1", 50, 60);
    assert.deepEqual(failsOnX(s.ops), [old, sawNew, sawOld]);
  });

  await t.step("a delete that claims to remove a key that was absent", () => {
    const s = new Story();
    s.del(1, "x", true, 0, 10);
    assert.equal(checkHistory(s.ops).ok, false);
  });

  await t.step("a get one millisecond after the put completed must see it", () => {
    const s = new Story();
    s.put(1, "x", "1", 0, 10);
    s.get(2, "x", undefined, 11, 20);
    assert.equal(checkHistory(s.ops).ok, false);
  });
});

Deno.test("the smallest failing window", async (t) => {
  await t.step("a stale read among 200 fine ops: the window is small and holds it", () => {
    const random = seededRandom(777);
    const ops = generateLinearizable(random, {
      ops: 200,
      clients: 5,
      keys: ["k"],
      pool: [],
      pUnknown: 0.05,
      pFail: 0.02,
    });
    assert.equal(checkHistory(ops).ok, true, "the generated history is fine");

    const byInvoke = [...ops].sort((a, b) => a.invoke - b.invoke);
    const isAckedPut = (op: Operation): boolean => op.kind === "put" && op.outcome === "ok";
    const update = byInvoke.filter(isAckedPut)[50] as Operation;
    assert.ok(update.outcome === "ok");
    // The last acknowledged put that completed before `update` was sent: `update`
    // overwrote it, and values are unique, so it can never be read again after.
    const old = byInvoke.filter((op) =>
      isAckedPut(op) && op.outcome === "ok" && op.complete < update.invoke
    ).sort((a, b) => (a.complete as number) - (b.complete as number)).at(-1);
    assert.ok(old && old.kind === "put");
    const stale: Operation = {
      id: 1000,
      client: "auditor",
      key: "k",
      kind: "get",
      invoke: update.complete + 1,
      complete: update.complete + 3,
      outcome: "ok",
      output: { found: true, value: old.input.value },
    };
    const history = [...ops, stale];

    const result = checkHistory(history);
    assert.equal(result.ok, false);
    const failure = keyResult(result, "k").failure;
    assert.ok(failure);
    assert.equal(failure.minimal, true);
    assert.equal(failure.prefixEnd, stale.complete, "the violation shows when the read returns");
    assert.ok(failure.ops.length < 20, `window of ${failure.ops.length} ops`);
    assert.ok(failure.core.length <= 4, `core of ${failure.core.length} ops`);
    assert.ok(failure.core.every((id) => failure.ops.includes(id)));
    assert.ok(failure.core.includes(stale.id), "the stale read is in the core");
    // The rest of the core shows the stale value gone: an op that wrote, read or
    // swapped it away (the put, or a later CAS from it), and one that moved on.
    const staleValue = old.input.value;
    const mentions = (op: Operation): boolean =>
      (op.kind === "put" && op.input.value === staleValue) ||
      (op.kind === "cas" && op.input.expected === staleValue);
    const coreOps = history.filter((op) => failure.core.includes(op.id) && op !== stale);
    assert.ok(coreOps.some(mentions), JSON.stringify(coreOps));
    // The core alone (everything else removed, not merely relaxed) still fails.
    assert.equal(bruteForceLinearizable([...coreOps, stale]), false);
  });

  await t.step("ops after the violation stay out of the window", () => {
    const s = new Story();
    s.put(1, "x", "1", 0, 10);
    s.put(1, "x", "2", 20, 30);
    const stale = s.get(2, "x", "1", 40, 50);
    for (let i = 0; i < 20; i++) s.put(1, "x", `later${i}`, 60 + 10 * i, 65 + 10 * i);
    const failure = keyResult(checkHistory(s.ops), "x").failure;
    assert.ok(failure);
    assert.deepEqual(failure.ops, [1, 2, stale]);
    assert.equal(failure.prefixOps, 3);
  });
});

Deno.test("keys are checked independently", async (t) => {
  await t.step("a violation on key b is reported on b only", () => {
    const s = new Story();
    s.put(1, "a", "1", 0, 10);
    s.put(2, "b", "1", 0, 10);
    s.put(1, "a", "2", 20, 30);
    s.put(2, "b", "2", 20, 30);
    s.get(3, "a", "2", 40, 50);
    const stale = s.get(3, "b", "1", 60, 70);
    s.get(3, "a", "2", 80, 90);
    const result = checkHistory(s.ops);
    assert.equal(result.ok, false);
    assert.deepEqual(result.perKey.map((r) => [r.key, r.ok]), [["a", true], ["b", false]]);
    assertWitness(s.ops, keyResult(result, "a"));
    assert.ok(keyResult(result, "b").failure?.core.includes(stale));
    assert.equal(keyResult(result, "a").failure, undefined);
    assert.equal(result.stats.violatingKeys, 1);
    assert.equal(result.stats.linearizableKeys, 1);
  });
});

Deno.test("budget and malformed histories", async (t) => {
  await t.step("a search over budget says timeout rather than guess", () => {
    const s = new Story();
    for (let i = 0; i < 10; i++) s.put(i, "x", `${i}`, 0, 100);
    s.get(20, "x", "3", 200, 210);
    const result = checkHistory(s.ops, { maxSteps: 5 });
    assert.equal(result.ok, "timeout");
    assert.equal(keyResult(result, "x").ok, "timeout");
    assert.equal(result.stats.timedOutKeys, 1);
    assert.equal(checkHistory(s.ops).ok, true);
  });

  await t.step("malformed operations are rejected", () => {
    const s = new Story();
    s.put(1, "x", "1", 0, 10);
    assert.throws(() => checkHistory([...s.ops, ...s.ops]), /duplicate id/);
    assert.throws(
      () => checkHistory([{ ...s.ops[0], complete: -1 } as Operation]),
      /complete >= invoke/,
    );
    assert.throws(
      () => checkHistory([{ ...s.ops[0], output: undefined } as unknown as Operation]),
      /needs an output/,
    );
  });

  await t.step("an empty history is linearizable", () => {
    const result = checkHistory([]);
    assert.equal(result.ok, true);
    assert.deepEqual(result.perKey, []);
  });
});

Deno.test("randomized histories", async (t) => {
  await t.step(`${SEEDS} seeded linearizable histories pass; a never-written read fails`, () => {
    let unknownWrites = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const random = seededRandom(seed);
      const pool = seed % 2 === 0 ? ["a", "b", "c", "d"] : [];
      const keys = ["k0", "k1", "k2"].slice(0, randomInt(random, 1, 4));
      const ops = shuffled(
        random,
        generateLinearizable(random, {
          ops: randomInt(random, 20, 61),
          clients: randomInt(random, 2, 6),
          keys,
          pool,
          pUnknown: 0.1,
          pFail: 0.05,
        }),
      );
      const result = checkHistory(ops);
      assert.equal(result.ok, true, `seed ${seed}`);
      for (const r of result.perKey) assertWitness(ops, r);
      unknownWrites += result.stats.unknownWrites;

      const reads = ops.filter((op) => op.kind === "get" && op.outcome === "ok");
      if (reads.length === 0) continue;
      const victim = pick(random, reads);
      const broken = ops.map((op) =>
        op === victim ? withOutput(op, { found: true, value: "never-written" }) : op
      );
      const verdict = checkHistory(broken);
      assert.equal(verdict.ok, false, `seed ${seed}, mutated op ${victim.id}`);
      assert.deepEqual(keyResult(verdict, victim.key).failure?.core, [victim.id]);
      for (const r of verdict.perKey) {
        if (r.key !== victim.key) assert.equal(r.ok, true, `seed ${seed}: key ${r.key}`);
      }
    }
    assert.ok(unknownWrites > SEEDS / 2, `only ${unknownWrites} unknown writes`);
  });

  await t.step("small histories: a read mutated to a value it could not see fails", () => {
    let violations = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const random = seededRandom(10_000 + seed);
      const pool = ["a", "b", "c"];
      const ops = generateLinearizable(random, {
        ops: randomInt(random, 3, 8),
        clients: randomInt(random, 2, 4),
        keys: ["k"],
        pool,
        pUnknown: 0.1,
        pFail: 0.05,
      });
      const reads = ops.filter((op) => op.kind === "get" && op.outcome === "ok");
      if (reads.length === 0) continue;
      const victim = pick(random, reads);
      const mutated = mutateOutput(random, victim, pool) as Operation;
      const broken = ops.map((op) => op === victim ? mutated : op);
      const truth = bruteForceLinearizable(broken);
      const result = checkHistory(broken);
      assert.equal(result.ok, truth, `seed ${seed}`);
      if (!truth) {
        violations++;
        const failure = keyResult(result, "k").failure;
        assert.ok(failure, `seed ${seed}`);
        assert.ok(failure.core.includes(victim.id), `seed ${seed}: core misses the read`);
        assertCoreMinimal(broken, "k", failure.core);
      }
    }
    assert.ok(violations > SEEDS / 4, `only ${violations} mutations were violations`);
  });

  await t.step("the checker agrees with brute force on 300 small histories", () => {
    let linearizable = 0;
    let not = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const random = seededRandom(50_000 + seed);
      const pool = ["a", "b"];
      let ops = generateLinearizable(random, {
        ops: randomInt(random, 1, 8),
        clients: randomInt(random, 1, 4),
        keys: random() < 0.7 ? ["k"] : ["k", "j"],
        pool,
        pUnknown: 0.15,
        pFail: 0.05,
      });
      if (random() < 0.6) {
        const answered = ops.filter((op) => op.outcome === "ok" && op.kind !== "put");
        if (answered.length > 0) {
          const victim = pick(random, answered);
          const mutated = mutateOutput(random, victim, pool) as Operation;
          ops = ops.map((op) => op === victim ? mutated : op);
        }
      }
      const truth = bruteForceLinearizable(ops);
      const result = checkHistory(ops);
      assert.equal(result.ok, truth, `seed ${seed}: ${JSON.stringify(ops)}`);
      for (const r of result.perKey) {
        if (r.ok === true) assertWitness(ops, r);
        else {
          assert.ok(r.failure, `seed ${seed}`);
          assertCoreMinimal(ops, r.key, r.failure.core);
        }
      }
      if (truth) linearizable++;
      else not++;
    }
    assert.ok(linearizable >= 80 && not >= 80, `${linearizable} linearizable, ${not} not`);
  });
});

Deno.test("performance sanity: 2,000 ops over 5 keys from 10 clients", () => {
  const random = seededRandom(2024);
  const ops = generateLinearizable(random, {
    ops: 2000,
    clients: 10,
    keys: ["k0", "k1", "k2", "k3", "k4"],
    pool: [],
    pUnknown: 0.05,
    pFail: 0.02,
  });
  const started = performance.now();
  const result = checkHistory(ops);
  const elapsed = performance.now() - started;
  console.log(
    `checked ${result.stats.operations} ops (${result.stats.unknownWrites} unknown writes) ` +
      `in ${elapsed.toFixed(0)} ms, ${result.stats.steps} steps`,
  );
  assert.equal(result.ok, true);
  assert.equal(result.stats.timedOutKeys, 0);
  for (const r of result.perKey) assertWitness(ops, r);
});
