import assert from "node:assert/strict";
import {
  CLUSTER_USAGE,
  ClusterFlagError,
  nodeCommandArgs,
  nodeDataDir,
  parseClusterFlags,
  peersFlag,
} from "../../scripts/cluster.ts";

function rejects(args: string[], pattern: RegExp): void {
  assert.throws(() => parseClusterFlags(args), (e: unknown) => {
    assert.ok(e instanceof ClusterFlagError, `expected ClusterFlagError, got ${e}`);
    assert.match(e.message, pattern);
    return true;
  }, args.join(" "));
}

Deno.test("parseClusterFlags", async (t) => {
  await t.step("defaults", () => {
    assert.deepEqual(parseClusterFlags([]), {
      nodes: 3,
      basePort: 7001,
      dataDir: "./data/cluster",
      logLevel: "info",
      help: false,
    });
  });
  await t.step("every flag, both spellings", () => {
    assert.deepEqual(
      parseClusterFlags([
        "--nodes",
        "5",
        "--base-port=9000",
        "--data-dir",
        "/tmp/c",
        "--log-level=debug",
      ]),
      { nodes: 5, basePort: 9000, dataDir: "/tmp/c", logLevel: "debug", help: false },
    );
  });
  await t.step("--help", () => {
    assert.equal(parseClusterFlags(["--nodes", "0", "--help"]).help, true);
    assert.match(CLUSTER_USAGE, /--nodes N/);
  });
  await t.step("--nodes must be 1..9", () => {
    assert.equal(parseClusterFlags(["--nodes", "1"]).nodes, 1);
    assert.equal(parseClusterFlags(["--nodes", "9"]).nodes, 9);
    rejects(["--nodes", "0"], /^Cannot parse --nodes: 0 is not between 1 and 9$/);
    rejects(["--nodes", "10"], /^Cannot parse --nodes: 10 is not between 1 and 9$/);
    rejects(["--nodes", "three"], /^Cannot parse --nodes: "three" is not an integer$/);
    rejects(["--nodes", "-1"], /"-1" is not an integer/);
  });
  await t.step("ports", () => {
    rejects(["--base-port", "0"], /^Cannot parse --base-port: 0 is not between 1 and 65535$/);
    rejects(["--base-port", "70000"], /70000 is not between 1 and 65535/);
    rejects(
      ["--base-port", "65534", "--nodes", "3"],
      /^Cannot use --base-port 65534 with --nodes 3: node 3 would need port 65536, above 65535$/,
    );
  });
  await t.step("bad usage", () => {
    rejects(["--bogus"], /^Cannot parse arguments: unknown flag "--bogus"/);
    rejects(["3"], /^Cannot parse arguments: unexpected argument "3"$/);
    rejects(["--nodes"], /^Cannot parse --nodes: missing value$/);
    rejects(["--nodes", "--base-port", "1"], /^Cannot parse --nodes: missing value$/);
    rejects(["--data-dir="], /^Cannot parse --data-dir: missing value$/);
    rejects(["--nodes", "3", "--nodes", "5"], /^Cannot parse --nodes: given more than once$/);
    rejects(["--log-level", "loud"], /^Cannot parse --log-level: "loud" is not one of debug/);
  });
});

Deno.test("node command lines", () => {
  const opts = parseClusterFlags(["--nodes", "3", "--base-port", "8001", "--data-dir", "d/"]);
  assert.equal(peersFlag(opts), "1=127.0.0.1:8001,2=127.0.0.1:8002,3=127.0.0.1:8003");
  assert.equal(nodeDataDir(opts, 2), "d/node2");
  assert.deepEqual(nodeCommandArgs(opts, 2, "/repo/src/server/main.ts"), [
    "run",
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "/repo/src/server/main.ts",
    "--id",
    "2",
    "--listen",
    "127.0.0.1:8002",
    "--peers",
    "1=127.0.0.1:8001,2=127.0.0.1:8002,3=127.0.0.1:8003",
    "--data-dir",
    "d/node2",
    "--log-level",
    "info",
  ]);
});
