/**
 * Where a full restart's time goes (`deno task bench:longrun --timeline`): each
 * node's log lines (their own timestamps, the text format) read against the moment
 * the bench spawned the three processes and the moment a write was answered, step
 * by step, and their medians and ranges over several restarts.
 *
 * A node's steps: the Deno runtime up (its time origin, from the `starting` line's
 * modulesMs), its modules loaded (`starting`), its WAL opened (after the newest
 * snapshot's file was read and checked), snapshot and WAL restored (`recovered`),
 * its gRPC port listening. The cluster's: a quorum listening (the second node's
 * `listening`), all three, the first campaign (`starting pre-election`), a leader
 * (`became leader`), and the first write answered (the bench's own clock).
 *
 * @module
 */

/** One node log line, as the text format writes it: `TIMESTAMP LEVEL node=ID ... message fields`. */
export interface NodeLogLine {
  /** Epoch milliseconds of the line's timestamp. */
  readonly ms: number;
  readonly level: string;
  /** The whole line after the level. */
  readonly text: string;
}

const LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)\s+([A-Z]+)\s+(.*)$/;

/** A node's log line in the text format, or undefined for anything else (a stack trace, a JSON line). */
export function parseNodeLogLine(line: string): NodeLogLine | undefined {
  const m = LINE.exec(line);
  if (m === null) return undefined;
  const ms = Date.parse(m[1]!);
  if (Number.isNaN(ms)) return undefined;
  return { ms, level: m[2]!, text: m[3]! };
}

/** The steps of one node's start, in milliseconds from the spawn (undefined: not seen). */
export interface NodeSteps {
  readonly runtimeUp?: number;
  readonly modulesLoaded?: number;
  readonly walOpened?: number;
  readonly recovered?: number;
  readonly listening?: number;
  /** CPU time (user + system) the node had used when it listened, in ms (its `listening` line's cpuMs). */
  readonly cpuToListening?: number;
}

/** The steps of one full restart, in milliseconds from the spawn of the three nodes. */
export interface RestartTimeline {
  readonly nodes: ReadonlyMap<number, NodeSteps>;
  /** The second node listening: from then a quorum could answer. */
  readonly quorumListening?: number;
  readonly allListening?: number;
  /** The first pre-election (or election) any node started. */
  readonly firstCampaign?: number;
  readonly leader?: number;
  /** The bench's first write answered. */
  readonly served: number;
}

function firstWith(lines: readonly NodeLogLine[], what: string | RegExp): NodeLogLine | undefined {
  return lines.find((l) => typeof what === "string" ? l.text.includes(what) : what.test(l.text));
}

/**
 * The timeline of one restart from each node's lines since its spawn (`lines`, by
 * node id), the spawn's and the first write's epoch milliseconds.
 */
export function restartTimeline(
  spawnMs: number,
  lines: ReadonlyMap<number, readonly NodeLogLine[]>,
  servedMs: number,
): RestartTimeline {
  const at = (l: NodeLogLine | undefined) => l === undefined ? undefined : l.ms - spawnMs;
  const nodes = new Map<number, NodeSteps>();
  let firstCampaign: number | undefined;
  let leader: number | undefined;
  const min = (a: number | undefined, b: number | undefined) =>
    a === undefined ? b : b === undefined ? a : Math.min(a, b);
  for (const [id, ls] of [...lines].sort((a, b) => a[0] - b[0])) {
    const starting = firstWith(ls, " starting version=");
    const modulesMs = starting === undefined
      ? undefined
      : Number(/modulesMs=(\d+)/.exec(starting.text)?.[1]);
    const listeningLine = firstWith(ls, /role=\w+ listening address=/);
    const cpuMs = Number(/cpuMs=(\d+)/.exec(listeningLine?.text ?? "")?.[1]);
    nodes.set(id, {
      runtimeUp: starting === undefined || modulesMs === undefined || Number.isNaN(modulesMs)
        ? undefined
        : at(starting)! - modulesMs,
      modulesLoaded: at(starting),
      walOpened: at(firstWith(ls, "wal: opened")),
      recovered: at(firstWith(ls, "recovered from the snapshot")),
      listening: at(listeningLine),
      ...(Number.isNaN(cpuMs) ? {} : { cpuToListening: cpuMs }),
    });
    firstCampaign = min(
      firstCampaign,
      min(at(firstWith(ls, "starting pre-election")), at(firstWith(ls, "starting election"))),
    );
    leader = min(leader, at(firstWith(ls, "became leader")));
  }
  const listening = [...nodes.values()].map((n) => n.listening).filter((v) => v !== undefined)
    .sort((a, b) => a - b);
  return {
    nodes,
    quorumListening: listening[1],
    allListening: listening.length === nodes.size ? listening[listening.length - 1] : undefined,
    firstCampaign,
    leader,
    served: servedMs - spawnMs,
  };
}

/** A step of the summary: a name and how to take its duration from a node's steps or the cluster's. */
interface Step {
  readonly name: string;
  readonly perNode?: (n: NodeSteps) => number | undefined;
  readonly cluster?: (t: RestartTimeline) => number | undefined;
}

const diff = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined ? undefined : b - a;

/** The steps a summary shows, each the time since the step before it. */
export const STEPS: readonly Step[] = [
  { name: "spawn -> Deno runtime up", perNode: (n) => n.runtimeUp },
  { name: "runtime up -> modules loaded", perNode: (n) => diff(n.runtimeUp, n.modulesLoaded) },
  {
    name: "modules loaded -> snapshot read, WAL opened",
    perNode: (n) => diff(n.modulesLoaded, n.walOpened),
  },
  { name: "WAL opened -> state restored", perNode: (n) => diff(n.walOpened, n.recovered) },
  { name: "state restored -> listening", perNode: (n) => diff(n.recovered, n.listening) },
  { name: "spawn -> listening (each node)", perNode: (n) => n.listening },
  { name: "CPU (user + system) to listening", perNode: (n) => n.cpuToListening },
  { name: "spawn -> a quorum listening", cluster: (t) => t.quorumListening },
  { name: "spawn -> all three listening", cluster: (t) => t.allListening },
  {
    name: "quorum listening -> first campaign",
    cluster: (t) => diff(t.quorumListening, t.firstCampaign),
  },
  { name: "first campaign -> leader", cluster: (t) => diff(t.firstCampaign, t.leader) },
  { name: "leader -> first write answered", cluster: (t) => diff(t.leader, t.served) },
  { name: "spawn -> first write answered", cluster: (t) => t.served },
];

/** Median, min and max of `values` (sorted copy), or undefined for none. */
export function spread(
  values: readonly number[],
): { median: number; min: number; max: number; n: number } | undefined {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length / 2;
  const median = s.length % 2 === 1 ? s[Math.floor(mid)]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]!, n: s.length };
}

/** One line per node and one for the cluster: what one restart's timeline says. */
export function formatTimeline(t: RestartTimeline): string[] {
  const f = (v: number | undefined) => v === undefined ? "-" : `${Math.round(v)}`;
  const out: string[] = [];
  for (const [id, n] of t.nodes) {
    out.push(
      `    node ${id}: runtime up ${f(n.runtimeUp)}, modules ${f(n.modulesLoaded)}, WAL opened ${
        f(n.walOpened)
      }, restored ${f(n.recovered)}, listening ${f(n.listening)} ms (CPU ${
        f(n.cpuToListening)
      } ms)`,
    );
  }
  out.push(
    `    cluster: quorum listening ${f(t.quorumListening)}, all ${f(t.allListening)}, ` +
      `first campaign ${f(t.firstCampaign)}, leader ${f(t.leader)}, write answered ${
        f(t.served)
      } ms`,
  );
  return out;
}

/** The summary table: each step's median and range (ms) over `timelines` (per node steps over every node). */
export function formatSummary(timelines: readonly RestartTimeline[]): string[] {
  const out = [
    `restart timeline over ${timelines.length} restarts (ms; median, min-max, samples):`,
  ];
  for (const step of STEPS) {
    const values: number[] = [];
    for (const t of timelines) {
      if (step.perNode !== undefined) {
        for (const n of t.nodes.values()) {
          const v = step.perNode(n);
          if (v !== undefined) values.push(v);
        }
      } else {
        const v = step.cluster!(t);
        if (v !== undefined) values.push(v);
      }
    }
    const s = spread(values);
    out.push(
      `  ${step.name.padEnd(44)} ${
        s === undefined
          ? "not seen"
          : `${String(Math.round(s.median)).padStart(5)}  ${Math.round(s.min)}-${
            Math.round(s.max)
          }  (${s.n})`
      }`,
    );
  }
  return out;
}
