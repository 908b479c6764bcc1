/**
 * Renders a checked chaos history as one self-contained HTML page (inline CSS, no
 * scripts, no external assets) for a person to look at: one row per client, each
 * operation a bar from invoke to completion, labelled with what it did, colored by
 * outcome; unknown-outcome operations run open-ended (hatched) to the right edge,
 * since they may take effect at any time after their invoke. The failing window of
 * each non-linearizable key is shaded across all rows and its operations outlined
 * (the core more heavily); for each linearizable key the witness order is listed.
 *
 * @module
 */

import type { CheckResult, KeyResult, Operation, OpId, Value } from "./linearizability.ts";

/** Escapes the five HTML special characters, for text and attribute values alike. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => {
    switch (c) {
      case "&":
        return "&amp;";
      case "<":
        return "&lt;";
      case ">":
        return "&gt;";
      case '"':
        return "&quot;";
      default:
        return "&#39;";
    }
  });
}

/** Longest value or key shown in a label; the tooltip has the full text. */
const LABEL_TEXT_MAX = 24;

function short(text: string): string {
  const chars = [...text];
  return chars.length <= LABEL_TEXT_MAX ? text : chars.slice(0, LABEL_TEXT_MAX - 1).join("") + "…";
}

function showValue(value: Value | undefined): string {
  if (value === undefined) return "∅";
  if (value === "") return '""';
  return short(value);
}

/**
 * A short, unescaped label for an operation: `put k=3`, `get k → 3`, `get k → ∅`
 * (absent), `del k ✓` (deleted) or `del k ∅` (was absent), `cas k 3→4 ✓`,
 * `cas k 3→4 ✗ (5)` (failed; the key held 5); with ` ?` appended when the outcome is
 * unknown and ` (failed)` when the call definitely did not happen. Keys and values
 * longer than 24 characters are cut short with `…`.
 */
export function opLabel(op: Operation): string {
  const key = short(op.key);
  let text: string;
  switch (op.kind) {
    case "get":
      text = op.outcome === "ok"
        ? `get ${key} → ${showValue(op.output.found ? op.output.value : undefined)}`
        : `get ${key}`;
      break;
    case "put":
      text = `put ${key}=${showValue(op.input.value)}`;
      break;
    case "delete":
      text = op.outcome === "ok" ? `del ${key} ${op.output.deleted ? "✓" : "∅"}` : `del ${key}`;
      break;
    case "cas": {
      text = `cas ${key} ${showValue(op.input.expected)}→${showValue(op.input.value)}`;
      if (op.outcome === "ok") {
        text += op.output.succeeded
          ? " ✓"
          : ` ✗ (${showValue(op.output.found ? op.output.value : undefined)})`;
      }
      break;
    }
    case "txn": {
      const i = op.input;
      const steps = (list: typeof i.success) =>
        list.map((s) =>
          s.op === "put" ? `${short(s.key)}=${showValue(s.value)}` : `${s.op} ${short(s.key)}`
        ).join(", ");
      const ifs = i.compares.map((c) => `${short(c.key)}=${showValue(c.value)}`).join(" ∧ ");
      text = `txn ${ifs === "" ? "" : `if ${ifs} `}{${steps(i.success)}}` +
        (i.failure.length === 0 ? "" : ` else {${steps(i.failure)}}`);
      if (op.outcome === "ok") {
        text += ` ${op.output.succeeded ? "✓" : "✗"}` +
          (op.output.gets.length === 0
            ? ""
            : ` → ${op.output.gets.map((v) => showValue(v ?? undefined)).join(",")}`);
      }
      break;
    }
    case "range":
      text = `range ${key}` +
        (op.outcome === "ok"
          ? ` → {${op.output.kvs.map(([k, v]) => `${short(k)}=${showValue(v)}`).join(", ")}}`
          : "");
      break;
  }
  if (op.outcome === "unknown") text += " ?";
  if (op.outcome === "fail") text += " (failed)";
  return text;
}

/** The full, unescaped description of an operation for its tooltip. */
function opDetails(op: Operation, witness: WitnessInfo | undefined): string {
  const lines = [
    `#${op.id} client ${op.client}, key ${op.key}`,
    op.input === undefined ? op.kind : `${op.kind} ${JSON.stringify(op.input)}`,
    `invoke ${op.invoke}, complete ${op.complete ?? "—"}, outcome ${op.outcome}`,
  ];
  if (op.outcome === "ok") {
    lines.push(
      `output ${JSON.stringify(op.output, (_k, v) => typeof v === "bigint" ? v.toString() : v)}`,
    );
  }
  if (op.error !== undefined) lines.push(`error ${op.error}`);
  if (witness?.position !== undefined) {
    lines.push(`witness: ${witness.position} of ${witness.total} on key ${op.key}`);
  }
  if (witness?.notApplied === true) lines.push("witness: never took effect");
  if (witness?.core === true) lines.push("in the failing core");
  else if (witness?.window === true) lines.push("in the failing window");
  return lines.join("\n");
}

/** What the result says about one operation. */
interface WitnessInfo {
  position?: number;
  total?: number;
  notApplied?: boolean;
  window?: boolean;
  core?: boolean;
}

function witnessInfo(result: CheckResult): Map<OpId, WitnessInfo> {
  const info = new Map<OpId, WitnessInfo>();
  const get = (id: OpId): WitnessInfo => {
    let entry = info.get(id);
    if (entry === undefined) info.set(id, entry = {});
    return entry;
  };
  for (const key of result.perKey) {
    const order = key.linearization ?? [];
    order.forEach((id, i) => {
      const entry = get(id);
      entry.position = i + 1;
      entry.total = order.length;
    });
    for (const id of key.notApplied ?? []) get(id).notApplied = true;
    for (const id of key.failure?.ops ?? []) get(id).window = true;
    for (const id of key.failure?.core ?? []) get(id).core = true;
  }
  return info;
}

function clientOrder(a: number | string, b: number | string): number {
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (typeof a === "number") return -1;
  if (typeof b === "number") return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A lane: one row of bars that do not overlap. */
interface Lane {
  readonly client: number | string;
  readonly first: boolean;
  readonly ops: Operation[];
  end: number;
}

const CSS = `
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; margin: 0 0 8px; }
h2 { font-size: 15px; margin: 18px 0 6px; }
.verdict { display: inline-block; padding: 2px 8px; border-radius: 4px; font-weight: 600; }
.v-ok { background: #dff0d8; color: #2b542c; }
.v-fail { background: #f2dede; color: #a94442; }
.v-timeout { background: #fcf8e3; color: #8a6d3b; }
table.keys { border-collapse: collapse; margin: 6px 0; }
table.keys td, table.keys th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
.legend span.sw { display: inline-block; width: 28px; height: 12px; vertical-align: middle;
  margin: 0 4px 0 12px; border-radius: 2px; }
.scroll { overflow-x: auto; border: 1px solid #ddd; }
.timeline { display: flex; min-width: 1200px; }
.names { flex: 0 0 110px; border-right: 1px solid #ccc; background: #fafafa; }
.name { height: 24px; line-height: 24px; padding: 0 6px; white-space: nowrap; overflow: hidden;
  font-weight: 600; box-sizing: border-box; }
.name.cont { font-weight: normal; color: #999; }
.plot { position: relative; flex: 1 1 auto; margin-right: 8px; }
.lane { position: absolute; left: 0; right: 0; height: 24px; }
.lane.first { border-top: 1px solid #eee; }
.axis { height: 20px; position: relative; border-bottom: 1px solid #ccc; }
.tick { position: absolute; top: 2px; font-size: 11px; color: #666; transform: translateX(-50%);
  white-space: nowrap; }
.gridline { position: absolute; top: 0; bottom: 0; width: 0; border-left: 1px dotted #ddd; }
.band { position: absolute; top: 0; bottom: 0; background: rgba(217, 83, 79, 0.12);
  border-left: 2px solid rgba(217, 83, 79, 0.6); border-right: 2px solid rgba(217, 83, 79, 0.6); }
.band-label { position: absolute; top: 0; left: 3px; font-size: 11px; color: #a94442;
  white-space: nowrap; }
.bar { position: absolute; top: 3px; height: 18px; line-height: 18px; min-width: 3px;
  box-sizing: border-box; border-radius: 3px; padding: 0 3px; font-size: 11px;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; border: 1px solid; }
.bar.ok { background: #c8e6c9; border-color: #43a047; }
.bar.fail { background: #e0e0e0; border-color: #9e9e9e; color: #666; text-decoration: line-through; }
.bar.unknown { border-color: #ef8f00; border-right: none; border-radius: 3px 0 0 3px;
  background: repeating-linear-gradient(135deg, #ffe0b2 0 6px, #fff3e0 6px 12px); }
.bar.not-applied { border-style: dashed; opacity: 0.7; }
.bar.window { box-shadow: 0 0 0 2px #d9534f; z-index: 2; }
.bar.core { box-shadow: 0 0 0 3px #a94442; font-weight: 700; z-index: 3; }
.bar .pos { color: #1565c0; font-weight: 700; margin-right: 3px; }
ol.order { columns: 3; font-size: 12px; }
ol.order li, ul.window li { white-space: nowrap; }
code { font-size: 12px; }
`;

/**
 * Renders `ops` and the result of checking them as a self-contained HTML page titled
 * `title`: a summary per key, a legend, the timeline (one row per client, extra rows
 * when a client's bars overlap, as an unknown bar does with its client's later calls),
 * and per key the failing window or the witness linearization order. Every key,
 * value and title is HTML-escaped.
 */
export function renderTimeline(
  ops: readonly Operation[],
  result: CheckResult,
  title: string,
): string {
  const info = witnessInfo(result);
  const byId = new Map<OpId, Operation>(ops.map((op) => [op.id, op]));

  // The time range: every invoke and every recorded completion; unknown bars run to the end.
  let t0 = Infinity;
  let t1 = -Infinity;
  for (const op of ops) {
    t0 = Math.min(t0, op.invoke);
    t1 = Math.max(t1, op.invoke, op.complete ?? -Infinity);
  }
  if (ops.length === 0) [t0, t1] = [0, 1];
  if (t1 <= t0) t1 = t0 + 1;
  const tEnd = t1 + (t1 - t0) * 0.04;
  const x = (t: number): number => ((Math.min(t, tEnd) - t0) / (tEnd - t0)) * 100;
  const pct = (v: number): string => `${v.toFixed(3)}%`;

  // Lanes: per client, first fit by invoke time.
  const clients = new Map<number | string, Operation[]>();
  for (const op of ops) {
    const list = clients.get(op.client);
    if (list === undefined) clients.set(op.client, [op]);
    else list.push(op);
  }
  const lanes: Lane[] = [];
  for (const client of [...clients.keys()].sort(clientOrder)) {
    const mine: Lane[] = [];
    const sorted = [...(clients.get(client) as Operation[])].sort((a, b) =>
      a.invoke - b.invoke || a.id - b.id
    );
    for (const op of sorted) {
      const end = op.outcome === "unknown" ? Infinity : op.complete ?? op.invoke;
      let lane = mine.find((l) => l.end < op.invoke);
      if (lane === undefined) {
        lane = { client, first: mine.length === 0, ops: [], end: -Infinity };
        mine.push(lane);
      }
      lane.ops.push(op);
      lane.end = end;
    }
    lanes.push(...mine);
  }

  const out: string[] = [];
  out.push(
    "<!DOCTYPE html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>${CSS}</style>`,
    "</head>",
    "<body>",
    `<h1>${escapeHtml(title)}</h1>`,
  );

  const verdictClass = (ok: boolean | "timeout"): string =>
    ok === true ? "v-ok" : ok === false ? "v-fail" : "v-timeout";
  const verdictText = (ok: boolean | "timeout"): string =>
    ok === true ? "linearizable" : ok === false ? "NOT linearizable" : "undecided (budget)";
  const s = result.stats;
  out.push(
    `<p><span class="verdict ${verdictClass(result.ok)}">${verdictText(result.ok)}</span> ` +
      `${s.operations} operations on ${s.keys} keys; ${s.checked} checked, ` +
      `${s.failed} failed (dropped), ${s.unknownReads} unknown reads (dropped), ` +
      `${s.unknownWrites} unknown writes; ${s.steps} search steps.</p>`,
  );

  out.push(
    '<table class="keys"><tr><th>key</th><th>verdict</th><th>ops</th><th>checked</th>' +
      "<th>steps</th><th>notes</th></tr>",
  );
  for (const key of result.perKey) {
    out.push(
      `<tr><td><code>${escapeHtml(key.key)}</code></td>` +
        `<td><span class="verdict ${verdictClass(key.ok)}">${verdictText(key.ok)}</span></td>` +
        `<td>${key.operations}</td><td>${key.checked}</td><td>${key.steps}</td>` +
        `<td>${escapeHtml(keyNote(key))}</td></tr>`,
    );
  }
  out.push("</table>");

  out.push(
    '<p class="legend">' +
      '<span class="sw bar ok" style="position:static;display:inline-block"></span>ok' +
      '<span class="sw bar unknown" style="position:static;display:inline-block"></span>' +
      "unknown (open-ended)" +
      '<span class="sw bar fail" style="position:static;display:inline-block"></span>' +
      "failed (did not happen)" +
      '<span class="sw bar ok window" style="position:static;display:inline-block"></span>' +
      "failing window" +
      '<span class="sw bar ok core" style="position:static;display:inline-block"></span>' +
      "failing core" +
      ' &nbsp; <span class="pos" style="color:#1565c0;font-weight:700">3</span>' +
      " position in the key's witness order</p>",
  );

  // The timeline.
  out.push('<div class="scroll"><div class="timeline">');
  out.push('<div class="names"><div class="name" style="height:20px"></div>');
  for (const lane of lanes) {
    out.push(
      `<div class="name${lane.first ? "" : " cont"}">${
        lane.first ? escapeHtml(String(lane.client)) : "↳"
      }</div>`,
    );
  }
  out.push("</div>");
  out.push(`<div class="plot" style="height:${20 + lanes.length * 24}px">`);
  out.push('<div class="axis">');
  const ticks = 8;
  for (let i = 0; i <= ticks; i++) {
    const t = t0 + ((t1 - t0) * i) / ticks;
    out.push(`<span class="tick" style="left:${pct(x(t))}">${formatTime(t)}</span>`);
  }
  out.push("</div>");
  for (let i = 0; i <= ticks; i++) {
    const t = t0 + ((t1 - t0) * i) / ticks;
    out.push(`<div class="gridline" style="left:${pct(x(t))}"></div>`);
  }
  for (const key of result.perKey) {
    const failure = key.failure;
    if (failure === undefined) continue;
    let from = Infinity;
    for (const id of failure.ops) from = Math.min(from, byId.get(id)?.invoke ?? Infinity);
    if (!Number.isFinite(from)) continue;
    const to = Number.isFinite(failure.prefixEnd) ? failure.prefixEnd : t1;
    out.push(
      `<div class="band" style="left:${pct(x(from))};width:${
        pct(Math.max(x(to) - x(from), 0.2))
      }" title="${escapeHtml(`failing window on key ${key.key}`)}">` +
        `<span class="band-label">${escapeHtml(`✗ ${short(key.key)}`)}</span></div>`,
    );
  }
  lanes.forEach((lane, row) => {
    out.push(
      `<div class="lane${lane.first ? " first" : ""}" style="top:${20 + row * 24}px">`,
    );
    for (const op of lane.ops) {
      const w = info.get(op.id);
      const classes = ["bar", op.outcome];
      if (w?.notApplied === true) classes.push("not-applied");
      if (w?.core === true) classes.push("core");
      else if (w?.window === true) classes.push("window");
      const left = x(op.invoke);
      const right = op.outcome === "unknown" ? 100 : x(op.complete ?? op.invoke);
      const pos = w?.position !== undefined ? `<span class="pos">${w.position}</span>` : "";
      out.push(
        `<div class="${classes.join(" ")}" style="left:${pct(left)};width:${
          pct(Math.max(right - left, 0))
        }" title="${escapeHtml(opDetails(op, w))}">${pos}${escapeHtml(opLabel(op))}</div>`,
      );
    }
    out.push("</div>");
  });
  out.push("</div></div></div>");

  // Per key: the failing window, or the witness.
  for (const key of result.perKey) {
    out.push(`<h2>Key <code>${escapeHtml(key.key)}</code>: ${verdictText(key.ok)}</h2>`);
    const describe = (id: OpId): string => {
      const op = byId.get(id);
      return op === undefined
        ? `#${id}`
        : `#${id} ${escapeHtml(opLabel(op))} <small>(client ${escapeHtml(String(op.client))}, ${
          formatTime(op.invoke)
        }–${op.outcome === "unknown" ? "∞" : formatTime(op.complete ?? op.invoke)})</small>`;
    };
    if (key.failure !== undefined) {
      const f = key.failure;
      out.push(
        `<p>Failing core (${f.core.length} ops; with everything else relaxed to "unknown", ` +
          `these cannot be linearized, and each is needed):</p><ul class="window">`,
      );
      for (const id of f.core) out.push(`<li>${describe(id)}</li>`);
      out.push(
        `</ul><p>Failing window: ${f.ops.length} consecutive ops in invoke order, within a ` +
          `shortest failing prefix of ${f.prefixOps} ops ending at ${formatTime(f.prefixEnd)}` +
          `${f.minimal ? "" : " (budget ran out: may not be minimal)"}.</p>` +
          '<details><summary>window ops</summary><ul class="window">',
      );
      for (const id of f.ops) out.push(`<li>${describe(id)}</li>`);
      out.push("</ul></details>");
    } else if (key.linearization !== undefined) {
      out.push(
        `<details><summary>Witness order (${key.linearization.length} ops)</summary>` +
          '<ol class="order">',
      );
      for (const id of key.linearization) out.push(`<li>${describe(id)}</li>`);
      out.push("</ol>");
      if ((key.notApplied ?? []).length > 0) {
        out.push("<p>Unknown writes that never took effect in this witness:</p><ul>");
        for (const id of key.notApplied ?? []) out.push(`<li>${describe(id)}</li>`);
        out.push("</ul>");
      }
      out.push("</details>");
    } else if (key.ok === false) {
      out.push("<p>Not linearizable (no window search requested).</p>");
    } else {
      out.push("<p>The search ran out of budget before deciding.</p>");
    }
  }
  out.push("</body>", "</html>", "");
  return out.join("\n");
}

function keyNote(key: KeyResult): string {
  if (key.failure !== undefined) {
    return `core ${key.failure.core.length} ops, window ${key.failure.ops.length} ops`;
  }
  if (key.linearization !== undefined) {
    const skipped = key.notApplied?.length ?? 0;
    return `witness of ${key.linearization.length} ops` +
      (skipped > 0 ? `, ${skipped} unknown writes never applied` : "");
  }
  return "";
}

function formatTime(t: number): string {
  return Number.isInteger(t) ? String(t) : t.toFixed(1);
}
