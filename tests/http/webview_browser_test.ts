/**
 * The web view in a real browser: Debian's chromium, headless, driven by
 * puppeteer-core (which cannot download a browser: it is given /usr/bin/chromium).
 * Against a 3-node cluster the page, served by a follower, shows three members up
 * and one leader; the leader is killed; the page shows it down and a new leader.
 *
 * Issue 14 asks for that within 2 seconds of the kill. No test here asserts a
 * speed (a loaded machine would fail it for no fault of the page), so the test
 * waits with a generous deadline and prints how long after the kill the page
 * showed each, also into .ci/out/webview_times.txt, for CI to report. What makes
 * 2 s reachable: the page polls every 500 ms (app.ts), a member that does not
 * answer within 400 ms is shown down (cluster_view.ts), and the test cluster's
 * election timeout is 500 ms (randomized up to 1 s), so a new leader is elected
 * about 0.5-1 s after the kill and shown at most about 0.9 s later. The screenshot
 * goes to .ci/out/webview.png.
 *
 * @module
 */

import assert from "node:assert/strict";
import puppeteer, { type Page } from "puppeteer-core";
import { REPO_ROOT, waitFor, withCluster } from "../e2e/_harness.ts";

/** Debian's chromium (.ci/run installs it). */
const CHROMIUM = "/usr/bin/chromium";

/** Each member row as the page shows it: id, up ("true", "false"), role. */
function rows(page: Page): Promise<{ id: number; up: string; role: string }[]> {
  return page.$$eval("#members tr[data-id]", (trs) =>
    trs.map((tr) => {
      const d = (tr as unknown as { dataset: Record<string, string> }).dataset;
      return { id: Number(d.id), up: d.up ?? "", role: d.role ?? "" };
    }));
}

/** How long the page may take to catch up, generous: the figure is printed, not asserted. */
const CATCH_UP_MS = 30_000;

Deno.test("the web view shows the cluster; a killed leader shows down, then its successor", async () => {
  await withCluster({ nodes: 3, http: true }, async (c) => {
    const leader = await c.leader();
    const viewer = c.ids.find((id) => id !== leader)!;
    const browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Root in a container: no user namespaces for chromium's sandbox.
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    });
    try {
      const page = await browser.newPage();
      await page.setViewport({ width: 1000, height: 820 });
      const errors: string[] = [];
      page.on("pageerror", (err) => errors.push(String(err)));
      await page.goto(`${c.httpUrl(viewer)}/`);

      const before = await waitFor("the page to show three members up, one leading", async () => {
        const r = await rows(page);
        const ok = r.length === 3 && r.every((m) => m.up === "true") &&
          r.filter((m) => m.role === "leader").length === 1;
        return ok ? r : undefined;
      });
      assert.equal(before.find((m) => m.role === "leader")?.id, leader);

      // Timed from just before the signal: the figures include the kill itself.
      const killedAt = performance.now();
      await c.kill(leader);
      const survivors = c.ids.filter((id) => id !== leader);
      // The election, as the survivors report it (Status), for comparison.
      const elected = c.leader(survivors, { timeoutMs: CATCH_UP_MS }).then((id) => ({
        id,
        ms: performance.now() - killedAt,
      }));
      const last = { rows: "" };
      const probe = (ok: (r: Awaited<ReturnType<typeof rows>>) => boolean) => async () => {
        const r = await rows(page);
        last.rows = JSON.stringify(r);
        if (ok(r)) return performance.now() - killedAt;
        throw new Error(`the page shows ${last.rows}`);
      };
      const downMs = await waitFor(
        `the page to show node ${leader} down`,
        probe((r) => r.find((m) => m.id === leader)?.up === "false"),
        { timeoutMs: CATCH_UP_MS, intervalMs: 20 },
      );
      const shownMs = await waitFor(
        `the page to show node ${leader} down and one of ${survivors} leading`,
        probe((r) => {
          const leaders = r.filter((m) => m.role === "leader").map((m) => m.id);
          return leaders.length === 1 && survivors.includes(leaders[0]!) &&
            r.find((m) => m.id === leader)?.up === "false";
        }),
        { timeoutMs: CATCH_UP_MS, intervalMs: 20 },
      );
      const shownLeader = (await rows(page)).find((m) => m.role === "leader")?.id;
      const election = await elected;
      const line = `after the kill of leader ${leader}: the page showed it down at ` +
        `${Math.round(downMs)} ms and node ${shownLeader} leading at ${Math.round(shownMs)} ms ` +
        `(node ${election.id} elected, by Status, at ${Math.round(election.ms)} ms); ` +
        `issue 14 asks for 2,000 ms`;
      console.log(line);
      await Deno.mkdir(`${REPO_ROOT}.ci/out`, { recursive: true });
      await Deno.writeTextFile(`${REPO_ROOT}.ci/out/webview_times.txt`, `${line}\n`, {
        append: true,
      });
      await page.screenshot({ path: `${REPO_ROOT}.ci/out/webview.png` });
      assert.deepEqual(errors, [], "the page's script threw");
    } finally {
      await browser.close();
    }
  });
});
