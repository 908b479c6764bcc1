/** Joint quorums (dissertation §4.3): both majorities must agree, checked against a naive count. */
import assert from "node:assert/strict";
import { jointCommittedIndex, jointVoteResult } from "../../src/raft/quorum/joint.ts";
import { randomInt, seededRandom } from "../../src/raft/rand.ts";

Deno.test("a joint configuration commits what a majority of each half holds", () => {
  const match = new Map([[1, 10], [2, 9], [3, 3], [4, 2], [5, 1]]);
  const m = (id: number) => match.get(id) ?? 0;
  assert.equal(jointCommittedIndex({ incoming: [1, 2, 3], outgoing: [] }, m), 9);
  assert.equal(jointCommittedIndex({ incoming: [3, 4, 5], outgoing: [1, 2, 3] }, m), 2);
  assert.equal(jointCommittedIndex({ incoming: [], outgoing: [] }, m), 0);
});

Deno.test("a joint election is won only when both halves are won, lost when either is lost", () => {
  const v = (entries: [number, boolean][]) => new Map(entries);
  const c = { incoming: [1, 2, 3], outgoing: [3, 4, 5] };
  assert.equal(jointVoteResult(c, v([[1, true], [2, true]])), "pending");
  assert.equal(jointVoteResult(c, v([[1, true], [2, true], [3, true]])), "pending");
  assert.equal(jointVoteResult(c, v([[1, true], [3, true], [4, true]])), "won");
  assert.equal(jointVoteResult(c, v([[1, true], [2, true], [4, false], [5, false]])), "lost");
  assert.equal(jointVoteResult({ incoming: [1], outgoing: [] }, v([[1, true]])), "won");
});

Deno.test("joint commit index equals the naive answer: the largest index both halves have a majority at", () => {
  const rng = seededRandom(7);
  for (let run = 0; run < 500; run++) {
    const ids = [1, 2, 3, 4, 5, 6, 7];
    const pick = () => ids.filter(() => rng() < 0.5);
    const incoming = pick();
    const outgoing = rng() < 0.5 ? [] : pick();
    if (incoming.length === 0) continue;
    const match = new Map(ids.map((id) => [id, randomInt(rng, 0, 20)]));
    const m = (id: number) => match.get(id)!;
    let naive = 0;
    for (let i = 0; i <= 20; i++) {
      const maj = (xs: number[]) =>
        xs.length === 0 || xs.filter((id) => m(id) >= i).length * 2 > xs.length;
      if (maj(incoming) && maj(outgoing)) naive = i;
    }
    assert.equal(
      jointCommittedIndex({ incoming, outgoing }, m),
      naive,
      JSON.stringify({ incoming, outgoing, match: [...match] }),
    );
  }
});
