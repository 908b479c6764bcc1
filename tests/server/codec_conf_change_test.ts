/**
 * The wire codec carries what membership change and leadership transfer add:
 * conf change entries, `timeout_now`, `transfer_leader`, and the transfer flag
 * of a vote request; bytes no node could apply are refused at the edge.
 */
import assert from "node:assert/strict";
import { encodeConfChange } from "../../src/raft/confchange/codec.ts";
import { confStateOf, type Entry, type Message, message } from "../../src/raft/types.ts";
import {
  CodecError,
  entryFromPb,
  entryToPb,
  messageFromPb,
  messageToPb,
} from "../../src/server/codec.ts";

const confEntry: Entry = {
  term: 2,
  index: 7,
  type: "conf_change",
  data: encodeConfChange({
    changes: [{ type: "add_learner", nodeId: 4 }],
    transition: "auto",
    context: new TextEncoder().encode('{"peer":"127.0.0.1:7004"}'),
    base: confStateOf([1, 2, 3]),
  }),
};

Deno.test("conf change entries and the transfer messages round-trip through the wire codec", () => {
  assert.deepEqual(entryFromPb(entryToPb(confEntry)), confEntry);
  const msgs: Message[] = [
    message({ type: "app", from: 1, to: 2, term: 2, index: 6, logTerm: 2, entries: [confEntry] }),
    message({ type: "timeout_now", from: 1, to: 2, term: 2 }),
    message({ type: "transfer_leader", from: 3, to: 1, term: 2, context: 2 }),
    message({ type: "vote", from: 2, to: 3, term: 3, index: 7, logTerm: 2, context: 1 }),
  ];
  for (const m of msgs) assert.deepEqual(messageFromPb(messageToPb(m)), m);
});

Deno.test("a conf change entry whose data no node could decode is refused", () => {
  const bad = entryToPb({ ...confEntry, data: new Uint8Array([9, 9, 9]) });
  assert.throws(
    () => entryFromPb(bad),
    (e) => e instanceof CodecError && /entry 7/.test(e.message),
  );
});
