/**
 * The web view's HTML: a static page; app.ts (bundled into app_bundle.ts) fills
 * it from `/api/cluster` twice a second. No CDN, no web fonts: it works offline.
 *
 * @module
 */

/** The page served at `/`. */
export const PAGE_HTML: string = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>raftkv cluster</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; background: #fafafa; }
  h1 { font-size: 1.3rem; margin: 0 0 .2rem; }
  h2 { font-size: 1rem; margin: 1.4rem 0 .4rem; }
  #meta { color: #666; }
  #error { color: #fff; background: #b00020; padding: .3rem .6rem; display: none; }
  table { border-collapse: collapse; background: #fff; }
  th, td { padding: .3rem .7rem; border-bottom: 1px solid #ddd; text-align: right; }
  th:first-child, td:first-child, td.text, th.text { text-align: left; }
  tr[data-up="false"] { color: #999; background: #fff0f0; }
  tr[data-up="false"] .bar > span { background: #bbb; }
  .badge { display: inline-block; padding: 0 .45rem; border-radius: .6rem; font-size: .85em; }
  .up { background: #d7f5dd; color: #145c24; }
  .down { background: #b00020; color: #fff; }
  .leader { font-weight: 600; color: #0b57d0; }
  .bar { width: 220px; height: .8rem; background: #eee; display: inline-block; vertical-align: middle; }
  .bar > span { display: block; height: 100%; background: #0b57d0; }
  #rate { display: flex; align-items: flex-end; gap: 2px; height: 60px; }
  #rate > span { width: 6px; background: #0b57d0; }
  #timeline { list-style: none; padding: 0; margin: 0; max-height: 16rem; overflow: auto; }
  #timeline li { padding: .1rem 0; }
  #timeline .lost { color: #b00020; }
</style>
</head>
<body>
<h1>raftkv cluster</h1>
<div id="meta">connecting…</div>
<div id="error"></div>
<h2>Members</h2>
<table>
  <thead><tr>
    <th>id</th><th class="text">address</th><th class="text">state</th><th class="text">role</th>
    <th>term</th><th>commit</th><th>applied</th><th>last index</th><th>lag</th>
  </tr></thead>
  <tbody id="members"></tbody>
</table>
<h2>Replication (leader's view of each follower)</h2>
<table>
  <thead><tr><th>follower</th><th>match</th><th>next</th><th class="text">progress</th></tr></thead>
  <tbody id="progress"></tbody>
</table>
<h2>Writes per second <span id="wps"></span></h2>
<div id="rate"></div>
<h2>Timeline of terms and leaders</h2>
<ul id="timeline"></ul>
<script src="/app.js"></script>
</body>
</html>
`;
