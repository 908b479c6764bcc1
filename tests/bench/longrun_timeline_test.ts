/**
 * `deno task bench:longrun --timeline`: a restart's steps read from the nodes' log
 * lines (their text format), against the spawn and the first write; and each
 * step's median and range over restarts.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  formatSummary,
  type NodeLogLine,
  parseNodeLogLine,
  restartTimeline,
  spread,
} from "../../scripts/bench/longrun_timeline.ts";

const SPAWN = Date.parse("2026-12-07T11:00:00.000Z");

/** Node `id`'s log lines, `[ms after the spawn, the text after the level]` each. */
function lines(id: number, entries: [number, string][]): NodeLogLine[] {
  return entries.map(([ms, text]) => {
    const line = `${new Date(SPAWN + ms).toISOString()} INFO  node=${id} ${text}`;
    const parsed = parseNodeLogLine(line);
    assert.ok(parsed !== undefined, line);
    return parsed;
  });
}

Deno.test("timeline: a node log line's timestamp and level are read; other lines are not log lines", () => {
  const l = parseNodeLogLine(
    "2026-12-07T11:00:00.250Z WARN  node=1 term=2 role=leader cannot reach peer peer=2",
  );
  assert.deepEqual(l, {
    ms: SPAWN + 250,
    level: "WARN",
    text: "node=1 term=2 role=leader cannot reach peer peer=2",
  });
  assert.equal(parseNodeLogLine("error: Cannot use data dir /x"), undefined);
  assert.equal(parseNodeLogLine('{"level":"info"}'), undefined);
});

Deno.test("timeline: each node's steps from its lines, the cluster's from all of them and the write", () => {
  const byNode = new Map([
    [
      1,
      lines(1, [
        [700, "starting version=2.9.3 modulesMs=500 pid=1"],
        [900, "wal: opened dir=/d segments=1"],
        [950, "recovered from the snapshot and the write-ahead log snapshot=5"],
        [990, "term=1 role=follower listening address=127.0.0.1:1 cpuMs=420"],
        [1000, "term=1 role=follower HTTP port listening address=127.0.0.1:2"],
        [1200, "term=1 role=pre_candidate starting pre-election term=2"],
        [1250, "term=2 role=leader became leader lastIndex=6"],
      ]),
    ],
    [
      2,
      lines(2, [
        [800, "starting version=2.9.3 modulesMs=600 pid=2"],
        [1100, "term=1 role=follower listening address=127.0.0.1:3"],
      ]),
    ],
    [3, lines(3, [[1500, "term=1 role=follower listening address=127.0.0.1:4"]])],
  ]);
  const t = restartTimeline(SPAWN, byNode, SPAWN + 1300);
  assert.deepEqual(t.nodes.get(1), {
    runtimeUp: 200,
    modulesLoaded: 700,
    walOpened: 900,
    recovered: 950,
    listening: 990,
    cpuToListening: 420,
  });
  assert.equal(t.nodes.get(2)!.runtimeUp, 200);
  assert.equal(t.nodes.get(3)!.modulesLoaded, undefined, "a node older than the starting line");
  assert.deepEqual(
    [t.quorumListening, t.allListening, t.firstCampaign, t.leader, t.served],
    [1100, 1500, 1200, 1250, 1300],
  );
  const summary = formatSummary([t]).join("\n");
  assert.match(summary, /spawn -> first write answered\s+1300/);
  assert.match(summary, /first campaign -> leader\s+50/);
  assert.match(summary, /CPU \(user \+ system\) to listening\s+420/);
});

Deno.test("timeline: the spread of a step is its median, min and max", () => {
  assert.deepEqual(spread([3, 1, 2]), { median: 2, min: 1, max: 3, n: 3 });
  assert.deepEqual(spread([4, 1, 2, 3]), { median: 2.5, min: 1, max: 4, n: 4 });
  assert.equal(spread([]), undefined);
});
