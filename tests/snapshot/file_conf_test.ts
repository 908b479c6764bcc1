/**
 * A snapshot file keeps the whole membership of its snapshot (learners, a joint
 * configuration), and a simple one is written as before membership change.
 */
import assert from "node:assert/strict";
import { confStateOf, type Snapshot } from "../../src/raft/types.ts";
import { decodeSnapshotFile, encodeSnapshotFile } from "../../src/snapshot/file.ts";

Deno.test("a snapshot file round-trips learners and a joint configuration", () => {
  const snapshot: Snapshot = {
    meta: {
      index: 40,
      term: 3,
      conf: {
        voters: [1, 2, 4],
        learners: [5],
        votersOutgoing: [1, 2, 3],
        learnersNext: [3],
        autoLeave: true,
      },
    },
    data: new Uint8Array([1, 2, 3]),
  };
  assert.deepEqual(decodeSnapshotFile(encodeSnapshotFile(snapshot), "test"), snapshot);
});

Deno.test("a simple configuration's header holds only the voters, as files written before", () => {
  const snapshot: Snapshot = {
    meta: { index: 9, term: 2, conf: confStateOf([1, 2, 3]) },
    data: new Uint8Array(),
  };
  const text = new TextDecoder().decode(encodeSnapshotFile(snapshot));
  assert.ok(text.includes('"conf":{"voters":[1,2,3]}'), text);
  assert.deepEqual(decodeSnapshotFile(encodeSnapshotFile(snapshot), "test"), snapshot);
});
