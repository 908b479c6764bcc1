/**
 * The HTTP/2 limit flags of a node: their defaults, a flag or its RAFTKV_*
 * variable setting each, the flag winning over the variable, and a clear error
 * for a value that is not a positive integer.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DEFAULT_HTTP2_LIMITS } from "../../src/http2/limits.ts";
import { FlagError, NODE_ENV_VARS, parseNodeFlags } from "../../src/server/flags.ts";

Deno.test("HTTP/2 limit flags: defaults when unset", () => {
  assert.deepEqual(parseNodeFlags([], {}).http2, DEFAULT_HTTP2_LIMITS);
});

Deno.test("HTTP/2 limit flags: each set by its flag or its variable, the flag winning", () => {
  const opts = parseNodeFlags([
    "--max-streams-per-connection",
    "10",
    "--max-streams=20",
    "--max-call-buffer-mib",
    "30",
    "--max-connections",
    "40",
    "--max-connections-per-address",
    "50",
    "--request-timeout-ms",
    "60",
    "--idle-timeout-ms",
    "70",
    "--abuse-cooldown-ms",
    "0",
  ], { RAFTKV_MAX_STREAMS: "999", RAFTKV_IDLE_TIMEOUT_MS: "" });
  assert.deepEqual(opts.http2, {
    maxStreamsPerConnection: 10,
    maxStreams: 20,
    maxCallBufferMiB: 30,
    maxConnections: 40,
    maxConnectionsPerAddress: 50,
    requestTimeoutMs: 60,
    idleTimeoutMs: 70,
    abuseCooldownMs: 0,
  });
  const fromEnv = parseNodeFlags([], {
    RAFTKV_MAX_CONNECTIONS_PER_ADDRESS: "3",
    RAFTKV_REQUEST_TIMEOUT_MS: "1234",
  });
  assert.equal(fromEnv.http2.maxConnectionsPerAddress, 3);
  assert.equal(fromEnv.http2.requestTimeoutMs, 1234);
  for (
    const v of [
      "RAFTKV_MAX_STREAMS_PER_CONNECTION",
      "RAFTKV_MAX_STREAMS",
      "RAFTKV_MAX_CALL_BUFFER_MIB",
      "RAFTKV_MAX_CONNECTIONS",
      "RAFTKV_MAX_CONNECTIONS_PER_ADDRESS",
      "RAFTKV_REQUEST_TIMEOUT_MS",
      "RAFTKV_IDLE_TIMEOUT_MS",
      "RAFTKV_ABUSE_COOLDOWN_MS",
    ]
  ) assert.ok(NODE_ENV_VARS.includes(v), `${v} is read`);
});

Deno.test("HTTP/2 limit flags: zero, negative, fractional or out of range is refused by name", () => {
  const cases: [string[], RegExp][] = [
    [["--max-streams", "0"], /--max-streams: 0 is less than 1/],
    [["--max-connections", "-1"], /--max-connections: "-1" is not an integer/],
    [["--request-timeout-ms", "1.5"], /--request-timeout-ms: "1.5" is not an integer/],
    [["--idle-timeout-ms", "2147483648"], /--idle-timeout-ms: 2147483648 is more than/],
    [["--max-call-buffer-mib", "1048577"], /--max-call-buffer-mib: 1048577 is more than/],
    [["--abuse-cooldown-ms", "-1"], /--abuse-cooldown-ms: "-1" is not an integer/],
  ];
  for (const [args, want] of cases) {
    assert.throws(
      () => parseNodeFlags(args, {}),
      (e) => e instanceof FlagError && want.test(e.message),
    );
  }
});
