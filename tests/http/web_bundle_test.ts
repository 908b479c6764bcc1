/**
 * The committed bundle of the web view's script (src/http/web/app_bundle.ts) is
 * what `deno task bundle:web` makes from app.ts now: a change to app.ts without
 * a new bundle fails here.
 *
 * @module
 */

import assert from "node:assert/strict";
import { bundledModule } from "../../scripts/bundle_web.ts";
import { REPO_ROOT } from "../e2e/_harness.ts";

Deno.test("src/http/web/app_bundle.ts is fresh: deno task bundle:web changes nothing", async () => {
  const committed = await Deno.readTextFile(`${REPO_ROOT}src/http/web/app_bundle.ts`);
  assert.ok(
    committed === await bundledModule(),
    "src/http/web/app_bundle.ts is stale: run `deno task bundle:web` and commit it",
  );
});
