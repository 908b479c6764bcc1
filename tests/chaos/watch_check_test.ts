/**
 * The chaos watch check on hand-made event streams: a good one passes, and each kind
 * of bad stream (a missing acknowledged write, a duplicate, events out of order, a write
 * delivered twice at two indexes, an event for a write that never happened, a Txn's put
 * missing) is reported.
 *
 * @module
 */

import assert from "node:assert/strict";
import { checkWatchEvents, type SeenEvent } from "./watch_check.ts";
import type { HistoryOp } from "./clients.ts";

/** Acknowledged puts k0=a at 5 and k1=b at 6, a Txn at 8 (k0=c, k1=d), a failed put. */
const history: HistoryOp[] = [
  {
    id: 1,
    client: 1,
    key: "k0",
    kind: "put",
    input: { value: "a" },
    invoke: 0,
    complete: 1,
    outcome: "ok",
    output: { index: 5 },
  },
  {
    id: 2,
    client: 2,
    key: "k1",
    kind: "put",
    input: { value: "b" },
    invoke: 0,
    complete: 1,
    outcome: "ok",
    output: { index: 6 },
  },
  {
    id: 3,
    client: 3,
    key: "t*",
    kind: "txn",
    input: {
      compares: [],
      success: [{ op: "put", key: "k0", value: "c" }, { op: "put", key: "k1", value: "d" }],
      failure: [],
    },
    invoke: 2,
    complete: 3,
    outcome: "ok",
    output: { succeeded: true, gets: [], index: 8 },
  },
  {
    id: 4,
    client: 4,
    key: "k2",
    kind: "put",
    input: { value: "never" },
    invoke: 2,
    complete: 3,
    outcome: "fail",
    error: "InvalidArgument",
  },
  {
    id: 5,
    client: 4,
    key: "k2",
    kind: "delete",
    invoke: 4,
    complete: 5,
    outcome: "unknown",
    error: "Unavailable",
  },
];

const put = (key: string, value: string, index: number): SeenEvent => ({
  kind: "put",
  key,
  value,
  index: BigInt(index),
});

const good: SeenEvent[] = [
  put("k0", "a", 5),
  put("k1", "b", 6),
  { kind: "delete", key: "k2", value: "", index: 7n },
  put("k0", "c", 8),
  put("k1", "d", 8),
];

function problems(events: SeenEvent[]): string[] {
  return checkWatchEvents(events, 1n, 10n, history).problems;
}

Deno.test("watch check: a good stream passes", () => {
  const r = checkWatchEvents(good, 1n, 10n, history);
  assert.deepEqual(r.problems, []);
  assert.equal(r.checked, 4); // two puts and the Txn's two
});

Deno.test("watch check: bad streams are reported", async (t) => {
  await t.step("an acknowledged put that never came", () => {
    const p = problems(good.filter((e) => e.index !== 6n));
    assert.equal(p.length, 1);
    assert.match(p[0]!, /acknowledged put of k1 at index 6 never came/);
  });

  await t.step("a Txn's put that never came (torn)", () => {
    const p = problems(good.filter((e) => !(e.index === 8n && e.key === "k1")));
    assert.match(p.join("\n"), /acknowledged put of k1 at index 8 never came/);
  });

  await t.step("the same change delivered twice", () => {
    const p = problems([...good.slice(0, 2), put("k1", "b", 6), ...good.slice(2)]);
    assert.match(p.join("\n"), /change of k1 at index 6 came twice/);
  });

  await t.step("events out of log order", () => {
    const p = problems([good[1]!, good[0]!, ...good.slice(2)]);
    assert.match(p.join("\n"), /out of log order/);
  });

  await t.step("a write applied twice, at two indexes", () => {
    const p = problems([...good, put("k0", "a", 9)]);
    assert.match(p.join("\n"), /"a" was put at index 5 and again at 9/);
  });

  await t.step("an event for a write that did not happen", () => {
    const p = problems([...good, put("k2", "never", 9)]);
    assert.match(p.join("\n"), /put of k2="never" at index 9 that no write made/);
    const q = problems([...good, { kind: "delete", key: "k0", value: "", index: 9n }]);
    assert.match(q.join("\n"), /delete of k0 at index 9 that no write made/);
  });

  await t.step("an acknowledged put delivered with another value", () => {
    const p = problems([put("k0", "c", 5), ...good.slice(1)]);
    assert.match(p.join("\n"), /put of k0 at index 5 came with another value/);
  });
});
