/**
 * An in-process network with a virtual clock, for the simulated cluster.
 *
 * Time is a number of virtual milliseconds. Every message sent is scheduled for
 * delivery at `now + delay`, the delay drawn from the network's own seeded PRNG;
 * the event queue is ordered by delivery time, then by the order of sending, so
 * a run is a pure function of its seed. Faults are knobs, all decided by the
 * same PRNG: drop, duplicate, extra delay (which reorders), and link cuts
 * (symmetric partitions, one-way cuts, isolation). Messages to a crashed node are
 * dropped.
 *
 * A link that is cut drops a message both when it is sent and when it would be
 * delivered: a partition also swallows what was in flight across it.
 *
 * A message due at a node that is down is dropped, or, with probability
 * `holdForDown`, kept and tried again later, until `maxHold` ms after it was
 * sent: the runtime's transport keeps a queue per peer and a Send to a dead peer
 * can hang for up to a second while more messages queue behind it, so a node that
 * restarts quickly can receive messages addressed to its previous incarnation.
 *
 * A stalled link (a TCP connection that stops moving, then recovers within the
 * retransmission timeout) loses nothing: what is sent on it, or due on it, waits,
 * and arrives in one burst, in order, when the link is released.
 *
 * Every message that is lost, for whatever reason, is shown to the drop hooks
 * ({@link SimNetwork.onDrop}): the cluster tells a leader that its snapshot did
 * not arrive, as the runtime's transport will.
 *
 * @module
 */

import { type Random, randomInt } from "../../../src/raft/rand.ts";
import type { Message, NodeId } from "../../../src/raft/types.ts";
import type { Trace } from "./trace.ts";

/** The probabilistic fault knobs and the delay range. Probabilities are in [0, 1]. */
export interface NetworkFaults {
  /** The smallest delivery delay, in virtual ms (inclusive). */
  readonly minDelay: number;
  /** The largest delivery delay, in virtual ms (inclusive). */
  readonly maxDelay: number;
  /** Probability that a sent message is lost. */
  readonly drop: number;
  /** Probability that a sent message is delivered twice (each copy with its own delay). */
  readonly duplicate: number;
  /** Probability that a message gets an extra delay, which reorders it behind later ones. */
  readonly reorder: number;
  /** The largest extra delay, in virtual ms (inclusive). */
  readonly maxExtraDelay: number;
  /** Probability that a message due at a down node is kept for a later try instead of dropped. */
  readonly holdForDown: number;
  /** How long after sending a held message is given up, in virtual ms. */
  readonly maxHold: number;
}

/** A clean network: delays of 1 to 10 ms, no faults. */
export const CLEAN_FAULTS: NetworkFaults = {
  minDelay: 1,
  maxDelay: 10,
  drop: 0,
  duplicate: 0,
  reorder: 0,
  maxExtraDelay: 60,
  holdForDown: 0,
  maxHold: 1000,
};

/** Why a message did not arrive. */
export type DropReason = "random" | "cut" | "down" | "cleared";

/** How many messages met each fate, since the network was made. */
export interface NetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  delayed: number;
  /** Tries at a down node postponed (a message may be postponed several times). */
  held: number;
}

interface Event {
  readonly time: number;
  readonly seq: number;
  readonly message: Message;
  /** When the message was sent. */
  readonly sentAt: number;
}

/** True when event `a` comes before event `b`: earlier time, then earlier send. */
function before(a: Event, b: Event): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}

/** A binary min-heap of events. */
class EventQueue {
  #heap: Event[] = [];

  get size(): number {
    return this.#heap.length;
  }

  peek(): Event | undefined {
    return this.#heap[0];
  }

  push(e: Event): void {
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  pop(): Event | undefined {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }

  clear(): void {
    this.#heap = [];
  }
}

/** Packs a directed link into one number (ids are small positive integers). */
function linkKey(from: NodeId, to: NodeId): number {
  return from * 65536 + to;
}

/** The simulated network. The cluster tells it who is up and delivers what it hands back. */
export class SimNetwork {
  #random: Random;
  #faults: NetworkFaults = CLEAN_FAULTS;
  #queue = new EventQueue();
  #seq = 0;
  #now = 0;
  #cut = new Set<number>();
  /** Stalled links -> the messages waiting on them, in order. */
  #stalled = new Map<number, Message[]>();
  #isUp: (id: NodeId) => boolean;
  #trace: Trace;
  /** Message counters (read-only for callers). */
  readonly stats: NetworkStats = {
    sent: 0,
    delivered: 0,
    dropped: 0,
    duplicated: 0,
    delayed: 0,
    held: 0,
  };
  #taps = new Set<(m: Message) => void>();
  #dropHooks = new Set<(m: Message, reason: DropReason) => void>();

  /**
   * @param random the network's own PRNG: delays and faults come only from it
   * @param isUp whether a node is running: messages to a down node are dropped
   * @param trace where deliveries, drops and fault changes are recorded
   */
  constructor(random: Random, isUp: (id: NodeId) => boolean, trace: Trace) {
    this.#random = random;
    this.#isUp = isUp;
    this.#trace = trace;
  }

  /** The virtual time, in ms. */
  get now(): number {
    return this.#now;
  }

  /** How many messages are in flight. */
  get inFlight(): number {
    return this.#queue.size;
  }

  /** The delivery time of the next message in flight, or undefined when none is. */
  nextDue(): number | undefined {
    return this.#queue.peek()?.time;
  }

  /** The current fault knobs. */
  get faults(): NetworkFaults {
    return this.#faults;
  }

  /** Changes some fault knobs; the others keep their values. */
  setFaults(faults: Partial<NetworkFaults>): void {
    const f = { ...this.#faults, ...faults };
    if (!(f.minDelay >= 0 && f.maxDelay >= f.minDelay && f.maxExtraDelay >= 0)) {
      throw new Error(
        `Cannot use delays min ${f.minDelay} max ${f.maxDelay} extra ${f.maxExtraDelay}`,
      );
    }
    for (const k of ["drop", "duplicate", "reorder", "holdForDown"] as const) {
      if (!(f[k] >= 0 && f[k] <= 1)) throw new Error(`Cannot use ${k} probability ${f[k]}`);
    }
    this.#faults = f;
    this.#trace.add(
      this.#now,
      `net faults drop:${f.drop} dup:${f.duplicate} reorder:${f.reorder} hold:${f.holdForDown}` +
        ` delay:${f.minDelay}-${f.maxDelay}+${f.maxExtraDelay}`,
    );
  }

  /** Whether messages from `from` to `to` currently get through the link. */
  connected(from: NodeId, to: NodeId): boolean {
    return !this.#cut.has(linkKey(from, to));
  }

  /**
   * Cuts every link between nodes of different groups, both directions:
   * `partition([1, 2], [3, 4, 5])`. Adds to the cuts already in place; {@link heal}
   * removes them all.
   */
  partition(...groups: readonly (readonly NodeId[])[]): void {
    for (let i = 0; i < groups.length; i++) {
      for (let j = 0; j < groups.length; j++) {
        if (i === j) continue;
        for (const a of groups[i]!) for (const b of groups[j]!) this.#cut.add(linkKey(a, b));
      }
    }
    this.#trace.add(this.#now, `net partition ${groups.map((g) => `[${g.join(",")}]`).join(" ")}`);
  }

  /** Cuts one direction only: messages from `from` to `to` are dropped, replies still flow. */
  cut(from: NodeId, to: NodeId): void {
    this.#cut.add(linkKey(from, to));
    this.#trace.add(this.#now, `net cut ${from}->${to}`);
  }

  /** Cuts `id` off from every node in `all` (both directions). */
  isolate(id: NodeId, all: readonly NodeId[]): void {
    for (const other of all) {
      if (other === id) continue;
      this.#cut.add(linkKey(id, other));
      this.#cut.add(linkKey(other, id));
    }
    this.#trace.add(this.#now, `net isolate ${id}`);
  }

  /** Stalls the link from `from` to `to`: messages on it wait until {@link release}. */
  stall(from: NodeId, to: NodeId): void {
    const k = linkKey(from, to);
    if (!this.#stalled.has(k)) this.#stalled.set(k, []);
    this.#trace.add(this.#now, `net stall ${from}->${to}`);
  }

  /** Whether any link is stalled. */
  get anyStalled(): boolean {
    return this.#stalled.size > 0;
  }

  /** Releases every stalled link: what waited on each arrives 1 ms from now, in order. */
  release(): void {
    for (const held of this.#stalled.values()) {
      for (const m of held) {
        this.#queue.push({ time: this.#now + 1, seq: this.#seq++, message: m, sentAt: this.#now });
      }
    }
    this.#stalled.clear();
    this.#trace.add(this.#now, "net release stalled links");
  }

  /** Restores every link, releasing stalled ones (the probabilistic knobs are left as they are). */
  heal(): void {
    this.#cut.clear();
    this.release();
    this.#trace.add(this.#now, "net heal");
  }

  /**
   * Calls `fn` with every message sent from now on, before any fault applies (so
   * tests can count what the nodes send). Returns a function that stops it.
   */
  tap(fn: (m: Message) => void): () => void {
    this.#taps.add(fn);
    return () => this.#taps.delete(fn);
  }

  /**
   * Calls `fn` with every message lost from now on (dropped at random, by a cut,
   * at a down node, or discarded in flight), once per copy. Returns a function
   * that stops it. `fn` must not send on this network.
   */
  onDrop(fn: (m: Message, reason: DropReason) => void): () => void {
    this.#dropHooks.add(fn);
    return () => this.#dropHooks.delete(fn);
  }

  /** Hands a message to the network: it is dropped, or scheduled once or twice. */
  send(m: Message): void {
    this.stats.sent++;
    for (const fn of this.#taps) fn(m);
    const f = this.#faults;
    if (f.drop > 0 && this.#random() < f.drop) {
      this.#dropped(m, "random");
      return;
    }
    if (!this.connected(m.from, m.to)) {
      this.#dropped(m, "cut");
      return;
    }
    this.#schedule(m);
    if (f.duplicate > 0 && this.#random() < f.duplicate) {
      this.stats.duplicated++;
      this.#trace.add(this.#now, "dup", m);
      this.#schedule(m);
    }
  }

  #schedule(m: Message): void {
    const f = this.#faults;
    let delay = randomInt(this.#random, f.minDelay, f.maxDelay + 1);
    if (f.reorder > 0 && this.#random() < f.reorder) {
      this.stats.delayed++;
      delay += randomInt(this.#random, 0, f.maxExtraDelay + 1);
    }
    this.#queue.push({ time: this.#now + delay, seq: this.#seq++, message: m, sentAt: this.#now });
  }

  #dropped(m: Message, reason: DropReason): void {
    this.stats.dropped++;
    this.#trace.add(this.#now, `drop(${reason})`, m);
    for (const fn of this.#dropHooks) fn(m, reason);
  }

  /**
   * Delivers, in order, every message due at or before `time`, advancing the clock
   * to each one's delivery time, then sets the clock to `time`. `deliver` may send
   * more messages; those due by `time` are delivered in the same call.
   */
  advanceTo(time: number, deliver: (m: Message) => void): void {
    if (time < this.#now) {
      throw new Error(`Cannot move the clock back from ${this.#now} to ${time}`);
    }
    for (;;) {
      const next = this.#queue.peek();
      if (next === undefined || next.time > time) break;
      this.#queue.pop();
      this.#now = next.time;
      const m = next.message;
      const stalled = this.#stalled.get(linkKey(m.from, m.to));
      if (stalled !== undefined) {
        stalled.push(m);
      } else if (!this.connected(m.from, m.to)) {
        this.#dropped(m, "cut");
      } else if (!this.#isUp(m.to)) {
        const f = this.#faults;
        const retryAt = this.#now + randomInt(this.#random, 10, 101);
        if (
          f.holdForDown > 0 && retryAt <= next.sentAt + f.maxHold && this.#random() < f.holdForDown
        ) {
          this.stats.held++;
          this.#queue.push({ ...next, time: retryAt, seq: this.#seq++ });
        } else {
          this.#dropped(m, "down");
        }
      } else {
        this.stats.delivered++;
        this.#trace.add(this.#now, "deliver", m);
        deliver(m);
      }
    }
    this.#now = time;
  }

  /** Forgets every message in flight (counted as dropped). */
  clearInFlight(): void {
    this.#trace.add(this.#now, "net in-flight messages discarded");
    for (let e = this.#queue.pop(); e !== undefined; e = this.#queue.pop()) {
      this.#dropped(e.message, "cleared");
    }
  }
}
