/**
 * A linearizability checker for key-value histories recorded by a chaos test.
 *
 * A chaos harness runs concurrent clients against a real cluster and records every
 * call it makes as an {@link Operation}: what was asked, when it was sent, when (and
 * whether) an answer came back, and what the answer said. {@link checkHistory} then
 * decides whether some sequential execution of the store explains all of it, with each
 * operation taking effect atomically at one instant between its invocation and its
 * completion (Herlihy & Wing's linearizability).
 *
 * ## How
 *
 * - **Per key (P-compositionality).** Every operation touches exactly one key, and a
 *   key's value depends only on operations on that key, so the store is linearizable
 *   iff each key's sub-history is (Herlihy & Wing's locality). The history is split by
 *   key and each key is checked alone, against a register model: the state is a value
 *   or "absent" (see {@link stepGet}, {@link stepPut}, {@link stepDelete},
 *   {@link stepCas}).
 * - **Search (Wing & Gong, with Lowe's memoization, as Porcupine does).** The call and
 *   return events of a key's operations are sorted by time into a doubly linked list.
 *   The operations that may be linearized next are those whose call comes before the
 *   first return still in the list (an operation that returned must be linearized
 *   before anything invoked after it); of these, the model must accept the one
 *   chosen in the current state. A chosen operation is pushed on a stack and its
 *   events are lifted out of the list; when no candidate is left the search
 *   backtracks: it pops the last operation, puts its events back, restores the state
 *   and tries the next candidate. A cache of configurations already explored (Lowe)
 *   prunes every configuration seen before, since what remains possible depends only
 *   on which operations are linearized and on the state. The history is linearizable
 *   iff every operation with a known outcome gets linearized; the stack is then a
 *   witness order.
 * - **Ties.** At equal timestamps call events sort before return events, so an
 *   operation invoked in the same millisecond another completed counts as concurrent
 *   with it. With millisecond clocks that is the only safe reading: the checker never
 *   assumes an order the timestamps do not prove.
 * - **Budget.** Each search counts its steps (one step = one candidate tried or one
 *   backtrack) and gives up with the verdict `"timeout"` past `maxSteps` (or, if
 *   asked, past `timeLimitMs` of wall-clock time), instead of hanging on a history
 *   whose search space explodes.
 *
 * ## Outcomes
 *
 * - `"ok"`: the call returned an answer; it happened exactly once, within
 *   [invoke, complete], and its output is checked. A CAS answered `succeeded = false`
 *   is "ok": it happened, and did not write.
 * - `"fail"`: the call definitely did not happen (INVALID_ARGUMENT, or a follower's
 *   FAILED_PRECONDITION before any proposal). It is dropped from the check.
 * - `"unknown"`: the call is indeterminate (UNAVAILABLE, DEADLINE_EXCEEDED, a dropped
 *   connection): it took effect once, at some instant after its invoke (even long
 *   after the client gave up), or never. An unknown read has no effect and says
 *   nothing, so it is dropped.
 *
 * ## Unknown writes, and why the treatment is sound
 *
 * An unknown put, delete or CAS (an "unobserved" op below) gets a call event at its
 * invoke and no return event: its return is at +infinity, as in Knossos and Porcupine,
 * so it never forces anything to wait for it, and it stays a candidate from its invoke
 * on. Unlike an answered op it is never required: the search succeeds once every
 * answered op is linearized, and an unobserved op left over never happened (the
 * witness lists it in `notApplied`). When it is linearized, its step takes effect
 * without an output to check: a put writes, a delete removes, a CAS compares with
 * the state it meets and writes only on a match.
 *
 * This covers exactly the executions the server may have had. Each witness is one: an
 * indeterminate write is applied at most once (Raft commits a proposal at one log
 * index, or never), at a point after it was sent, and its lost answer constrains
 * nothing; it is never placed before its invoke, never twice. Conversely every such
 * execution is found: "applied at an instant after invoke" is open to every instant,
 * because there is no return to bound it, and "never" is the op left out. (Having it
 * "never happen" is the same as Porcupine's "linearize it at the very end", after
 * every observation; leaving it out is just the cheaper way to say so.)
 *
 * Unobserved ops multiply the configurations to explore (any subset of them may have
 * happened by any point), so the search narrows the choice, each time without losing
 * a witness:
 *
 * - **Blocks.** Take a shortest witness. Its unobserved ops come in blocks, each just
 *   before an answered op (a block after the last one could simply be left out). In
 *   a block, each op changes the state (else drop it); only the first may be a put or
 *   a delete (a later one would overwrite, making everything before it in the block
 *   pointless), the rest are CASes on the state the block reached; and the answered
 *   op after a block rejects the state the block started from (for every kind, an
 *   answered op accepted in two states leads to the same next state, so otherwise the
 *   block could be dropped). So the search starts a block only when some answered
 *   candidate rejects the current state, continues it only with a matching CAS, and
 *   ends it only with an answered op that rejects the block's starting state. Answered
 *   candidates are tried before unobserved ones.
 * - **Interchangeable ops.** Once invoked, two unobserved ops with the same kind and
 *   input are interchangeable from then on (neither has a return), so only the first
 *   is tried. The same holds for writes of values that are written only once and never
 *   read, expected or reported by any op: only their presence matters, and swapping
 *   two such values throughout turns any witness into another, so they count as one.
 * - **Subsumption in the cache.** Configurations are cached by (answered ops
 *   linearized, state, block context) with the set of unobserved ops used so far; a
 *   configuration is pruned if one with the same key used a subset of its unobserved
 *   ops (and was at least as free to start a block): whatever the new one can still
 *   do, the old one could too.
 *
 * ## Smallest failing window
 *
 * When a key is not linearizable, the checker narrows the history down to the
 * operations that actually contradict each other (see {@link FailureWindow}). Two
 * facts make this cheap and sound. Cutting the history at any point of its event
 * sequence leaves the operations still running at the cut pending, so unknown; and
 * relaxing any answered operation to unknown (forgetting its output and completion
 * time) only allows more executions. Neither can turn a linearizable history into a
 * non-linearizable one, so "non-linearizable" is monotone in the cut and in the set
 * of operations kept answered, which allows binary searches:
 *
 * 1. the shortest failing prefix: the fewest events (in time order) after which the
 *    history is already non-linearizable, whatever happens next (searched from the
 *    furthest return the full search got to, since every prefix ending before that
 *    return has a linearization: the one the search was extending there);
 * 2. then, in that prefix, the latest start: the most operations, taken in invoke
 *    order from the left, that can be relaxed to unknown while the rest still fails
 *    (found by galloping up from a window of one operation, as small windows are
 *    cheap to search). The operations left, a contiguous run in invoke order, are the
 *    window: they cannot be reconciled, whatever the earlier operations did or when;
 * 3. then a core: one pass relaxing each window operation in turn, keeping it relaxed
 *    if the rest still fails. Every core operation is needed (relaxing any one of them
 *    makes the contradiction go away); all the others, in the window or not, are
 *    relaxed. (Relaxed writes are not removed: they may still have happened, once, at
 *    any time after their invoke. A core of two CASes that both swapped "a" away is
 *    complete without the put of "a": there was only one.)
 *
 * Window and core are proven non-linearizable; "smallest" is relative to this greedy
 * order (shortest prefix first, then latest start, then one pass), not a minimum over
 * all subsets. Relaxed earlier writes may still take effect late, so windows are
 * tightest when the harness writes unique values (the usual chaos practice: a stale
 * read is then pinned to the one write that produced it).
 *
 * @module
 */

import { Group, keysOf, searchGroup } from "./multi_register.ts";
import { buildEventList, type EventNode } from "./event_list.ts";
import { LinearizedSet } from "./linearized_set.ts";

/** An operation's identity in the history, unique across the history. */
export type OpId = number;

/** Which KV call an operation made. */
export type OpKind = "get" | "put" | "delete" | "cas" | "txn" | "range";

/**
 * How a call ended: `"ok"` (answered; happened once, within its interval), `"fail"`
 * (definitely did not happen), `"unknown"` (may have happened once, at any time after
 * its invoke, or never).
 */
export type Outcome = "ok" | "fail" | "unknown";

/**
 * A value as the history records it. kv.proto values are bytes; the harness writes
 * values it chose itself and records them decoded (UTF-8 text, or hex for arbitrary
 * bytes). Two values are equal iff the strings are. The empty string is a real value,
 * distinct from an absent key.
 */
export type Value = string;

/** The input of a put: the value to store. */
export interface PutInput {
  /** The value written under the key. */
  readonly value: Value;
}

/** The input of a compare-and-swap. */
export interface CasInput {
  /** The value the key must hold; `undefined` (or missing) means the key must be absent. */
  readonly expected?: Value | undefined;
  /** The value stored if the comparison holds. */
  readonly value: Value;
}

/** The answer to a get: the key's value, if it exists. */
export interface GetOutput {
  /** True if the key exists. */
  readonly found: boolean;
  /** The key's value; ignored when `found` is false. */
  readonly value: Value;
}

/** The answer to a put. The index is not checked here (indexes are checked elsewhere). */
export interface PutOutput {
  /** The Raft log index the write committed at, if recorded. */
  readonly index?: bigint | number;
}

/** The answer to a delete. */
export interface DeleteOutput {
  /** True if the key existed and was removed. */
  readonly deleted: boolean;
}

/**
 * The answer to a compare-and-swap: whether it wrote, and the key as it stands after
 * the call (the new value on success, the value that did not match on failure).
 */
export interface CasOutput {
  /** True if the comparison held and `value` was stored. */
  readonly succeeded: boolean;
  /** True if the key exists after the call. */
  readonly found: boolean;
  /** The key's value after the call; ignored when `found` is false. */
  readonly value: Value;
}

/** The fields every operation has, whatever its kind and outcome. */
export interface OperationBase {
  /** Unique across the whole history. */
  readonly id: OpId;
  /** The client that made the call; a client makes one call at a time. */
  readonly client: number | string;
  /** The key the call touched. */
  readonly key: string;
  /** When the call was sent: milliseconds on a monotonic clock shared by all clients. */
  readonly invoke: number;
  /** A note for people (the gRPC status, say); the checker ignores it. */
  readonly error?: string;
}

/**
 * How an operation ended, with the output its kind answers: `complete` and `output`
 * are present exactly when the outcome is `"ok"`. For `"fail"` and `"unknown"`,
 * `complete` may record when the client got the error or gave up; the checker ignores
 * it (an unknown operation counts as completing at +infinity).
 */
export type Completion<O> =
  | { readonly outcome: "ok"; readonly complete: number; readonly output: O }
  | {
    readonly outcome: "fail" | "unknown";
    readonly complete?: number | undefined;
    readonly output?: undefined;
  };

/** A get: no input; the output says whether and what the key held. */
export type GetOperation =
  & OperationBase
  & { readonly kind: "get"; readonly input?: undefined }
  & Completion<GetOutput>;

/** A put of `input.value`. */
export type PutOperation =
  & OperationBase
  & { readonly kind: "put"; readonly input: PutInput }
  & Completion<PutOutput>;

/** A delete: no input; the output says whether the key existed. */
export type DeleteOperation =
  & OperationBase
  & { readonly kind: "delete"; readonly input?: undefined }
  & Completion<DeleteOutput>;

/** A compare-and-swap of `input.expected` (undefined = absent) for `input.value`. */
export type CasOperation =
  & OperationBase
  & { readonly kind: "cas"; readonly input: CasInput }
  & Completion<CasOutput>;

/**
 * One condition of a transaction: `key` holds `value` (`value` undefined or missing:
 * the key is absent).
 */
export interface TxnCompare {
  readonly key: string;
  readonly value?: Value | undefined;
}

/** One operation of a transaction branch, run in order at the transaction's point. */
export type TxnStep =
  | { readonly op: "put"; readonly key: string; readonly value: Value }
  | { readonly op: "delete"; readonly key: string }
  | { readonly op: "get"; readonly key: string };

/** The input of a transaction: all compares hold → `success`, else `failure`. */
export interface TxnInput {
  readonly compares: readonly TxnCompare[];
  readonly success: readonly TxnStep[];
  readonly failure: readonly TxnStep[];
}

/** The answer to a transaction. */
export interface TxnOutput {
  /** True if every compare held (the success branch ran). */
  readonly succeeded: boolean;
  /**
   * What each `get` step of the branch that ran saw, in order (`null`: absent); a
   * `delete` step's entry is not here (the checker does not look at it).
   */
  readonly gets: readonly (Value | null)[];
  /** The log index the transaction applied at, if recorded (checked by the watch). */
  readonly index?: bigint | number;
}

/** The input of a range read: the model keys the range covers. */
export interface RangeInput {
  readonly keys: readonly string[];
}

/** The answer to a range read: every key it returned with its value, in key order. */
export interface RangeOutput {
  readonly kvs: readonly (readonly [string, Value])[];
}

/**
 * A transaction over several keys, atomically at one point. Its `key` names the
 * group of keys it belongs to (see {@link checkHistory}), not one key.
 */
export type TxnOperation =
  & OperationBase
  & { readonly kind: "txn"; readonly input: TxnInput }
  & Completion<TxnOutput>;

/** A range read of several keys at one point; `key` names their group. */
export type RangeOperation =
  & OperationBase
  & { readonly kind: "range"; readonly input: RangeInput }
  & Completion<RangeOutput>;

/**
 * One recorded call of a chaos history: which client asked what of which key, when,
 * and how it ended. Discriminated by `kind` (input and output shapes) and `outcome`
 * (whether there is an output).
 */
export type Operation =
  | GetOperation
  | PutOperation
  | DeleteOperation
  | CasOperation
  | TxnOperation
  | RangeOperation;

/** Whether an operation only reads (an unknown one is dropped: it had no effect). */
export function isRead(op: { readonly kind: OpKind }): boolean {
  return op.kind === "get" || op.kind === "range";
}

/** Whether an operation touches a group of keys rather than one key. */
export function isMultiKey(op: { readonly kind: OpKind }): boolean {
  return op.kind === "txn" || op.kind === "range";
}

// ---------------------------------------------------------------------------------
// The register model
// ---------------------------------------------------------------------------------

/** A key's state in the model: its value, or `undefined` when the key is absent. */
export type RegisterState = Value | undefined;

/** What one model step concludes: inconsistent, or consistent with this next state. */
export type StepResult = { readonly ok: true; readonly next: RegisterState } | {
  readonly ok: false;
};

const REJECT: StepResult = { ok: false };

/** A get in `state` is consistent iff it reports exactly that state. It changes nothing. */
export function stepGet(state: RegisterState, output: GetOutput): StepResult {
  const consistent = output.found ? state === output.value : state === undefined;
  return consistent ? { ok: true, next: state } : REJECT;
}

/** A put is always consistent (its index is not checked here); the key then holds its value. */
export function stepPut(_state: RegisterState, input: PutInput): StepResult {
  return { ok: true, next: input.value };
}

/**
 * A delete leaves the key absent; it is consistent iff `deleted` says whether the key
 * existed. With `output` undefined (not observed) it is always consistent.
 */
export function stepDelete(state: RegisterState, output: DeleteOutput | undefined): StepResult {
  if (output !== undefined && output.deleted !== (state !== undefined)) return REJECT;
  return { ok: true, next: undefined };
}

/**
 * A CAS writes `input.value` iff the state equals `input.expected` (both absent, or the
 * same value). It is consistent iff `succeeded` says whether it wrote and `found` /
 * `value` describe the state after it. With `output` undefined (not observed) it is
 * always consistent, and still writes only if the comparison holds.
 */
export function stepCas(
  state: RegisterState,
  input: CasInput,
  output: CasOutput | undefined,
): StepResult {
  const matches = input.expected === undefined ? state === undefined : state === input.expected;
  const next = matches ? input.value : state;
  if (output !== undefined) {
    if (output.succeeded !== matches) return REJECT;
    if (output.found !== (next !== undefined)) return REJECT;
    if (output.found && output.value !== next) return REJECT;
  }
  return { ok: true, next };
}

/** An operation as the search sees it: exact, or relaxed to an unobserved write. */
export interface SearchOp {
  readonly id: OpId;
  readonly kind: OpKind;
  /** The key of a single-key operation (a group's name for a multi-key one). */
  readonly key: string;
  readonly input: PutInput | CasInput | TxnInput | RangeInput | undefined;
  /** Undefined when the outcome is not observed (unknown, or relaxed). */
  readonly output:
    | GetOutput
    | PutOutput
    | DeleteOutput
    | CasOutput
    | TxnOutput
    | RangeOutput
    | undefined;
  readonly call: number;
  /** +Infinity when unobserved. */
  readonly ret: number;
}

/** The model step for an exact operation (output known). */
function stepExact(state: RegisterState, op: SearchOp): StepResult {
  switch (op.kind) {
    case "get":
      return stepGet(state, op.output as GetOutput);
    case "put":
      return stepPut(state, op.input as PutInput);
    case "delete":
      return stepDelete(state, op.output as DeleteOutput);
    case "cas":
      return stepCas(state, op.input as CasInput, op.output as CasOutput);
    case "txn":
    case "range":
      throw new Error(`a ${op.kind} is checked by the multi-register model, not the register's`);
  }
}

/** What an unobserved write does to `state` if it takes effect there. */
function effectOf(state: RegisterState, op: SearchOp): RegisterState {
  switch (op.kind) {
    case "get":
      return state;
    case "put":
      return (op.input as PutInput).value;
    case "delete":
      return undefined;
    case "cas": {
      const r = stepCas(state, op.input as CasInput, undefined);
      return r.ok ? r.next : state;
    }
    case "txn":
    case "range":
      throw new Error(`a ${op.kind} is checked by the multi-register model, not the register's`);
  }
}

/**
 * The values whose identity matters to a search: every value some op or the initial
 * state mentions other than by writing it (a read or a CAS answer that reports it, a
 * CAS that expects it), and every value written by more than one op. Any other value
 * is written once and never looked at: only its presence matters.
 */
function namedValues(ops: readonly SearchOp[], initial: RegisterState): Set<Value> {
  const named = new Set<Value>();
  const written = new Set<Value>();
  if (initial !== undefined) named.add(initial);
  for (const op of ops) {
    if (op.kind === "put" || op.kind === "cas") {
      const { value } = op.input as PutInput;
      if (written.has(value)) named.add(value);
      written.add(value);
    }
    if (op.kind === "cas") {
      const { expected } = op.input as CasInput;
      if (expected !== undefined) named.add(expected);
    }
    const output = op.output as Partial<GetOutput> | undefined;
    if (output?.found === true && output.value !== undefined) named.add(output.value);
  }
  return named;
}

/**
 * Unobserved writes with equal signatures are interchangeable once both are invoked
 * (neither has a return, so both stay available for good), so the search tries one of
 * each. A value that is not named (see {@link namedValues}) is written by just this op
 * and never looked at, so swapping two such values throughout maps every way on to an
 * equally valid one: such writes share the signature `*`.
 */
function signature(op: SearchOp, named: ReadonlySet<Value>): string {
  switch (op.kind) {
    case "put": {
      const { value } = op.input as PutInput;
      return named.has(value) ? "p=" + value : "p*";
    }
    case "cas": {
      const { expected, value } = op.input as CasInput;
      const from = expected === undefined ? "c-" : "c+" + expected.length + ":" + expected;
      return from + (named.has(value) ? "=" + value : "*");
    }
    default:
      return op.kind;
  }
}

// ---------------------------------------------------------------------------------
// Wing & Gong search
// ---------------------------------------------------------------------------------

/** A search's step allowance. */
export interface Budget {
  readonly maxSteps: number;
  /** A `performance.now()` deadline, or Infinity. */
  readonly deadline: number;
}

/** What one search concluded. */
export type SearchOutcome =
  | {
    readonly verdict: "ok";
    readonly steps: number;
    readonly order: OpId[];
    readonly notApplied: OpId[];
  }
  | {
    readonly verdict: "fail";
    readonly steps: number;
    /**
     * The op whose return is the furthest barrier any configuration reached (the
     * first return still in the list). Every answered op that returned before it was
     * linearized in some configuration, so every prefix ending before its return is
     * linearizable, and the shortest failing prefix ends at or after it.
     */
    readonly barrier: OpId;
  }
  | { readonly verdict: "timeout"; readonly steps: number };

/** One way to extend the current linearization: an op and the state it leads to. */
interface Candidate {
  readonly call: EventNode;
  readonly next: RegisterState;
  readonly exact: boolean;
}

/**
 * Wing & Gong's search with Lowe's cache over `ops` (one key), from `initial`, with
 * unobserved writes handled as the module documentation describes: they have no
 * return event, are never required, and are only taken in canonical blocks.
 * Deterministic: the same ops in the same order always take the same steps.
 */
function search(ops: readonly SearchOp[], initial: RegisterState, budget: Budget): SearchOutcome {
  // Which ops are linearized: exact ones in E, unobserved ones in U.
  const linearized = new LinearizedSet(ops);
  const { exactCount } = linearized;
  if (exactCount === 0) {
    return { verdict: "ok", steps: 0, order: [], notApplied: ops.map((op) => op.id) };
  }

  const named = namedValues(ops, initial);

  // The event list, sorted by time, calls before returns at equal times, then by the
  // ops' order (which is invoke order) for determinism. Unobserved ops have no return.
  const { head, lift, unlift } = buildEventList(ops);

  const stateKey = (state: RegisterState): string =>
    state === undefined ? "-" : "+" + state.length + ":" + state;
  const exactKey = (state: RegisterState): string => linearized.exactKey() + stateKey(state);
  // Lowe's cache, with subsumption: the configurations seen, by (E, state, context),
  // each with the U sets it was seen with. A configuration is dominated by one seen
  // with the same E and state, a subset of its U, and a context at least as free:
  // outside a block, or inside a block from the same state.
  const cache = new Map<string, Uint32Array[]>();

  // The furthest first-return-in-the-list any configuration met (see SearchOutcome).
  let barrier: EventNode = head;
  /**
   * The ops that may come next, from `state`, outside a block (`blockFrom` null) or
   * inside one that started from `blockFrom.state`. Only calls before the first return
   * still in the list qualify (Wing & Gong's minimal ops); unobserved ops never block
   * anything, since they have no return. In order:
   * - exact ops the model accepts; inside a block, only those that reject the state
   *   the block started from (otherwise the block was pointless);
   * - if some minimal exact op rejects the block's starting state, unobserved writes
   *   that change the state, one per signature, and lead somewhere: to a state such a
   *   rejecting op accepts, or that an unobserved CAS swaps from. Inside a block, only
   *   a CAS (a put or delete there would make the block's earlier ops pointless).
   */
  const candidates = (
    state: RegisterState,
    blockFrom: { readonly state: RegisterState } | null,
  ): Candidate[] => {
    // The state the current block started from, or would start from.
    const from = blockFrom === null ? state : blockFrom.state;
    const exact: Candidate[] = [];
    const rejecting: SearchOp[] = []; // minimal exact ops a block could enable
    const unobservedNodes: EventNode[] = [];
    const casFrom = new Set<string>(); // states some unobserved CAS would swap from
    let node = head.next;
    for (; node !== null && node.isCall; node = node.next) {
      const op = ops[node.op] as SearchOp;
      if (op.output !== undefined) {
        const r = stepExact(state, op);
        const rejectsFrom = !(blockFrom === null ? r.ok : stepExact(from, op).ok);
        if (rejectsFrom) rejecting.push(op);
        if (r.ok && (blockFrom === null || rejectsFrom)) {
          exact.push({ call: node, next: r.next, exact: true });
        }
      } else {
        unobservedNodes.push(node);
        if (op.kind === "cas") casFrom.add(stateKey((op.input as CasInput).expected));
      }
    }
    if (node !== null && node.pos > barrier.pos) barrier = node;
    if (rejecting.length === 0) return exact;

    // Unobserved writes, one per signature, that change the state and lead somewhere:
    // to a state some rejecting exact op accepts, or one another CAS swaps from.
    const signatures = new Set<string>();
    for (const n of unobservedNodes) {
      const op = ops[n.op] as SearchOp;
      if (blockFrom !== null && op.kind !== "cas") continue;
      const next = effectOf(state, op);
      if (next === state) continue;
      if (!casFrom.has(stateKey(next)) && !rejecting.some((e) => stepExact(next, e).ok)) continue;
      const sig = signature(op, named);
      if (signatures.has(sig)) continue;
      signatures.add(sig);
      exact.push({ call: n, next, exact: false });
    }
    return exact;
  };

  interface Frame {
    readonly candidates: Candidate[];
    readonly nextIndex: number;
    readonly state: RegisterState;
    readonly blockFrom: { readonly state: RegisterState } | null;
    readonly chosen: Candidate;
  }
  const stack: Frame[] = [];
  let state = initial;
  let blockFrom: { readonly state: RegisterState } | null = null;
  let linearizedExact = 0;
  let options = candidates(state, blockFrom);
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
      const nextBlock: { readonly state: RegisterState } | null = candidate.exact
        ? null
        : blockFrom ?? { state };
      const key = exactKey(candidate.next);
      const freeList = cache.get(key + "f");
      const blockKey = nextBlock === null ? undefined : key + "b" + stateKey(nextBlock.state);
      const blockList = blockKey === undefined ? undefined : cache.get(blockKey);
      if (linearized.subsumed(freeList) || linearized.subsumed(blockList)) {
        linearized.flip(op);
        continue;
      }
      const own = blockKey === undefined ? freeList : blockList;
      if (own === undefined) cache.set(blockKey ?? key + "f", [linearized.unknownCopy()]);
      else own.push(linearized.unknownCopy());
      stack.push({ candidates: options, nextIndex: index, state, blockFrom, chosen: candidate });
      lift(candidate.call);
      state = candidate.next;
      blockFrom = nextBlock;
      if (candidate.exact) linearizedExact++;
      options = candidates(state, blockFrom);
      index = 0;
    } else {
      // Every way on from here failed: undo the last choice.
      const top = stack.pop();
      if (top === undefined) {
        return { verdict: "fail", steps, barrier: (ops[barrier.op] as SearchOp).id };
      }
      unlift(top.chosen.call);
      linearized.flip(top.chosen.call.op);
      if (top.chosen.exact) linearizedExact--;
      state = top.state;
      blockFrom = top.blockFrom;
      options = top.candidates;
      index = top.nextIndex;
    }
  }
  return witness(ops, stack.map((frame) => frame.chosen.call.op), steps);
}

/**
 * The outcome of a search that linearized every answered op: the ops it chose (indexes
 * into `ops`, in the order chosen) are the witness order; the others, and `leftOut`
 * (ops set aside before the search), never took effect.
 */
export function witness(
  ops: readonly SearchOp[],
  chosen: readonly number[],
  steps: number,
  leftOut: readonly OpId[] = [],
): SearchOutcome {
  const order = chosen.map((i) => (ops[i] as SearchOp).id);
  const applied = new Set(chosen);
  const notApplied = ops.filter((_op, i) => !applied.has(i)).map((op) => op.id);
  return { verdict: "ok", steps, order, notApplied: [...notApplied, ...leftOut] };
}

// ---------------------------------------------------------------------------------
// Per-key preparation, prefixes and relaxation
// ---------------------------------------------------------------------------------

/** One key's history, ready for the search and the window search. */
interface PreparedKey {
  readonly key: string;
  /** The ops the check sees (no "fail" ops, no unknown reads), in invoke order. */
  readonly ops: readonly Operation[];
  /** Per op: position of its call among all finite events. */
  readonly callPos: readonly number[];
  /** Per op: position of its return among all finite events; Infinity if unknown. */
  readonly retPos: readonly number[];
  /** How many finite events (calls, and returns of "ok" ops). */
  readonly events: number;
}

function prepareKey(key: string, keyOps: readonly Operation[]): PreparedKey {
  const ops = keyOps.filter((op) =>
    op.outcome === "ok" || (op.outcome === "unknown" && !isRead(op))
  );
  // Stable: ties in invoke time keep history order.
  const sorted = ops.map((op, i) => ({ op, i })).sort((a, b) =>
    a.op.invoke !== b.op.invoke ? a.op.invoke - b.op.invoke : a.i - b.i
  ).map((x) => x.op);
  const events: { time: number; isCall: boolean; op: number }[] = [];
  sorted.forEach((op, i) => {
    events.push({ time: op.invoke, isCall: true, op: i });
    if (op.outcome === "ok") events.push({ time: op.complete, isCall: false, op: i });
  });
  events.sort((a, b) => {
    if (a.time !== b.time) return a.time < b.time ? -1 : 1;
    if (a.isCall !== b.isCall) return a.isCall ? -1 : 1;
    return a.op - b.op;
  });
  const callPos = new Array<number>(sorted.length).fill(0);
  const retPos = new Array<number>(sorted.length).fill(Infinity);
  events.forEach((e, pos) => {
    if (e.isCall) callPos[e.op] = pos;
    else retPos[e.op] = pos;
  });
  return { key, ops: sorted, callPos, retPos, events: events.length };
}

/**
 * The search ops of a prepared key cut after `cut` finite events, with ops relaxed to
 * unobserved writes (reads dropped) when `relaxed(i)` says so or when still running at
 * the cut. `cut = prepared.events` and nothing relaxed is the full history.
 */
function searchOps(
  prepared: PreparedKey,
  cut: number,
  relaxed: (i: number) => boolean,
): SearchOp[] {
  const out: SearchOp[] = [];
  prepared.ops.forEach((op, i) => {
    if ((prepared.callPos[i] as number) >= cut) return;
    const exact = op.outcome === "ok" && (prepared.retPos[i] as number) < cut && !relaxed(i);
    if (!exact && isRead(op)) return;
    out.push({
      id: op.id,
      kind: op.kind,
      key: op.key,
      input: op.input,
      output: exact ? op.output : undefined,
      call: op.invoke,
      ret: exact && op.outcome === "ok" ? op.complete : Infinity,
    });
  });
  return out;
}

// ---------------------------------------------------------------------------------
// The public checker
// ---------------------------------------------------------------------------------

/** Options for {@link checkHistory}. */
export interface CheckOptions {
  /**
   * Steps one search may take before giving up with `"timeout"` (default 10,000,000:
   * seconds of work, far more than a healthy chaos history needs).
   */
  readonly maxSteps?: number;
  /**
   * Steps the failing-window search of one key may take in total, over all its
   * searches (default: `maxSteps`). Past it, the best window proven so far is
   * reported with `minimal: false`.
   */
  readonly windowMaxSteps?: number;
  /** Wall-clock limit per search in milliseconds (default none; steps are deterministic). */
  readonly timeLimitMs?: number;
  /** Whether to look for the smallest failing window of a failing key (default true). */
  readonly findWindow?: boolean;
  /** Keys that exist before the history starts, with their values (default: none). */
  readonly initial?: ReadonlyMap<string, Value>;
}

/**
 * The part of a non-linearizable key's history that already cannot be explained
 * (see the module documentation for how it is found and what "smallest" means).
 */
export interface FailureWindow {
  /**
   * The window: consecutive operations in invoke order (no "fail" ops or unknown
   * reads), ending at the last operation invoked before the shortest failing prefix
   * ends. Together with every earlier operation relaxed to unknown, it is not
   * linearizable.
   */
  readonly ops: OpId[];
  /**
   * A 1-minimal subset of the window: with every other operation relaxed to unknown,
   * it is not linearizable, and relaxing any one of its members makes it so.
   */
  readonly core: OpId[];
  /** The time of the event that ends the shortest failing prefix (usually a return). */
  readonly prefixEnd: number;
  /** How many of the key's checked operations the shortest failing prefix involves. */
  readonly prefixOps: number;
  /** False if a search ran out of budget, so that a smaller window may exist. */
  readonly minimal: boolean;
  /** Search steps spent finding the window. */
  readonly steps: number;
}

/** The verdict on one key. */
export interface KeyResult {
  /** The key. */
  readonly key: string;
  /** Linearizable, not, or undecided within the budget. */
  readonly ok: boolean | "timeout";
  /**
   * When ok: a witness, the ids of the operations that took effect in linearization
   * order (reads included; "fail" ops, unknown reads and `notApplied` writes excluded).
   */
  readonly linearization?: OpId[];
  /** When ok: the unknown-outcome writes that never take effect in the witness. */
  readonly notApplied?: OpId[];
  /** When not ok (and `findWindow`): the smallest failing window found. */
  readonly failure?: FailureWindow;
  /** Operations recorded on this key. */
  readonly operations: number;
  /** Operations the check used: "ok" ones and unknown writes. */
  readonly checked: number;
  /** Steps the main search took. */
  readonly steps: number;
}

/** Totals over a whole check. */
export interface CheckStats {
  /** Operations in the history. */
  readonly operations: number;
  /** Distinct keys. */
  readonly keys: number;
  /** Operations the searches used. */
  readonly checked: number;
  /** "fail" operations, dropped (they did not happen). */
  readonly failed: number;
  /** Unknown-outcome reads, dropped (they have no effect). */
  readonly unknownReads: number;
  /** Unknown-outcome writes, each either applied once after its invoke or never. */
  readonly unknownWrites: number;
  /** Search steps over all keys' main searches. */
  readonly steps: number;
  /** Search steps spent finding failing windows. */
  readonly windowSteps: number;
  /** Keys judged linearizable. */
  readonly linearizableKeys: number;
  /** Keys proven not linearizable. */
  readonly violatingKeys: number;
  /** Keys whose search ran out of budget. */
  readonly timedOutKeys: number;
}

/** The verdict on a whole history. */
export interface CheckResult {
  /** True iff every key is linearizable; false if any is not; else "timeout". */
  readonly ok: boolean | "timeout";
  /** One result per key, sorted by key. */
  readonly perKey: KeyResult[];
  /** Totals. */
  readonly stats: CheckStats;
}

/** Throws on a malformed operation: the history, not the system, would be at fault. */
function validate(ops: readonly Operation[]): void {
  const ids = new Set<OpId>();
  for (const op of ops) {
    const where = `operation ${op.id}`;
    if (ids.has(op.id)) throw new Error(`${where}: duplicate id`);
    ids.add(op.id);
    if (!Number.isFinite(op.invoke)) throw new Error(`${where}: invoke must be a finite number`);
    if (!["get", "put", "delete", "cas", "txn", "range"].includes(op.kind)) {
      throw new Error(`${where}: unknown kind ${String(op.kind)}`);
    }
    if (!["ok", "fail", "unknown"].includes(op.outcome)) {
      throw new Error(`${where}: unknown outcome ${String(op.outcome)}`);
    }
    if ((op.kind === "put" || op.kind === "cas") && typeof op.input?.value !== "string") {
      throw new Error(`${where}: a ${op.kind} needs input.value`);
    }
    if (
      op.kind === "txn" &&
      !(Array.isArray(op.input?.compares) && Array.isArray(op.input.success) &&
        Array.isArray(op.input.failure))
    ) {
      throw new Error(`${where}: a txn needs input.compares, input.success and input.failure`);
    }
    if (op.kind === "range" && !Array.isArray(op.input?.keys)) {
      throw new Error(`${where}: a range needs input.keys`);
    }
    if (op.outcome === "ok") {
      if (!Number.isFinite(op.complete) || op.complete < op.invoke) {
        throw new Error(`${where}: an "ok" operation needs complete >= invoke`);
      }
      if (op.output === undefined || op.output === null) {
        throw new Error(`${where}: an "ok" operation needs an output`);
      }
    }
  }
}

/** A search of one partition's ops (a key's register, or a group's multi-register). */
type SearchFn = (ops: readonly SearchOp[], budget: Budget) => SearchOutcome;

/**
 * The history split into independently checkable parts: single-key operations by key,
 * and each group of multi-key operations (`txn`, `range`, whose `key` names the group)
 * with every single-key operation on a key the group's operations touch. Groups that
 * share a key become one. Returns the parts by name (a key, or a group's name: the
 * smallest of its operations' `key`s) and the {@link Group} of each multi-key part.
 */
function partition(ops: readonly Operation[]): {
  byKey: Map<string, Operation[]>;
  groups: Map<string, Group>;
} {
  // Union-find over names: a multi-key op joins its group's name and every key it names.
  const parent = new Map<string, string>();
  const find = (x: string): string => {
    let root = x;
    while (parent.has(root) && parent.get(root) !== root) root = parent.get(root) as string;
    parent.set(x, root);
    return root;
  };
  const union = (a: string, b: string): void => {
    const ra = find(a);
    const rb = find(b);
    if (ra === rb) return;
    // A group's name is the root rather than a key's (keys are marked by a leading
    // NUL); of two group names, the smaller.
    const rank = (x: string) => (x.startsWith("\u0000") ? "\uffff" : "") + x;
    if (rank(ra) < rank(rb)) parent.set(rb, ra);
    else parent.set(ra, rb);
  };
  const modelKeys = new Map<string, Set<string>>(); // group name → keys its ops name
  const groupNames = new Set<string>();
  for (const op of ops) {
    if (op.kind !== "txn" && op.kind !== "range") continue;
    groupNames.add(op.key);
    for (const k of keysOf(op.kind, op.input)) union(op.key, "\u0000" + k);
  }
  const byKey = new Map<string, Operation[]>();
  const groupOf = (op: Operation): string => {
    if (isMultiKey(op)) return find(op.key);
    const root = find("\u0000" + op.key);
    return root.startsWith("\u0000") ? op.key : root;
  };
  for (const op of ops) {
    const name = groupOf(op);
    const list = byKey.get(name);
    if (list === undefined) byKey.set(name, [op]);
    else list.push(op);
  }
  for (const name of groupNames) {
    const root = find(name);
    if (!modelKeys.has(root)) modelKeys.set(root, new Set());
  }
  for (const [key] of parent) {
    if (key.startsWith("\u0000")) {
      const root = find(key);
      if (!root.startsWith("\u0000")) modelKeys.get(root)?.add(key.slice(1));
    }
  }
  const groups = new Map<string, Group>();
  for (const [name, keys] of modelKeys) groups.set(name, new Group(keys));
  return { byKey, groups };
}

/**
 * Checks a recorded KV history for linearizability, key by key (see the module
 * documentation). Deterministic for a given history and step budget.
 *
 * @throws if the history is malformed (duplicate ids, an "ok" op without output or
 * with `complete < invoke`, …).
 */
export function checkHistory(ops: readonly Operation[], options: CheckOptions = {}): CheckResult {
  validate(ops);
  const maxSteps = options.maxSteps ?? 10_000_000;
  const windowMaxSteps = options.windowMaxSteps ?? maxSteps;
  const findWindow = options.findWindow ?? true;
  const budgetFor = (steps: number): Budget => ({
    maxSteps: steps,
    deadline: options.timeLimitMs === undefined
      ? Infinity
      : performance.now() + options.timeLimitMs,
  });

  const { byKey, groups } = partition(ops);
  const keys = [...byKey.keys()].sort();

  const perKey: KeyResult[] = [];
  let steps = 0;
  let windowSteps = 0;
  for (const key of keys) {
    const keyOps = byKey.get(key) as Operation[];
    const group = groups.get(key);
    const run: SearchFn = group === undefined
      ? ((o, b) => search(o, options.initial?.get(key), b))
      : ((o, b) => searchGroup(o, group, group.keys.map((k) => options.initial?.get(k)), b));
    const prepared = prepareKey(key, keyOps);
    const full = searchOps(prepared, prepared.events, () => false);
    const outcome = run(full, budgetFor(maxSteps));
    steps += outcome.steps;
    const base = {
      key,
      operations: keyOps.length,
      checked: prepared.ops.length,
      steps: outcome.steps,
    };
    if (outcome.verdict === "ok") {
      perKey.push({
        ...base,
        ok: true,
        linearization: outcome.order,
        notApplied: outcome.notApplied,
      });
    } else if (outcome.verdict === "timeout") {
      perKey.push({ ...base, ok: "timeout" });
    } else if (!findWindow) {
      perKey.push({ ...base, ok: false });
    } else {
      const failure = smallestWindow(
        prepared,
        run,
        outcome.barrier,
        windowMaxSteps,
        budgetFor,
      );
      windowSteps += failure.steps;
      perKey.push({ ...base, ok: false, failure });
    }
  }

  const count = (f: (r: KeyResult) => boolean): number => perKey.filter(f).length;
  const violatingKeys = count((r) => r.ok === false);
  const timedOutKeys = count((r) => r.ok === "timeout");
  const stats: CheckStats = {
    operations: ops.length,
    keys: keys.length,
    checked: perKey.reduce((sum, r) => sum + r.checked, 0),
    failed: ops.filter((op) => op.outcome === "fail").length,
    unknownReads: ops.filter((op) => op.outcome === "unknown" && isRead(op)).length,
    unknownWrites: ops.filter((op) => op.outcome === "unknown" && !isRead(op)).length,
    steps,
    windowSteps,
    linearizableKeys: count((r) => r.ok === true),
    violatingKeys,
    timedOutKeys,
  };
  const ok = violatingKeys > 0 ? false : timedOutKeys > 0 ? "timeout" : true;
  return { ok, perKey, stats };
}

/**
 * The smallest failing window of a key whose full history is known not to be
 * linearizable: shortest failing prefix, then latest start, then a 1-minimal core.
 * A search that runs out of budget counts as "not proven failing", so everything
 * reported is proven; only minimality is then lost.
 */
function smallestWindow(
  prepared: PreparedKey,
  run: SearchFn,
  barrier: OpId,
  totalSteps: number,
  budgetFor: (steps: number) => Budget,
): FailureWindow {
  let spent = 0;
  let minimal = true;
  const fails = (cut: number, relaxed: (i: number) => boolean): boolean => {
    const remaining = totalSteps - spent;
    if (remaining <= 0) {
      minimal = false;
      return false;
    }
    const outcome = run(searchOps(prepared, cut, relaxed), budgetFor(remaining));
    spent += outcome.steps;
    if (outcome.verdict === "timeout") minimal = false;
    return outcome.verdict === "fail";
  };
  const none = (): boolean => false;

  // 1. The shortest failing prefix: the smallest cut in (0, events] that fails. It
  // includes the full search's furthest barrier (see SearchOutcome), and usually ends
  // right there, so gallop up from it, then binary search.
  const barrierIndex = prepared.ops.findIndex((op) => op.id === barrier);
  const barrierPos = prepared.retPos[barrierIndex] ?? 0;
  let lo = Number.isFinite(barrierPos) ? barrierPos + 1 : 1;
  let hi = prepared.events; // known to fail
  for (let step = 1; lo < hi; step *= 2) {
    const probe = Math.min(lo + step - 1, hi);
    if (probe === hi || fails(probe, none)) {
      hi = probe;
      break;
    }
    lo = probe + 1;
  }
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (fails(mid, none)) hi = mid;
    else lo = mid + 1;
  }
  const cut = hi;
  let inPrefix = 0;
  while (inPrefix < prepared.ops.length && (prepared.callPos[inPrefix] as number) < cut) {
    inPrefix++;
  }

  // 2. The latest start: the largest s such that relaxing ops [0, s) still fails, that
  // is the smallest window w = inPrefix - s. Galloping up from w = 1, then a binary
  // search: the probes relax most ops and keep few exact, which is cheap to search,
  // whereas probes halfway keep many exact ops among many relaxed ones.
  const windowFails = (w: number): boolean => w >= inPrefix || fails(cut, (i) => i < inPrefix - w);
  let wHi = 1;
  while (!windowFails(wHi)) wHi *= 2;
  let wLo = Math.floor(wHi / 2) + 1; // wHi / 2 did not fail (or wHi = 1)
  if (wHi === 1) wLo = 1;
  wHi = Math.min(wHi, inPrefix);
  while (wLo < wHi) {
    const mid = (wLo + wHi) >> 1;
    if (windowFails(mid)) wHi = mid;
    else wLo = mid + 1;
  }
  const start = inPrefix - wHi;

  // 3. A 1-minimal core: one pass, relaxing each window op if the rest still fails.
  const relaxedInWindow = new Set<number>();
  for (let i = start; i < inPrefix; i++) {
    relaxedInWindow.add(i);
    if (!fails(cut, (j) => j < start || relaxedInWindow.has(j))) relaxedInWindow.delete(i);
  }

  const window: OpId[] = [];
  const core: OpId[] = [];
  for (let i = start; i < inPrefix; i++) {
    const id = (prepared.ops[i] as Operation).id;
    window.push(id);
    if (!relaxedInWindow.has(i)) core.push(id);
  }
  return {
    ops: window,
    core,
    prefixEnd: prefixEndTime(prepared, cut),
    prefixOps: inPrefix,
    minimal,
    steps: spent,
  };
}

/** The time of the `cut`-th finite event (1-based) of a prepared key. */
function prefixEndTime(prepared: PreparedKey, cut: number): number {
  const pos = cut - 1;
  for (let i = 0; i < prepared.ops.length; i++) {
    const op = prepared.ops[i] as Operation;
    if (prepared.callPos[i] === pos) return op.invoke;
    if (prepared.retPos[i] === pos && op.outcome === "ok") return op.complete;
  }
  return NaN;
}
