/**
 * The web view in a real browser: Debian's chromium, headless, driven by
 * puppeteer-core (which cannot download a browser: it is given /usr/bin/chromium).
 * Against a 3-node cluster the page, served by a follower, shows three members up
 * and one leader; the leader is killed; the page shows it down within 2 seconds,
 * and the new leader within 2 seconds of its election (both checked by polling the
 * page with that deadline). The screenshot goes to .ci/out/webview.png.
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

Deno.test("the web view shows the cluster; a killed leader shows down within 2 s, its successor within 2 s of the election", async () => {
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

      await c.kill(leader);
      const killedAt = performance.now();
      // The page is at most 2 s behind the cluster: the dead node shows down within
      // 2 s of the kill, and the new leader within 2 s of the survivors electing it.
      // (How long the election itself takes is Raft's business, not the page's: on a
      // loaded machine two survivors can split their votes a few times first.)
      const last = { rows: "" };
      const probe = (ok: (r: Awaited<ReturnType<typeof rows>>) => boolean) => async () => {
        const r = await rows(page);
        last.rows = JSON.stringify(r);
        if (ok(r)) return r;
        throw new Error(`the page shows ${last.rows}`);
      };
      await waitFor(
        `the page to show node ${leader} down`,
        probe((r) => r.find((m) => m.id === leader)?.up === "false"),
        { timeoutMs: 2_000, intervalMs: 50 },
      );
      const downMs = performance.now() - killedAt;
      const survivors = c.ids.filter((id) => id !== leader);
      const newLeader = await c.leader(survivors);
      const electedAt = performance.now();
      await waitFor(
        `the page to show node ${newLeader} leading`,
        probe((r) =>
          r.filter((m) => m.role === "leader").map((m) => m.id).join() === String(newLeader) &&
          r.find((m) => m.id === leader)?.up === "false"
        ),
        { timeoutMs: 2_000, intervalMs: 50 },
      );
      console.log(
        `after the kill of node ${leader}: shown down at ${Math.round(downMs)} ms; node ` +
          `${newLeader} elected (seen by Status) at ${Math.round(electedAt - killedAt)} ms, ` +
          `shown leading at ${Math.round(performance.now() - killedAt)} ms`,
      );
      await Deno.mkdir(`${REPO_ROOT}.ci/out`, { recursive: true });
      await page.screenshot({ path: `${REPO_ROOT}.ci/out/webview.png` });
      assert.deepEqual(errors, [], "the page's script threw");
    } finally {
      await browser.close();
    }
  });
});
