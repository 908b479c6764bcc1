/**
 * The checker's multi-register model (Txn and Range over a group of keys): hand-made
 * stories that are linearizable, bad histories it must reject (a lost Txn write, a torn
 * multi-key write seen by a Range, a Txn that took the wrong branch, a single-key read
 * contradicting a Txn), and seeded random histories judged against a brute-force
 * permutation checker.
 *
 * @module
 */

import assert from "node:assert/strict";
import { checkHistory, type Operation, type TxnInput, type TxnStep } from "./linearizability.ts";
import { Group, invisibleUnknowns, stepGroup } from "./multi_register.ts";
import { type Random, randomInt, seededRandom } from "../../src/raft/rand.ts";

const KEYS = ["t0", "t1", "t2"] as const;
const G = "t*"; // the group's name: the `key` of its multi-key operations

/** A history under construction; each method records one call. */
class Story {
  readonly ops: Operation[] = [];

  add(op: Omit<Operation, "id">): number {
    const id = this.ops.length + 1;
    this.ops.push({ ...op, id } as Operation);
    return id;
  }

  txn(
    client: number,
    input: TxnInput,
    invoke: number,
    done: number | "unknown",
    output?: { succeeded: boolean; gets?: (string | null)[] },
  ): number {
    return this.add(
      done === "unknown" ? { client, key: G, kind: "txn", input, invoke, outcome: "unknown" } : {
        client,
        key: G,
        kind: "txn",
        input,
        invoke,
        complete: done,
        outcome: "ok",
        output: { succeeded: output?.succeeded ?? true, gets: output?.gets ?? [] },
      },
    );
  }

  range(client: number, seen: Record<string, string>, invoke: number, complete: number): number {
    return this.add({
      client,
      key: G,
      kind: "range",
      input: { keys: [...KEYS] },
      invoke,
      complete,
      outcome: "ok",
      output: { kvs: Object.entries(seen).sort() },
    });
  }

  get(client: number, key: string, value: string | undefined, invoke: number, complete: number) {
    return this.add({
      client,
      key,
      kind: "get",
      invoke,
      complete,
      outcome: "ok",
      output: { found: value !== undefined, value: value ?? "" },
    });
  }
}

const puts = (kv: Record<string, string>): TxnStep[] =>
  Object.entries(kv).map(([key, value]) => ({ op: "put", key, value }));
const write = (kv: Record<string, string>): TxnInput => ({
  compares: [],
  success: puts(kv),
  failure: [],
});

function verdict(ops: readonly Operation[]): boolean | "timeout" {
  return checkHistory(ops).ok;
}

Deno.test("multi-register: linearizable stories", async (t) => {
  await t.step("a range sees a transaction's writes all at once, before or after", () => {
    const s = new Story();
    s.txn(1, write({ t0: "a", t1: "a" }), 0, 10);
    s.txn(2, write({ t0: "b", t1: "b" }), 20, 40);
    s.range(3, { t0: "a", t1: "a" }, 21, 30); // before T2 (concurrent with it)
    s.range(4, { t0: "b", t1: "b" }, 25, 35); // after T2
    s.range(5, { t0: "b", t1: "b" }, 50, 60);
    const r = checkHistory(s.ops);
    assert.equal(r.ok, true);
    assert.equal(r.perKey.length, 1);
    assert.equal(r.perKey[0]!.key, G);
  });

  await t.step("a compare-and-write transaction and its failure branch's reads", () => {
    const s = new Story();
    s.txn(1, write({ t0: "a" }), 0, 10);
    s.txn(
      2,
      {
        compares: [{ key: "t0", value: "a" }],
        success: puts({ t0: "b", t1: "b" }),
        failure: [{ op: "get", key: "t0" }],
      },
      20,
      30,
      { succeeded: true },
    );
    s.txn(
      3,
      {
        compares: [{ key: "t0", value: "a" }],
        success: puts({ t0: "c" }),
        failure: [{ op: "get", key: "t0" }, { op: "get", key: "t2" }],
      },
      40,
      50,
      { succeeded: false, gets: ["b", null] },
    );
    assert.equal(verdict(s.ops), true);
  });

  await t.step("an unknown transaction either happened whole or not at all", () => {
    const s = new Story();
    s.txn(1, write({ t0: "a", t1: "a" }), 0, "unknown");
    s.range(2, {}, 5, 10); // not yet
    s.range(3, { t0: "a", t1: "a" }, 20, 30); // then it happened
    assert.equal(verdict(s.ops), true);
  });

  await t.step("single-key reads of a group's key join the group", () => {
    const s = new Story();
    s.txn(1, write({ t0: "a", t1: "a" }), 0, 10);
    s.get(2, "t0", "a", 20, 30);
    s.get(2, "k9", undefined, 20, 30); // another key, checked alone
    const r = checkHistory(s.ops);
    assert.equal(r.ok, true);
    assert.deepEqual(r.perKey.map((k) => k.key), ["k9", G]);
  });
});

Deno.test("multi-register: bad histories are caught", async (t) => {
  await t.step("a lost transaction write: acknowledged, then not there", () => {
    const s = new Story();
    s.txn(1, write({ t0: "a", t1: "a" }), 0, 10);
    s.range(2, {}, 20, 30);
    const r = checkHistory(s.ops);
    assert.equal(r.ok, false);
    assert.ok(r.perKey[0]!.failure !== undefined, "a failing window is reported");
  });

  await t.step("a torn multi-key write seen by a range", () => {
    const s = new Story();
    s.txn(1, write({ t0: "a", t1: "a" }), 0, 10);
    s.txn(2, write({ t0: "b", t1: "b" }), 20, 40);
    s.range(3, { t0: "b", t1: "a" }, 25, 35); // half of T2
    assert.equal(verdict(s.ops), false);
  });

  await t.step("a torn unknown transaction: half of it seen", () => {
    const s = new Story();
    s.txn(1, write({ t0: "a", t1: "a" }), 0, "unknown");
    s.range(2, { t0: "a" }, 20, 30);
    assert.equal(verdict(s.ops), false);
  });

  await t.step("a transaction that took the success branch when its compare failed", () => {
    const s = new Story();
    s.txn(1, write({ t0: "a" }), 0, 10);
    s.txn(
      2,
      {
        compares: [{ key: "t0", value: "x" }],
        success: puts({ t1: "b" }),
        failure: [],
      },
      20,
      30,
      { succeeded: true },
    );
    assert.equal(verdict(s.ops), false);
  });

  await t.step("a failure branch's read that contradicts the state", () => {
    const s = new Story();
    s.txn(1, write({ t0: "a" }), 0, 10);
    s.txn(
      2,
      {
        compares: [{ key: "t0" }],
        success: [],
        failure: [{ op: "get", key: "t0" }],
      },
      20,
      30,
      { succeeded: false, gets: [null] },
    );
    assert.equal(verdict(s.ops), false);
  });

  await t.step("a single-key get that misses an acknowledged transaction", () => {
    const s = new Story();
    s.txn(1, write({ t0: "a", t1: "a" }), 0, 10);
    s.get(2, "t1", undefined, 20, 30);
    assert.equal(verdict(s.ops), false);
  });

  await t.step("a range that returns a key twice or one outside it", () => {
    const s = new Story();
    s.add({
      client: 1,
      key: G,
      kind: "range",
      input: { keys: ["t0"] },
      invoke: 0,
      complete: 1,
      outcome: "ok",
      output: { kvs: [["zz", "a"]] },
    });
    assert.equal(verdict(s.ops), false);
  });
});

// ---------------------------------------------------------------------------------
// Random histories against brute force
// ---------------------------------------------------------------------------------

type Model = Map<string, string>;

/** Brute force over every real-time-respecting order, unknown writes anywhere or nowhere. */
function bruteForce(history: readonly Operation[]): boolean {
  const group = new Group(KEYS);
  const live = history.filter((op) =>
    op.outcome === "ok" || (op.outcome === "unknown" && op.kind !== "range" && op.kind !== "get")
  );
  const exact = live.filter((op) => op.outcome === "ok").length;
  const used = live.map(() => false);
  const search = (state: readonly (string | undefined)[], placed: number): boolean => {
    if (placed === exact) return true;
    // Minimal: no unplaced "ok" op returned before its invoke.
    for (let i = 0; i < live.length; i++) {
      if (used[i]) continue;
      const op = live[i]!;
      const blocked = live.some((o, j) =>
        !used[j] && j !== i && o.outcome === "ok" && o.complete < op.invoke
      );
      if (blocked) continue;
      const next = stepGroup(group, state, {
        id: op.id,
        kind: op.kind,
        key: op.key,
        input: op.input,
        output: op.outcome === "ok" ? op.output : undefined,
        call: op.invoke,
        ret: op.outcome === "ok" ? op.complete : Infinity,
      });
      if (next === undefined) continue;
      used[i] = true;
      const ok = search(next, placed + (op.outcome === "ok" ? 1 : 0));
      used[i] = false;
      if (ok) return true;
    }
    return false;
  };
  return search(KEYS.map(() => undefined), 0);
}

function randomHistory(random: Random, n: number, broken: boolean): Operation[] {
  // A sequential run of the model, then intervals around each op's instant.
  const state: Model = new Map();
  const ops: Operation[] = [];
  let value = 0;
  for (let i = 0; i < n; i++) {
    const at = i * 10;
    const invoke = at - randomInt(random, 0, 25);
    const complete = at + randomInt(random, 0, 25);
    const client = i;
    const dice = random();
    if (dice < 0.35) {
      const kvs = [...state.entries()].sort() as [string, string][];
      if (broken && random() < 0.3 && kvs.length > 0) kvs.pop(); // a key lost
      ops.push({
        id: i + 1,
        client,
        key: G,
        kind: "range",
        input: { keys: [...KEYS] },
        invoke,
        complete,
        outcome: "ok",
        output: { kvs },
      });
      continue;
    }
    const a = KEYS[randomInt(random, 0, KEYS.length)]!;
    const b = KEYS[randomInt(random, 0, KEYS.length)]!;
    const cmp = random() < 0.5 ? [] : [{ key: a, value: state.get(a) }];
    if (cmp.length > 0 && random() < 0.3) cmp[0] = { key: a, value: `v${value + 100}` };
    const v = `v${++value}`;
    const input: TxnInput = {
      compares: cmp,
      success: a === b
        ? [{ op: "put", key: a, value: v }]
        : [{ op: "put", key: a, value: v }, { op: "delete", key: b }],
      // Mostly reading the compared key on failure; sometimes not (its state can
      // then be observed through the compare alone).
      failure: random() < 0.7 ? [{ op: "get", key: a }] : [],
    };
    const holds = cmp.every((c) => state.get(c.key) === c.value);
    const gets: (string | null)[] = holds || input.failure.length === 0
      ? []
      : [state.get(a) ?? null];
    const unknown = random() < 0.2;
    // An unknown transaction took effect, or (half the time) never did.
    if (holds && !(unknown && random() < 0.5)) {
      for (const s of input.success) {
        if (s.op === "put") state.set(s.key, s.value);
        else if (s.op === "delete") state.delete(s.key);
      }
    }
    ops.push(
      unknown ? { id: i + 1, client, key: G, kind: "txn", input, invoke, outcome: "unknown" } : {
        id: i + 1,
        client,
        key: G,
        kind: "txn",
        input,
        invoke,
        complete,
        outcome: "ok",
        output: { succeeded: broken && random() < 0.1 ? !holds : holds, gets },
      },
    );
  }
  return ops;
}

Deno.test("multi-register: random histories agree with brute force", () => {
  let linearizable = 0;
  let not = 0;
  for (let seed = 1; seed <= 400; seed++) {
    const random = seededRandom(seed);
    const ops = randomHistory(random, 7, seed % 2 === 0);
    const want = bruteForce(ops);
    const got = checkHistory(ops).ok;
    assert.equal(got, want, `seed ${seed}: checker says ${got}, brute force ${want}`);
    if (want) linearizable++;
    else not++;
  }
  // Both verdicts were exercised.
  assert.ok(linearizable > 20 && not > 20, `${linearizable} linearizable, ${not} not`);
});

Deno.test("multi-register: unknown writes no answer could reveal are left out", () => {
  const op = (
    id: number,
    kind: "txn" | "range" | "delete",
    input: unknown,
    output?: unknown,
    key = G,
  ) =>
    ({
      id,
      kind,
      key,
      input,
      output,
      call: id,
      ret: output === undefined ? Infinity : id + 1,
    }) as Parameters<typeof stepGroup>[2];
  const initial = KEYS.map(() => undefined);
  const seen = op(1, "range", { keys: [...KEYS] }, { kvs: [["t0", "a"]] });
  const unseenPut = op(2, "txn", write({ t1: "x" }));
  const seenPut = op(3, "txn", write({ t0: "a" }));
  const withDelete = op(4, "txn", {
    compares: [],
    success: [{ op: "delete", key: "t2" }],
    failure: [],
  });
  assert.deepEqual([...invisibleUnknowns([seen, unseenPut, seenPut, withDelete], initial)], [1]);
  // A Txn that compares t1 and does not read it on failure can tell x from what was there.
  const blindCompare = op(5, "txn", {
    compares: [{ key: "t1", value: "b" }],
    success: [],
    failure: [],
  }, { succeeded: false, gets: [] });
  assert.deepEqual([...invisibleUnknowns([seen, unseenPut, blindCompare], initial)], []);
  // So can an answered Delete (deleted: whether the key was there).
  const del = op(6, "delete", undefined, { deleted: true }, "t1");
  assert.deepEqual([...invisibleUnknowns([unseenPut, del], initial)], []);
});
