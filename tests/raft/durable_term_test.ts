/**
 * A leader's term is durable before it leads (Figure 2: "respond to RPCs only
 * after updating stable storage"; etcd-io/raft sends nothing of a term before the
 * HardState that holds it is persisted).
 *
 * The story, found in review (5 nodes, no PreVote, no CheckQuorum): node 1
 * campaigns for term 2 and crashes before persisting it; nodes 2-4 grant, but
 * their grants are delayed. Node 1 restarts at term 1, receives entry 2/1 from
 * the term-1 leader (node 5), campaigns again for term 2, and the stale grants
 * arrive before its next Ready: peers alone make a majority. Had it won then, it
 * would have sent `app(prev 2/1, [3/2 no-op])` to node 5 before term 2 (or 2/1)
 * was on its disk, and crashed before the write; restarted once more with only
 * 1/1, it wins term 2 a second time with nodes 3 and 4 and commits its own no-op
 * at 2/2 and a command at 3/2. Node 5, holding 2/1 and the first 3/2, then wins
 * term 3 (its last entry 3/2 is as up to date as theirs) and its appends "match"
 * nodes 3 and 4 at 3/2: two state machines apply different entries at index 2
 * and 3.
 *
 * The driver here is scripted by hand, message by message, so every step of the
 * story happens exactly as told.
 *
 * @module
 */

import assert from "node:assert/strict";
import { NotLeaderError } from "../../src/raft/errors.ts";
import { seededRandom } from "../../src/raft/rand.ts";
import { RawNode } from "../../src/raft/raw_node.ts";
import { MemoryStorage } from "../../src/raft/storage.ts";
import type { Message, NodeId } from "../../src/raft/types.ts";
import { type AppliedEntry, checkAppliedAgree, checkLogsMatch } from "./sim/invariants.ts";
import { enc } from "./_scenario.ts";

interface ScriptedNode {
  raw: RawNode | undefined;
  disk: MemoryStorage;
  applied: AppliedEntry[];
}

/** A message a node sent, and the term its disk held when it went out. */
interface Sent {
  readonly m: Message;
  readonly durableTerm: number;
}

/**
 * Nodes whose Readies are handled synchronously (send, persist, send the
 * persisted, apply, advance), with every message parked in a pool until the
 * script delivers or drops it.
 */
class Script {
  readonly ids: readonly NodeId[];
  readonly nodes = new Map<NodeId, ScriptedNode>();
  pool: Message[] = [];
  readonly sent: Sent[] = [];

  constructor(size: number) {
    this.ids = Array.from({ length: size }, (_, i) => i + 1);
    for (const id of this.ids) {
      const disk = new MemoryStorage(this.ids);
      this.nodes.set(id, { raw: undefined, disk, applied: [] });
      this.restart(id);
    }
  }

  node(id: NodeId): ScriptedNode {
    return this.nodes.get(id)!;
  }

  raw(id: NodeId): RawNode {
    const raw = this.node(id).raw;
    assert.ok(raw !== undefined, `node ${id} is down`);
    return raw;
  }

  restart(id: NodeId): void {
    const n = this.node(id);
    n.disk = n.disk.clone();
    n.applied = [];
    n.raw = new RawNode(
      { id, random: seededRandom(id), preVote: false, checkQuorum: false, applied: 0 },
      n.disk,
    );
    this.drain(id);
  }

  #send(id: NodeId, m: Message): void {
    this.sent.push({ m, durableTerm: this.node(id).disk.hardState().term });
    this.pool.push(m);
  }

  /**
   * Handles node `id`'s Readies. With `crashBeforePersist`, the node dies right
   * after sending a Ready's `messages`, before its write: its disk keeps the old state.
   */
  drain(id: NodeId, crashBeforePersist = false): void {
    const n = this.node(id);
    while (n.raw !== undefined && n.raw.hasReady()) {
      const raw: RawNode = n.raw;
      const rd = raw.ready();
      for (const m of rd.messages) this.#send(id, m);
      if (crashBeforePersist && (rd.hardState !== undefined || rd.entries.length > 0)) {
        n.raw = undefined;
        return;
      }
      n.disk.append(rd.entries);
      if (rd.hardState !== undefined) n.disk.setHardState(rd.hardState);
      for (const m of rd.persistedMessages) this.#send(id, m);
      for (const e of rd.committedEntries) {
        n.applied.push({ index: e.index, term: e.term, data: e.data });
      }
      raw.advance(rd);
    }
  }

  /** Takes the parked messages matching `pred` out of the pool, in the order sent. */
  take(pred: (m: Message) => boolean): Message[] {
    const out = this.pool.filter(pred);
    this.pool = this.pool.filter((m) => !pred(m));
    return out;
  }

  /** Delivers the parked messages matching `pred` (to running nodes), each followed by a drain. */
  deliver(pred: (m: Message) => boolean): void {
    for (const m of this.take(pred)) {
      const raw = this.node(m.to).raw;
      if (raw === undefined) continue;
      raw.step(m);
      this.drain(m.to);
    }
  }

  /** Delivers among `group` until nothing more is parked between them; the rest stays parked. */
  settle(group: readonly NodeId[]): void {
    const inGroup = (m: Message) => group.includes(m.from) && group.includes(m.to);
    for (let guard = 0; this.pool.some(inGroup); guard++) {
      assert.ok(guard < 1000, "the group never went quiet");
      this.deliver(inGroup);
    }
  }

  /** One round of heartbeats from `leader` to `group`, answered. */
  heartbeat(leader: NodeId, group: readonly NodeId[]): void {
    const raw = this.raw(leader);
    raw.tick(); // heartbeatTick is 1
    this.drain(leader);
    this.settle([leader, ...group]);
  }
}

Deno.test("a candidate does not win on grants to an earlier incarnation before its term is durable", () => {
  const s = new Script(5);
  const all = s.ids;

  // Node 5 leads term 1; everyone holds its no-op at 1/1.
  s.raw(5).campaign();
  s.drain(5);
  s.settle(all);
  assert.equal(s.raw(5).status().role, "leader");
  s.heartbeat(5, all);

  // Node 1 campaigns for term 2 and crashes before the term reaches its disk.
  // Nodes 2-4 grant; the grants are delayed (left parked), node 5 never hears of it.
  s.raw(1).campaign();
  s.drain(1, true);
  s.deliver((m) => m.type === "vote" && m.from === 1 && [2, 3, 4].includes(m.to));
  s.take((m) => m.type === "vote" && m.to === 5);
  const staleGrants = s.take((m) => m.type === "vote_resp" && m.to === 1 && !m.reject);
  assert.equal(staleGrants.length, 3, "nodes 2-4 granted node 1's first term-2 campaign");

  // Node 1 restarts at term 1. Node 5 sends it entry 2/1 (nobody else gets it).
  s.restart(1);
  assert.equal(s.raw(1).status().term, 1);
  s.raw(5).propose(enc.encode("x"));
  s.drain(5);
  const append = s.take((m) => m.type === "app" && m.from === 5 && m.to === 1);
  s.take(() => true);

  // While its loop is busy (in the runtime: a write in flight), node 1 takes the
  // append, times out and campaigns for term 2 again, and the stale grants
  // arrive, all before its next Ready.
  for (const m of append) s.raw(1).step(m);
  s.raw(1).campaign();
  for (const m of staleGrants) s.raw(1).step(m);
  assert.notEqual(
    s.raw(1).status().role,
    "leader",
    "node 1 leads term 2 before term 2 is durable on its disk",
  );
  assert.throws(() => s.raw(1).propose(enc.encode("a")), NotLeaderError);
  // It crashes before its write. Whatever it sent goes to node 5.
  s.drain(1, true);
  s.deliver((m) => m.from === 1 && m.to === 5);
  s.take(() => true);

  // Restarted again, node 1 wins term 2 with nodes 3 and 4 (their vote is
  // already node 1's) and commits a command there.
  s.restart(1);
  s.raw(1).campaign();
  s.drain(1);
  s.deliver((m) => m.type === "vote" && m.from === 1 && [3, 4].includes(m.to));
  s.take((m) => m.type === "vote");
  s.settle([1, 3, 4]);
  assert.equal(s.raw(1).status().role, "leader");
  s.raw(1).propose(enc.encode("b"));
  s.drain(1);
  s.settle([1, 3, 4]);
  s.heartbeat(1, [3, 4]);

  // Node 5 campaigns with nodes 2-4 (node 1 is cut off); whatever it wins, it
  // replicates to them and everyone's commit catches up.
  s.take((m) => m.from === 1 || m.to === 1);
  s.raw(5).campaign();
  s.drain(5);
  s.settle([2, 3, 4, 5]);
  s.take((m) => m.from === 1 || m.to === 1);
  const lead5 = s.raw(5).status().role === "leader";
  if (lead5) {
    s.raw(5).propose(enc.encode("c"));
    s.drain(5);
    s.settle([2, 3, 4, 5]);
    s.heartbeat(5, [2, 3, 4]);
  }

  for (const { m, durableTerm } of s.sent) {
    if (m.type !== "app" && m.type !== "heartbeat") continue;
    assert.ok(
      m.term <= durableTerm,
      `node ${m.from} sent ${m.type} of term ${m.term} while its disk held term ${durableTerm}`,
    );
  }
  checkLogsMatch(new Map(all.map((id) => [id, s.node(id).disk])));
  checkAppliedAgree(new Map(all.map((id) => [id, s.node(id).applied])));
});
