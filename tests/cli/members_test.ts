/**
 * The client CLI's membership commands: `member list|add|promote|remove` and
 * `transfer-leader [ID]` parsed (bad usage refused with a message), and run against
 * an in-memory ClusterService: the new membership printed, a refusal printed with
 * its code and reason and exit 3, an UNAVAILABLE endpoint skipped for the next.
 */

import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { ClusterService, MemberSchema } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { KVService } from "../../src/gen/raftkv/v1/kv_pb.ts";
import { parseClientArgs, UsageError } from "../../src/cli/main.ts";
import { type MemberCommand, runMemberCommand } from "../../src/cli/members.ts";
import { EXIT, type RunOptions } from "../../src/cli/commands.ts";

function rejects(args: string[], pattern: RegExp): void {
  assert.throws(() => parseClientArgs(args, {}), (e: unknown) => {
    assert.ok(e instanceof UsageError, `expected UsageError, got ${e}`);
    assert.match(e.message, pattern);
    return true;
  }, args.join(" "));
}

Deno.test("member and transfer-leader commands parse, and bad ones are refused by name", () => {
  const cmd = (...args: string[]) => parseClientArgs(args, {}).command;
  assert.deepEqual(cmd("member", "list"), { name: "member_list" });
  assert.deepEqual(cmd("member", "add", "4", "10.0.0.4:7001", "--learner"), {
    name: "member_add",
    id: 4n,
    peerAddress: "10.0.0.4:7001",
    learner: true,
  });
  assert.deepEqual(cmd("member", "add", "5", "[::1]:7005"), {
    name: "member_add",
    id: 5n,
    peerAddress: "[::1]:7005",
    learner: false,
  });
  assert.deepEqual(cmd("member", "promote", "4"), { name: "member_promote", id: 4n });
  assert.deepEqual(cmd("member", "remove", "2"), { name: "member_remove", id: 2n });
  assert.deepEqual(cmd("transfer-leader"), { name: "transfer_leader", id: 0n });
  assert.deepEqual(cmd("transfer-leader", "3"), { name: "transfer_leader", id: 3n });
  rejects(["member"], /missing subcommand/);
  rejects(["member", "join", "4"], /unknown subcommand "join"/);
  rejects(["member", "add", "4"], /expected ID PEER_ADDRESS \[--learner\], got 1/);
  rejects(["member", "add", "0", "h:1"], /"0" is not a positive integer/);
  rejects(["member", "add", "4", "nowhere"], /PEER_ADDRESS/);
  rejects(["member", "add", "4", "h:0"], /has port 0/);
  rejects(["member", "promote"], /expected 1 argument \(member promote ID\), got 0/);
  rejects(["member", "remove", "x"], /"x" is not a positive integer/);
  rejects(["member", "list", "extra"], /expected 0 arguments/);
  rejects(["transfer-leader", "1", "2"], /expected \[ID\], got 2/);
});

const members = [
  create(MemberSchema, { id: 1n, peerAddress: "a:1", learner: false }),
  create(MemberSchema, { id: 4n, peerAddress: "d:4", learner: true }),
];

/** Endpoint a:1 is shutting down (UNAVAILABLE); b:2 serves; `refuse` makes it refuse changes. */
function options(refuse?: ConnectError): { opts: RunOptions; calls: string[] } {
  const calls: string[] = [];
  const unavailable = (name: string) => () => {
    calls.push(`a:${name}`);
    throw new ConnectError("node 1 is shutting down", Code.Unavailable);
  };
  const down = createRouterTransport(({ service }) => {
    service(ClusterService, {
      listMembers: unavailable("listMembers"),
      addMember: unavailable("addMember"),
      promoteMember: unavailable("promoteMember"),
      removeMember: unavailable("removeMember"),
      transferLeadership: unavailable("transferLeadership"),
    });
  });
  const up = createRouterTransport(({ service }) => {
    service(ClusterService, {
      listMembers() {
        calls.push("b:listMembers");
        return { members, configIndex: 7n };
      },
      addMember(req) {
        calls.push(`b:addMember ${req.id} ${req.peerAddress} ${req.learner}`);
        if (refuse) throw refuse;
        return { members, configIndex: 9n };
      },
      promoteMember(req) {
        calls.push(`b:promoteMember ${req.id}`);
        if (refuse) throw refuse;
        return { members, configIndex: 10n };
      },
      removeMember(req) {
        calls.push(`b:removeMember ${req.id}`);
        return { members, configIndex: 11n };
      },
      transferLeadership(req) {
        calls.push(`b:transferLeadership ${req.targetId}`);
        return { leaderId: 3n, term: 8n };
      },
    });
  });
  return {
    calls,
    opts: {
      endpoints: ["a:1", "b:2"],
      timeoutMs: 1_000,
      clients: (endpoint) => {
        const t = endpoint === "a:1" ? down : up;
        return { kv: createClient(KVService, t), cluster: createClient(ClusterService, t) };
      },
      sleep: () => Promise.resolve(),
    },
  };
}

Deno.test("member list skips an unavailable endpoint and prints the table", async () => {
  const { opts, calls } = options();
  const out = await runMemberCommand({ name: "member_list" }, opts);
  assert.deepEqual(calls, ["a:listMembers", "b:listMembers"]);
  assert.equal(out.exitCode, EXIT.OK);
  assert.equal(
    out.stdout,
    "ID  PEER ADDRESS  ROLE\n1   a:1           voter\n4   d:4           learner\n",
  );
});

Deno.test("changes print what was done and the new membership", async () => {
  const { opts, calls } = options();
  const run = (cmd: MemberCommand) => runMemberCommand(cmd, opts);
  const add = await run({ name: "member_add", id: 4n, peerAddress: "d:4", learner: true });
  assert.match(add.stdout, /^added member 4 as a learner \(config index 9\)\nID +PEER ADDRESS/);
  const promote = await run({ name: "member_promote", id: 4n });
  assert.match(promote.stdout, /^promoted member 4 to voter \(config index 10\)\n/);
  const remove = await run({ name: "member_remove", id: 2n });
  assert.match(remove.stdout, /^removed member 2 \(config index 11\)\n/);
  const transfer = await run({ name: "transfer_leader", id: 0n });
  assert.equal(transfer.stdout, "leader is now node 3 (term 8)\n");
  assert.ok(calls.includes("b:addMember 4 d:4 true"));
  assert.ok(calls.includes("b:transferLeadership 0"));
});

Deno.test("a refused change prints its code and reason and exits 3, with no retry", async () => {
  const { opts, calls } = options(
    new ConnectError("Cannot promote member 4: it is too far behind", Code.FailedPrecondition),
  );
  const out = await runMemberCommand({ name: "member_promote", id: 4n }, opts);
  assert.equal(out.exitCode, EXIT.FAILED);
  assert.equal(
    out.stderr,
    "error: failed_precondition: b:2: Cannot promote member 4: it is too far behind\n",
  );
  assert.equal(calls.filter((c) => c.startsWith("b:promote")).length, 1);
});
