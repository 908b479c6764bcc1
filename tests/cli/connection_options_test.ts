/**
 * The options before the command are parsed once, the same way whatever the command:
 * an API command (range, watch, txn, lease, lock) gets the endpoints, time budget and
 * TLS files the key-value commands would, and the rest of its command line untouched.
 * (The option errors themselves are told in main_test.ts, through parseClientArgs.)
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseConnectionOptions, UsageError } from "../../src/cli/connection_options.ts";

Deno.test("an API command's options are parsed as any command's, and its own arguments are left to it", () => {
  const parsed = parseConnectionOptions(
    [
      "--endpoints",
      "h:1, [::1]:7001,h:1",
      "--timeout-ms=250",
      "--cacert",
      "ca.pem",
      "range",
      "--prefix",
      "cfg/",
      "--",
      "x",
    ],
    {},
  );
  assert.deepEqual(parsed, {
    help: false,
    options: {
      endpoints: ["h:1", "[::1]:7001"],
      timeoutMs: 250,
      tls: { cacert: "ca.pem", cert: undefined, key: undefined },
    },
    rest: ["range", "--prefix", "cfg/", "--", "x"],
  });
});

Deno.test("the variables stand in for absent options; '--' ends the options; --help stops parsing", () => {
  const env = { RAFTKV_ENDPOINTS: "e:1", RAFTKV_CACERT: "ca.pem" };
  assert.deepEqual(parseConnectionOptions(["--", "lock", "n", "--", "true"], env), {
    help: false,
    options: {
      endpoints: ["e:1"],
      timeoutMs: 5000,
      tls: { cacert: "ca.pem", cert: undefined, key: undefined },
    },
    rest: ["lock", "n", "--", "true"],
  });
  assert.deepEqual(parseConnectionOptions(["--help", "--bogus"], {}), { help: true });
});

Deno.test("an option the CLI does not take, before an API command, is a usage error", () => {
  for (
    const [args, pattern] of [
      [["--bogus", "x", "range"], /^Cannot parse arguments: unknown option "--bogus"$/],
      [["--endpoints", "h:0", "watch", "k"], /^Cannot parse --endpoints: "h:0" has port 0$/],
      [["--timeout-ms", "1e3", "txn", "{}"], /"1e3" is not a positive integer/],
      [["--cert", "c.pem", "lease", "grant", "5"], /without --key/],
    ] as const
  ) {
    assert.throws(() => parseConnectionOptions(args, {}), (e: unknown) => {
      assert.ok(e instanceof UsageError, `expected a UsageError, got ${e}`);
      assert.match(e.message, pattern);
      return true;
    }, args.join(" "));
  }
});
