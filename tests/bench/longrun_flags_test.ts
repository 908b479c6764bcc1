/**
 * `deno task bench:longrun`'s command line: its defaults, the put clients sharing
 * fewer connections than there are clients (a node accepts 64 from one address), and
 * what it refuses, with the flag named.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  LongrunFlagError,
  MAX_PUT_CONNECTIONS,
  parseLongrunFlags,
} from "../../scripts/bench/longrun_flags.ts";

Deno.test("longrun flags: the defaults are issue 9's run; flags after -- go to the nodes", () => {
  const o = parseLongrunFlags([]);
  assert.deepEqual(
    [o.puts, o.keys, o.valueBytes, o.clients, o.connections, o.basePort, o.restarts],
    [100_000, 10_000, 256, 32, 16, 7501, 1],
  );
  assert.equal(o.logLevel, "warn");
  assert.deepEqual(o.nodeFlags, []);
  const withNodeFlags = parseLongrunFlags(["--puts", "10", "--", "--snapshot-entries", "100"]);
  assert.equal(withNodeFlags.puts, 10);
  assert.deepEqual(withNodeFlags.nodeFlags, ["--snapshot-entries", "100"]);
});

Deno.test("longrun flags: --timeline and --node-main are off unless given", () => {
  const o = parseLongrunFlags([]);
  assert.equal(o.timeline, false);
  assert.equal(o.nodeMain, undefined);
  const t = parseLongrunFlags(["--timeline", "--node-main", "/main/src/server/main.ts"]);
  assert.equal(t.timeline, true);
  assert.equal(t.nodeMain, "/main/src/server/main.ts");
  assert.equal(o.compare, undefined);
  assert.equal(
    parseLongrunFlags(["--compare", "/main/src/server/main.ts"]).compare,
    "/main/src/server/main.ts",
  );
});

Deno.test("longrun flags: 64 clients and more share at most 16 connections unless told", () => {
  assert.equal(parseLongrunFlags(["--clients", "4"]).connections, 4);
  assert.equal(parseLongrunFlags(["--clients", "64"]).connections, 16);
  assert.equal(parseLongrunFlags(["--clients", "1000"]).connections, 16);
  const o = parseLongrunFlags(["--clients", "64", "--connections", String(MAX_PUT_CONNECTIONS)]);
  assert.deepEqual([o.clients, o.connections], [64, MAX_PUT_CONNECTIONS]);
});

Deno.test("longrun flags: what cannot run is refused with the flag named", () => {
  const refused: [string[], RegExp][] = [
    [["--clients", "64", "--connections", "64"], /--connections 64: a node accepts at most 64/],
    [["--connections", "8", "--clients", "4"], /--connections 8 is more than --clients 4/],
    [["--clients", "0"], /--clients takes a positive integer, not "0"/],
    [["--puts", "many"], /--puts takes a positive integer, not "many"/],
    [["--log-level", "loud"], /--log-level takes one of .*, not "loud"/],
    [["--fast"], /--fast/],
    [["--bundle", "--node-main", "x.ts"], /--bundle and --node-main cannot both be given/],
    [["--bundle", "--compare", "x.ts"], /--bundle and --compare cannot both be given/],
  ];
  for (const [args, message] of refused) {
    assert.throws(() => parseLongrunFlags(args), (err: unknown) => {
      assert.ok(err instanceof LongrunFlagError, String(err));
      assert.match(err.message, message, args.join(" "));
      return true;
    });
  }
});
