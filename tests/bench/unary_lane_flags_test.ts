/**
 * scripts/bench_unary_lane.ts's command line: its defaults, what it refuses with the
 * flag named, and, run as a user runs it, `--help` (exit 0) and an unknown flag (one
 * line on stderr, exit 2, no stack trace) before it starts any server.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  parseUnaryLaneFlags,
  UNARY_LANE_USAGE,
  UnaryLaneFlagError,
} from "../../scripts/bench/unary_lane_flags.ts";
import { runScript } from "./_scripts.ts";

Deno.test("unary lane bench flags: the defaults measure every path twice on port 7701", () => {
  const o = parseUnaryLaneFlags([]);
  assert.deepEqual(o.paths, ["connect", "lane", "compat", "core"]);
  assert.deepEqual([o.calls, o.rounds, o.port, o.help], [20_000, 2, 7701, false]);
  assert.equal(o.serve, undefined);
  const given = parseUnaryLaneFlags(["--paths", "lane,core", "--calls=500", "--rounds", "1"]);
  assert.deepEqual([given.paths, given.calls, given.rounds], [["lane", "core"], 500, 1]);
  assert.equal(parseUnaryLaneFlags(["--serve", "lane", "--port", "7901"]).serve, "lane");
  assert.equal(parseUnaryLaneFlags(["--help"]).help, true);
});

Deno.test("unary lane bench flags: what cannot run is refused with the flag named", () => {
  const refused: [string[], RegExp][] = [
    [["--fast"], /Unknown option '--fast'/],
    [["--calls"], /--calls/],
    [["--calls", "0"], /--calls takes a positive integer, not "0"/],
    [["--rounds", "two"], /--rounds takes a positive integer, not "two"/],
    [["--port", "70000"], /--port takes 1 to 65535/],
    [["--paths", "lane,slow"], /--paths takes paths among connect, lane, compat, core, not "slow"/],
    [["--serve", "nope"], /--serve takes paths among/],
    [["positional"], /positional/],
  ];
  for (const [args, message] of refused) {
    assert.throws(() => parseUnaryLaneFlags(args), (err: unknown) => {
      assert.ok(err instanceof UnaryLaneFlagError, `${args.join(" ")}: a usage error`);
      assert.match(err.message, message);
      return true;
    });
  }
});

Deno.test("the unary lane bench prints its help, and refuses an unknown flag with one line and exit 2", async () => {
  const help = await runScript(["-A", "scripts/bench_unary_lane.ts", "--help"]);
  assert.equal(help.code, 0, help.err);
  assert.equal(help.out, `${UNARY_LANE_USAGE}\n`);

  const bad = await runScript(["-A", "scripts/bench_unary_lane.ts", "--bogus"]);
  assert.equal(bad.code, 2);
  assert.equal(bad.out, "");
  assert.equal(bad.err, "error: Unknown option '--bogus' (see --help)\n");
});
