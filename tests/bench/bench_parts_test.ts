/**
 * The bench's pure parts: its flags (defaults, lists, what it refuses), the CPU
 * time read from a /proc/<pid>/stat line, the etcd members' arguments, and the
 * table with its raftkv/etcd ratio row.
 *
 * @module
 */

import assert from "node:assert/strict";
import { BenchFlagError, connectionsFor, parseBenchFlags } from "../../scripts/bench/flags.ts";
import { parseStatTicks } from "../../scripts/bench/proc_cpu.ts";
import { etcdArgs } from "../../scripts/bench/etcd.ts";
import { type Summary, table } from "../../scripts/bench/report.ts";

Deno.test("bench flags: the defaults are issue 11's bench (put and get, 1 to 256 in flight, 256 B)", () => {
  const o = parseBenchFlags([]);
  assert.equal(o.against, undefined);
  assert.deepEqual(o.ops, ["put", "get"]);
  assert.deepEqual(o.inFlight, [1, 16, 64, 256]);
  assert.equal(o.valueBytes, 256);
  assert.equal(o.rounds, 1);
  assert.equal(parseBenchFlags(["--against", "etcd"]).rounds, 2, "A/B/A/B against etcd");
  const ab = parseBenchFlags(["--against-raftkv", "/tmp/before"]);
  assert.deepEqual([ab.againstRaftkv, ab.againstBasePort, ab.rounds], ["/tmp/before", 7421, 2]);
  assert.deepEqual([1, 16, 64, 256].map((n) => connectionsFor(o, n)), [1, 16, 16, 16]);
  const short = parseBenchFlags([
    "--against=etcd",
    "--ops=put-follower",
    "--in-flight=2,8",
    "--duration=0.5",
    "--warmup=0",
    "--connections=4",
    "--raftkv-dir",
    "/tmp/old",
  ]);
  assert.deepEqual(
    [short.ops, short.inFlight, short.durationSeconds, short.warmupSeconds, short.raftkvDir],
    [["put-follower"], [2, 8], 0.5, 0, "/tmp/old"],
  );
  assert.equal(connectionsFor(short, 8), 4);
});

Deno.test("bench flags: what cannot run is refused with the flag named", () => {
  const refused: [string[], RegExp][] = [
    [["--against", "zookeeper"], /--against: "zookeeper" is not "etcd"/],
    [["--ops", "600"], /--ops: it takes operations/],
    [["--ops", "put,scan"], /--ops: "scan" is not one of put, get/],
    [["--in-flight", "0"], /--in-flight: "0" is not a positive integer/],
    [["--duration", "0"], /--duration: "0" is not a number of seconds above 0/],
    [["--tls", "--against", "etcd"], /--tls with --against etcd/],
    [["--nodes", "1", "--ops", "get-follower"], /follower's operations with --nodes 1/],
    [["--base-port", "65000"], /--base-port 65000: the bench needs ports up to/],
    [["--keys"], /--keys: missing value/],
    [["--rounds", "2", "--rounds", "3"], /--rounds: given more than once/],
    [["--fast"], /unknown flag "--fast"/],
    [["--against", "etcd", "--against-raftkv", "/tmp/b"], /one comparison per run/],
  ];
  for (const [args, message] of refused) {
    assert.throws(() => parseBenchFlags(args), (err: unknown) => {
      assert.ok(err instanceof BenchFlagError, String(err));
      assert.match(err.message, message, args.join(" "));
      return true;
    });
  }
});

Deno.test("/proc/<pid>/stat: utime + stime, counted from the last parenthesis of the name", () => {
  // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
  const line = "4242 (deno (main) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 731 269 0 0 20 0 9 0";
  assert.equal(parseStatTicks(line), 1000);
  assert.throws(() => parseStatTicks("garbage"), /not a \/proc\/<pid>\/stat line/);
});

Deno.test("etcd members: one cluster on loopback, clients on base+i-1, peers 10 above", () => {
  const args = etcdArgs(3, 2, 7451, "/tmp/d");
  assert.ok(args.includes("--name=m2"));
  assert.ok(args.includes("--data-dir=/tmp/d/etcd2"));
  assert.ok(args.includes("--listen-client-urls=http://127.0.0.1:7452"));
  assert.ok(args.includes("--listen-peer-urls=http://127.0.0.1:7462"));
  assert.ok(
    args.includes(
      "--initial-cluster=m1=http://127.0.0.1:7461,m2=http://127.0.0.1:7462,m3=http://127.0.0.1:7463",
    ),
  );
});

Deno.test("the table: a row per system and a raftkv/etcd ratio row per cell", () => {
  const s = (system: string, opsPerSecond: number, p50Ms: number): Summary => ({
    system,
    op: "put",
    inFlight: 64,
    runs: 2,
    ops: opsPerSecond * 10,
    errors: 0,
    seconds: 10,
    opsPerSecond,
    p50Ms,
    p99Ms: p50Ms * 3,
    p999Ms: p50Ms * 4,
    cpuSecondsPer1kOps: 2,
  });
  const out = table([s("raftkv", 522, 111.6), s("etcd", 1183, 47.7)], ["raftkv", "etcd"]);
  const rows = out.split("\n").slice(2).map((l) => l.split("|").slice(1, -1).map((c) => c.trim()));
  assert.deepEqual(rows, [
    ["put", "64", "raftkv", "522", "112", "335", "446", "2.00", "0"],
    ["put", "64", "etcd", "1,183", "47.7", "143", "191", "2.00", "0"],
    ["put", "64", "raftkv/etcd", "0.44", "2.34", "2.34", "2.34", "1.00", ""],
  ]);
});
