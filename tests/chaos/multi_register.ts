/**
 * The multi-register model of the linearizability checker: a small group of keys whose
 * state is one value (or absence) per key, for operations that touch several keys at
 * once: a transaction (`txn`: compares on some keys, then a branch of puts, deletes and
 * gets, all at one instant) and a range read (`range`: several keys read at one
 * instant). Single-key operations on the group's keys are stepped on their key's
 * register, as {@link stepGet} and friends do.
 *
 * Multi-key operations break the per-key decomposition (Herlihy & Wing's locality only
 * splits a history by object, and a transaction makes its keys one object), so the
 * checker keeps them in a group of few keys and searches the group as one object.
 * The search is Wing & Gong's with Lowe's memoization, as for one key, and treats
 * unknown writes the same way (no return event; applied once at any point after
 * their invoke, or never; never required), with the pruning that holds for any model:
 *
 * - a configuration is pruned when one with the same answered operations linearized
 *   and the same state was seen using a subset of its unknown writes (whatever this
 *   one can still do, that one could too);
 * - an unknown write is tried only where it changes the state (one that changes
 *   nothing can be dropped from any witness: it has no output to explain);
 * - answered operations are tried before unknown writes;
 * - an unknown write that no answer could ever tell happened is left out before the
 *   search (see {@link invisibleUnknowns}): with every write of a fresh value, an
 *   unknown write that was never applied, or overwritten before anyone looked, is
 *   one, and without this each would stay a candidate to the end of the history.
 *
 * The register-specific pruning of the single-key search (blocks of unknown writes,
 * interchangeable values) does not carry over: there, an answered op accepted in two
 * states leads to the same next state, which a transaction writing one key of a group
 * does not. A group must therefore stay small, in keys and in unknown writes, for the
 * search to stay cheap; the chaos workload keeps 3 keys in its one group.
 *
 * @module
 */

import {
  type Budget,
  type CasInput,
  type CasOutput,
  type DeleteOutput,
  type GetOutput,
  type PutInput,
  type RangeInput,
  type RangeOutput,
  type SearchOp,
  type SearchOutcome,
  stepCas,
  stepDelete,
  stepGet,
  type TxnInput,
  type TxnOutput,
  type Value,
  witness,
} from "./linearizability.ts";
import { buildEventList, type EventNode } from "./event_list.ts";
import { LinearizedSet } from "./linearized_set.ts";

/** A group's state: per key of the group (in the group's key order), its value or absence. */
export type GroupState = readonly (Value | undefined)[];

/** The keys of a group and where each sits in a {@link GroupState}. */
export class Group {
  readonly keys: readonly string[];
  readonly #index: ReadonlyMap<string, number>;

  constructor(keys: Iterable<string>) {
    this.keys = [...new Set(keys)].sort();
    this.#index = new Map(this.keys.map((k, i) => [k, i]));
  }

  /** The position of `key` in a state; throws if it is not one of the group's keys. */
  at(key: string): number {
    const i = this.#index.get(key);
    if (i === undefined) throw new Error(`key ${key} is not in the group ${this.keys.join(",")}`);
    return i;
  }

  /** Whether `key` is one of the group's keys. */
  has(key: string): boolean {
    return this.#index.has(key);
  }

  /** A string that identifies `state` (for the search's cache). */
  encode(state: GroupState): string {
    let s = "";
    for (const v of state) s += v === undefined ? "-|" : "+" + v.length + ":" + v + "|";
    return s;
  }
}

/** The keys a multi-key operation's input names (compares, branch steps, range keys). */
export function keysOf(kind: "txn" | "range", input: TxnInput | RangeInput): string[] {
  if (kind === "range") return [...(input as RangeInput).keys];
  const t = input as TxnInput;
  return [
    ...t.compares.map((c) => c.key),
    ...t.success.map((s) => s.key),
    ...t.failure.map((s) => s.key),
  ];
}

function set(state: GroupState, i: number, v: Value | undefined): GroupState {
  if (state[i] === v) return state;
  const next = state.slice();
  next[i] = v;
  return next;
}

/**
 * One step of the multi-register model: the state `op` leads to from `state`, or
 * undefined if `op` (with its output, when it has one) cannot happen there. An
 * unobserved op (no output) is always possible; an unobserved read is never stepped.
 */
export function stepGroup(
  group: Group,
  state: GroupState,
  op: SearchOp,
): GroupState | undefined {
  switch (op.kind) {
    case "get": {
      const i = group.at(op.key);
      return stepGet(state[i], op.output as GetOutput).ok ? state : undefined;
    }
    case "put": {
      return set(state, group.at(op.key), (op.input as PutInput).value);
    }
    case "delete": {
      const i = group.at(op.key);
      return stepDelete(state[i], op.output as DeleteOutput | undefined).ok
        ? set(state, i, undefined)
        : undefined;
    }
    case "cas": {
      const i = group.at(op.key);
      const r = stepCas(state[i], op.input as CasInput, op.output as CasOutput | undefined);
      return r.ok ? set(state, i, r.next) : undefined;
    }
    case "range": {
      const input = op.input as RangeInput;
      const output = op.output as RangeOutput;
      const returned = new Map(output.kvs);
      if (returned.size !== output.kvs.length) return undefined; // a key twice
      for (const k of returned.keys()) if (!input.keys.includes(k)) return undefined;
      for (const k of input.keys) {
        if (state[group.at(k)] !== returned.get(k)) return undefined;
      }
      return state;
    }
    case "txn": {
      const input = op.input as TxnInput;
      const output = op.output as TxnOutput | undefined;
      const holds = input.compares.every((c) => state[group.at(c.key)] === c.value);
      if (output !== undefined && output.succeeded !== holds) return undefined;
      let next = state;
      let g = 0;
      for (const s of holds ? input.success : input.failure) {
        const i = group.at(s.key);
        if (s.op === "put") next = set(next, i, s.value);
        else if (s.op === "delete") next = set(next, i, undefined);
        else if (output !== undefined) {
          const seen = output.gets[g++];
          if (seen === undefined || (seen ?? undefined) !== next[i]) return undefined;
        }
      }
      if (output !== undefined && g !== output.gets.length) return undefined;
      return next;
    }
  }
}

/**
 * The unknown writes of `ops` (by index) that can be left out of the search without
 * changing its verdict: those that only put values no operation ever names (no output
 * reports them, no compare or CAS expects them), on keys whose state no operation can
 * observe without reporting the value: no answered single-key Delete on the key (its
 * `deleted` tells presence), and every Txn comparing the key writes nothing in its
 * failure branch and, if answered, reads the key there.
 *
 * Why this is sound: in any witness that applies such a write U, drop U. Until each of
 * U's keys is next overwritten, the states differ only in those keys, which held U's
 * unnamed value: no answered op in that span read them (it would report an unnamed
 * value), no answered Txn compared them (its compare failed, so its failure branch ran
 * and read the key: the same), no answered Delete touched them (excluded), and an
 * unknown op that compared them had no effect there (a failed compare: a CAS does
 * not write, a Txn's failure branch writes nothing), so it is left unapplied too.
 * Every answered op then sees the same answer, so the rest is still a witness.
 * Conversely a witness without U is one with U never applied.
 */
export function invisibleUnknowns(ops: readonly SearchOp[], initial: GroupState): Set<number> {
  const named = new Set<Value>();
  for (const v of initial) if (v !== undefined) named.add(v);
  const unsafe = new Set<string>(); // keys whose state can be observed without its value
  for (const op of ops) {
    const out = op.output;
    switch (op.kind) {
      case "get": {
        const o = out as GetOutput | undefined;
        if (o?.found) named.add(o.value);
        break;
      }
      case "range":
        for (const [, v] of (out as RangeOutput | undefined)?.kvs ?? []) named.add(v);
        break;
      case "cas": {
        const i = op.input as CasInput;
        if (i.expected !== undefined) named.add(i.expected);
        const o = out as CasOutput | undefined;
        if (o?.found) named.add(o.value);
        break;
      }
      case "delete":
        if (out !== undefined) unsafe.add(op.key);
        break;
      case "txn": {
        const i = op.input as TxnInput;
        for (const v of (out as TxnOutput | undefined)?.gets ?? []) if (v !== null) named.add(v);
        const failureWrites = i.failure.some((s) => s.op !== "get");
        for (const c of i.compares) {
          if (c.value !== undefined) named.add(c.value);
          const readsIt = i.failure.some((s) => s.op === "get" && s.key === c.key);
          if (failureWrites || (out !== undefined && !readsIt)) unsafe.add(c.key);
        }
        break;
      }
    }
  }
  const invisible = new Set<number>();
  ops.forEach((op, index) => {
    if (op.output !== undefined) return;
    let puts: { key: string; value: Value }[];
    if (op.kind === "put") puts = [{ key: op.key, value: (op.input as PutInput).value }];
    else if (op.kind === "cas") puts = [{ key: op.key, value: (op.input as CasInput).value }];
    else if (op.kind === "txn") {
      const i = op.input as TxnInput;
      const steps = [...i.success, ...i.failure];
      if (steps.some((s) => s.op === "delete")) return;
      puts = steps.flatMap((s) => s.op === "put" ? [{ key: s.key, value: s.value }] : []);
    } else return;
    if (puts.every((p) => !named.has(p.value) && !unsafe.has(p.key))) invisible.add(index);
  });
  return invisible;
}

interface Candidate {
  readonly call: EventNode;
  readonly next: GroupState;
  readonly exact: boolean;
}

/**
 * Wing & Gong's search with Lowe's cache over `ops` of one group, from `initial`
 * (see the module documentation). Deterministic for the same ops in the same order.
 */
export function searchGroup(
  all: readonly SearchOp[],
  group: Group,
  initial: GroupState,
  budget: Budget,
): SearchOutcome {
  const invisible = invisibleUnknowns(all, initial);
  const ops = all.filter((_op, i) => !invisible.has(i));
  const leftOut = all.filter((_op, i) => invisible.has(i)).map((op) => op.id);
  const linearized = new LinearizedSet(ops);
  const { exactCount } = linearized;
  if (exactCount === 0) {
    return { verdict: "ok", steps: 0, order: [], notApplied: all.map((op) => op.id) };
  }

  const { head, lift, unlift } = buildEventList(ops);
  const configKey = (state: GroupState): string => linearized.exactKey() + group.encode(state);
  // Lowe's cache with subsumption: per (answered ops linearized, state), the sets of
  // unknown writes used when it was seen; a configuration using a superset is pruned.
  const cache = new Map<string, Uint32Array[]>();

  let barrier: EventNode = head;
  const candidates = (state: GroupState): Candidate[] => {
    const exact: Candidate[] = [];
    const unobserved: Candidate[] = [];
    let node = head.next;
    for (; node !== null && node.isCall; node = node.next) {
      const op = ops[node.op] as SearchOp;
      const next = stepGroup(group, state, op);
      if (next === undefined) continue;
      if (op.output !== undefined) exact.push({ call: node, next, exact: true });
      else if (group.encode(next) !== group.encode(state)) {
        unobserved.push({ call: node, next, exact: false });
      }
    }
    if (node !== null && node.pos > barrier.pos) barrier = node;
    return exact.concat(unobserved);
  };

  interface Frame {
    readonly candidates: Candidate[];
    readonly nextIndex: number;
    readonly state: GroupState;
    readonly chosen: Candidate;
  }
  const stack: Frame[] = [];
  let state = initial;
  let linearizedExact = 0;
  let options = candidates(state);
  let index = 0;
  let steps = 0;
  const checkClock = budget.deadline !== Infinity;

  while (linearizedExact < exactCount) {
    steps++;
    if (steps > budget.maxSteps) return { verdict: "timeout", steps };
    if (checkClock && (steps & 4095) === 0 && performance.now() > budget.deadline) {
      return { verdict: "timeout", steps };
    }
    const candidate = options[index];
    if (candidate !== undefined) {
      index++;
      const op = candidate.call.op;
      linearized.flip(op);
      const key = configKey(candidate.next);
      const list = cache.get(key);
      if (linearized.subsumed(list)) {
        linearized.flip(op);
        continue;
      }
      if (list === undefined) cache.set(key, [linearized.unknownCopy()]);
      else list.push(linearized.unknownCopy());
      stack.push({ candidates: options, nextIndex: index, state, chosen: candidate });
      lift(candidate.call);
      state = candidate.next;
      if (candidate.exact) linearizedExact++;
      options = candidates(state);
      index = 0;
    } else {
      const top = stack.pop();
      if (top === undefined) {
        return { verdict: "fail", steps, barrier: (ops[barrier.op] as SearchOp).id };
      }
      unlift(top.chosen.call);
      linearized.flip(top.chosen.call.op);
      if (top.chosen.exact) linearizedExact--;
      state = top.state;
      options = top.candidates;
      index = top.nextIndex;
    }
  }
  return witness(ops, stack.map((frame) => frame.chosen.call.op), steps, leftOut);
}
