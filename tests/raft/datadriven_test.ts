/**
 * Data-driven scenario tests (etcd-io/raft's testdata/*.txt, datadriven style):
 * each file in tests/raft/testdata/ is a script of commands run against one
 * simulated cluster, each followed by `----` and the output it must produce,
 * then a blank line. `#` starts a comment line. Run with `REWRITE=1` to write the
 * actual outputs back into the files (then review the diff before committing).
 *
 * Commands (node ids are numbers; `at=` defaults to the current leader):
 * - `cluster voters=3 [spares=2] [seed=1] [prevote=false] [checkquorum=false]`
 *   builds the cluster: voters 1..voters, spares started with an empty
 *   configuration (nodes that will join).
 * - `elect` waits for a leader every member follows: `leader N term T`.
 * - `stabilize [max=300]` ticks until there is such a leader, not transferring
 *   its leadership, its commit index is its last index and every running member
 *   applied it; prints `ok` or what is not settled.
 * - `tick [n=1]`.
 * - `put [count=1] [at=N]` proposes commands `w1`, `w2`, ...; prints the index
 *   range, or the core's error.
 * - `propose-conf-change [at=N] [explicit] v4 l5 r3` (v: add voter, l: add
 *   learner, r: remove; none at all: leave the joint configuration): the entry's
 *   index, or the core's error.
 * - `transfer-leader [at=N] to=M`: `ok` or the core's error.
 * - `crash N`, `restart N`, `isolate N`, `partition 1,2 3,4,5`, `heal`.
 * - `status`: per node, role, term, leader, commit, applied and configuration.
 * - `raft-state`: per node, role, term and leader only.
 * - `applied N`: the commands node N applied, in order.
 *
 * @module
 */

import assert from "node:assert/strict";
import { describeConfState } from "../../src/raft/describe.ts";
import type { ConfChangeSingle, NodeId } from "../../src/raft/types.ts";
import { SimCluster } from "./sim/cluster.ts";
import { appliedCommands, enc } from "./_scenario.ts";

interface Block {
  readonly line: number;
  readonly command: string;
  readonly expected: string;
}

function parse(text: string): { blocks: Block[]; comments: Map<number, string[]> } {
  const lines = text.split("\n");
  const blocks: Block[] = [];
  const comments = new Map<number, string[]>();
  let pending: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const l = lines[i]!;
    if (l.trim() === "") {
      i++;
      continue;
    }
    if (l.startsWith("#")) {
      pending.push(l);
      i++;
      continue;
    }
    const start = i + 1;
    const command = l.trim();
    i++;
    if (lines[i] !== "----") throw new Error(`line ${start}: "${command}" is not followed by ----`);
    i++;
    const out: string[] = [];
    while (i < lines.length && lines[i] !== "") out.push(lines[i++]!);
    comments.set(blocks.length, pending);
    pending = [];
    blocks.push({ line: start, command, expected: out.join("\n") });
  }
  if (pending.length > 0) comments.set(blocks.length, pending);
  return { blocks, comments };
}

/** The interpreter's state: the cluster and the next command number for `put`. */
class Script {
  cluster: SimCluster | undefined;
  #written = 0;

  get c(): SimCluster {
    if (this.cluster === undefined) throw new Error("no cluster: start with `cluster voters=N`");
    return this.cluster;
  }

  run(command: string): string {
    const [name, ...args] = command.split(/\s+/);
    const kv = new Map<string, string>();
    const pos: string[] = [];
    for (const a of args) {
      const eq = a.indexOf("=");
      if (eq > 0) kv.set(a.slice(0, eq), a.slice(eq + 1));
      else pos.push(a);
    }
    const num = (k: string, d?: number): number => {
      const v = kv.get(k);
      if (v === undefined) {
        if (d === undefined) throw new Error(`${name} needs ${k}=`);
        return d;
      }
      const n = Number(v);
      if (!Number.isInteger(n)) throw new Error(`${name}: ${k}=${v} is not an integer`);
      return n;
    };
    const at = (): NodeId => {
      if (kv.has("at")) return num("at");
      const lead = this.c.leader();
      if (lead === undefined) throw new Error(`${name}: no leader (give at=)`);
      return lead;
    };
    const attempt = (f: () => string): string => {
      try {
        return f();
      } catch (e) {
        return `error: ${(e as Error).name}: ${(e as Error).message}`;
      }
    };
    switch (name) {
      case "cluster":
        this.cluster = new SimCluster({
          size: num("voters"),
          spares: num("spares", 0),
          seed: num("seed", 1),
          preVote: kv.get("prevote") !== "false",
          checkQuorum: kv.get("checkquorum") !== "false",
        });
        return "ok";
      case "elect": {
        const ok = this.c.runUntil(() => this.c.stableLeader() !== undefined, num("max", 300));
        if (!ok) return "no stable leader";
        const lead = this.c.stableLeader()!;
        return `leader ${lead} term ${this.c.status(lead)!.term}`;
      }
      case "stabilize": {
        const ok = this.c.runUntil(() => this.#settled() === undefined, num("max", 300));
        return ok ? "ok" : `not settled: ${this.#settled()}`;
      }
      case "tick":
        this.c.tick(num("n", 1));
        return "ok";
      case "put":
        return attempt(() => {
          const id = at();
          const n = num("count", 1);
          let first = 0;
          let last = 0;
          for (let k = 0; k < n; k++) {
            last = this.c.propose(id, enc.encode(`w${this.#written + 1}`)).index;
            this.#written++;
            if (k === 0) first = last;
          }
          return n === 1 ? `index ${first}` : `indexes ${first}-${last}`;
        });
      case "propose-conf-change":
        return attempt(() => {
          const changes: ConfChangeSingle[] = pos.filter((p) => p !== "explicit").map((p) => {
            const type = { v: "add_voter", l: "add_learner", r: "remove" }[p[0]!];
            const nodeId = Number(p.slice(1));
            if (type === undefined || !Number.isInteger(nodeId)) {
              throw new Error(`propose-conf-change: bad change "${p}" (v4, l5 or r3)`);
            }
            return { type: type as ConfChangeSingle["type"], nodeId };
          });
          const transition = pos.includes("explicit") ? "explicit" : "auto";
          const r = this.c.proposeConfChange(at(), {
            changes,
            transition,
            context: new Uint8Array(),
          });
          return `index ${r.index}`;
        });
      case "transfer-leader":
        return attempt(() => {
          this.c.transferLeader(at(), num("to"));
          return "ok";
        });
      case "crash":
        this.c.crash(Number(pos[0]));
        return "ok";
      case "restart":
        this.c.restart(Number(pos[0]));
        return "ok";
      case "isolate":
        this.c.isolate(Number(pos[0]));
        return "ok";
      case "partition":
        this.c.partition(...pos.map((g) => g.split(",").map(Number)));
        return "ok";
      case "heal":
        this.c.heal();
        return "ok";
      case "status":
        return this.c.ids.map((id) => {
          const s = this.c.status(id);
          if (s === undefined) return `${id}: down`;
          return `${id}: ${s.role} term:${s.term} lead:${s.lead} commit:${s.commit}` +
            ` applied:${s.applied} ${describeConfState(s.conf)}` +
            (s.leadTransferee !== 0 ? ` transferring to ${s.leadTransferee}` : "");
        }).join("\n");
      case "raft-state":
        return this.c.ids.map((id) => {
          const s = this.c.status(id);
          return s === undefined ? `${id}: down` : `${id}: ${s.role} term:${s.term} lead:${s.lead}`;
        }).join("\n");
      case "applied":
        return appliedCommands(this.c, Number(pos[0])).join(" ") || "(none)";
      default:
        throw new Error(`unknown command "${name}"`);
    }
  }

  /** Why the cluster is not settled, or undefined when it is. */
  #settled(): string | undefined {
    const c = this.c;
    const lead = c.stableLeader();
    if (lead === undefined) return "no leader every member follows";
    const s = c.status(lead)!;
    if (s.commit !== s.lastIndex) return `leader ${lead} commit ${s.commit} < last ${s.lastIndex}`;
    if (s.leadTransferee !== 0) return `leader ${lead} transferring to ${s.leadTransferee}`;
    for (const id of c.members(s.conf)) {
      const m = c.status(id);
      if (m !== undefined && m.applied < s.commit) {
        return `node ${id} applied ${m.applied} < ${s.commit}`;
      }
    }
    return undefined;
  }
}

const REWRITE = Deno.env.get("REWRITE") === "1";
const dir = new URL("./testdata/", import.meta.url);

for (
  const entry of [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".txt")).sort((a, b) =>
    a.name < b.name ? -1 : 1
  )
) {
  Deno.test(`testdata/${entry.name}`, () => {
    const file = new URL(entry.name, dir);
    const { blocks, comments } = parse(Deno.readTextFileSync(file));
    const script = new Script();
    const out: string[] = [];
    const mismatches: string[] = [];
    blocks.forEach((b, k) => {
      let actual: string;
      try {
        actual = script.run(b.command);
      } catch (e) {
        throw new Error(`${entry.name}:${b.line}: ${b.command}: ${(e as Error).message}`);
      }
      for (const c of comments.get(k) ?? []) out.push(c);
      out.push(b.command, "----", actual, "");
      if (actual !== b.expected) {
        mismatches.push(
          `${entry.name}:${b.line}: ${b.command}\n--- expected\n${b.expected}\n--- actual\n${actual}`,
        );
      }
    });
    for (const c of comments.get(blocks.length) ?? []) out.push(c);
    if (REWRITE) {
      Deno.writeTextFileSync(file, out.join("\n"));
      return;
    }
    assert.equal(mismatches.length, 0, `${mismatches.join("\n\n")}\n(REWRITE=1 regenerates)`);
  });
}
