/**
 * How the client library says briefly why a call failed (src/client/reasons.ts).
 *
 * @module
 */

import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { cannotConnect, codeName, shortReason } from "../../src/client/reasons.ts";
import { refused } from "./_refused.ts";

Deno.test("shortReason and codeName", async (t) => {
  await t.step("network failures by their Node error code", () => {
    assert.equal(shortReason(refused("h:1")), "connection refused");
    const notFound = new ConnectError("getaddrinfo ENOTFOUND h", Code.Unavailable);
    notFound.cause = Object.assign(new Error("getaddrinfo ENOTFOUND h"), { code: "ENOTFOUND" });
    assert.equal(shortReason(notFound), "unknown host");
  });
  await t.step("cannotConnect: refused and unknown hosts, not timeouts or resets", () => {
    assert.equal(cannotConnect(refused("h:1")), true);
    const reset = new ConnectError("read ECONNRESET", Code.Unavailable);
    reset.cause = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
    assert.equal(cannotConnect(reset), false);
    assert.equal(cannotConnect(new ConnectError("x", Code.DeadlineExceeded)), false);
    assert.equal(cannotConnect(new ConnectError("no leader is known", Code.Unavailable)), false);
  });
  await t.step("deadline as timed out; others as code: message, one line, bounded", () => {
    assert.equal(shortReason(new ConnectError("x", Code.DeadlineExceeded)), "timed out");
    assert.equal(
      shortReason(new ConnectError("not the leader\nmore", Code.FailedPrecondition)),
      "failed_precondition: not the leader",
    );
    const long = shortReason(new ConnectError("x".repeat(200), Code.Internal));
    assert.equal(long.length, 80);
    assert.ok(long.endsWith("…"));
    assert.equal(shortReason(new Error("plain")), "unknown: plain");
  });
  await t.step("codeName spells codes as gRPC does", () => {
    assert.equal(codeName(Code.Unavailable), "unavailable");
    assert.equal(codeName(Code.FailedPrecondition), "failed_precondition");
    assert.equal(codeName(Code.DeadlineExceeded), "deadline_exceeded");
    assert.equal(codeName(Code.Unauthenticated), "unauthenticated");
  });
});
