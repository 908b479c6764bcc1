/**
 * The event list of Wing & Gong's linearizability search, shared by the single-key
 * search ({@link import("./linearizability.ts")}) and the multi-register one
 * ({@link import("./multi_register.ts")}).
 *
 * Every operation has a call event, and an operation with a known outcome also a
 * return event; an unobserved operation (an unknown write) has none, its return being
 * at +infinity as in Knossos and Porcupine. The events are sorted by time into a doubly
 * linked list behind a sentinel head: at equal times calls come before returns (an op
 * invoked in the same millisecond another completed counts as concurrent with it),
 * then ops in their given order (invoke order), so the same ops always give the same
 * list. The ops that may be linearized next are the calls before the first return
 * still in the list; linearizing one lifts its events out, and backtracking puts them
 * back, in the reverse order (Knuth's dancing links: a lifted node keeps its own
 * links, so relinking it in LIFO order restores the list exactly).
 *
 * @module
 */

/** What the event list needs to know of an operation. */
export interface TimedOp {
  /** When it was invoked. */
  readonly call: number;
  /** When it returned (unused when `output` is undefined). */
  readonly ret: number;
  /** Undefined when its outcome is not observed: it then has no return event. */
  readonly output: unknown;
}

/** A node of the event list: a call, or the return of an exact operation. */
export interface EventNode {
  /** Index into the search's op array (-1 for the head). */
  readonly op: number;
  readonly isCall: boolean;
  /** For a call of an exact op: its return node; null for an unobserved op (no return). */
  match: EventNode | null;
  /** Position in the sorted event list (-1 for the head). */
  pos: number;
  prev: EventNode | null;
  next: EventNode | null;
}

/** The sorted event list of a search, and the moves the search makes on it. */
export interface EventList {
  /** The sentinel before the first event; `head.next` is the first event still listed. */
  readonly head: EventNode;
  /** Takes an op's call (and its return, if any) out of the list: the op is linearized. */
  lift(call: EventNode): void;
  /** Puts back what the last {@link lift} not yet undone took out (LIFO order only). */
  unlift(call: EventNode): void;
}

/** Builds the event list of `ops` (see the module documentation). */
export function buildEventList(ops: readonly TimedOp[]): EventList {
  const nodes: EventNode[] = [];
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as TimedOp;
    const call: EventNode = { op: i, isCall: true, match: null, pos: -1, prev: null, next: null };
    nodes.push(call);
    if (op.output !== undefined) {
      call.match = { op: i, isCall: false, match: null, pos: -1, prev: null, next: null };
      nodes.push(call.match);
    }
  }
  const time = (e: EventNode): number => {
    const op = ops[e.op] as TimedOp;
    return e.isCall ? op.call : op.ret;
  };
  nodes.sort((a, b) => {
    const ta = time(a);
    const tb = time(b);
    if (ta !== tb) return ta < tb ? -1 : 1;
    if (a.isCall !== b.isCall) return a.isCall ? -1 : 1;
    return a.op - b.op;
  });
  const head: EventNode = { op: -1, isCall: false, match: null, pos: -1, prev: null, next: null };
  let prev = head;
  for (const [pos, node] of nodes.entries()) {
    node.pos = pos;
    prev.next = node;
    node.prev = prev;
    prev = node;
  }

  const unlink = (node: EventNode): void => {
    (node.prev as EventNode).next = node.next;
    if (node.next !== null) node.next.prev = node.prev;
  };
  const relink = (node: EventNode): void => {
    (node.prev as EventNode).next = node;
    if (node.next !== null) node.next.prev = node;
  };
  return {
    head,
    lift(call: EventNode): void {
      unlink(call);
      if (call.match !== null) unlink(call.match);
    },
    unlift(call: EventNode): void {
      if (call.match !== null) relink(call.match);
      relink(call);
    },
  };
}
