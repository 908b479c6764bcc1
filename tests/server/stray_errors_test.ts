/**
 * What the stray network error guard lets pass: only socket errors that say a peer
 * left, thrown or carried as the cause of a rejected call; nothing else.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { isStrayNetworkError, isStrayNetworkRejection } from "../../src/server/stray_errors.ts";

function socketError(code: string, syscall: string): Error {
  return Object.assign(new Error(`${syscall} ${code}`), { code, syscall });
}

Deno.test("a peer gone (EPIPE on write) is stray, thrown or as a Connect error's cause", () => {
  const epipe = socketError("EPIPE", "write");
  assert.ok(isStrayNetworkError(epipe));
  assert.ok(isStrayNetworkRejection(epipe));
  assert.ok(
    isStrayNetworkRejection(
      new ConnectError("write EPIPE", Code.Internal, undefined, undefined, epipe),
    ),
  );
});

Deno.test("anything else is not stray: another code, no cause, a plain value", () => {
  assert.ok(!isStrayNetworkError(socketError("EACCES", "write")));
  assert.ok(!isStrayNetworkRejection(new ConnectError("boom", Code.Internal)));
  assert.ok(!isStrayNetworkRejection(new Error("write EPIPE")));
  assert.ok(!isStrayNetworkRejection("EPIPE"));
});
