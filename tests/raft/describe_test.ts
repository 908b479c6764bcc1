/**
 * One-line renderings of messages: deterministic, showing only what each type uses.
 */
import assert from "node:assert/strict";
import { describeConfState, describeMessage } from "../../src/raft/describe.ts";
import { message } from "../../src/raft/types.ts";
import { confStateOf } from "../../src/raft/types.ts";

Deno.test("messages render on one line with the fields their type uses", () => {
  const data = new TextEncoder().encode("x");
  assert.equal(
    describeMessage(
      message({
        type: "app",
        from: 1,
        to: 2,
        term: 3,
        index: 7,
        logTerm: 2,
        commit: 6,
        entries: [{ term: 3, index: 8, type: "normal", data }],
      }),
    ),
    "1->2 app term:3 log:2/7 commit:6 entries:[3/8(1B)]",
  );
  assert.equal(
    describeMessage(message({ type: "app_resp", from: 2, to: 1, term: 3, index: 8 })),
    "2->1 app_resp term:3 index:8",
  );
});

Deno.test("a snap message shows the snapshot's last term/index, membership and size", () => {
  const snapshot = {
    meta: { index: 120, term: 2, conf: confStateOf([1, 2, 3]) },
    data: new Uint8Array(16),
  };
  assert.equal(
    describeMessage(message({ type: "snap", from: 1, to: 2, term: 3, snapshot })),
    "1->2 snap term:3 snap:2/120 voters:[1,2,3] (16B)",
  );
  assert.equal(
    describeMessage(message({ type: "snap", from: 1, to: 2, term: 3 })),
    "1->2 snap term:3 snap:none",
  );
});

Deno.test("membership shows in one line: conf entries, joint configurations, transfers", () => {
  const conf = {
    voters: [1, 2, 4],
    learners: [5],
    votersOutgoing: [1, 2, 3],
    learnersNext: [3],
    autoLeave: true,
  };
  assert.equal(
    describeConfState(conf),
    "voters:[1,2,4] outgoing:[1,2,3] learners:[5] learnersNext:[3] autoLeave",
  );
  const entries = [
    { term: 2, index: 7, type: "conf_change" as const, data: new Uint8Array(12) },
  ];
  assert.equal(
    describeMessage(
      message({ type: "app", from: 1, to: 2, term: 2, index: 6, logTerm: 2, entries }),
    ),
    "1->2 app term:2 log:2/6 commit:0 entries:[2/7conf(12B)]",
  );
  assert.equal(
    describeMessage(
      message({ type: "vote", from: 3, to: 1, term: 3, index: 7, logTerm: 2, context: 1 }),
    ),
    "3->1 vote term:3 last:2/7 transfer",
  );
  assert.equal(
    describeMessage(message({ type: "transfer_leader", from: 2, to: 1, term: 2, context: 3 })),
    "2->1 transfer_leader term:2 transferee:3",
  );
  assert.equal(
    describeMessage(message({ type: "timeout_now", from: 1, to: 3, term: 2 })),
    "1->3 timeout_now term:2",
  );
});
