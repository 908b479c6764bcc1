/**
 * The web view's script, run in the browser: polls `/api/cluster` every 500 ms
 * and redraws the page (page.ts). Bundled by `deno task bundle:web` into
 * app_bundle.ts, which the node serves as `/app.js`; a test keeps the bundle
 * fresh. Writes per second are the leader's commit index over time: every
 * committed entry is a write, but for the one no-op each new leader commits.
 *
 * @module
 */

import type { ClusterView, MemberView } from "../cluster_view.ts";

/**
 * The little of the DOM this script uses. Declared here rather than with
 * `/// <reference lib="dom" />`, which would put the DOM's globals into the type
 * check of every file `deno check src/` sees, where they clash with Deno's.
 */
interface El {
  textContent: string | null;
  className: string;
  title: string;
  colSpan: number;
  readonly dataset: Record<string, string | undefined>;
  readonly style: Record<string, string>;
  append(...nodes: (El | string)[]): void;
  replaceChildren(...nodes: (El | string)[]): void;
  querySelectorAll(selector: string): Iterable<El>;
}
interface Doc {
  getElementById(id: string): El | null;
  createElement(tag: string): El;
}
const doc = (globalThis as unknown as { document: Doc }).document;
type HTMLElement = El;
type HTMLTableCellElement = El;
type HTMLTableRowElement = El;

/**
 * How often the page asks for the view: a poll starts every POLL_MS, or as soon as
 * the previous one ends if that took longer (at most STATUS_TIMEOUT_MS of
 * cluster_view.ts, 400 ms, when a member does not answer). A change in the
 * cluster then shows within about POLL_MS + 400 ms: a killed member shows down
 * within that of the kill, and a new leader within that of its election (issue 14
 * asks for 2 s from the kill, with the election timeout on top of this).
 */
const POLL_MS = 500;
/** Writes-per-second samples kept for the chart: one per poll, 30 s. */
const RATE_SAMPLES = 60;

const $ = (id: string): HTMLElement => {
  const el = doc.getElementById(id);
  if (el === null) throw new Error(`the page has no #${id}`);
  return el;
};

function cell(text: string | number | undefined, cls?: string): HTMLTableCellElement {
  const td = doc.createElement("td");
  td.textContent = text === undefined ? "–" : String(text);
  if (cls !== undefined) td.className = cls;
  return td;
}

function memberRow(m: MemberView): HTMLTableRowElement {
  const tr = doc.createElement("tr");
  tr.dataset.id = String(m.id);
  tr.dataset.up = String(m.up);
  tr.dataset.role = m.up ? m.role ?? "" : "";
  const state = cell("", "text");
  const badge = doc.createElement("span");
  badge.className = `badge ${m.up ? "up" : "down"}`;
  badge.textContent = m.up ? "up" : "down";
  if (m.error !== undefined) badge.title = m.error;
  state.replaceChildren(badge);
  tr.append(
    cell(m.id),
    cell(m.address, "text"),
    state,
    cell(
      m.up ? m.role?.replace("_", "-") : undefined,
      m.role === "leader" ? "text leader" : "text",
    ),
    cell(m.term),
    cell(m.commit),
    cell(m.applied),
    cell(m.lastIndex),
    cell(m.lag),
  );
  return tr;
}

function progressRows(view: ClusterView): HTMLTableRowElement[] {
  const leader = view.members.find((m) => m.up && m.role === "leader");
  if (leader?.progress === undefined) {
    const tr = doc.createElement("tr");
    const td = cell("no leader answered", "text");
    td.colSpan = 4;
    tr.append(td);
    return [tr];
  }
  const last = Math.max(1, leader.lastIndex ?? 1);
  return leader.progress.map((p) => {
    const tr = doc.createElement("tr");
    const bar = doc.createElement("span");
    bar.className = "bar";
    const fill = doc.createElement("span");
    fill.style.width = `${Math.min(100, (100 * p.match) / last).toFixed(1)}%`;
    bar.append(fill);
    const td = cell("", "text");
    td.append(bar, ` ${p.match} / ${leader.lastIndex}`);
    // A follower that did not answer: its match is what the leader last heard.
    if (view.members.find((m) => m.id === p.id)?.up === false) {
      tr.dataset.up = "false";
      td.append(" (down)");
    }
    tr.append(cell(p.id), cell(p.match), cell(p.next), td);
    return tr;
  });
}

const time = (ms: number) => new Date(ms).toLocaleTimeString();

/** Commit index samples of the leader, to turn into writes per second. */
const samples: { at: number; commit: number }[] = [];
const rates: number[] = [];

function noteCommit(view: ClusterView): void {
  const leader = view.members.find((m) => m.up && m.role === "leader");
  if (leader?.commit === undefined) return;
  const prev = samples.at(-1);
  samples.push({ at: view.at, commit: leader.commit });
  if (samples.length > 2 * RATE_SAMPLES) samples.shift();
  if (prev === undefined || view.at <= prev.at) return;
  rates.push(Math.max(0, (leader.commit - prev.commit) / ((view.at - prev.at) / 1000)));
  if (rates.length > RATE_SAMPLES) rates.shift();
}

function drawRate(): void {
  const max = Math.max(1, ...rates);
  $("rate").replaceChildren(...rates.map((r) => {
    const bar = doc.createElement("span");
    bar.style.height = `${Math.max(1, (60 * r) / max)}px`;
    bar.title = `${r.toFixed(0)}/s`;
    return bar;
  }));
  // The mean over the last 5 s, steadier than one sample.
  const recent = rates.slice(-10);
  const mean = recent.reduce((a, b) => a + b, 0) / Math.max(1, recent.length);
  $("wps").textContent = `(now ${mean.toFixed(0)}/s)`;
}

function drawTimeline(view: ClusterView): void {
  $("timeline").replaceChildren(
    ...[...view.timeline].reverse().map((e) => {
      const li = doc.createElement("li");
      if (e.leader === 0) li.className = "lost";
      li.textContent = `${time(e.at)}  term ${e.term}: ` +
        (e.leader === 0 ? "leader lost, election" : `node ${e.leader} leads`);
      return li;
    }),
  );
}

function draw(view: ClusterView): void {
  const up = view.members.filter((m) => m.up).length;
  $("meta").textContent = `${view.members.length} members, ${up} up; ` +
    `seen by node ${view.from} at ${time(view.at)}`;
  $("members").replaceChildren(...view.members.map(memberRow));
  $("progress").replaceChildren(...progressRows(view));
  noteCommit(view);
  drawRate();
  drawTimeline(view);
}

async function poll(): Promise<void> {
  const error = $("error");
  const started = Date.now();
  try {
    const res = await fetch("/api/cluster", { signal: AbortSignal.timeout(2000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    draw(await res.json() as ClusterView);
    error.style.display = "none";
  } catch (err) {
    // The node serving the page is gone: say so rather than show its last view as now.
    error.textContent = `cannot reach the node serving this page: ${(err as Error).message}`;
    error.style.display = "block";
    for (const tr of $("members").querySelectorAll("tr")) tr.dataset.up = "unknown";
  } finally {
    // At a fixed rate, not POLL_MS after the answer: a slow answer (a member that
    // does not answer in time) must not add its time to the next poll's wait.
    setTimeout(poll, Math.max(0, POLL_MS - (Date.now() - started)));
  }
}

void poll();
