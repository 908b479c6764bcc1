/**
 * Majority math, checked against a naive definition over seeded random inputs
 * (as etcd-io/raft's quorum/quick_test.go does).
 */
import assert from "node:assert/strict";
import { committedIndex, quorumSize, voteResult } from "../../src/raft/quorum/majority.ts";
import { randomInt, seededRandom } from "../../src/raft/rand.ts";

/** The largest index i such that a majority has match >= i, by trying every i. */
function naiveCommitted(matches: number[]): number {
  let best = 0;
  for (const i of matches) {
    if (matches.filter((m) => m >= i).length >= quorumSize(matches.length) && i > best) best = i;
  }
  return best;
}

Deno.test("committedIndex equals the naive majority definition on 2,000 random inputs", () => {
  const random = seededRandom(7);
  for (let trial = 0; trial < 2000; trial++) {
    const n = randomInt(random, 1, 8);
    const voters = Array.from({ length: n }, (_, i) => i + 1);
    const matches = voters.map(() => randomInt(random, 0, 20));
    assert.equal(
      committedIndex(voters, (id) => matches[id - 1]!),
      naiveCommitted(matches),
      `matches ${matches.join(",")}`,
    );
  }
});

Deno.test("an election is won by a majority, lost when a majority can no longer grant", () => {
  const voters = [1, 2, 3, 4, 5];
  const v = (entries: [number, boolean][]) => voteResult(voters, new Map(entries));
  assert.equal(v([[1, true], [2, true]]), "pending");
  assert.equal(v([[1, true], [2, true], [3, true]]), "won");
  assert.equal(v([[1, true], [2, false], [3, false]]), "pending");
  assert.equal(v([[1, true], [2, false], [3, false], [4, false]]), "lost");
  assert.equal(voteResult([1], new Map([[1, true]])), "won", "a single voter elects itself");
});
