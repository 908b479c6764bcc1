/**
 * Hostile configuration, beyond tests/e2e/bad_flags_test.ts: a node refuses, with one
 * clear `error:` line and no stack trace, to run with settings that cannot work.
 *
 * - Settings that disagree or are out of range are flag errors (exit 2, nothing
 *   written): --listen on another port than this node's own --peers entry on the same
 *   host (the others would dial it where it does not listen; an entry with another
 *   host is a NAT or proxy address and is accepted, see the last test), timings out
 *   of range (0, negative, not a number, past the limits that keep timers sane,
 *   election under 3 heartbeats).
 * - Resources that cannot be had are runtime errors (exit 1): a --listen port in use,
 *   an address that is not this machine's, a data dir that is a file or lies under
 *   one, a data dir without write permission.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  EndpointClients,
  freePort,
  NODE_COMMAND,
  REPO_ROOT,
  runNodeToExit,
  spawnNode,
  waitFor,
} from "./_harness.ts";

/** What a refusing node printed: one error line, no stack trace. */
function assertClearError(output: string, wanted: RegExp, what: string): void {
  assert.match(output, /^error: /m, `${what}: no "error:" line; output:\n${output}`);
  assert.match(output, wanted, `${what}: output does not explain the problem:\n${output}`);
  assert.doesNotMatch(output, /^\s+at /m, `${what}: stack trace in output:\n${output}`);
  assert.doesNotMatch(output, /Uncaught|uncaught/, `${what}: uncaught error:\n${output}`);
}

async function dirEntries(dir: string): Promise<string[]> {
  const out = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out;
}

Deno.test("hostile config: settings that disagree or are out of range are flag errors (exit 2, nothing written)", async () => {
  const p = freePort();
  const q = freePort();
  const cases: [string, string[], RegExp][] = [
    [
      "--listen on another port than the node's own --peers entry",
      ["--listen", `127.0.0.1:${p}`, "--peers", `1=127.0.0.1:${q},2=127.0.0.1:${p}`],
      new RegExp(
        `Cannot use --listen 127\\.0\\.0\\.1:${p}: this node's own --peers entry is ` +
          `1=127\\.0\\.0\\.1:${q}, where the other nodes dial it; listen on port ${q}`,
      ),
    ],
    [
      "--listen port 0 while the others dial a fixed port",
      ["--listen", "127.0.0.1:0", "--peers", `1=127.0.0.1:${q}`],
      /Cannot use --listen 127\.0\.0\.1:0: this node's own --peers entry is/,
    ],
    [
      "--election-ms under 3 heartbeats",
      ["--heartbeat-ms", "100", "--election-ms", "299"],
      /--election-ms 299: it must be at least 3 × --heartbeat-ms/,
    ],
    ["--heartbeat-ms 0", ["--heartbeat-ms", "0"], /--heartbeat-ms: 0 is less than 1/],
    ["--heartbeat-ms -5", ["--heartbeat-ms=-5"], /--heartbeat-ms: "-5" is not an integer/],
    [
      "--heartbeat-ms 3000000000 (a timer would fire every 1 ms)",
      ["--heartbeat-ms", "3000000000"],
      /--heartbeat-ms: 3000000000 is more than 60000/,
    ],
    [
      "--election-ms 700000",
      ["--election-ms", "700000"],
      /--election-ms: 700000 is more than 600000/,
    ],
    [
      "--election-ms past 2^53",
      ["--election-ms", "99999999999999999999"],
      /--election-ms: "99999999999999999999" is not an integer/,
    ],
    ["--id 0", ["--id", "0"], /--id: 0 is less than 1/],
    ["RAFTKV_ID-like junk in --id", ["--id", "1e3"], /--id: "1e3" is not an integer/],
  ];
  await Promise.all(cases.map(async ([what, args, wanted]) => {
    const dataDir = await Deno.makeTempDir({ prefix: "raftkv_hostile_flags_" });
    try {
      const listen = args.includes("--listen") ? [] : ["--listen", `127.0.0.1:${freePort()}`];
      const res = await runNodeToExit([...listen, ...args, "--data-dir", dataDir]);
      assert.equal(res.code, 2, `${what}: exit code ${res.code}; output:\n${res.output}`);
      assertClearError(res.output, wanted, what);
      assert.deepEqual(await dirEntries(dataDir), [], `${what}: the node wrote to its data dir`);
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  }));
});

/** Runs `deno <NODE_COMMAND> args`, behind `wrapper` if given, to its exit. */
async function runWrapped(
  wrapper: string[],
  args: string[],
): Promise<{ code: number; output: string }> {
  const cmd = wrapper.length === 0 ? Deno.execPath() : wrapper[0]!;
  const out = await new Deno.Command(cmd, {
    args: [
      ...wrapper.slice(1),
      ...(wrapper.length === 0 ? [] : [Deno.execPath()]),
      ...NODE_COMMAND,
      ...args,
    ],
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

/**
 * How to run a node without write permission on a 0555 directory: as is for a user
 * other than root; for root (which bypasses permissions), under setpriv without the
 * capabilities that bypass them. Undefined if neither is possible here.
 */
async function withoutDacOverride(): Promise<string[] | undefined> {
  if (Deno.uid() !== 0) return [];
  try {
    const probe = await new Deno.Command("setpriv", {
      args: [
        "--bounding-set",
        "-dac_override,-dac_read_search",
        "--inh-caps",
        "-all",
        "--",
        "true",
      ],
      stdout: "null",
      stderr: "null",
    }).output();
    return probe.success
      ? ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-all", "--"]
      : undefined;
  } catch {
    return undefined;
  }
}

Deno.test("hostile config: resources that cannot be had are clear runtime errors (exit 1)", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "raftkv_hostile_res_" });
  const blocker = await Deno.listen({ hostname: "127.0.0.1", port: freePort(), transport: "tcp" });
  try {
    const file = `${root}/a-file`;
    await Deno.writeTextFile(file, "not a directory\n");
    const busy = (blocker.addr as Deno.NetAddr).port;
    const cases: [string, string[], RegExp][] = [
      [
        "a --listen port in use",
        ["--listen", `127.0.0.1:${busy}`, "--data-dir", `${root}/busy`],
        new RegExp(`^error: cannot listen on 127\\.0\\.0\\.1:${busy}: .*EADDRINUSE`, "m"),
      ],
      [
        "a --listen address that is not this machine's (TEST-NET-1)",
        ["--listen", `192.0.2.1:${freePort()}`, "--data-dir", `${root}/elsewhere`],
        /^error: cannot listen on 192\.0\.2\.1:\d+: /m,
      ],
      [
        "a data dir that is a file",
        ["--listen", `127.0.0.1:${freePort()}`, "--data-dir", file],
        new RegExp(
          `^error: Cannot use data dir ${file}: it, or a directory above it, is a file`,
          "m",
        ),
      ],
      [
        "a data dir under a file",
        ["--listen", `127.0.0.1:${freePort()}`, "--data-dir", `${file}/data`],
        new RegExp(
          `^error: Cannot use data dir ${file}/data: it, or a directory above it, is a file`,
          "m",
        ),
      ],
    ];
    await Promise.all(cases.map(async ([what, args, wanted]) => {
      const res = await runNodeToExit(args);
      assert.equal(res.code, 1, `${what}: exit code ${res.code}; output:\n${res.output}`);
      assertClearError(res.output, wanted, what);
    }));
    // The file was left alone.
    assert.equal(await Deno.readTextFile(file), "not a directory\n");

    const wrapper = await withoutDacOverride();
    await t.step({
      name: "a data dir without write permission",
      ignore: wrapper === undefined,
      fn: async () => {
        const locked = `${root}/locked`;
        await Deno.mkdir(`${locked}/existing`, { recursive: true });
        await Deno.chmod(`${locked}/existing`, 0o555);
        await Deno.chmod(locked, 0o555);
        try {
          for (
            const [dir, wanted] of [
              [`${locked}/new`, /Permission denied \(os error 13\): mkdir/],
              [`${locked}/existing`, /Permission denied \(os error 13\): open .*LOCK/],
            ] as const
          ) {
            const res = await runWrapped(wrapper!, [
              "--listen",
              `127.0.0.1:${freePort()}`,
              "--data-dir",
              dir,
            ]);
            assert.equal(res.code, 1, `exit code ${res.code}; output:\n${res.output}`);
            assertClearError(
              res.output,
              new RegExp(`^error: Cannot use data dir ${dir}: `, "m"),
              dir,
            );
            assert.match(res.output, wanted);
          }
        } finally {
          await Deno.chmod(locked, 0o755);
          await Deno.chmod(`${locked}/existing`, 0o755);
        }
      },
    });
  } finally {
    blocker.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("hostile config: a --peers entry with another host than --listen (NAT, a proxy) is accepted", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "raftkv_hostile_nat_" });
  const port = freePort();
  const lines: string[] = [];
  // The others would dial node 1 as localhost:<another port>, say through a port mapping.
  const proc = spawnNode([
    "--listen",
    `127.0.0.1:${port}`,
    "--peers",
    `1=localhost:${freePort()}`,
    "--data-dir",
    dataDir,
  ], (l) => lines.push(l));
  const client = new EndpointClients(`127.0.0.1:${port}`);
  let exited = false;
  void proc.done.then(() => exited = true);
  try {
    await waitFor("the node to serve", async () => {
      if (exited) throw new Error(`the node exited:\n${lines.join("\n")}`);
      return (await client.cluster.status({}, { timeoutMs: 1_000 })).id === 1n;
    });
  } finally {
    await client.close();
    if (!exited) proc.child.kill("SIGTERM");
    const status = await proc.done;
    await Deno.remove(dataDir, { recursive: true });
    assert.equal(status.code, 0, lines.join("\n"));
  }
});
