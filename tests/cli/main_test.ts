import assert from "node:assert/strict";
import { CLIENT_USAGE, parseClientArgs, UsageError, usageError } from "../../src/cli/main.ts";

function rejects(args: string[], pattern: RegExp, env: Record<string, string> = {}): void {
  assert.throws(() => parseClientArgs(args, env), (e: unknown) => {
    assert.ok(e instanceof UsageError, `expected UsageError, got ${e}`);
    assert.match(e.message, pattern);
    return true;
  }, args.join(" "));
}

Deno.test("parseClientArgs: commands", async (t) => {
  await t.step("put, get, delete, status with defaults", () => {
    assert.deepEqual(parseClientArgs(["put", "k", "v"], {}), {
      endpoints: ["127.0.0.1:7001"],
      timeoutMs: 5000,
      command: { name: "put", key: "k", value: "v" },
    });
    assert.deepEqual(parseClientArgs(["get", "k"], {}).command, { name: "get", key: "k" });
    assert.deepEqual(parseClientArgs(["delete", "k"], {}).command, { name: "delete", key: "k" });
    assert.deepEqual(parseClientArgs(["status"], {}).command, { name: "status" });
  });
  await t.step("cas with an expected value, and with --absent", () => {
    assert.deepEqual(parseClientArgs(["cas", "k", "old", "new"], {}).command, {
      name: "cas",
      key: "k",
      expected: "old",
      value: "new",
    });
    assert.deepEqual(parseClientArgs(["cas", "--absent", "k", "new"], {}).command, {
      name: "cas",
      key: "k",
      expected: undefined,
      value: "new",
    });
    // An empty EXPECTED means "exists with an empty value", not "absent".
    assert.deepEqual(parseClientArgs(["cas", "k", "", "new"], {}).command, {
      name: "cas",
      key: "k",
      expected: "",
      value: "new",
    });
  });
  await t.step("values may be empty, contain spaces, or start with -- after '--'", () => {
    assert.deepEqual(parseClientArgs(["put", "k", ""], {}).command, {
      name: "put",
      key: "k",
      value: "",
    });
    assert.deepEqual(parseClientArgs(["put", "k", "a b"], {}).command, {
      name: "put",
      key: "k",
      value: "a b",
    });
    assert.deepEqual(parseClientArgs(["put", "--", "--k", "--v"], {}).command, {
      name: "put",
      key: "--k",
      value: "--v",
    });
    assert.deepEqual(parseClientArgs(["cas", "--absent", "--", "--k", "v"], {}).command, {
      name: "cas",
      key: "--k",
      expected: undefined,
      value: "v",
    });
    // A value that merely starts with "-" needs no "--".
    assert.deepEqual(parseClientArgs(["put", "k", "-1"], {}).command, {
      name: "put",
      key: "k",
      value: "-1",
    });
  });
  await t.step("--help", () => {
    assert.deepEqual(parseClientArgs(["--help"], {}).command, { name: "help" });
    assert.deepEqual(parseClientArgs(["-h", "bogus"], {}).command, { name: "help" });
    for (const s of ["put KEY VALUE", "cas --absent KEY NEW", "status", "Exit codes"]) {
      assert.ok(CLIENT_USAGE.includes(s), s);
    }
  });
});

Deno.test("parseClientArgs: options", async (t) => {
  await t.step("--endpoints and --timeout-ms, both spellings", () => {
    const a = parseClientArgs(
      ["--endpoints", "h1:1,h2:2", "--timeout-ms=250", "status"],
      {},
    );
    assert.deepEqual(a.endpoints, ["h1:1", "h2:2"]);
    assert.equal(a.timeoutMs, 250);
    const b = parseClientArgs(["--endpoints=h1:1", "--timeout-ms", "9", "status"], {});
    assert.deepEqual(b.endpoints, ["h1:1"]);
    assert.equal(b.timeoutMs, 9);
  });
  await t.step("endpoints are trimmed, deduplicated, IPv6 kept in brackets", () => {
    const a = parseClientArgs(["--endpoints", "h:1, [::1]:7001,h:1", "status"], {});
    assert.deepEqual(a.endpoints, ["h:1", "[::1]:7001"]);
  });
  await t.step("RAFTKV_ENDPOINTS, overridden by --endpoints", () => {
    const env = { RAFTKV_ENDPOINTS: "e1:1,e2:2" };
    assert.deepEqual(parseClientArgs(["status"], env).endpoints, ["e1:1", "e2:2"]);
    assert.deepEqual(parseClientArgs(["--endpoints", "f:1", "status"], env).endpoints, ["f:1"]);
    assert.deepEqual(parseClientArgs(["status"], { RAFTKV_ENDPOINTS: "" }).endpoints, [
      "127.0.0.1:7001",
    ]);
  });
  await t.step("'--' ends the options", () => {
    assert.deepEqual(parseClientArgs(["--", "get", "k"], {}).command, { name: "get", key: "k" });
  });
});

Deno.test("parseClientArgs rejects bad usage with a clear UsageError", async (t) => {
  await t.step("missing or unknown command", () => {
    rejects([], /^Cannot parse arguments: missing command$/);
    rejects(["--timeout-ms", "5"], /missing command/);
    rejects(["list"], /^Cannot parse arguments: unknown command "list" \(expected put, get/);
    rejects(["toString"], /unknown command "toString"/);
  });
  await t.step("unknown option", () => {
    rejects(["--bogus", "status"], /^Cannot parse arguments: unknown option "--bogus"$/);
    rejects(["-v", "status"], /unknown option "-v"/);
  });
  await t.step("missing or bad option values", () => {
    rejects(["--endpoints"], /^Cannot parse --endpoints: missing value$/);
    rejects(["--endpoints", "--timeout-ms", "5", "status"], /--endpoints: missing value/);
    rejects(["--endpoints=", "status"], /--endpoints: missing value/);
    rejects(
      ["--timeout-ms", "soon", "status"],
      /^Cannot parse --timeout-ms: "soon" is not a positive integer$/,
    );
    rejects(["--timeout-ms", "0", "status"], /"0" is not a positive integer/);
  });
  await t.step("bad endpoints", () => {
    rejects(["--endpoints", "h", "status"], /^Cannot parse --endpoints: "h" is not host:port/);
    rejects(["--endpoints", "h:1,,h:2", "status"], /--endpoints: empty entry in "h:1,,h:2"/);
    rejects(["--endpoints", "h:99999", "status"], /port 99999 is out of range/);
    rejects(["--endpoints", "h:0", "status"], /"h:0" has port 0/);
    rejects(["--endpoints", "http://h:1", "status"], /no scheme/);
    rejects(["status"], /^Cannot parse RAFTKV_ENDPOINTS: "nope" is not host:port/, {
      RAFTKV_ENDPOINTS: "nope",
    });
  });
  await t.step("wrong number of arguments", () => {
    rejects(["put", "k"], /^Cannot parse put: expected 2 arguments \(put KEY VALUE\), got 1$/);
    rejects(["get"], /^Cannot parse get: expected 1 argument \(get KEY\), got 0$/);
    rejects(["get", "a", "b"], /expected 1 argument \(get KEY\), got 2/);
    rejects(["status", "x"], /^Cannot parse status: expected 0 arguments \(status\), got 1$/);
    rejects(["cas", "k", "v"], /expected 3 arguments \(cas KEY EXPECTED NEW\), got 2/);
    rejects(
      ["cas", "--absent", "k", "old", "new"],
      /expected 2 arguments \(cas --absent KEY NEW\)/,
    );
  });
  await t.step("options after the command get a hint", () => {
    rejects(
      ["get", "k", "--endpoints", "h:1"],
      /got 3; options such as --endpoints go before the command/,
    );
  });
  await t.step("empty key", () => {
    rejects(["get", ""], /^Cannot parse get: KEY must not be empty$/);
    rejects(["cas", "--absent", "", "v"], /Cannot parse cas: KEY must not be empty/);
  });
});

/** Runs the CLI as `deno task client` does (same permissions) and collects what it printed. */
async function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-env=RAFTKV_ENDPOINTS",
      "--allow-read",
      "--allow-write",
      "src/cli/main.ts",
      ...args,
    ],
    cwd: new URL("../../", import.meta.url),
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("a usage error prints its one line and where help is, not the whole help", async () => {
  const r = await runCli(["--endpoints", "127.0.0.1:7001", "bogus"]);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, "");
  assert.equal(
    r.stderr,
    'error: Cannot parse arguments: unknown command "bogus" (expected put, get, delete, cas, ' +
      'status, snapshot, member or transfer-leader)\nRun "deno task client --help" for the commands and options.\n',
  );
  assert.equal(
    usageError("x"),
    'error: x\nRun "deno task client --help" for the commands and options.\n',
  );
});

Deno.test("a dead endpoint fails within the budget, naming it and asking if a node runs there", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const endpoint = `127.0.0.1:${l.addr.port}`;
  l.close();
  // Retried (a node may be restarting) until the budget runs out; nothing here measures time.
  const r = await runCli(["--endpoints", endpoint, "--timeout-ms", "1000", "put", "k", "v"]);
  assert.equal(r.code, 3);
  assert.equal(
    r.stderr,
    `error: unavailable: no endpoint answered within 1000 ms (${endpoint}: connection refused); ` +
      "is a node running there? (check --endpoints)\n",
  );
});
