/**
 * Empty appends (a commit index only, or a probe) wait a moment on their way to a
 * peer, and a newer append to that peer overtakes them: at one put in flight the
 * next put's append carries the commit index the empty one would have, and the
 * empty one and its acknowledgement are never sent. Everything else goes at once.
 */
import assert from "node:assert/strict";
import { type Entry, type Message, message } from "../../src/raft/types.ts";
import { HeldAppends, type HoldTimers, isEmptyAppend } from "../../src/server/held_appends.ts";

/** Timers the test fires by hand: no clock, no waiting. */
class ManualTimers implements HoldTimers {
  #next = 1;
  readonly pending = new Map<number, () => void>();
  set(fn: () => void): unknown {
    const id = this.#next++;
    this.pending.set(id, fn);
    return id;
  }
  clear(id: unknown): void {
    this.pending.delete(id as number);
  }
  /** Fires every timer set and not cleared. */
  fireAll(): void {
    const fns = [...this.pending.values()];
    this.pending.clear();
    for (const fn of fns) fn();
  }
}

function entry(index: number): Entry {
  return { term: 1, index, type: "normal", data: new Uint8Array([index]) };
}

/** The leader's empty append to `to`, carrying `commit`. */
function empty(to: number, commit: number, index = commit): Message {
  return message({ type: "app", from: 1, to, term: 1, index, logTerm: 1, commit });
}

/** The leader's append of entry `index` to `to`. */
function withEntry(to: number, index: number, commit: number): Message {
  return message({
    type: "app",
    from: 1,
    to,
    term: 1,
    index: index - 1,
    logTerm: 1,
    entries: [entry(index)],
    commit,
  });
}

function setup() {
  const timers = new ManualTimers();
  const released: Message[] = [];
  const held = new HeldAppends((m) => released.push(m), 10, timers);
  return { timers, released, held };
}

Deno.test("the empty append that carries a new commit index is overtaken by the next put's append: only that one goes, with the newer commit index", () => {
  const { timers, released, held } = setup();
  // Put 5 committed: the core tells follower 2 with an empty append.
  assert.deepStrictEqual(held.offer(empty(2, 5)), []);
  assert.equal(held.size, 1);
  // Put 6 arrives before the hold ends: its append goes at once and carries commit 5.
  const next = withEntry(2, 6, 5);
  assert.deepStrictEqual(held.offer(next), [next]);
  assert.equal(held.overtaken, 1);
  assert.equal(held.size, 0);
  timers.fireAll();
  assert.deepStrictEqual(released, [], "the overtaken empty append was sent after all");
});

Deno.test("an empty append that nothing overtakes is only late: it goes when its hold ends", () => {
  const { timers, released, held } = setup();
  const last = empty(2, 7);
  assert.deepStrictEqual(held.offer(last), []);
  assert.deepStrictEqual(released, []);
  timers.fireAll();
  assert.deepStrictEqual(released, [last]);
  assert.equal(held.size, 0);
  assert.equal(held.overtaken, 0);
});

Deno.test("a heartbeat or a vote to the peer lets the held append go first, so the peer sees the core's order", () => {
  const { timers, released, held } = setup();
  const commit = empty(2, 5);
  held.offer(commit);
  const hb = message({ type: "heartbeat", from: 1, to: 2, term: 1, commit: 5 });
  assert.deepStrictEqual(held.offer(hb), [commit, hb]);
  timers.fireAll();
  assert.deepStrictEqual(released, [], "the append went with the heartbeat, not again");
});

Deno.test("a newer empty append replaces the held one, and each peer has its own", () => {
  const { timers, released, held } = setup();
  held.offer(empty(2, 5));
  held.offer(empty(3, 5));
  const newer = empty(2, 6);
  held.offer(newer);
  assert.equal(held.size, 2);
  assert.equal(held.overtaken, 1);
  timers.fireAll();
  assert.deepStrictEqual(
    released.map((m) => [m.to, m.commit]).sort((a, b) => a[0]! - b[0]!),
    [[2, 6], [3, 5]],
  );
});

Deno.test("acknowledgements, votes, heartbeats and appends with entries are never held", () => {
  const { held } = setup();
  const never = [
    message({ type: "app_resp", from: 2, to: 1, term: 1, index: 5 }),
    message({ type: "vote", from: 1, to: 2, term: 2, index: 5, logTerm: 1 }),
    message({ type: "vote_resp", from: 2, to: 1, term: 2 }),
    message({ type: "heartbeat", from: 1, to: 2, term: 1 }),
    message({ type: "heartbeat_resp", from: 2, to: 1, term: 1 }),
    withEntry(2, 6, 5),
  ];
  for (const m of never) {
    assert.equal(isEmptyAppend(m), false, m.type);
    assert.deepStrictEqual(held.offer(m), [m], `${m.type} was held`);
  }
  assert.equal(held.size, 0);
});

Deno.test("the held append of a peer no longer dialed, or of a closed transport, is never sent", () => {
  const { timers, released, held } = setup();
  held.offer(empty(2, 5));
  held.offer(empty(3, 5));
  held.drop(2);
  assert.equal(held.size, 1);
  held.clear();
  assert.equal(held.size, 0);
  timers.fireAll();
  assert.deepStrictEqual(released, []);
});

Deno.test("a hold of 0 holds nothing: every empty append goes at once, in order", () => {
  const timers = new ManualTimers();
  const held = new HeldAppends(() => assert.fail("nothing is released later"), 0, timers);
  const a = empty(2, 5);
  const b = withEntry(2, 6, 5);
  assert.deepStrictEqual(held.offer(a), [a]);
  assert.deepStrictEqual(held.offer(b), [b]);
  assert.equal(held.size, 0);
  assert.equal(timers.pending.size, 0);
});
