/**
 * The HTML timeline of a checked history: self-contained, labelled, escaped.
 *
 * @module
 */

import assert from "node:assert/strict";
import { checkHistory, type Operation } from "./linearizability.ts";
import { escapeHtml, opLabel, renderTimeline } from "./timeline.ts";

/** A small history on key `key` with every kind and outcome, and a stale read if `stale`. */
function history(key: string, value: string, stale: boolean): Operation[] {
  return [
    {
      id: 1,
      client: 1,
      key,
      kind: "put",
      input: { value },
      invoke: 0,
      complete: 10,
      outcome: "ok",
      output: { index: 7n },
    },
    {
      id: 2,
      client: 2,
      key,
      kind: "get",
      invoke: 5,
      complete: 15,
      outcome: "ok",
      output: { found: true, value },
    },
    {
      id: 3,
      client: 1,
      key,
      kind: "cas",
      input: { expected: value, value: "4" },
      invoke: 20,
      complete: 30,
      outcome: "ok",
      output: { succeeded: true, found: true, value: "4" },
    },
    {
      id: 4,
      client: 2,
      key,
      kind: "get",
      invoke: 40,
      complete: 50,
      outcome: "ok",
      output: { found: true, value: stale ? value : "4" },
    },
    {
      id: 5,
      client: 3,
      key,
      kind: "put",
      input: { value: "lost" },
      invoke: 25,
      complete: 35,
      outcome: "unknown",
      error: "DEADLINE_EXCEEDED",
    },
    {
      id: 6,
      client: 3,
      key,
      kind: "delete",
      invoke: 60,
      complete: 61,
      outcome: "fail",
      error: "INVALID_ARGUMENT",
    },
    {
      id: 7,
      client: 3,
      key,
      kind: "cas",
      input: { value: "5" },
      invoke: 70,
      complete: 80,
      outcome: "ok",
      output: { succeeded: false, found: true, value: "4" },
    },
  ];
}

Deno.test("opLabel", async (t) => {
  await t.step("says what each call did", () => {
    const ops = history("x", "3", false);
    assert.deepEqual(ops.map(opLabel), [
      "put x=3",
      "get x → 3",
      "cas x 3→4 ✓",
      "get x → 4",
      "put x=lost ?",
      "del x (failed)",
      "cas x ∅→5 ✗ (4)",
    ]);
  });

  await t.step("shows absent, empty and long values distinctly", () => {
    const absent: Operation = {
      id: 1,
      client: 1,
      key: "k",
      kind: "get",
      invoke: 0,
      complete: 1,
      outcome: "ok",
      output: { found: false, value: "" },
    };
    assert.equal(opLabel(absent), "get k → ∅");
    assert.equal(opLabel({ ...absent, output: { found: true, value: "" } }), 'get k → ""');
    assert.equal(
      opLabel({ ...absent, output: { found: true, value: "y".repeat(40) } }),
      `get k → ${"y".repeat(23)}…`,
    );
  });
});

Deno.test("renderTimeline", async (t) => {
  await t.step("a linearizable history: a whole page with every label and the witness", () => {
    const ops = history("x", "3", false);
    const result = checkHistory(ops);
    assert.equal(result.ok, true);
    const html = renderTimeline(ops, result, "run 42");
    assert.ok(html.startsWith("<!DOCTYPE html>"));
    assert.ok(html.trimEnd().endsWith("</html>"));
    assert.match(html, /<title>run 42<\/title>/);
    for (const op of ops) assert.ok(html.includes(escapeHtml(opLabel(op))), opLabel(op));
    assert.ok(html.includes("Witness order"));
    assert.ok(html.includes('class="bar unknown'), "the unknown put is drawn open-ended");
    assert.ok(html.includes('class="bar fail'), "the failed delete is drawn as failed");
    assert.ok(!html.includes('class="band"'), "no failing window");
  });

  await t.step("a non-linearizable history: the failing window is highlighted", () => {
    const ops = history("x", "3", true);
    const result = checkHistory(ops);
    assert.equal(result.ok, false);
    const html = renderTimeline(ops, result, "stale");
    assert.ok(html.includes('class="band"'));
    assert.ok(html.includes(" core"), "core ops are marked");
    assert.ok(html.includes("NOT linearizable"));
    for (const op of ops) assert.ok(html.includes(escapeHtml(opLabel(op))), opLabel(op));
  });

  await t.step("escapes HTML in keys, values and the title", () => {
    const key = `<b class="k">&'`;
    const value = "<script>alert(1)</script>";
    const ops = history(key, value, true);
    const html = renderTimeline(ops, checkHistory(ops), "<i>title</i>");
    assert.ok(!html.includes("<script>"), "no raw script tag");
    assert.ok(!html.includes("<b class"), "no raw key markup");
    assert.ok(!html.includes("<i>title"), "no raw title markup");
    assert.ok(html.includes("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert.ok(html.includes("&lt;b class=&quot;k&quot;&gt;&amp;&#39;"));
    assert.ok(html.includes("&lt;i&gt;title&lt;/i&gt;"));
    for (const op of ops) assert.ok(html.includes(escapeHtml(opLabel(op))), opLabel(op));
  });

  await t.step("is self-contained and balanced", () => {
    const ops = history("x", "3", true);
    const html = renderTimeline(ops, checkHistory(ops), "t");
    assert.ok(!/\b(src|href)=/.test(html), "no external assets");
    assert.ok(!html.includes("<script"), "no scripts");
    for (const tag of ["div", "span", "table", "tr", "td", "ul", "li", "details", "p"]) {
      const opens = html.match(new RegExp(`<${tag}[ >]`, "g"))?.length ?? 0;
      const closes = html.match(new RegExp(`</${tag}>`, "g"))?.length ?? 0;
      assert.equal(opens, closes, `<${tag}> balanced`);
    }
  });

  await t.step("renders an empty history", () => {
    const html = renderTimeline([], checkHistory([]), "empty");
    assert.ok(html.includes("<h1>empty</h1>"));
  });
});
