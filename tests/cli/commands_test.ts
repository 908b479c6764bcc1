/**
 * The CLI's commands as a user sees them, against in-memory services (Connect's router
 * transport): a fake cluster whose endpoints are the leader, a follower (which forwards
 * to the leader, as a raftkv follower does), or down (connection refused). put, get,
 * delete and cas run through the client library (src/client/); status asks each
 * endpoint itself. No sockets.
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
  checkAgreement,
  type Command,
  type CommandOutput,
  type EndpointClients,
  EXIT,
  runCommand,
  type RunOptions,
  type StatusResult,
} from "../../src/cli/commands.ts";
import {
  ClusterService,
  Role,
  type StatusResponse,
  StatusResponseSchema,
} from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { KVService } from "../../src/gen/raftkv/v1/kv_pb.ts";
import { refusingTransport } from "../client/_refused.ts";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

type Behavior = "leader" | "follower" | "down";

/**
 * A fake cluster: one shared store, endpoints with a behavior each, a log of the writes
 * applied. Like raftkv, a follower forwards a call to the leader (UNAVAILABLE when it
 * knows none), and a write in a session is applied once: a retry of a (session,
 * sequence) already applied is answered with the first answer (dissertation §6.3).
 */
class FakeCluster {
  readonly store = new Map<string, string>();
  readonly casExpected: (string | undefined)[] = [];
  /** Each write applied, as "method key", in order. */
  readonly applied: string[] = [];
  /** Each write received, as "endpoint method session/sequence", in order. */
  readonly received: string[] = [];
  index = 0n;
  sessions = 0n;
  /** Answers of applied writes, by "session/sequence". */
  readonly answered = new Map<string, unknown>();
  /** Error the leader answers every KV call with, when set. */
  leaderError: ConnectError | undefined;
  /** Called after the leader applied a write, before it answers; may throw (answer lost). */
  afterApply: ((endpoint: string) => void) | undefined;
  /** Fields an endpoint's Status answers with instead of the defaults (a forged status). */
  readonly statusOverrides = new Map<
    string,
    Partial<Omit<StatusResponse, "$typeName" | "$unknown">>
  >();

  constructor(readonly behaviors: Map<string, Behavior>) {}

  #id(endpoint: string): bigint {
    return BigInt([...this.behaviors.keys()].indexOf(endpoint) + 1);
  }

  #leader(): string | undefined {
    return [...this.behaviors].find(([, b]) => b === "leader")?.[0];
  }

  /**
   * Serves a call at `endpoint`: there if it leads, else at the leader it forwards to;
   * the leader answers with `leaderError` if set (not to OpenSession: the refusals
   * modelled are of a key).
   */
  #serve(endpoint: string, refusable = true): void {
    const leader = this.behaviors.get(endpoint) === "leader" ? endpoint : this.#leader();
    if (leader === undefined) throw new ConnectError("no leader is known", Code.Unavailable);
    if (refusable && this.leaderError) throw this.leaderError;
  }

  /** Applies a write once per (session, sequence), as raftkv's session table does. */
  #write<T>(
    endpoint: string,
    method: string,
    key: string,
    session: { id: bigint; sequence: bigint } | undefined,
    apply: () => T,
  ): T {
    this.received.push(`${endpoint} ${method} ${session?.id}/${session?.sequence}`);
    this.#serve(endpoint);
    const tag = `${session?.id}/${session?.sequence}`;
    if (session !== undefined && this.answered.has(tag)) return this.answered.get(tag) as T;
    const answer = apply();
    this.applied.push(`${method} ${key}`);
    if (session !== undefined) this.answered.set(tag, answer);
    this.afterApply?.(endpoint);
    return answer;
  }

  kvImpl(endpoint: string): Partial<ServiceImpl<typeof KVService>> {
    return {
      openSession: () => {
        this.#serve(endpoint, false);
        return { sessionId: ++this.sessions };
      },
      put: (req) =>
        this.#write(endpoint, "put", req.key, req.session, () => {
          this.store.set(req.key, dec(req.value));
          return { index: ++this.index };
        }),
      get: (req) => {
        this.#serve(endpoint);
        const v = this.store.get(req.key);
        return v === undefined ? { found: false } : { found: true, value: enc(v) };
      },
      delete: (req) =>
        this.#write(endpoint, "delete", req.key, req.session, () => ({
          deleted: this.store.delete(req.key),
        })),
      compareAndSwap: (req) =>
        this.#write(endpoint, "cas", req.key, req.session, () => {
          const expected = req.expected === undefined ? undefined : dec(req.expected);
          this.casExpected.push(expected);
          const current = this.store.get(req.key);
          const found = current !== undefined;
          const succeeded = expected === undefined ? !found : current === expected;
          if (succeeded) this.store.set(req.key, dec(req.value));
          return { succeeded, found, value: enc(current ?? "") };
        }),
    };
  }

  clusterImpl(endpoint: string): Partial<ServiceImpl<typeof ClusterService>> {
    return {
      status: () => {
        const leader = this.#leader();
        return {
          id: this.#id(endpoint),
          role: this.behaviors.get(endpoint) === "leader" ? Role.LEADER : Role.FOLLOWER,
          term: 5n,
          leaderId: leader === undefined ? 0n : this.#id(leader),
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

  transport = (endpoint: string): Transport => {
    if (this.behaviors.get(endpoint) === "down") return refusingTransport(endpoint);
    return createRouterTransport((router) => {
      router.service(KVService, this.kvImpl(endpoint));
      router.service(ClusterService, this.clusterImpl(endpoint));
    });
  };

  clients = (endpoint: string): EndpointClients => {
    const transport = this.transport(endpoint);
    return {
      kv: createClient(KVService, transport),
      cluster: createClient(ClusterService, transport),
    };
  };
}

function setup(
  behaviors: [string, Behavior][],
  timeoutMs = 5000,
): { cluster: FakeCluster; opts: RunOptions } {
  const cluster = new FakeCluster(new Map(behaviors));
  return {
    cluster,
    opts: {
      endpoints: behaviors.map(([e]) => e),
      timeoutMs,
      clients: cluster.clients,
      transport: cluster.transport,
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

Deno.test("KV commands reach the leader, whichever endpoints they are given", async (t) => {
  await t.step("a put given only a follower's endpoint succeeds", async () => {
    const { cluster, opts } = setup([["a:1", "follower"], ["b:2", "leader"]]);
    opts.endpoints = ["a:1"];
    assert.deepEqual(await run({ name: "put", key: "k", value: "v" }, opts), {
      stdout: "OK (index 1)\n",
      stderr: "",
      exitCode: EXIT.OK,
    });
    assert.equal((await run({ name: "get", key: "k" }, opts)).stdout, "v\n");
    assert.deepEqual(cluster.applied, ["put k"]);
  });

  await t.step("a dead first endpoint is skipped", async () => {
    const { cluster, opts } = setup([["a:1", "down"], ["b:2", "follower"], ["c:3", "leader"]]);
    assert.equal((await run({ name: "put", key: "k", value: "v" }, opts)).stdout, "OK (index 1)\n");
    assert.equal((await run({ name: "get", key: "k" }, opts)).stdout, "v\n");
    assert.equal((await run({ name: "delete", key: "k" }, opts)).stdout, "OK (deleted)\n");
    assert.deepEqual(cluster.applied, ["put k", "delete k"]);
  });

  await t.step("a command during an election waits for the new leader", async () => {
    const { cluster, opts } = setup([["a:1", "follower"], ["b:2", "follower"]], 20_000);
    // No leader: both answer UNAVAILABLE, until b:2 wins after some calls.
    let statusCalls = 0;
    const base = cluster.clusterImpl.bind(cluster);
    cluster.clusterImpl = (endpoint) => ({
      status: (req, ctx) => {
        if (++statusCalls === 5) cluster.behaviors.set("b:2", "leader");
        return base(endpoint).status!(req, ctx);
      },
    });
    assert.equal((await run({ name: "put", key: "k", value: "v" }, opts)).exitCode, EXIT.OK);
    assert.deepEqual(cluster.applied, ["put k"]);
  });

  await t.step("a write whose answer was lost in a leader change is applied once", async () => {
    const { cluster, opts } = setup([["a:1", "leader"], ["b:2", "follower"]]);
    // a:1 applies the put, then loses leadership before answering: the outcome is
    // unknown to the CLI, which sends the put again, to the new leader b:2.
    cluster.afterApply = (endpoint) => {
      cluster.afterApply = undefined;
      cluster.behaviors.set(endpoint, "follower");
      cluster.behaviors.set("b:2", "leader");
      throw new ConnectError("leadership lost", Code.Unavailable);
    };
    assert.deepEqual(await run({ name: "put", key: "k", value: "v" }, opts), {
      stdout: "OK (index 1)\n",
      stderr: "",
      exitCode: EXIT.OK,
    });
    assert.deepEqual(cluster.applied, ["put k"], "applied once");
    // The retry carried the same session and sequence, which is what makes it safe.
    assert.equal(cluster.received.length, 2);
    const [first, second] = cluster.received.map((r) => r.split(" ")[2]);
    assert.equal(second, first);
    assert.notEqual(first, "undefined/undefined");
  });

  await t.step("each write has a session of its own", async () => {
    const { cluster, opts } = setup([["a:1", "leader"]]);
    await run({ name: "put", key: "k", value: "v" }, opts);
    await run({ name: "cas", key: "k", expected: "v", value: "w" }, opts);
    await run({ name: "delete", key: "k" }, opts);
    assert.deepEqual(cluster.received, ["a:1 put 1/1", "a:1 cas 2/1", "a:1 delete 3/1"]);
  });
});

Deno.test("KV commands fail clearly, with exit 3, when the cluster cannot answer", async (t) => {
  await t.step("nothing listening: the message names each endpoint and why", async () => {
    const { opts } = setup([["a:1", "down"], ["b:2", "down"]], 300);
    assert.deepEqual(await run({ name: "put", key: "k", value: "v" }, opts), {
      stdout: "",
      stderr: "error: unavailable: no endpoint answered within 300 ms (a:1: connection refused; " +
        "b:2: connection refused); are the nodes running? (check --endpoints)\n",
      exitCode: EXIT.FAILED,
    });
  });

  await t.step("a single endpoint with nothing listening is named as such", async () => {
    const { opts } = setup([["a:1", "down"]], 300);
    assert.deepEqual(await run({ name: "get", key: "k" }, opts), {
      stdout: "",
      stderr: "error: unavailable: no endpoint answered within 300 ms (a:1: connection refused); " +
        "is a node running there? (check --endpoints)\n",
      exitCode: EXIT.FAILED,
    });
  });

  await t.step("no leader within the budget: each endpoint's answer, no hint", async () => {
    const { opts } = setup([["a:1", "follower"], ["b:2", "down"]], 300);
    assert.deepEqual(await run({ name: "get", key: "k" }, opts), {
      stdout: "",
      stderr: "error: unavailable: no endpoint answered within 300 ms " +
        "(a:1: unavailable: no leader is known; b:2: connection refused)\n",
      exitCode: EXIT.FAILED,
    });
  });

  await t.step("a refusal from the server is final: printed, not retried", async () => {
    const { cluster, opts } = setup([["a:1", "leader"], ["b:2", "follower"]]);
    cluster.leaderError = new ConnectError(
      'client "alice" may not write key "etc/k"',
      Code.PermissionDenied,
    );
    assert.deepEqual(await run({ name: "put", key: "etc/k", value: "v" }, opts), {
      stdout: "",
      stderr: 'error: permission_denied: client "alice" may not write key "etc/k"\n',
      exitCode: EXIT.FAILED,
    });
    assert.deepEqual(cluster.received, ["a:1 put 1/1"], "sent once");
    assert.deepEqual(cluster.applied, []);
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
