import assert from "node:assert/strict";
import {
  CLUSTER_USAGE,
  ClusterFlagError,
  NODE_ENV,
  NODE_V8_FLAGS,
  nodeCommandArgs,
  nodeDataDir,
  nodeHttpAddress,
  nodeIds,
  parseClusterFlags,
  peersFlag,
  portsInUse,
  restartCommand,
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
    rejects(
      ["--base-port", "64534", "--nodes", "3"],
      /^Cannot use --base-port 64534 with --nodes 3: node 3's HTTP port would be 65536, above 65535$/,
    );
  });
  await t.step("--only: one node of the cluster", () => {
    assert.equal(parseClusterFlags(["--only", "2"]).only, 2);
    assert.deepEqual(nodeIds(parseClusterFlags(["--only", "2"])), [2]);
    assert.deepEqual(nodeIds(parseClusterFlags([])), [1, 2, 3]);
    assert.equal(parseClusterFlags(["--nodes", "5", "--only", "5"]).only, 5);
    rejects(
      ["--only", "4"],
      /^Cannot parse --only: 4 is not a node of a 3-node cluster \(1 to 3\)$/,
    );
    rejects(["--only", "0"], /0 is not a node/);
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
    NODE_V8_FLAGS,
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
    "--http-listen",
    "127.0.0.1:9002",
  ]);
  assert.equal(nodeHttpAddress(opts, 2), "127.0.0.1:9002");
});

Deno.test("the command that starts a node again names every flag that is not a default", () => {
  assert.equal(restartCommand(parseClusterFlags([]), 2), "deno task cluster --only 2");
  assert.equal(
    restartCommand(
      parseClusterFlags([
        "--nodes=5",
        "--base-port=9001",
        "--data-dir=/tmp/my data",
        "--log-level=debug",
      ]),
      4,
    ),
    "deno task cluster --nodes 5 --base-port 9001 --data-dir '/tmp/my data' --log-level debug " +
      "--only 4",
  );
  // It parses back to the same cluster.
  const opts = parseClusterFlags(["--base-port", "8001", "--data-dir", "d"]);
  const again = restartCommand(opts, 3).split(" ").slice(3);
  assert.deepEqual(parseClusterFlags(again), { ...opts, only: 3 });
});

Deno.test("portsInUse names the ports something listens on", () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const freePort = free.addr.port;
  free.close();
  try {
    assert.deepEqual(portsInUse([freePort, l.addr.port]), [l.addr.port]);
  } finally {
    l.close();
  }
});

Deno.test("the launcher refuses to start while one of its ports is taken, and starts nothing", async () => {
  // A stand-in for a quick-start node left running on node 2's port.
  let base = 0;
  let stray: Deno.Listener | undefined;
  for (let attempt = 0; attempt < 100 && stray === undefined; attempt++) {
    base = 20000 + Math.floor(Math.random() * 12000);
    if (portsInUse([base, base + 2]).length > 0) continue;
    try {
      stray = Deno.listen({ hostname: "127.0.0.1", port: base + 1 });
    } catch {
      // Taken: try another.
    }
  }
  assert.ok(stray !== undefined, "no port to hold");
  const dir = await Deno.makeTempDir({ prefix: "raftkv_launcher_" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "cluster", "--base-port", String(base), "--data-dir", `${dir}/c`],
      cwd: new URL("../../", import.meta.url),
      env: { NO_COLOR: "1" },
      stdin: "null",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr).split("\n")
      .filter((l) => l !== "" && !l.startsWith("Task cluster "));
    assert.equal(out.code, 1, stderr.join("\n"));
    assert.deepEqual(stderr, [
      `error: Cannot start the cluster: 127.0.0.1:${base + 1} (node 2) is already in use. A ` +
      "node left running there (the quick start's `deno task node` listens on 7001) would " +
      "answer for the cluster: stop it first (Ctrl-C in its terminal), or use other ports " +
      "with --base-port.",
    ]);
    assert.equal(new TextDecoder().decode(out.stdout), "");
    await assert.rejects(Deno.stat(`${dir}/c`), Deno.errors.NotFound);
  } finally {
    stray.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the scripts' nodes run with the V8 flags and variables of `deno task node`", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));
  const command: string = config.tasks.node.command;
  const env = Object.entries(NODE_ENV).map(([k, v]) => `${k}=${v} `).join("");
  assert.ok(command.startsWith(`${env}deno run ${NODE_V8_FLAGS} `), command);
});
