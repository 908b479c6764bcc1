/**
 * One-line renderings of messages and entries, deterministic so that logs,
 * traces and test output can be compared and read: `1->2 app term:3 log:2/7
 * commit:6 entries:[3/8 3/9]`, `1->2 snap term:3 snap:2/120 voters:[1,2,3] (16B)`.
 *
 * @module
 */

import type { ConfState, Entry, Message, Snapshot } from "./types.ts";

/** `term/index`, the way Raft papers draw entries. */
export function describeEntry(e: Entry): string {
  const conf = e.type === "conf_change" ? "conf" : "";
  return `${e.term}/${e.index}${conf}${e.data.length === 0 ? "" : `(${e.data.length}B)`}`;
}

/**
 * `term/index`, like an entry (the snapshot stands for the log up to it), then
 * the voters and the data size: `2/120 voters:[1,2,3] (16B)`.
 */
export function describeSnapshot(s: Snapshot): string {
  return `${s.meta.term}/${s.meta.index} ${describeConfState(s.meta.conf)}` +
    ` (${s.data.length}B)`;
}

/**
 * `voters:[1,2,3]`, then only what is set: `voters:[1,2,4] outgoing:[1,2,3]
 * learners:[5] learnersNext:[3] autoLeave`.
 */
export function describeConfState(cs: ConfState): string {
  let s = `voters:[${cs.voters.join(",")}]`;
  if (cs.votersOutgoing.length > 0) s += ` outgoing:[${cs.votersOutgoing.join(",")}]`;
  if (cs.learners.length > 0) s += ` learners:[${cs.learners.join(",")}]`;
  if (cs.learnersNext.length > 0) s += ` learnersNext:[${cs.learnersNext.join(",")}]`;
  if (cs.autoLeave) s += " autoLeave";
  return s;
}

/** A message on one line, showing only the fields its type uses. */
export function describeMessage(m: Message): string {
  let s = `${m.from}->${m.to} ${m.type} term:${m.term}`;
  switch (m.type) {
    case "app":
      s += ` log:${m.logTerm}/${m.index} commit:${m.commit}`;
      if (m.entries.length > 0) {
        const shown = m.entries.slice(0, 4).map(describeEntry).join(" ");
        s += ` entries:[${shown}${m.entries.length > 4 ? ` …+${m.entries.length - 4}` : ""}]`;
      }
      break;
    case "app_resp":
      s += m.reject
        ? ` rejected:${m.index} hint:${m.logTerm}/${m.rejectHint}`
        : ` index:${m.index}`;
      break;
    case "vote":
    case "pre_vote":
      s += ` last:${m.logTerm}/${m.index}`;
      if (m.context !== 0) s += " transfer";
      break;
    case "vote_resp":
    case "pre_vote_resp":
      s += m.reject ? " rejected" : " granted";
      break;
    case "heartbeat":
      s += ` commit:${m.commit}`;
      if (m.context !== 0) s += ` round:${m.context}`;
      break;
    case "heartbeat_resp":
      if (m.context !== 0) s += ` round:${m.context}`;
      break;
    case "snap":
      s += m.snapshot === undefined ? " snap:none" : ` snap:${describeSnapshot(m.snapshot)}`;
      break;
    case "transfer_leader":
      s += ` transferee:${m.context}`;
      break;
  }
  return s;
}
