/**
 * Everyone who does not belong is refused, each with a clear status, and the node
 * goes on serving: plaintext to a TLS port, TLS to a plaintext port, a certificate
 * of another CA, an expired one, a member's certificate claiming another member,
 * a client certificate sent as a peer's, a client without a certificate, a client
 * outside its prefix (through a follower too: the follower refuses it, as it is the
 * node the client called), a client certificate forwarding calls as a member would
 * (RaftService/Forward). Health stays open to probes without a certificate. The
 * policy is reloaded without a restart (SIGHUP).
 *
 * @module
 */

import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterService } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { Health } from "../../src/gen/health/v1/health_pb.ts";
import { KVService, PutRequestSchema } from "../../src/gen/raftkv/v1/kv_pb.ts";
import {
  ForwardRequestSchema,
  RaftService,
  SendRequestSchema,
} from "../../src/gen/raftkv/v1/raft_pb.ts";
import { messageToPb } from "../../src/server/codec.ts";
import { message } from "../../src/raft/types.ts";
import {
  type ClientTlsOptions,
  type Cluster,
  codeName,
  EndpointClients,
  utf8,
  waitFor,
  withCluster,
} from "../e2e/_harness.ts";
import { tlsCluster } from "./_tls_cluster.ts";

const POLICY = `
rules:
  - identity: ops
    read: [""]
    write: [""]
    admin: true
  - identity: alice
    read: ["app/"]
    write: ["app/"]
`;

/** Runs `call` and returns the ConnectError it failed with; fails if it succeeds. */
async function refusal(call: () => Promise<unknown>): Promise<ConnectError> {
  try {
    await call();
  } catch (err) {
    return ConnectError.from(err);
  }
  assert.fail("the call succeeded; it should have been refused");
}

/** A one-off client (KV, Cluster, Raft, Health) for `endpoint`; close it after use. */
function clientsFor(endpoint: string, tls?: ClientTlsOptions) {
  const e = new EndpointClients(endpoint, tls);
  const transport = createGrpcTransport({
    baseUrl: `${tls === undefined ? "http" : "https"}://${endpoint}`,
    ...(tls === undefined ? {} : { nodeOptions: tls }),
  });
  return {
    kv: e.kv,
    cluster: e.cluster,
    raft: createClient(RaftService, transport),
    health: createClient(Health, transport),
    close: () => e.close(),
  };
}

async function stillServes(c: Cluster, id: number): Promise<void> {
  const s = await c.status(id, 5_000);
  assert.equal(Number(s.id), id);
}

/** An empty Send, or one carrying a heartbeat that claims to come from `from`. */
function sendAs(from: number | undefined, to: number) {
  return create(SendRequestSchema, {
    clusterId: "raftkv-e2e",
    members: [1n, 2n, 3n],
    messages: from === undefined
      ? []
      : [messageToPb(message({ type: "heartbeat", from, to, term: 1 }))],
  });
}

/** One forwarded Put of `key`, as the request stream of a RaftService/Forward call. */
async function* forwardedPut(key: string) {
  yield create(ForwardRequestSchema, {
    callId: 1n,
    path: "/raftkv.v1.KVService/Put",
    message: toBinary(PutRequestSchema, create(PutRequestSchema, { key, value: utf8("x") })),
  });
}

/** The batches given, as the request stream of a RaftService/Stream call. */
async function* batches(...reqs: ReturnType<typeof sendAs>[]) {
  for (const batch of reqs) yield { batch };
}

Deno.test("TLS refusals: each intruder gets a clear status, the node keeps serving", async (t) => {
  const tls = await tlsCluster(3, POLICY);
  const { pki } = tls;
  try {
    const alice = await pki.ca.client("alice", { file: "alice" });
    const expired = await pki.ca.client("old", { file: "old", expired: true });
    const other = await pki.otherCa("other");
    const mallory = await other.client("ops", { file: "mallory" });
    const otherNode = await other.node(2, { file: "other-node-2" });

    await withCluster(tls.options, async (c) => {
      await c.leader();
      const ep = c.endpoint(1);

      await t.step("plaintext to a TLS port fails at once, not a hang", async () => {
        const plain = clientsFor(ep);
        try {
          const started = Date.now();
          const err = await refusal(() => plain.kv.get({ key: "app/x" }, { timeoutMs: 20_000 }));
          // Not the deadline: the connection is refused, whatever the code says.
          assert.notEqual(err.code, Code.DeadlineExceeded, err.message);
          assert.ok(Date.now() - started < 20_000);
        } finally {
          await plain.close();
        }
        await stillServes(c, 1);
      });

      await t.step("a certificate from another CA: UNAUTHENTICATED, naming the CA", async () => {
        const m = clientsFor(ep, await tls.dialWith(mallory));
        try {
          const err = await refusal(() => m.kv.get({ key: "app/x" }, { timeoutMs: 5_000 }));
          assert.equal(codeName(err.code), "Unauthenticated", err.message);
          assert.match(err.rawMessage, /CN=ops \(issuer CN=other\) is not signed by .*ca\.crt/);
        } finally {
          await m.close();
        }
        await stillServes(c, 1);
      });

      await t.step("an expired certificate: UNAUTHENTICATED, saying so", async () => {
        const o = clientsFor(ep, await tls.dialWith(expired));
        try {
          const err = await refusal(() => o.kv.get({ key: "app/x" }, { timeoutMs: 5_000 }));
          assert.equal(codeName(err.code), "Unauthenticated", err.message);
          assert.match(err.rawMessage, /CN=old is expired on 2020-01-02/);
        } finally {
          await o.close();
        }
        await stillServes(c, 1);
      });

      await t.step("no client certificate with --client-ca: UNAUTHENTICATED", async () => {
        const anon = clientsFor(ep, await tls.dialWith());
        try {
          const err = await refusal(() => anon.kv.put({ key: "app/x", value: utf8("1") }));
          assert.equal(codeName(err.code), "Unauthenticated", err.message);
          assert.match(err.rawMessage, /presented no client certificate/);
          // Probes need no certificate: Health answers.
          const h = await anon.health.check({ service: "" }, { timeoutMs: 5_000 });
          assert.equal(h.status, 1 /* SERVING */);
          // Nor can it open the peer stream.
          const stream = await refusal(() =>
            anon.raft.stream(batches(sendAs(2, 1)), { timeoutMs: 5_000 })
          );
          assert.equal(codeName(stream.code), "Unauthenticated", stream.message);
        } finally {
          await anon.close();
        }
        await stillServes(c, 1);
      });

      await t.step(
        "a client writing outside its prefix: PERMISSION_DENIED naming it and the key",
        async () => {
          const a = clientsFor(ep, await tls.dialWith(alice));
          try {
            await a.kv.put({ key: "app/ok", value: utf8("1") }, { timeoutMs: 10_000 });
            const err = await refusal(() => a.kv.put({ key: "etc/passwd", value: utf8("x") }));
            assert.equal(codeName(err.code), "PermissionDenied", err.message);
            assert.match(err.rawMessage, /client "alice" may not write key "etc\/passwd"/);
            // A watch (server streaming) is checked on its request too: outside the
            // prefix it is refused before any event; inside, it is served.
            const watch = await refusal(async () => {
              for await (const _ of a.kv.watch({ prefix: "etc/" }, { timeoutMs: 10_000 })) break;
            });
            assert.equal(codeName(watch.code), "PermissionDenied", watch.message);
            assert.match(watch.rawMessage, /client "alice" may not read keys \["etc\/", "etc0"\)/);
            for await (const _ of a.kv.watch({ prefix: "app/" }, { timeoutMs: 10_000 })) break;
            const admin = await refusal(() => a.cluster.status({}));
            assert.equal(codeName(admin.code), "PermissionDenied", admin.message);
            assert.match(admin.rawMessage, /client "alice" may not administer the cluster/);
          } finally {
            await a.close();
          }
          await stillServes(c, 1);
          // The operator sees it in the node's log, once.
          const lines = c.log(1).all().split("\n").filter((l) =>
            /refused a call.*alice.*KVService\/Put.*PermissionDenied/.test(l)
          );
          assert.equal(lines.length, 1, c.log(1).tail(40));
        },
      );

      await t.step("member 2's certificate sending as member 3: PERMISSION_DENIED", async () => {
        const n2 = clientsFor(ep, await tls.dialWith(tls.nodeCerts.get(2)));
        try {
          await n2.raft.send(sendAs(undefined, 1), { timeoutMs: 5_000 }); // as itself: accepted
          const err = await refusal(() => n2.raft.send(sendAs(3, 1), { timeoutMs: 5_000 }));
          assert.equal(codeName(err.code), "PermissionDenied", err.message);
          assert.match(err.rawMessage, /claiming to be from node 3.*names node 2/);
          // The peer stream carries the same check, batch by batch: a stream that
          // starts as node 2 and then claims node 3 is cut at that batch.
          await n2.raft.stream(batches(sendAs(undefined, 1)), { timeoutMs: 5_000 });
          const onStream = await refusal(() =>
            n2.raft.stream(batches(sendAs(undefined, 1), sendAs(3, 1)), { timeoutMs: 5_000 })
          );
          assert.equal(codeName(onStream.code), "PermissionDenied", onStream.message);
          assert.match(onStream.rawMessage, /claiming to be from node 3.*names node 2/);
        } finally {
          await n2.close();
        }
        await stillServes(c, 1);
      });

      await t.step("a node certificate of another CA as a peer: UNAUTHENTICATED", async () => {
        const o = clientsFor(ep, await tls.dialWith(otherNode));
        try {
          const err = await refusal(() => o.raft.send(sendAs(2, 1), { timeoutMs: 5_000 }));
          assert.equal(codeName(err.code), "Unauthenticated", err.message);
          const stream = await refusal(() =>
            o.raft.stream(batches(sendAs(2, 1)), { timeoutMs: 5_000 })
          );
          assert.equal(codeName(stream.code), "Unauthenticated", stream.message);
        } finally {
          await o.close();
        }
        await stillServes(c, 1);
      });

      await t.step("a client certificate where a peer's is needed: PERMISSION_DENIED", async () => {
        const a = clientsFor(ep, await tls.dialWith(tls.ops));
        try {
          const err = await refusal(() => a.raft.send(sendAs(undefined, 1), { timeoutMs: 5_000 }));
          assert.equal(codeName(err.code), "PermissionDenied", err.message);
          assert.match(
            err.rawMessage,
            /needs a peer certificate .*; client "ops" presented a client certificate/,
          );
          const stream = await refusal(() =>
            a.raft.stream(batches(sendAs(undefined, 1)), { timeoutMs: 5_000 })
          );
          assert.equal(codeName(stream.code), "PermissionDenied", stream.message);
          assert.match(stream.rawMessage, /needs a peer certificate/);
          // Nor may it forward calls as a member does (a write the policy would refuse).
          const forward = await refusal(async () => {
            for await (
              const _ of a.raft.forward(forwardedPut("etc/passwd"), { timeoutMs: 5_000 })
            ) {
              break;
            }
          });
          assert.equal(codeName(forward.code), "PermissionDenied", forward.message);
          assert.match(forward.rawMessage, /needs a peer certificate/);
        } finally {
          await a.close();
        }
        await stillServes(c, 1);
      });

      await t.step(
        "through a follower, the follower authorizes the client and the leader serves what it allowed",
        async () => {
          const lead = await c.leader();
          const follower = c.ids.find((id) => id !== lead)!;
          const a = clientsFor(c.endpoint(follower), await tls.dialWith(alice));
          try {
            const ok = await a.kv.put({ key: "app/via-follower", value: utf8("1") }, {
              timeoutMs: 10_000,
            });
            assert.ok(ok.index > 0n);
            const err = await refusal(() => a.kv.put({ key: "etc/passwd", value: utf8("x") }));
            assert.equal(codeName(err.code), "PermissionDenied", err.message);
            assert.match(err.rawMessage, /client "alice" may not write key "etc\/passwd"/);
          } finally {
            await a.close();
          }
          const got = await c.kv(lead).get({ key: "app/via-follower" }, { timeoutMs: 10_000 });
          assert.equal(got.found, true);
        },
      );

      await t.step("the policy is reloaded without a restart (SIGHUP)", async () => {
        await Deno.writeTextFile(
          `${pki.dir}/policy.yaml`,
          POLICY + `    admin: true\n`,
        );
        for (const id of c.ids) Deno.kill(c.pid(id)!, "SIGHUP");
        const a = clientsFor(ep, await tls.dialWith(alice));
        try {
          await waitFor("alice to be allowed Status", async () => {
            await a.cluster.status({}, { timeoutMs: 2_000 });
            return true;
          });
        } finally {
          await a.close();
        }
        // The node logs the reload as it swaps the policy; the test reads its output
        // through a pipe, which may not have carried the line yet.
        await waitFor(
          "node 1 to log the reload",
          () => /reloaded authorization policy/.test(c.log(1).tail(100)),
        );
      });

      // The cluster went on working through all of it.
      const ops = c.kv(1);
      await ops.put({ key: "after", value: utf8("yes") }, { timeoutMs: 10_000 });
    });
  } finally {
    await pki.cleanup();
  }
});

Deno.test("TLS to a plaintext port fails at once with a TLS error", async () => {
  const pki = (await tlsCluster(1)).pki;
  try {
    await withCluster({ nodes: 1 }, async (c) => {
      const client = createClient(
        KVService,
        createGrpcTransport({
          baseUrl: `https://${c.endpoint(1)}`,
          nodeOptions: { ca: await Deno.readTextFile(pki.ca.cert) },
        }),
      );
      const err = await refusal(() => client.get({ key: "k" }, { timeoutMs: 20_000 }));
      assert.notEqual(err.code, Code.DeadlineExceeded, err.message);
      assert.match(err.rawMessage, /wrong version number|InvalidContentType|corrupt message/);
      await c.status(1, 5_000);
      const s = await createClient(
        ClusterService,
        createGrpcTransport({ baseUrl: `http://${c.endpoint(1)}` }),
      ).status({}, { timeoutMs: 5_000 });
      assert.equal(Number(s.id), 1);
    });
  } finally {
    await pki.cleanup();
  }
});
