/**
 * Raft's safety properties (Figure 3 of the paper), checked incrementally while a
 * simulated cluster runs. The checker is fed observations by the cluster (roles,
 * appends to durable logs, commit indexes, applied entries) and remembers what it
 * needs over the whole run, so each check costs only the new facts it is shown:
 *
 * - Election Safety: at most one leader per term, over the whole run.
 * - Leader Append-Only: a leader never overwrites its own log while leader in a term.
 * - Log Matching: two logs holding an entry with the same index and term are
 *   identical up to it. Checked by induction: the entry at (index, term) must
 *   always carry the same data and follow the same previous term, in every log,
 *   ever (a leader creates an entry at an index once per term). Also: terms
 *   never decrease along a log.
 * - Leader Completeness: an entry committed in term C is in the log of every
 *   leader of a term above C. The checker does not know C exactly; it keeps an
 *   upper bound (the term of the node through which it first saw the entry
 *   committed), so it never raises a false alarm.
 * - State Machine Safety: no two nodes commit or apply different entries at the
 *   same index; each node applies in order, only entries of its durable log. And
 *   over snapshots: the state machine's state at each index (a hash chain over
 *   everything applied up to it, see state_machine.ts) is the same on every node
 *   that reaches that index, whether by applying entries or by restoring a
 *   snapshot (its own on restart, or one a leader sent).
 * - Ready Contract: the entries a Ready hands out to apply were durable before
 *   that Ready; a commit index never goes back while a node is up.
 * - Leader Term Durable: a leader sends appends and heartbeats of a term only
 *   once that term is on its disk (etcd-io/raft's contract: nothing of a term
 *   goes out before the HardState holding it is persisted). Otherwise a crash can
 *   bring it back at an older term to lead the same term twice, with two logs.
 * - Linearizable Reads (dissertation §6.4): a read confirmed by ReadIndex is
 *   served at an index at least the highest index committed anywhere when the
 *   read began, so it sees every write acknowledged before it.
 *
 * Logs may be compacted (§7): the checks that read a log read only what it still
 * holds, from `firstIndex()` on; what a snapshot replaced is checked through the
 * state hashes.
 *
 * Violations throw {@link InvariantViolation}, naming the property, nodes, terms
 * and indexes.
 *
 * @module
 */

import type { Role } from "../../../src/raft/types.ts";
import type { ConfState, Entry, EntryType, NodeId } from "../../../src/raft/types.ts";
import { showHash } from "./state_machine.ts";

/** The read side of a node's durable log (what `MemoryStorage` offers). */
export interface LogView {
  /** The first index the log holds an entry for (1 unless compacted). */
  firstIndex(): number;
  lastIndex(): number;
  /** The term at `index`, for index in [firstIndex - 1, lastIndex]. */
  term(index: number): number;
  /** Entries in [lo, hi), lo >= firstIndex. */
  entries(lo: number, hi: number): Entry[];
}

/** An entry the state machine applied. */
export interface AppliedEntry {
  readonly index: number;
  readonly term: number;
  readonly data: Uint8Array;
  /** Absent (or "normal") for a command. */
  readonly type?: EntryType;
}

/** A broken safety property. */
export class InvariantViolation extends Error {
  override name = "InvariantViolation";
  /** The property's name, e.g. "Election Safety". */
  readonly property: string;

  constructor(property: string, details: string) {
    super(`${property} violated: ${details}`);
    this.property = property;
  }
}

/** A compact, comparable key for entry payloads. */
export function dataKey(data: Uint8Array): string {
  let s = "";
  for (let i = 0; i < data.length; i++) s += String.fromCharCode(data[i]!);
  return s;
}

/** Payload for humans: printable ASCII as text, the rest as byte counts. */
export function showData(data: Uint8Array): string {
  if (data.length === 0) return "<no-op>";
  const s = dataKey(data);
  return /^[\x20-\x7e]*$/.test(s) ? JSON.stringify(s) : `<${data.length} bytes>`;
}

interface LogRecord {
  readonly prevTerm: number;
  readonly data: string;
  readonly node: NodeId;
}

interface Chosen {
  readonly term: number;
  readonly data: string;
  /** An upper bound on the term in which the entry was committed. */
  readonly bound: number;
  readonly node: NodeId;
  readonly how: "committed" | "applied";
}

interface StateRecord {
  readonly hash: number;
  readonly node: NodeId;
  readonly how: "applied" | "restored";
}

/** What a checker counted, for summaries. */
export interface CheckerStats {
  /** Distinct terms that had a leader. */
  leaderTerms: number;
  /** Highest index known committed. */
  committed: number;
  /** Entries known committed that carry a command (not a leader's no-op). */
  commands: number;
}

/** Incremental checker of the Raft safety properties over one run. */
export class InvariantChecker {
  /** term -> the one leader seen in that term. */
  #leaders = new Map<number, NodeId>();
  /** node -> the term it currently leads in (absent when not leader). */
  #leading = new Map<NodeId, number>();
  /** index -> term -> how an entry (index, term) looked the first time any log held it. */
  #logEntries = new Map<number, Map<number, LogRecord>>();
  /** index -> the entry known committed there; indexes 1..length-1 (index 0 unused). */
  #chosen: (Chosen | undefined)[] = [undefined];
  /** term of a leader -> highest chosen index already checked against its log. */
  #completenessCursor = new Map<number, number>();
  /** node -> the commit index last seen while it was up. */
  #commit = new Map<NodeId, number>();
  /** node -> the index it applied last since (re)start. */
  #applied = new Map<NodeId, number>();
  /** index -> the state machine's hash there, the first time any node reached it. */
  #states = new Map<number, StateRecord>();
  #commands = 0;

  /** Counts for summaries. */
  stats(): CheckerStats {
    return {
      leaderTerms: this.#leaders.size,
      committed: this.#chosen.length - 1,
      commands: this.#commands,
    };
  }

  /** The leader seen in `term`, if any. */
  leaderOf(term: number): NodeId | undefined {
    return this.#leaders.get(term);
  }

  /** Node `id` is in `role` at `term` (Election Safety). */
  observeRole(id: NodeId, term: number, role: Role): void {
    if (role !== "leader") {
      this.#leading.delete(id);
      return;
    }
    const other = this.#leaders.get(term);
    if (other !== undefined && other !== id) {
      throw new InvariantViolation(
        "Election Safety",
        `nodes ${other} and ${id} were both leader in term ${term}`,
      );
    }
    this.#leaders.set(term, id);
    this.#leading.set(id, term);
  }

  /** Node `id` crashed: it holds no role and its volatile cursors are gone. */
  observeCrash(id: NodeId): void {
    this.#leading.delete(id);
    this.#commit.delete(id);
  }

  /**
   * Node `id` restarted with an empty state machine that will be replayed from
   * index 1 (or restored from its snapshot: {@link observeRestore} follows).
   */
  observeRestart(id: NodeId): void {
    this.#leading.delete(id);
    this.#commit.delete(id);
    this.#applied.set(id, 0);
  }

  /**
   * Node `id`'s state machine reached `index` with hash `hash`, by applying the
   * entry there or by restoring a snapshot (State Machine Safety over snapshots).
   */
  observeState(id: NodeId, index: number, hash: number, how: StateRecord["how"]): void {
    const seen = this.#states.get(index);
    if (seen === undefined) {
      this.#states.set(index, { hash, node: id, how });
      return;
    }
    if (seen.hash !== hash) {
      throw new InvariantViolation(
        "State Machine Safety",
        `at index ${index} node ${seen.node}'s state machine (${seen.how}) has state` +
          ` ${showHash(seen.hash)} but node ${id}'s (${how}) has ${showHash(hash)}: they applied` +
          " different histories",
      );
    }
  }

  /**
   * Node `id` replaced its state machine with a snapshot's state at `index`
   * (installed from a leader, or its own on restart); entries are applied after it.
   */
  observeRestore(id: NodeId, index: number, hash: number): void {
    const last = this.#applied.get(id) ?? 0;
    if (index < last) {
      throw new InvariantViolation(
        "State Machine Safety",
        `node ${id} restored a snapshot at index ${index} after applying up to index ${last}:` +
          " a state machine never goes back",
      );
    }
    this.observeState(id, index, hash, "restored");
    this.#applied.set(id, index);
  }

  /**
   * `entries` were just written to node `id`'s durable `log` (after truncating
   * any conflicting suffix), whose last index was `priorLastIndex` before.
   */
  observeAppend(id: NodeId, entries: readonly Entry[], log: LogView, priorLastIndex: number): void {
    const first = entries[0];
    if (first === undefined) return;
    const leaderTerm = this.#leading.get(id);
    if (leaderTerm !== undefined && first.index <= priorLastIndex) {
      throw new InvariantViolation(
        "Leader Append-Only",
        `node ${id}, leader of term ${leaderTerm}, overwrote its log from index ${first.index}` +
          ` (last index was ${priorLastIndex}; first new entry ${first.term}/${first.index})`,
      );
    }
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k]!;
      if (e.index !== first.index + k) {
        throw new InvariantViolation(
          "Log Matching",
          `node ${id} was given entries with a gap: index ${e.index} at position ${k}` +
            ` after first index ${first.index}`,
        );
      }
      const prevTerm = e.index === 1 ? 0 : log.term(e.index - 1);
      if (e.term < prevTerm) {
        throw new InvariantViolation(
          "Log Matching",
          `node ${id}'s log has term ${e.term} at index ${e.index} after term ${prevTerm}` +
            ` at index ${e.index - 1}: terms must never decrease along a log`,
        );
      }
      let byTerm = this.#logEntries.get(e.index);
      if (byTerm === undefined) {
        byTerm = new Map();
        this.#logEntries.set(e.index, byTerm);
      }
      const data = dataKey(e.data);
      const seen = byTerm.get(e.term);
      if (seen === undefined) {
        byTerm.set(e.term, { prevTerm, data, node: id });
      } else if (seen.prevTerm !== prevTerm || seen.data !== data) {
        throw new InvariantViolation(
          "Log Matching",
          `entry ${e.term}/${e.index} in node ${id}'s log follows term ${prevTerm} at index` +
            ` ${e.index - 1} and holds ${showData(e.data)}, but in node ${seen.node}'s log it` +
            ` followed term ${seen.prevTerm} and held ${showData(strBytes(seen.data))}:` +
            ` the logs differ before an entry they share`,
        );
      }
    }
  }

  /**
   * Node `id`, now at `term`, reports commit index `commit`; `log` is its log as
   * the core sees it, durable or not (a follower may learn that entries are
   * committed while its own write of them is still in flight). Every newly
   * covered entry is recorded as chosen at its index.
   */
  observeCommit(id: NodeId, term: number, commit: number, log: LogView): void {
    const prev = this.#commit.get(id) ?? 0;
    if (commit < prev) {
      throw new InvariantViolation(
        "Commit Monotonicity",
        `node ${id}'s commit index went back from ${prev} to ${commit} without a restart`,
      );
    }
    if (commit === prev) return;
    if (commit > log.lastIndex()) {
      throw new InvariantViolation(
        "State Machine Safety",
        `node ${id} reports commit index ${commit} beyond its log (last index` +
          ` ${log.lastIndex()})`,
      );
    }
    // A snapshot may stand for the start of the range (its state is checked apart).
    const lo = Math.max(prev + 1, log.firstIndex());
    const entries = lo <= commit ? log.entries(lo, commit + 1) : [];
    for (const e of entries) this.#choose(id, term, e, "committed");
    this.#commit.set(id, commit);
  }

  /**
   * Node `id`, now at `term`, applied `entry` to its state machine; `log` is its
   * durable log, which must already hold the entry.
   */
  observeApply(id: NodeId, term: number, entry: AppliedEntry, log: LogView): void {
    const last = this.#applied.get(id) ?? 0;
    if (entry.index !== last + 1) {
      throw new InvariantViolation(
        "State Machine Safety",
        `node ${id} applied index ${entry.index} right after index ${last}: entries must be` +
          " applied in order, each once",
      );
    }
    if (entry.index > log.lastIndex() || log.term(entry.index) !== entry.term) {
      const has = entry.index > log.lastIndex() ? "nothing" : `term ${log.term(entry.index)}`;
      throw new InvariantViolation(
        "State Machine Safety",
        `node ${id} applied ${entry.term}/${entry.index} but its durable log holds ${has} at` +
          ` index ${entry.index}: committed entries must be durable before they are applied`,
      );
    }
    this.#choose(id, term, entry, "applied");
    this.#applied.set(id, entry.index);
  }

  /**
   * The Ready contract: the `committed` entries a Ready hands node `id` to apply
   * must already be durable, in `log` as it was before this Ready's `entries`
   * (which start at `firstNew`, if any) are written.
   */
  checkCommittedDurable(
    id: NodeId,
    committed: readonly Entry[],
    log: LogView,
    firstNew: number | undefined,
  ): void {
    for (const e of committed) {
      const durable = e.index <= log.lastIndex() && log.term(e.index) === e.term &&
        (firstNew === undefined || e.index < firstNew);
      if (!durable) {
        throw new InvariantViolation(
          "Ready Contract",
          `node ${id} was handed ${e.term}/${e.index} to apply before it was durable (disk last` +
            ` index ${log.lastIndex()}${
              firstNew === undefined ? "" : `, this Ready rewrites from ${firstNew}`
            })`,
        );
      }
    }
  }

  #choose(
    id: NodeId,
    term: number,
    e: { readonly index: number; readonly term: number; readonly data: Uint8Array },
    how: Chosen["how"],
  ): void {
    const data = dataKey(e.data);
    const seen = this.#chosen[e.index];
    if (seen === undefined) {
      while (this.#chosen.length < e.index) this.#chosen.push(undefined);
      this.#chosen[e.index] = { term: e.term, data, bound: Math.max(term, e.term), node: id, how };
      if (e.data.length > 0) this.#commands++;
      return;
    }
    if (seen.term !== e.term || seen.data !== data) {
      throw new InvariantViolation(
        "State Machine Safety",
        `at index ${e.index} node ${seen.node} ${seen.how} ${seen.term}/${e.index}` +
          ` ${showData(strBytes(seen.data))} but node ${id} ${how} ${e.term}/${e.index}` +
          ` ${showData(e.data)}`,
      );
    }
  }

  /**
   * Node `id` leads `term` and sent `type` of `term` while its disk held
   * `durableTerm` (Leader Term Durable).
   */
  checkLeaderTermDurable(id: NodeId, type: string, term: number, durableTerm: number): void {
    if (term > durableTerm) {
      throw new InvariantViolation(
        "Leader Term Durable",
        `node ${id} sent ${type} of term ${term} while its disk held term ${durableTerm}:` +
          ` a crash now would let it lead term ${term} again with another log`,
      );
    }
  }

  /**
   * A ReadIndex read started at node `id` when `committedAtStart` was the highest
   * index committed anywhere was confirmed at `index` (Linearizable Reads).
   */
  checkReadConfirmed(id: NodeId, requestId: number, index: number, committedAtStart: number): void {
    if (index < committedAtStart) {
      throw new InvariantViolation(
        "Linearizable Reads",
        `node ${id} confirmed read ${requestId} at index ${index}, but index` +
          ` ${committedAtStart} was already committed when the read began: the read` +
          ` would miss acknowledged writes`,
      );
    }
  }

  /**
   * Node `id` is leader of `term` with log `log` (Leader Completeness):
   * every entry known committed in an earlier term must be in it. Each chosen
   * entry is checked once per leader term.
   */
  checkLeaderCompleteness(id: NodeId, term: number, log: LogView): void {
    const from = (this.#completenessCursor.get(term) ?? 0) + 1;
    const to = this.#chosen.length - 1;
    // Below firstIndex the leader's log is a snapshot of applied, hence
    // committed, entries; its state is checked by hash, and the term at the
    // compaction point must still match.
    const first = log.firstIndex();
    const point = first - 1;
    if (point >= from && point <= to) {
      const c = this.#chosen[point];
      if (c !== undefined && c.bound < term && log.term(point) !== c.term) {
        throw new InvariantViolation(
          "Leader Completeness",
          `node ${id} is leader of term ${term} but its log was compacted at index ${point}` +
            ` with term ${log.term(point)}, where ${c.term}/${point} is committed`,
        );
      }
    }
    for (let i = Math.max(from, first); i <= to; i++) {
      const c = this.#chosen[i];
      if (c === undefined || c.bound >= term) continue;
      const has = i <= log.lastIndex() ? log.term(i) : undefined;
      const data = has === c.term ? dataKey(log.entries(i, i + 1)[0]!.data) : undefined;
      if (has !== c.term || data !== c.data) {
        throw new InvariantViolation(
          "Leader Completeness",
          `node ${id} is leader of term ${term} but its log holds ` +
            `${has === undefined ? "nothing" : `term ${has}`} at index ${i}, where` +
            ` ${c.term}/${i} ${showData(strBytes(c.data))} is committed, in term ${c.bound} or` +
            ` earlier (node ${c.node} ${c.how} it)`,
        );
      }
    }
    if (to >= from) this.#completenessCursor.set(term, to);
  }
}

function strBytes(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

/**
 * A full, non-incremental comparison of logs (for end-of-run checks and tests):
 * wherever two logs hold an entry with the same index and term, they must be
 * identical up to there.
 */
export function checkLogsMatch(logs: ReadonlyMap<NodeId, LogView>): void {
  const ids = [...logs.keys()];
  for (let a = 0; a < ids.length; a++) {
    for (let b = a + 1; b < ids.length; b++) {
      const la = logs.get(ids[a]!)!;
      const lb = logs.get(ids[b]!)!;
      const n = Math.min(la.lastIndex(), lb.lastIndex());
      // Compare only what both logs still hold (terms from the compaction points).
      const first = Math.max(la.firstIndex(), lb.firstIndex());
      let shared = 0;
      for (let i = n; i >= Math.max(1, first - 1); i--) {
        if (la.term(i) === lb.term(i)) {
          shared = i;
          break;
        }
      }
      if (shared < first) continue;
      const ea = la.entries(first, shared + 1);
      const eb = lb.entries(first, shared + 1);
      for (let k = 0; k < ea.length; k++) {
        const x = ea[k]!;
        const y = eb[k]!;
        const i = first + k;
        if (x.term !== y.term || dataKey(x.data) !== dataKey(y.data)) {
          throw new InvariantViolation(
            "Log Matching",
            `nodes ${ids[a]} and ${ids[b]} both hold an entry of term ${la.term(shared)} at` +
              ` index ${shared} but differ at index ${i}: ${x.term}/${i}` +
              ` ${showData(x.data)} vs ${y.term}/${i} ${showData(y.data)}`,
          );
        }
      }
    }
  }
}

/**
 * A full comparison of state machines: every two applied lists agree on every
 * index both hold (State Machine Safety), and each is consecutive. A list starts
 * at index 1, or right after the snapshot its state machine was restored from.
 */
export function checkAppliedAgree(applied: ReadonlyMap<NodeId, readonly AppliedEntry[]>): void {
  const ref = new Map<number, AppliedEntry>();
  const owner = new Map<number, NodeId>();
  for (const [id, list] of applied) {
    const start = list[0]?.index ?? 1;
    for (let k = 0; k < list.length; k++) {
      const e = list[k]!;
      if (e.index !== start + k) {
        throw new InvariantViolation(
          "State Machine Safety",
          `node ${id} applied index ${e.index} at position ${k + 1} of its state machine,` +
            ` which starts at index ${start}`,
        );
      }
      const r = ref.get(e.index);
      if (r === undefined) {
        ref.set(e.index, e);
        owner.set(e.index, id);
      } else if (r.term !== e.term || dataKey(r.data) !== dataKey(e.data)) {
        throw new InvariantViolation(
          "State Machine Safety",
          `at index ${e.index} node ${owner.get(e.index)} applied ${r.term}/${r.index} ${
            showData(r.data)
          }` +
            ` but node ${id} applied ${e.term}/${e.index} ${showData(e.data)}`,
        );
      }
    }
  }
}

/**
 * Commitment under the configuration in force: leader `id` of `term` says
 * `commit` is committed while `conf` is its
 * configuration; then a majority of `conf.voters`, and while joint also of
 * `conf.votersOutgoing`, must hold that entry durably (or a snapshot covering it)
 * (dissertation §4.3: under joint consensus, agreement needs both majorities).
 * `holds(voter)` tells whether a voter's disk does.
 */
export function checkCommitQuorum(
  id: NodeId,
  term: number,
  commit: number,
  conf: ConfState,
  holds: (voter: NodeId) => boolean,
): void {
  if (!conf.voters.includes(id) && !conf.votersOutgoing.includes(id)) {
    throw new InvariantViolation(
      "Configuration Safety",
      `node ${id} leads term ${term} but is no voter of its configuration ${JSON.stringify(conf)}`,
    );
  }
  for (
    const [half, voters] of [["incoming", conf.voters], ["outgoing", conf.votersOutgoing]] as const
  ) {
    if (voters.length === 0) continue;
    const holding = voters.filter(holds);
    if (holding.length * 2 <= voters.length) {
      throw new InvariantViolation(
        "Configuration Safety",
        `leader ${id} of term ${term} committed index ${commit}, but only [${holding.join(",")}]` +
          ` of the ${half} voters [${voters.join(",")}] hold it durably`,
      );
    }
  }
}
