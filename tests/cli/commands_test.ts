/**
 * The CLI's commands against in-memory services (Connect's router transport): a
 * fake cluster of endpoints that are the leader, a follower, or down. No sockets.
 *
 * @module
 */

import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  createRouterTransport,
  type ServiceImpl,
  type Transport,
} from "@connectrpc/connect";
import {
  callLeader,
  cannotConnect,
  checkAgreement,
  codeName,
  type Command,
  type CommandOutput,
  type EndpointClients,
  EXIT,
  runCommand,
  type RunOptions,
  shortReason,
  type StatusResult,
} from "../../src/cli/commands.ts";
import {
  ClusterService,
  Role,
  type StatusResponse,
  StatusResponseSchema,
} from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { KVService } from "../../src/gen/raftkv/v1/kv_pb.ts";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

type Behavior = "leader" | "follower" | "down";

/** A fake cluster: one shared store, endpoints with a behavior each, a log of calls. */
class FakeCluster {
  readonly store = new Map<string, string>();
  readonly calls: string[] = [];
  readonly casExpected: (string | undefined)[] = [];
  index = 0n;
  /** Sessions opened, and the session of each write, in order. */
  sessions = 0n;
  readonly writeSessions: (bigint | undefined)[] = [];
  /** Error a leader answers every KV call with, when set. */
  leaderError: ConnectError | undefined;
  /** Fields an endpoint's Status answers with instead of the defaults (a forged status). */
  readonly statusOverrides = new Map<
    string,
    Partial<Omit<StatusResponse, "$typeName" | "$unknown">>
  >();

  constructor(readonly behaviors: Map<string, Behavior>) {}

  kvImpl(endpoint: string): Partial<ServiceImpl<typeof KVService>> {
    const guard = (method: string): void => {
      this.calls.push(`${endpoint} ${method}`);
      if (this.behaviors.get(endpoint) !== "leader") {
        // A raftkv follower forwards to the leader; with none known it answers UNAVAILABLE.
        throw new ConnectError("no leader is known", Code.Unavailable);
      }
      if (this.leaderError) throw this.leaderError;
    };
    return {
      openSession: () => {
        guard("openSession");
        return { sessionId: ++this.sessions };
      },
      put: (req) => {
        guard("put");
        this.writeSessions.push(req.session?.id);
        this.store.set(req.key, dec(req.value));
        return { index: ++this.index };
      },
      get: (req) => {
        guard("get");
        const v = this.store.get(req.key);
        return v === undefined ? { found: false } : { found: true, value: enc(v) };
      },
      delete: (req) => {
        guard("delete");
        this.writeSessions.push(req.session?.id);
        return { deleted: this.store.delete(req.key) };
      },
      compareAndSwap: (req) => {
        guard("cas");
        this.writeSessions.push(req.session?.id);
        const expected = req.expected === undefined ? undefined : dec(req.expected);
        this.casExpected.push(expected);
        const current = this.store.get(req.key);
        const found = current !== undefined;
        const succeeded = expected === undefined ? !found : current === expected;
        if (succeeded) this.store.set(req.key, dec(req.value));
        return { succeeded, found, value: enc(current ?? "") };
      },
    };
  }

  clusterImpl(endpoint: string): Partial<ServiceImpl<typeof ClusterService>> {
    const id = BigInt([...this.behaviors.keys()].indexOf(endpoint) + 1);
    return {
      status: () => {
        this.calls.push(`${endpoint} status`);
        const leader = this.behaviors.get(endpoint) === "leader";
        return {
          id,
          role: leader ? Role.LEADER : Role.FOLLOWER,
          term: 5n,
          leaderId: 1n,
          commitIndex: this.index,
          appliedIndex: this.index,
          lastLogIndex: this.index,
          stateDigest: "d".repeat(64),
          appliedChain: "c".repeat(64),
          ...this.statusOverrides.get(endpoint),
        };
      },
    };
  }

  clients = (endpoint: string): EndpointClients => {
    if (this.behaviors.get(endpoint) === "down") {
      const transport = failingTransport(refused(endpoint), () => {
        this.calls.push(`${endpoint} refused`);
      });
      return {
        kv: createClient(KVService, transport),
        cluster: createClient(ClusterService, transport),
      };
    }
    const transport = createRouterTransport((router) => {
      router.service(KVService, this.kvImpl(endpoint));
      router.service(ClusterService, this.clusterImpl(endpoint));
    });
    return {
      kv: createClient(KVService, transport),
      cluster: createClient(ClusterService, transport),
    };
  };
}

/** The error connect-node raises for a refused connection. */
function refused(endpoint: string): ConnectError {
  const cause = Object.assign(new Error(`connect ECONNREFUSED ${endpoint}`), {
    code: "ECONNREFUSED",
  });
  const err = new ConnectError(`connect ECONNREFUSED ${endpoint}`, Code.Unavailable);
  err.cause = cause;
  return err;
}

/** A transport whose every call fails with `err`, like one whose host is down. */
function failingTransport(err: ConnectError, onCall: () => void): Transport {
  return {
    unary: () => {
      onCall();
      return Promise.reject(err);
    },
    stream: () => {
      onCall();
      return Promise.reject(err);
    },
  };
}

/** A fake clock whose sleep advances it. */
function fakeTime(): { now: () => number; sleep: (ms: number) => Promise<void>; slept: number[] } {
  let t = 1_000_000;
  const slept: number[] = [];
  return {
    now: () => t,
    sleep: (ms) => {
      slept.push(ms);
      t += ms;
      return Promise.resolve();
    },
    slept,
  };
}

function setup(
  behaviors: [string, Behavior][],
  timeoutMs = 1000,
): { cluster: FakeCluster; opts: RunOptions; slept: number[] } {
  const cluster = new FakeCluster(new Map(behaviors));
  const time = fakeTime();
  return {
    cluster,
    slept: time.slept,
    opts: {
      endpoints: behaviors.map(([e]) => e),
      timeoutMs,
      clients: cluster.clients,
      now: time.now,
      sleep: time.sleep,
    },
  };
}

const run = (cmd: Command, opts: RunOptions): Promise<CommandOutput> => runCommand(cmd, opts);

Deno.test("KV commands against the leader", async (t) => {
  const { cluster, opts } = setup([["a:1", "leader"]]);

  await t.step("put prints the commit index", async () => {
    assert.deepEqual(await run({ name: "put", key: "k", value: "v1" }, opts), {
      stdout: "OK (index 1)\n",
      stderr: "",
      exitCode: EXIT.OK,
    });
    assert.equal(
      (await run({ name: "put", key: "k", value: "v2" }, opts)).stdout,
      "OK (index 2)\n",
    );
  });
  await t.step("get prints the value as UTF-8", async () => {
    await run({ name: "put", key: "u", value: "héllo wörld ✓" }, opts);
    assert.deepEqual(await run({ name: "get", key: "u" }, opts), {
      stdout: "héllo wörld ✓\n",
      stderr: "",
      exitCode: EXIT.OK,
    });
  });
  await t.step("get of an empty value prints an empty line", async () => {
    await run({ name: "put", key: "e", value: "" }, opts);
    assert.deepEqual(await run({ name: "get", key: "e" }, opts), {
      stdout: "\n",
      stderr: "",
      exitCode: EXIT.OK,
    });
  });
  await t.step("get of a missing key: (not found) on stderr, exit 1", async () => {
    assert.deepEqual(await run({ name: "get", key: "missing" }, opts), {
      stdout: "",
      stderr: "(not found)\n",
      exitCode: EXIT.NEGATIVE,
    });
  });
  await t.step("delete, then delete again", async () => {
    assert.deepEqual(await run({ name: "delete", key: "k" }, opts), {
      stdout: "OK (deleted)\n",
      stderr: "",
      exitCode: EXIT.OK,
    });
    assert.deepEqual(await run({ name: "delete", key: "k" }, opts), {
      stdout: "OK (not found, nothing deleted)\n",
      stderr: "",
      exitCode: EXIT.OK,
    });
    assert.equal(cluster.store.has("k"), false);
  });
  await t.step("cas --absent creates, and fails once the key exists", async () => {
    assert.deepEqual(await run({ name: "cas", key: "c", expected: undefined, value: "1" }, opts), {
      stdout: "OK (swapped)\n",
      stderr: "",
      exitCode: EXIT.OK,
    });
    assert.deepEqual(await run({ name: "cas", key: "c", expected: undefined, value: "2" }, opts), {
      stdout: "",
      stderr: 'compare failed: the key holds "1"\n',
      exitCode: EXIT.NEGATIVE,
    });
    assert.equal(cluster.store.get("c"), "1");
  });
  await t.step("cas with an expected value", async () => {
    assert.equal(
      (await run({ name: "cas", key: "c", expected: "1", value: "2" }, opts)).exitCode,
      0,
    );
    assert.equal(cluster.store.get("c"), "2");
    assert.deepEqual(await run({ name: "cas", key: "c", expected: "1", value: "3" }, opts), {
      stdout: "",
      stderr: 'compare failed: the key holds "2"\n',
      exitCode: EXIT.NEGATIVE,
    });
    assert.deepEqual(await run({ name: "cas", key: "nope", expected: "", value: "3" }, opts), {
      stdout: "",
      stderr: "compare failed: the key is absent\n",
      exitCode: EXIT.NEGATIVE,
    });
  });
  await t.step("cas sends unset vs empty expected faithfully", () => {
    assert.deepEqual(cluster.casExpected, [undefined, undefined, "1", "1", ""]);
  });
  await t.step("a non-retryable server error is printed as error: <code>: <message>", async () => {
    cluster.leaderError = new ConnectError("key must not be empty", Code.InvalidArgument);
    assert.deepEqual(await run({ name: "get", key: "x" }, opts), {
      stdout: "",
      stderr: "error: invalid_argument: key must not be empty\n",
      exitCode: EXIT.FAILED,
    });
    cluster.leaderError = undefined;
  });
});

Deno.test("KV commands find the leader", async (t) => {
  await t.step("skipping a follower and a down node, in order", async () => {
    const { cluster, opts, slept } = setup([
      ["a:1", "follower"],
      ["b:2", "down"],
      ["c:3", "leader"],
    ]);
    const out = await run({ name: "put", key: "k", value: "v" }, opts);
    assert.equal(out.stdout, "OK (index 1)\n");
    assert.deepEqual(cluster.calls, [
      "a:1 openSession",
      "b:2 refused",
      "c:3 openSession",
      "a:1 put",
      "b:2 refused",
      "c:3 put",
    ]);
    assert.deepEqual(slept, []);
  });

  await t.step("a write carries a fresh session, so a retry is applied at most once", async () => {
    const { cluster, opts } = setup([["a:1", "leader"]]);
    await run({ name: "put", key: "k", value: "v" }, opts);
    await run({ name: "cas", key: "k", expected: "v", value: "w" }, opts);
    await run({ name: "delete", key: "k" }, opts);
    assert.deepEqual(cluster.writeSessions, [1n, 2n, 3n]);
  });

  await t.step("an error other than not-leader or unavailable is final", async () => {
    const { cluster, opts } = setup([["a:1", "leader"], ["b:2", "leader"]]);
    cluster.leaderError = new ConnectError("boom", Code.Internal);
    const out = await run({ name: "get", key: "k" }, opts);
    assert.deepEqual(out, {
      stdout: "",
      stderr: "error: internal: a:1: boom\n",
      exitCode: EXIT.FAILED,
    });
    assert.deepEqual(cluster.calls, ["a:1 get"]);
  });

  await t.step("waits out an election: retries rounds with growing pauses", async () => {
    const { cluster, opts, slept } = setup([["a:1", "follower"], ["b:2", "follower"]], 5000);
    let rounds = 0;
    const origSleep = opts.sleep!;
    opts.sleep = async (ms) => {
      await origSleep(ms);
      if (++rounds === 3) cluster.behaviors.set("b:2", "leader");
    };
    const out = await run({ name: "put", key: "k", value: "v" }, opts);
    assert.equal(out.stdout, "OK (index 1)\n");
    assert.deepEqual(slept, [50, 100, 200]);
    // Three rounds of two refusals find the leader for the session; the put then
    // goes straight through the endpoints in order.
    assert.deepEqual(cluster.calls.slice(-4), [
      "a:1 openSession",
      "b:2 openSession",
      "a:1 put",
      "b:2 put",
    ]);
    assert.equal(cluster.calls.length, 10);
  });

  await t.step("gives up when the budget runs out, naming each endpoint's failure", async () => {
    const { cluster, opts, slept } = setup([["a:1", "follower"], ["b:2", "down"]], 1000);
    const out = await run({ name: "get", key: "k" }, opts);
    assert.deepEqual(out, {
      stdout: "",
      stderr: "error: unavailable: no leader answered within 1000 ms " +
        "(a:1: unavailable: no leader is known; b:2: connection refused)\n",
      exitCode: EXIT.FAILED,
    });
    // Pauses double up to the budget: 50 + 100 + 200 + 400 = 750; another 800 would overrun it.
    assert.deepEqual(slept, [50, 100, 200, 400]);
    assert.equal(cluster.calls.length, 10);
  });

  await t.step("fails at once when no endpoint can be connected to", async () => {
    const { cluster, opts, slept } = setup([["a:1", "down"], ["b:2", "down"]], 5000);
    const out = await run({ name: "put", key: "k", value: "v" }, opts);
    assert.deepEqual(out, {
      stdout: "",
      stderr: "error: unavailable: cannot connect to any endpoint (a:1: connection refused; " +
        "b:2: connection refused); are the nodes running? (check --endpoints)\n",
      exitCode: EXIT.FAILED,
    });
    // One round, no pause: a refused connection is known at once.
    assert.deepEqual(cluster.calls, ["a:1 refused", "b:2 refused"]);
    assert.deepEqual(slept, []);
  });

  await t.step("a single mistyped endpoint is named as such", async () => {
    const { opts, slept } = setup([["a:1", "down"]], 5000);
    assert.deepEqual(await run({ name: "get", key: "k" }, opts), {
      stdout: "",
      stderr: "error: unavailable: cannot connect to a:1: connection refused; is a node " +
        "running there? (check --endpoints)\n",
      exitCode: EXIT.FAILED,
    });
    assert.deepEqual(slept, []);
  });

  await t.step("callLeader passes the remaining budget as the call's timeout", async () => {
    const { opts } = setup([["a:1", "leader"]], 1234);
    const seen: (number | undefined)[] = [];
    await callLeader(opts, (kv, call) => {
      seen.push(call.timeoutMs);
      return kv.get({ key: "k" }, call);
    });
    assert.deepEqual(seen, [1234]);
  });
});

Deno.test("status asks every endpoint and shows the down ones", async (t) => {
  await t.step("all up: exit 0", async () => {
    const { opts } = setup([["a:1", "leader"], ["b:2", "follower"]]);
    const out = await run({ name: "status" }, opts);
    assert.equal(out.exitCode, EXIT.OK);
    assert.equal(out.stderr, "");
    assert.equal(
      out.stdout,
      [
        "ENDPOINT  ID  ROLE      TERM  LEADER  COMMIT  APPLIED  LAST  SNAPSHOT  FIRST",
        "a:1       1   leader    5     1       0       0        0     0         0",
        "b:2       2   follower  5     1       0       0        0     0         0",
        "",
      ].join("\n"),
    );
  });
  await t.step("one down: its row says down and why, exit 1", async () => {
    const { opts } = setup([["a:1", "leader"], ["b:2", "down"], ["c:3", "follower"]]);
    const out = await run({ name: "status" }, opts);
    assert.equal(out.exitCode, EXIT.NEGATIVE);
    const lines = out.stdout.split("\n");
    assert.equal(lines.length, 5);
    assert.match(lines[2] ?? "", /^b:2 +- +down +- +- +- +- +- +- +- +\(connection refused\)$/);
    assert.match(lines[3] ?? "", /^c:3 +3 +follower/);
  });
  await t.step("all down: exit 3", async () => {
    const { opts } = setup([["a:1", "down"], ["b:2", "down"]]);
    const out = await run({ name: "status" }, opts);
    assert.equal(out.exitCode, EXIT.FAILED);
    assert.equal(out.stdout.match(/down/g)?.length, 2);
  });
  await t.step("endpoints are asked concurrently", async () => {
    const { opts } = setup([["a:1", "leader"], ["b:2", "follower"]]);
    let inFlight = 0;
    let maxInFlight = 0;
    const base = opts.clients;
    opts.clients = (endpoint) => {
      const c = base(endpoint);
      return {
        kv: c.kv,
        cluster: {
          ...c.cluster,
          status: async (req, options) => {
            inFlight++;
            maxInFlight = Math.max(maxInFlight, inFlight);
            await new Promise((r) => setTimeout(r, 5));
            try {
              return await c.cluster.status(req ?? {}, options);
            } finally {
              inFlight--;
            }
          },
        },
      };
    };
    await run({ name: "status" }, opts);
    assert.equal(maxInFlight, 2);
  });
});

Deno.test("status says loudly when the nodes have diverged", async (t) => {
  const forked = (): ReturnType<typeof setup> => {
    // The fork of issue 16: node 1 ran alone on a 3-node data dir, then rejoined.
    // Every node is at applied index 34; node 1 applied other entries.
    const s = setup([["a:1", "leader"], ["b:2", "follower"], ["c:3", "follower"]]);
    s.cluster.index = 34n;
    s.cluster.statusOverrides.set("a:1", {
      stateDigest: "1".repeat(64),
      appliedChain: "2".repeat(64),
    });
    return s;
  };

  await t.step("different digests at one applied index: a report, exit 4", async () => {
    const out = await run({ name: "status" }, forked().opts);
    assert.equal(out.exitCode, EXIT.DIVERGED);
    assert.equal(
      out.stderr,
      "DIVERGED: the nodes at applied index 34 hold different states: they applied different " +
        "entries, the cluster has forked (a node started with the wrong --peers?)\n" +
        "  node 1: state_digest 1111111111111111…, applied_chain 2222222222222222…\n" +
        "  nodes 2, 3: state_digest dddddddddddddddd…, applied_chain cccccccccccccccc…\n",
    );
    // The table is still printed, as it is.
    assert.match(out.stdout, /^ENDPOINT +ID +ROLE/);
    assert.equal(out.stdout.trimEnd().split("\n").length, 4);
  });

  await t.step("a differing applied chain alone is a divergence too", async () => {
    const { cluster, opts } = setup([["a:1", "leader"], ["b:2", "follower"]]);
    cluster.statusOverrides.set("b:2", { appliedChain: "e".repeat(64) });
    const out = await run({ name: "status" }, opts);
    assert.equal(out.exitCode, EXIT.DIVERGED);
    assert.match(out.stderr, /^DIVERGED: the nodes at applied index 0/);
  });

  await t.step("nodes at different applied indexes are not compared", async () => {
    const { cluster, opts } = setup([["a:1", "leader"], ["b:2", "follower"]]);
    cluster.statusOverrides.set("b:2", { appliedIndex: 7n, stateDigest: "f".repeat(64) });
    const out = await run({ name: "status" }, opts);
    assert.equal(out.stderr, "");
    assert.equal(out.exitCode, EXIT.OK);
  });

  await t.step("two leaders in one term: a report, exit 4", async () => {
    const { cluster, opts } = setup([["a:1", "leader"], ["b:2", "leader"], ["c:3", "follower"]]);
    cluster.statusOverrides.set("a:1", { term: 3n, leaderId: 1n });
    cluster.statusOverrides.set("b:2", { term: 3n, leaderId: 2n });
    const out = await run({ name: "status" }, opts);
    assert.equal(out.exitCode, EXIT.DIVERGED);
    assert.equal(
      out.stderr,
      "TWO LEADERS: nodes 1, 2 both lead in term 3; one cluster has one leader per term, so " +
        "these nodes believe in different memberships (check each one's --peers)\n",
    );
  });

  await t.step(
    "two leaders in different terms are an election in progress, not a fork",
    async () => {
      const { cluster, opts } = setup([["a:1", "leader"], ["b:2", "leader"]]);
      cluster.statusOverrides.set("a:1", { term: 3n });
      cluster.statusOverrides.set("b:2", { term: 4n });
      const out = await run({ name: "status" }, opts);
      assert.equal(out.stderr, "");
      assert.equal(out.exitCode, EXIT.OK);
    },
  );

  await t.step("a divergence outranks a node down", async () => {
    const s = forked();
    s.cluster.behaviors.set("c:3", "down");
    const out = await run({ name: "status" }, s.opts);
    assert.equal(out.exitCode, EXIT.DIVERGED);
    assert.match(out.stderr, /node 1: state_digest 1{16}…/);
    assert.match(out.stderr, /node 2: state_digest d{16}…/);
  });

  await t.step("one node answering on two endpoints counts once", () => {
    const leader = (endpoint: string, id: bigint): StatusResult => ({
      endpoint,
      status: create(StatusResponseSchema, { id, role: Role.LEADER, term: 2n }),
    });
    assert.deepEqual(checkAgreement([leader("127.0.0.1:1", 1n), leader("localhost:1", 1n)]), []);
    assert.equal(checkAgreement([leader("h:1", 1n), leader("h:2", 2n)]).length, 1);
  });

  await t.step("nodes that report no fingerprints (older versions) are left out", async () => {
    const { cluster, opts } = setup([["a:1", "leader"], ["b:2", "follower"]]);
    cluster.statusOverrides.set("b:2", { stateDigest: "", appliedChain: "" });
    assert.equal((await run({ name: "status" }, opts)).exitCode, EXIT.OK);
  });
});

Deno.test("shortReason and codeName", async (t) => {
  await t.step("network failures by their Node error code", () => {
    assert.equal(shortReason(refused("h:1")), "connection refused");
    const notFound = new ConnectError("getaddrinfo ENOTFOUND h", Code.Unavailable);
    notFound.cause = Object.assign(new Error("getaddrinfo ENOTFOUND h"), { code: "ENOTFOUND" });
    assert.equal(shortReason(notFound), "unknown host");
  });
  await t.step("cannotConnect: refused and unknown hosts, not timeouts or resets", () => {
    assert.equal(cannotConnect(refused("h:1")), true);
    const reset = new ConnectError("read ECONNRESET", Code.Unavailable);
    reset.cause = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
    assert.equal(cannotConnect(reset), false);
    assert.equal(cannotConnect(new ConnectError("x", Code.DeadlineExceeded)), false);
    assert.equal(cannotConnect(new ConnectError("no leader is known", Code.Unavailable)), false);
  });
  await t.step("deadline as timed out; others as code: message, one line, bounded", () => {
    assert.equal(shortReason(new ConnectError("x", Code.DeadlineExceeded)), "timed out");
    assert.equal(
      shortReason(new ConnectError("not the leader\nmore", Code.FailedPrecondition)),
      "failed_precondition: not the leader",
    );
    const long = shortReason(new ConnectError("x".repeat(200), Code.Internal));
    assert.equal(long.length, 80);
    assert.ok(long.endsWith("…"));
    assert.equal(shortReason(new Error("plain")), "unknown: plain");
  });
  await t.step("codeName spells codes as gRPC does", () => {
    assert.equal(codeName(Code.Unavailable), "unavailable");
    assert.equal(codeName(Code.FailedPrecondition), "failed_precondition");
    assert.equal(codeName(Code.DeadlineExceeded), "deadline_exceeded");
    assert.equal(codeName(Code.Unauthenticated), "unauthenticated");
  });
});
