/**
 * A hooked abort (src/server/abort_hooks.ts) reaches the callbacks filed on its
 * signal once, after the signal's own listeners, as a listener would have; a
 * callback taken back is not called; any other signal is left to listeners.
 */

import assert from "node:assert/strict";
import { forget, HookedAbort, whenAborted } from "../../src/server/abort_hooks.ts";

Deno.test("a hooked abort calls its filed callbacks once, in order, after its listeners, and not those taken back", () => {
  const abort = new HookedAbort();
  const heard: string[] = [];
  abort.signal.addEventListener("abort", () => heard.push(`listener ${abort.signal.reason}`));
  const first = () => heard.push(`first ${abort.signal.reason}`);
  const gone = () => heard.push("gone");
  const second = () => heard.push("second");
  assert.equal(whenAborted(abort.signal, first), true);
  assert.equal(whenAborted(abort.signal, gone), true);
  assert.equal(whenAborted(abort.signal, second), true);
  forget(abort.signal, gone);
  abort.abort("why");
  abort.abort("again");
  assert.equal(abort.signal.aborted, true);
  assert.equal(abort.signal.reason, "why");
  assert.deepEqual(heard, ["listener why", "first why", "second"]);
  // Once aborted, nothing more is filed: the caller acts on the aborted signal itself.
  assert.equal(whenAborted(abort.signal, first), false);
});

Deno.test("a callback that throws does not keep the others from being called; its error is thrown after", () => {
  const abort = new HookedAbort();
  const heard: string[] = [];
  whenAborted(abort.signal, () => {
    throw new Error("first fails");
  });
  whenAborted(abort.signal, () => heard.push("second"));
  assert.throws(() => abort.abort(), /first fails/);
  assert.deepEqual(heard, ["second"]);
});

Deno.test("a signal of a plain AbortController is not hooked: whenAborted leaves it to a listener", () => {
  const plain = new AbortController();
  let called = false;
  assert.equal(whenAborted(plain.signal, () => called = true), false);
  forget(plain.signal, () => {}); // nothing filed: nothing to take back
  plain.abort();
  assert.equal(called, false);
});
