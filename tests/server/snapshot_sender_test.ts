/**
 * The snapshot sender: a `snap` message's snapshot goes out as a header and the
 * snapshot file in chunks of at most 1 MiB, which the real receiver puts back
 * together; every transfer ends in exactly one report to the core (finish, or
 * failure when the follower refuses it or it stops moving); at most one transfer
 * per follower is in flight. Served in memory (Connect's router transport).
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type Client,
  Code,
  ConnectError,
  createClient,
  createRouterTransport,
  type ServiceImpl,
} from "@connectrpc/connect";
import { type InstallSnapshotRequest, RaftService } from "../../src/gen/raftkv/v1/raft_pb.ts";
import type { LogFields, Logger } from "../../src/raft/logger.ts";
import { type Message, message, type Snapshot } from "../../src/raft/types.ts";
import { encodeSnapshotFile } from "../../src/snapshot/file.ts";
import { raftService, type RaftServiceNode } from "../../src/server/raft_service.ts";
import { SnapshotSender } from "../../src/server/snapshot_sender.ts";
import { withDataOnDisk } from "../../src/snapshot/on_disk.ts";
import { waitFor } from "../e2e/_harness.ts";
import { confStateOf } from "../../src/raft/types.ts";

const PEERS = new Map([1, 2, 3].map((id) => [id, { host: "127.0.0.1", port: 7000 + id }]));

function recordingLogger(lines: string[]): Logger {
  const add = (level: string) => (msg: string, f?: LogFields) =>
    lines.push(`${level} ${msg} ${JSON.stringify(f ?? {})}`);
  return { debug: add("debug"), info: add("info"), warn: add("warn"), error: add("error") };
}

function snapshotOf(dataBytes: number): Snapshot {
  const data = new Uint8Array(dataBytes);
  for (let i = 0; i < data.length; i++) data[i] = (i * 13 + 5) & 0xff;
  return { meta: { index: 500, term: 3, conf: confStateOf([1, 2, 3]) }, data };
}

/** The leader's (node 1's) snap message to `to` in term 4. */
function snap(to: number, snapshot: Snapshot): Message {
  return message({ type: "snap", from: 1, to, term: 4, snapshot });
}

/** Node `id` of cluster "c", the real RaftService in front of a node that records what it steps. */
function follower(id: number, stepped: Message[]): Client<typeof RaftService> {
  const node: RaftServiceNode = {
    options: {
      id,
      clusterId: "c",
      peers: PEERS,
      logger: recordingLogger([]),
    } as unknown as RaftServiceNode["options"],
    status: () =>
      ({ role: "follower", term: 4, lastIndex: 0 }) as ReturnType<
        RaftServiceNode["status"]
      >,
    receive: (ms: readonly Message[]) => void stepped.push(...ms),
  };
  return createClient(
    RaftService,
    createRouterTransport((r) => r.service(RaftService, raftService(node))),
  );
}

/** A follower whose InstallSnapshot the test writes; every other method is unimplemented. */
function fakeFollower(
  installSnapshot: ServiceImpl<typeof RaftService>["installSnapshot"],
): Client<typeof RaftService> {
  return createClient(
    RaftService,
    createRouterTransport((r) => r.service(RaftService, { installSnapshot })),
  );
}

function sender(
  lines: string[],
  reports: string[],
  stallTimeoutMs = 10_000,
  readFile?: (term: number, index: number) => Promise<Uint8Array>,
) {
  return new SnapshotSender({
    clusterId: "c",
    members: [1n, 2n, 3n],
    logger: recordingLogger(lines),
    stallTimeoutMs,
    report: (to, failed) => reports.push(`${to} ${failed ? "failure" : "finish"}`),
    readFile,
  });
}

Deno.test("a snapshot goes out as a header and chunks of at most 1 MiB, and arrives whole", async () => {
  const snapshot = snapshotOf(2_500_000);
  const file = encodeSnapshotFile(snapshot);
  const requests: InstallSnapshotRequest[] = [];
  const stepped: Message[] = [];
  const real = follower(2, stepped);
  // A follower that records each request and passes the stream on to the real receiver.
  const client = fakeFollower(async (reqs, ctx) => {
    async function* tee() {
      for await (const r of reqs) {
        requests.push(r);
        yield r;
      }
    }
    return await real.installSnapshot(tee(), { signal: ctx.signal });
  });
  const lines: string[] = [];
  const reports: string[] = [];
  const s = sender(lines, reports);
  s.send(client, snap(2, snapshot));
  await waitFor("the report", () => reports.length > 0);
  assert.deepEqual(reports, ["2 finish"]);
  const [head, ...chunks] = requests;
  assert.equal(head?.part.case, "header");
  if (head?.part.case === "header") {
    const h = head.part.value;
    assert.deepEqual(
      [h.clusterId, h.members, h.from, h.to, h.term, h.size],
      ["c", [1n, 2n, 3n], 1n, 2n, 4n, BigInt(file.length)],
    );
  }
  const sizes = chunks.map((r) => r.part.case === "chunk" ? r.part.value.length : -1);
  assert.deepEqual(sizes, [1048576, 1048576, file.length - 2 * 1048576]);
  assert.equal(stepped.length, 1);
  assert.deepEqual(stepped[0]?.snapshot, snapshot);
  assert.deepEqual([stepped[0]?.type, stepped[0]?.from, stepped[0]?.term], ["snap", 1, 4]);
  assert.ok(lines.some((l) => l.startsWith("info sending snapshot") && l.includes('"3/500"')));
  assert.ok(lines.some((l) => l.startsWith("info snapshot sent") && l.includes('"ms"')));
});

Deno.test("a snapshot the storage holds as metadata only is streamed from its file", async () => {
  const snapshot = snapshotOf(1_500_000);
  const file = encodeSnapshotFile(snapshot);
  const asked: string[] = [];
  const stepped: Message[] = [];
  const lines: string[] = [];
  const reports: string[] = [];
  const s = sender(lines, reports, 10_000, (term, index) => {
    asked.push(`${term}/${index}`);
    return Promise.resolve(file);
  });
  s.send(follower(2, stepped), snap(2, withDataOnDisk(snapshot)));
  await waitFor("the report", () => reports.length > 0);
  assert.deepEqual(reports, ["2 finish"]);
  assert.deepEqual(asked, ["3/500"]);
  // The follower got the whole state, not the metadata-only stand-in.
  assert.deepEqual(stepped[0]?.snapshot, snapshot);
  assert.ok(
    lines.some((l) => l.startsWith("info sending snapshot") && l.includes(`${file.length}`)),
  );
});

Deno.test("a snapshot on disk that cannot be read is reported as failed, with the reason", async () => {
  const lines: string[] = [];
  const reports: string[] = [];
  const s = sender(
    lines,
    reports,
    10_000,
    () => Promise.reject(new Error("snapshot file /d/snap/x.snap: checksum mismatch")),
  );
  s.send(follower(2, []), snap(2, withDataOnDisk(snapshotOf(1000))));
  await waitFor("the report", () => reports.length > 0);
  assert.deepEqual(reports, ["2 failure"]);
  assert.ok(lines.some((l) => l.startsWith("warn") && l.includes("checksum mismatch")));
});

Deno.test("a follower that refuses the snapshot gets it reported as failed, with a warning", async () => {
  const client = fakeFollower(async (reqs) => {
    for await (const _ of reqs) { /* read it all */ }
    throw new ConnectError(
      "Cannot read snapshot stream from node 1: checksum mismatch",
      Code.DataLoss,
    );
  });
  const lines: string[] = [];
  const reports: string[] = [];
  const s = sender(lines, reports);
  s.send(client, snap(2, snapshotOf(1000)));
  await waitFor("the report", () => reports.length > 0);
  assert.deepEqual(reports, ["2 failure"]);
  const warn = lines.filter((l) => l.startsWith("warn"));
  assert.equal(warn.length, 1);
  assert.match(warn[0]!, /snapshot send failed; the leader will retry/);
  assert.match(warn[0]!, /DataLoss: Cannot read snapshot stream from node 1: checksum mismatch/);
});

Deno.test("a transfer that stops moving is cancelled and reported as failed", async () => {
  let cancelled = false;
  // A follower that takes the header and then neither reads nor answers.
  const client = fakeFollower(async (reqs, ctx) => {
    await reqs[Symbol.asyncIterator]().next();
    await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve()));
    cancelled = true;
    throw new ConnectError("gone", Code.Canceled);
  });
  const lines: string[] = [];
  const reports: string[] = [];
  const s = sender(lines, reports, 200);
  s.send(client, snap(3, snapshotOf(3_000_000)));
  await waitFor("the report", () => reports.length > 0);
  assert.deepEqual(reports, ["3 failure"]);
  assert.ok(
    lines.some((l) =>
      l.startsWith("warn snapshot send failed") &&
      /DeadlineExceeded: no progress for 200 ms/.test(l)
    ),
    lines.join("\n"),
  );
  await waitFor("the follower to see the cancel", () => cancelled);
});

Deno.test("one snapshot in flight per follower; another follower is not held up", async () => {
  let release!: () => void;
  const held = new Promise<void>((r) => release = r);
  let calls = 0;
  const slow = fakeFollower(async (reqs) => {
    calls++;
    for await (const _ of reqs) { /* read it all */ }
    await held;
    return {};
  });
  const stepped: Message[] = [];
  const lines: string[] = [];
  const reports: string[] = [];
  const s = sender(lines, reports);
  s.send(slow, snap(2, snapshotOf(100)));
  await waitFor("the first transfer to start", () => calls === 1);
  // The core asks again (say, after a leadership change): dropped, unreported.
  s.send(slow, snap(2, snapshotOf(200)));
  assert.ok(s.sending(2));
  s.send(follower(3, stepped), snap(3, snapshotOf(100)));
  await waitFor("node 3's report", () => reports.length > 0);
  assert.deepEqual(reports, ["3 finish"]);
  assert.equal(stepped.length, 1);
  release();
  await waitFor("node 2's report", () => reports.length > 1);
  assert.deepEqual(reports, ["3 finish", "2 finish"]);
  assert.equal(calls, 1);
  assert.ok(!s.sending(2));
  // Now a new one to node 2 goes out.
  s.send(slow, snap(2, snapshotOf(100)));
  await waitFor("the third report", () => reports.length > 2);
  assert.equal(calls, 2);
});

Deno.test("closing cancels transfers under way; each is reported once", async () => {
  const client = fakeFollower(async (_reqs, ctx) => {
    await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve()));
    throw new ConnectError("gone", Code.Canceled);
  });
  const lines: string[] = [];
  const reports: string[] = [];
  const s = sender(lines, reports);
  s.send(client, snap(2, snapshotOf(100)));
  await s.close();
  assert.deepEqual(reports, ["2 failure"]);
  // Closed: nothing more goes out, and shutting down is not worth a warning.
  s.send(client, snap(2, snapshotOf(100)));
  assert.deepEqual(reports, ["2 failure"]);
  assert.deepEqual(lines.filter((l) => l.startsWith("warn")), []);
});
