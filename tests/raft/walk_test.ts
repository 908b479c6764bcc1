/**
 * Random walks over the runtime's interleavings with the network as a bag (see
 * sim/walk.ts): every safety property holds on every walk, and the walks find,
 * with no scenario written for it, the bug of issue 8 (a candidate that wins on
 * grants addressed to an earlier incarnation before its own vote is durable),
 * which the timed runs reach too rarely to see.
 *
 * Environment:
 * - `WALK_SEED=123` replays walk 123 and prints its trace (the time column
 *   counts steps); add `WALK_MUTANT=1` to replay it with the bug put back;
 * - `WALK_SEEDS=20000` runs walks 1..20000 (default 5000).
 *
 * @module
 */

import assert from "node:assert/strict";
import { Raft } from "../../src/raft/raft.ts";
import type { Message } from "../../src/raft/types.ts";
import { InvariantViolation } from "./sim/invariants.ts";
import { Walk, type WalkStats } from "./sim/walk.ts";

/** Actions per walk: enough for several elections, crashes and restarts. */
const STEPS = 600;

/**
 * How many walks the mutant's search may take before the walks are judged blind to
 * it. The walks catch it about once in 3,300 (6 in walks 1..20,000, the first at
 * 1,538), so 60,000 leave a miss at about e^-18 should the core change the walks.
 */
const MUTANT_WALKS = 60_000;

function replayCommand(seed: number): string {
  return `WALK_SEED=${seed} deno test -A tests/raft/walk_test.ts`;
}

/** Runs walk `seed`; on failure, throws with the seed, the replay command and the trace. */
function runWalk(seed: number, traceCapacity: number): WalkStats {
  const walk = new Walk({ seed, steps: STEPS, traceCapacity });
  try {
    return walk.run();
  } catch (e) {
    const what = e instanceof InvariantViolation ? e.message : String(e);
    throw new WalkFailure(
      seed,
      e,
      `walk ${seed} failed: ${what}\nreplay: ${replayCommand(seed)}\n` +
        `nodes:\n${walk.describe()}\nlast steps:\n${walk.trace.dump(60)}`,
    );
  }
}

class WalkFailure extends Error {
  override name = "WalkFailure";
  constructor(readonly seed: number, cause: unknown, readonly report: string) {
    super(report, { cause });
  }
}

/** Sums for the summary line: how often the walks hit the interleavings they exist for. */
function summary(all: readonly WalkStats[], ms: number): string {
  const sum = (k: keyof WalkStats) => all.reduce((s, r) => s + Number(r[k]), 0);
  return `${all.length} walks in ${(ms / 1000).toFixed(1)} s: ${sum("delivered")} messages` +
    ` delivered (${sum("redelivered")} duplicates, ${sum("acrossRestart")} to a node restarted` +
    ` since they were sent, ${sum("steppedBeforeReady")} stepped before a waiting Ready was` +
    ` taken, ${sum("steppedDuringWrite")} during a write), ${sum("crashes")} crashes,` +
    ` ${sum("leaderTerms")} leader terms, ${sum("committed")} entries committed`;
}

/**
 * Puts the bug of issue 8 back: a majority of peers' grants is a win even while
 * this node's vote for itself (its new term) is not yet on its disk. Returns the
 * function that takes it out again.
 */
function injectEarlyWin(): () => void {
  const pollVotes = Raft.prototype.pollVotes;
  Raft.prototype.pollVotes = function (this: Raft, m: Message): void {
    if (!m.reject && this.role === "candidate" && this.trk.votes.get(this.id) !== true) {
      this.trk.recordVote(m.from, true);
      if (this.trk.tallyVotes().result === "won") this.trk.recordVote(this.id, true);
    }
    pollVotes.call(this, m);
  };
  return () => {
    Raft.prototype.pollVotes = pollVotes;
  };
}

const onlySeed = Deno.env.get("WALK_SEED");

if (onlySeed !== undefined) {
  Deno.test(`walk: replay walk ${onlySeed}`, () => {
    const seed = Number(onlySeed);
    assert.ok(Number.isInteger(seed), `WALK_SEED must be an integer, got "${onlySeed}"`);
    const walk = new Walk({ seed, steps: STEPS, traceCapacity: 1_000_000 });
    const restore = Deno.env.get("WALK_MUTANT") === "1" ? injectEarlyWin() : () => {};
    try {
      walk.run();
    } finally {
      restore();
      console.log(walk.trace.dump());
    }
  });
} else {
  Deno.test("walk: every safety property holds on every random walk", () => {
    const count = Number(Deno.env.get("WALK_SEEDS") ?? "5000");
    const started = performance.now();
    const all: WalkStats[] = [];
    for (let seed = 1; seed <= count; seed++) all.push(runWalk(seed, 200));
    console.log(summary(all, performance.now() - started));
  });

  Deno.test("walk: the walks catch a candidate that wins before its own vote is durable", () => {
    const restore = injectEarlyWin();
    let caught: WalkFailure | undefined;
    try {
      for (let seed = 1; seed <= MUTANT_WALKS && caught === undefined; seed++) {
        try {
          runWalk(seed, 200);
        } catch (e) {
          if (!(e instanceof WalkFailure)) throw e;
          caught = e;
        }
      }
    } finally {
      restore();
    }
    assert.ok(caught !== undefined, `no walk in 1..${MUTANT_WALKS} caught the bug`);
    const cause = caught.cause;
    assert.ok(
      cause instanceof InvariantViolation && cause.property === "Leader Term Durable",
      `walk ${caught.seed} failed, but not on Leader Term Durable:\n${caught.report}`,
    );
    console.log(`caught at walk ${caught.seed}: ${cause.message}`);
  });
}
