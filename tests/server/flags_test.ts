import assert from "node:assert/strict";
import {
  FlagError,
  formatHostPort,
  NODE_ENV_VARS,
  NODE_USAGE,
  type NodeOptions,
  parseHostPort,
  parseNodeFlags,
} from "../../src/server/flags.ts";

const parse = (args: string[], env: Record<string, string> = {}): NodeOptions =>
  parseNodeFlags(args, env);

/** Asserts that parsing throws a FlagError whose message matches `pattern`. */
function rejects(args: string[], pattern: RegExp, env: Record<string, string> = {}): void {
  assert.throws(() => parseNodeFlags(args, env), (e: unknown) => {
    assert.ok(e instanceof FlagError, `expected FlagError, got ${e}`);
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("parseNodeFlags defaults", () => {
  const o = parse([]);
  assert.equal(o.id, 1);
  assert.deepEqual(o.listen, { host: "127.0.0.1", port: 7001 });
  assert.deepEqual([...o.peers], [[1, { host: "127.0.0.1", port: 7001 }]]);
  assert.equal(o.dataDir, "./data");
  assert.equal(o.logLevel, "info");
  assert.equal(o.logFormat, "text");
  assert.equal(o.heartbeatMs, 100);
  assert.equal(o.electionMs, 1000);
  assert.equal(o.clusterId, "raftkv");
  assert.equal(o.help, false);
});

Deno.test("parseNodeFlags reads every flag, in both spellings", async (t) => {
  const peers = "1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003";
  await t.step("--flag value", () => {
    const o = parse([
      "--id",
      "2",
      "--listen",
      "0.0.0.0:7002",
      "--peers",
      peers,
      "--data-dir",
      "/var/lib/raftkv",
      "--log-level",
      "debug",
      "--log-format",
      "json",
      "--heartbeat-ms",
      "50",
      "--election-ms",
      "150",
      "--cluster-id",
      "prod",
    ]);
    assert.equal(o.id, 2);
    assert.deepEqual(o.listen, { host: "0.0.0.0", port: 7002 });
    assert.deepEqual([...o.peers.keys()], [1, 2, 3]);
    assert.deepEqual(o.peers.get(3), { host: "127.0.0.1", port: 7003 });
    assert.equal(o.dataDir, "/var/lib/raftkv");
    assert.equal(o.logLevel, "debug");
    assert.equal(o.logFormat, "json");
    assert.equal(o.heartbeatMs, 50);
    assert.equal(o.electionMs, 150);
    assert.equal(o.clusterId, "prod");
  });

  await t.step("--flag=value", () => {
    const o = parse([`--id=3`, `--peers=${peers}`, "--log-level=warn", "--election-ms=3000"]);
    assert.equal(o.id, 3);
    assert.equal(o.peers.size, 3);
    assert.equal(o.logLevel, "warn");
    assert.equal(o.electionMs, 3000);
  });

  await t.step("a value may contain '='", () => {
    assert.equal(parse(["--data-dir=a=b"]).dataDir, "a=b");
  });
});

Deno.test("parseNodeFlags: environment variables, flags win", async (t) => {
  const env = {
    RAFTKV_ID: "2",
    RAFTKV_LISTEN: "127.0.0.1:9002",
    RAFTKV_PEERS: "1=127.0.0.1:9001,2=127.0.0.1:9002",
    RAFTKV_DATA_DIR: "/data",
    RAFTKV_LOG_LEVEL: "error",
    RAFTKV_LOG_FORMAT: "json",
    RAFTKV_HEARTBEAT_MS: "20",
    RAFTKV_ELECTION_MS: "200",
    RAFTKV_CLUSTER_ID: "envcluster",
  };
  await t.step("every variable is read", () => {
    const o = parse([], env);
    assert.equal(o.id, 2);
    assert.deepEqual(o.listen, { host: "127.0.0.1", port: 9002 });
    assert.equal(o.peers.size, 2);
    assert.equal(o.dataDir, "/data");
    assert.equal(o.logLevel, "error");
    assert.equal(o.logFormat, "json");
    assert.equal(o.heartbeatMs, 20);
    assert.equal(o.electionMs, 200);
    assert.equal(o.clusterId, "envcluster");
  });
  await t.step("a flag overrides its variable", () => {
    const o = parse(["--id", "1", "--log-level", "debug"], env);
    assert.equal(o.id, 1);
    assert.equal(o.logLevel, "debug");
    assert.equal(o.dataDir, "/data");
  });
  await t.step("an empty variable counts as unset", () => {
    assert.equal(parse([], { RAFTKV_DATA_DIR: "" }).dataDir, "./data");
  });
  await t.step("errors name the variable", () => {
    rejects([], /^Cannot parse RAFTKV_ID: "x" is not an integer$/, { RAFTKV_ID: "x" });
    rejects([], /RAFTKV_PEERS: this node's id 1 is not in it/, {
      RAFTKV_PEERS: "2=h:1",
    });
  });
});

Deno.test("parseNodeFlags: --peers defaults to this node alone", async (t) => {
  await t.step("uses --id and --listen", () => {
    const o = parse(["--id", "4", "--listen", "localhost:8000"]);
    assert.deepEqual([...o.peers], [[4, { host: "localhost", port: 8000 }]]);
  });
  await t.step("port 0 is kept for the self entry", () => {
    const o = parse(["--listen", "127.0.0.1:0"]);
    assert.deepEqual(o.listen, { host: "127.0.0.1", port: 0 });
    assert.deepEqual(o.peers.get(1), { host: "127.0.0.1", port: 0 });
  });
  await t.step("the peers map does not alias listen", () => {
    const o = parse([]);
    assert.notEqual(o.peers.get(1), o.listen);
  });
});

Deno.test("parseNodeFlags: --help", () => {
  assert.equal(parse(["--help"]).help, true);
  assert.equal(parse(["-h"]).help, true);
  // --help wins over errors elsewhere on the line.
  assert.equal(parse(["--bogus", "--help"]).help, true);
  assert.match(NODE_USAGE, /--peers ID=HOST:PORT/);
  for (const flag of ["--id", "--listen", "--data-dir", "--log-format", "--cluster-id"]) {
    assert.ok(NODE_USAGE.includes(flag), flag);
  }
});

Deno.test("parseNodeFlags rejects bad command lines with a clear FlagError", async (t) => {
  await t.step("unknown flag", () => {
    rejects(["--bogus", "1"], /^Cannot parse arguments: unknown flag "--bogus"/);
    rejects(["--bogus=1"], /unknown flag "--bogus"/);
  });
  await t.step("positional argument", () => {
    rejects(["7001"], /unexpected argument "7001"/);
    rejects(["-i", "1"], /unexpected argument "-i"/);
  });
  await t.step("missing values", () => {
    rejects(["--id"], /^Cannot parse --id: missing value$/);
    rejects(["--id", "--listen", "h:1"], /^Cannot parse --id: missing value$/);
    rejects(["--data-dir="], /^Cannot parse --data-dir: missing value$/);
  });
  await t.step("flag given twice", () => {
    rejects(["--id", "1", "--id=2"], /^Cannot parse --id: given more than once$/);
  });
  await t.step("non-integers and out-of-range integers", () => {
    rejects(["--id", "abc"], /^Cannot parse --id: "abc" is not an integer$/);
    rejects(["--id", "1.5"], /"1.5" is not an integer/);
    rejects(["--id", "-1"], /"-1" is not an integer/);
    rejects(["--id", "0"], /^Cannot parse --id: 0 is less than 1$/);
    rejects(["--id", "99999999999999999999"], /is not an integer/);
    rejects(["--heartbeat-ms", "0"], /--heartbeat-ms: 0 is less than 1/);
    rejects(["--election-ms", "1e3"], /--election-ms: "1e3" is not an integer/);
  });
  await t.step("choices", () => {
    rejects(
      ["--log-level", "verbose"],
      /^Cannot parse --log-level: "verbose" is not one of debug, info, warn, error$/,
    );
    rejects(["--log-level", "toString"], /"toString" is not one of/);
    rejects(["--log-format", "xml"], /^Cannot parse --log-format: "xml" is not one of text, json$/);
  });
  await t.step("election timeout under 3 heartbeats", () => {
    rejects(
      ["--heartbeat-ms", "100", "--election-ms", "299"],
      /^Cannot use --election-ms 299: it must be at least 3 × --heartbeat-ms \(3 × 100 = 300\)$/,
    );
    rejects(["--heartbeat-ms", "400"], /--election-ms 1000: .* \(3 × 400 = 1200\)/);
    assert.equal(parse(["--heartbeat-ms", "100", "--election-ms", "300"]).electionMs, 300);
  });
  await t.step("cluster id with whitespace", () => {
    rejects(["--cluster-id", "a b"], /--cluster-id: "a b" contains whitespace/);
  });
});

Deno.test("parseNodeFlags validates --peers", async (t) => {
  await t.step("entry without '='", () => {
    rejects(["--peers", "x"], /^Cannot parse --peers: entry "x" is not id=host:port$/);
    rejects(["--peers", "1=h:1,h:2"], /entry "h:2" is not id=host:port/);
  });
  await t.step("empty entry", () => {
    rejects(["--peers", "1=h:1,,2=h:2"], /^Cannot parse --peers: empty entry in/);
  });
  await t.step("bad id", () => {
    rejects(["--peers", "a=h:1"], /entry "a=h:1" has id "a", not a positive integer/);
    rejects(["--peers", "0=h:1"], /has id "0", not a positive integer/);
  });
  await t.step("duplicate id", () => {
    rejects(
      ["--peers", "1=h:1,2=h:2,1=h:3"],
      /^Cannot parse --peers: id 1 appears more than once$/,
    );
  });
  await t.step("duplicate address", () => {
    rejects(["--peers", "1=h:1,2=h:1"], /^Cannot parse --peers: ids 1 and 2 share address h:1$/);
  });
  await t.step("this node missing", () => {
    rejects(
      ["--id", "4", "--peers", "1=h:1,2=h:2,3=h:3"],
      /^Cannot parse --peers: this node's id 4 is not in it/,
    );
  });
  await t.step("bad address", () => {
    rejects(
      ["--peers", "1=h:1,2=h"],
      /--peers entry "2=h": "h" is not host:port \(missing :port\)/,
    );
    rejects(["--peers", "1=h:1,2=h:70000"], /port 70000 is out of range 0..65535/);
    rejects(["--peers", "1=h:1,2=:7002"], /empty host/);
  });
  await t.step("port 0 only for this node", () => {
    rejects(["--peers", "1=h:1,2=h:0"], /entry "2=h:0" has port 0; other nodes need a fixed port/);
    assert.equal(parse(["--peers", "1=h:0,2=h:2"]).peers.get(1)?.port, 0);
  });
  await t.step("whitespace around entries is ignored", () => {
    const o = parse(["--peers", "1=h:1, 2=h:2"]);
    assert.deepEqual(o.peers.get(2), { host: "h", port: 2 });
  });
  await t.step("IPv6 entries", () => {
    const o = parse(["--listen", "[::1]:7001", "--peers", "1=[::1]:7001,2=[::1]:7002"]);
    assert.deepEqual(o.listen, { host: "::1", port: 7001 });
    assert.deepEqual(o.peers.get(2), { host: "::1", port: 7002 });
  });
});

Deno.test("parseHostPort", async (t) => {
  await t.step("accepts hostnames, IPv4, bracketed IPv6, ports 0..65535", () => {
    assert.deepEqual(parseHostPort("localhost:7001", "x"), { host: "localhost", port: 7001 });
    assert.deepEqual(parseHostPort("node-1.example.com:1", "x"), {
      host: "node-1.example.com",
      port: 1,
    });
    assert.deepEqual(parseHostPort("10.0.0.1:65535", "x"), { host: "10.0.0.1", port: 65535 });
    assert.deepEqual(parseHostPort("127.0.0.1:0", "x"), { host: "127.0.0.1", port: 0 });
    assert.deepEqual(parseHostPort("[::1]:7001", "x"), { host: "::1", port: 7001 });
    assert.deepEqual(parseHostPort("[fe80::1%eth0]:7001", "x"), {
      host: "fe80::1%eth0",
      port: 7001,
    });
    assert.deepEqual(parseHostPort("[::ffff:10.0.0.1]:80", "x"), {
      host: "::ffff:10.0.0.1",
      port: 80,
    });
  });
  await t.step("rejects malformed addresses, naming the setting", () => {
    const cases: [string, RegExp][] = [
      ["", /empty host|missing :port/],
      ["h", /missing :port/],
      [":7001", /empty host/],
      ["h:", /missing port/],
      ["h:x", /port "x" is not a number/],
      ["h:-1", /port "-1" is not a number/],
      ["h:65536", /port 65536 is out of range 0..65535/],
      ["h:123456", /port "123456" is not a number/],
      ["::1:7001", /write an IPv6 address in brackets, as \[::1\]:7001/],
      ["[::1]7001", /missing :port/],
      ["[::1:7001", /missing \] after the IPv6 address/],
      ["[]:7001", /empty host/],
      ["[zz]:7001", /bad IPv6 address "zz"/],
      ["a b:1", /bad host "a b"/],
      ["http://h:1", /no scheme: write host:port/],
    ];
    for (const [text, pattern] of cases) {
      assert.throws(() => parseHostPort(text, "--listen"), (e: unknown) => {
        assert.ok(e instanceof FlagError);
        assert.ok(
          e.message.startsWith(`Cannot parse --listen: "${text}" is not host:port (`),
          e.message,
        );
        assert.match(e.message, pattern, text);
        return true;
      }, text);
    }
  });
  await t.step("formatHostPort brackets IPv6", () => {
    assert.equal(formatHostPort({ host: "::1", port: 7001 }), "[::1]:7001");
    assert.equal(formatHostPort({ host: "h", port: 1 }), "h:1");
  });
});

Deno.test("parseNodeFlags: snapshot flags, their variables, defaults and bounds", () => {
  const d = parse([]);
  assert.equal(d.snapshotEntries, 10_000);
  assert.equal(d.snapshotCatchupEntries, 5_000);
  const o = parse(["--snapshot-entries", "50", "--snapshot-catchup-entries=0"]);
  assert.equal(o.snapshotEntries, 50);
  assert.equal(o.snapshotCatchupEntries, 0);
  const e = parse([], { RAFTKV_SNAPSHOT_ENTRIES: "300", RAFTKV_SNAPSHOT_CATCHUP_ENTRIES: "20" });
  assert.equal(e.snapshotEntries, 300);
  assert.equal(e.snapshotCatchupEntries, 20);
  rejects(["--snapshot-entries", "0"], /--snapshot-entries/);
  rejects(["--snapshot-catchup-entries", "-1"], /--snapshot-catchup-entries/);
  rejects([], /RAFTKV_SNAPSHOT_ENTRIES/, { RAFTKV_SNAPSHOT_ENTRIES: "many" });
});

Deno.test("parseNodeFlags: --watch-history-events, its variable, default and bounds", () => {
  assert.equal(parse([]).watchHistoryEvents, 20_000);
  assert.equal(parse(["--watch-history-events", "500"]).watchHistoryEvents, 500);
  assert.equal(parse([], { RAFTKV_WATCH_HISTORY_EVENTS: "7" }).watchHistoryEvents, 7);
  rejects(["--watch-history-events", "0"], /--watch-history-events/);
  rejects(["--watch-history-events", "10000001"], /--watch-history-events/);
  rejects([], /RAFTKV_WATCH_HISTORY_EVENTS/, { RAFTKV_WATCH_HISTORY_EVENTS: "lots" });
});

Deno.test("parseNodeFlags: --restore is a command-line flag only, given once", () => {
  assert.equal(parse([]).restore, undefined);
  assert.equal(parse(["--restore", "./data/backup.snap"]).restore, "./data/backup.snap");
  assert.equal(parse(["--restore=b.snap"]).restore, "b.snap");
  // A variable left set would make every later start refuse: there is none.
  assert.equal(parse([], { RAFTKV_RESTORE: "b.snap" }).restore, undefined);
  assert.ok(!NODE_ENV_VARS.includes("RAFTKV_RESTORE"));
  rejects(["--restore", "a", "--restore", "b"], /^Cannot parse --restore: given more than once$/);
  rejects(["--restore="], /^Cannot parse --restore: missing value$/);
  rejects(["--restore"], /^Cannot parse --restore: missing value$/);
  assert.match(NODE_USAGE, /--restore FILE/);
});

Deno.test("parseNodeFlags: --join and --initial-cluster-state say the node joins a running cluster", () => {
  assert.equal(parse([]).join, false);
  assert.equal(parse(["--join"]).join, true);
  assert.equal(parse(["--initial-cluster-state", "existing"]).join, true);
  assert.equal(parse(["--initial-cluster-state=new"]).join, false);
  assert.equal(parse([], { RAFTKV_INITIAL_CLUSTER_STATE: "existing" }).join, true);
  assert.ok(NODE_ENV_VARS.includes("RAFTKV_INITIAL_CLUSTER_STATE"));
  rejects(["--initial-cluster-state", "old"], /"old" is not one of new, existing/);
  rejects(["--join", "--initial-cluster-state", "new"], /Cannot use --join with/);
  rejects(["--join", "--restore", "b.snap"], /Cannot use --restore with --join/);
  assert.match(NODE_USAGE, /--join/);
});
