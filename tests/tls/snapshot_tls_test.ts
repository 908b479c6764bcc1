/**
 * Snapshots travel over mutual TLS too: a follower that was down while the others
 * compacted their logs catches up by InstallSnapshot; and an InstallSnapshot whose
 * header claims another member than the sender's certificate names is refused
 * PERMISSION_DENIED before a byte of it is read.
 *
 * @module
 */

import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { InstallSnapshotRequestSchema, RaftService } from "../../src/gen/raftkv/v1/raft_pb.ts";
import { checkReads, utf8, waitApplied, withCluster } from "../e2e/_harness.ts";
import { tlsCluster } from "./_tls_cluster.ts";

Deno.test("TLS: a follower catches up by snapshot; a snapshot header claiming another member is refused", async () => {
  const tls = await tlsCluster(3, undefined, {
    extraArgs: ["--snapshot-entries", "30", "--snapshot-catchup-entries", "5"],
  });
  try {
    await withCluster(tls.options, async (c) => {
      const leader = await c.leader();
      const follower = c.ids.find((id) => id !== leader)!;
      await c.kill(follower);
      const expected = new Map<string, string>();
      let last = 0n;
      for (let i = 0; i < 120; i++) {
        const key = `key${i % 40}`;
        const res = await c.kv(leader).put({ key, value: utf8(`v${i}`) }, { timeoutMs: 10_000 });
        expected.set(key, `v${i}`);
        if (res.index > last) last = res.index;
      }
      await c.restart(follower);
      await waitApplied(c, follower, last);
      assert.match(c.log(follower).all(), /received snapshot.*from=\d/);
      assert.deepEqual(await checkReads(c, follower, expected), []);

      // Member `follower`'s certificate, a header claiming the leader sent it.
      const cert = tls.nodeCerts.get(follower)!;
      const raft = createClient(
        RaftService,
        createGrpcTransport({
          baseUrl: `https://${c.endpoint(leader)}`,
          nodeOptions: await tls.dialWith(cert),
        }),
      );
      const target = c.ids.find((id) => id !== leader && id !== follower)!;
      async function* requests() {
        yield create(InstallSnapshotRequestSchema, {
          part: {
            case: "header",
            value: {
              clusterId: "raftkv-e2e",
              members: [1n, 2n, 3n],
              from: BigInt(target),
              to: BigInt(leader),
              term: 1n,
              size: 10n,
            },
          },
        });
        yield create(InstallSnapshotRequestSchema, {
          part: { case: "chunk", value: new Uint8Array(10) },
        });
      }
      const err = await raft.installSnapshot(requests(), { timeoutMs: 5_000 }).then(
        () => assert.fail("the snapshot was accepted"),
        (e) => ConnectError.from(e),
      );
      assert.equal(err.code, 7, /* PERMISSION_DENIED */ err.message);
      assert.match(
        err.rawMessage,
        new RegExp(`claiming to be from node ${target}.*names node ${follower}`),
      );
      await c.status(leader, 5_000);
    });
  } finally {
    await tls.pki.cleanup();
  }
});
