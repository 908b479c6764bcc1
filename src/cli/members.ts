/**
 * The membership commands of the client CLI: `member list|add|promote|remove` and
 * `transfer-leader [ID]` (ClusterService's membership calls). A change is sent like a
 * KV write: to the endpoints in order, moving on while they cannot serve it
 * (UNAVAILABLE), since any node forwards it to its leader; the answer comes once the
 * change is committed and applied, and is printed as the new membership.
 *
 * A change is not retried after an answer that leaves its fate open (a deadline):
 * `member list` tells whether it happened. A refusal (a taken id, the last voter, a
 * learner too far behind...) is final and printed with its reason.
 *
 * @module
 */

import { Code, ConnectError } from "@connectrpc/connect";
import type { Member } from "../gen/raftkv/v1/cluster_pb.ts";
import { codeName } from "../client/reasons.ts";
import { callEndpoints, type CommandOutput, EXIT, type RunOptions } from "./commands.ts";
import { renderTable } from "./table.ts";

/** A membership command, as parsed from the command line. */
export type MemberCommand =
  | { name: "member_list" }
  | { name: "member_add"; id: bigint; peerAddress: string; learner: boolean }
  | { name: "member_promote"; id: bigint }
  | { name: "member_remove"; id: bigint }
  /** `id` 0: the most up-to-date voter. */
  | { name: "transfer_leader"; id: bigint };

/** Header of the member table. */
export const MEMBER_HEADER: readonly string[] = ["ID", "PEER ADDRESS", "ROLE"];

/** The member table: one row per member, by id. */
export function renderMembers(members: readonly Member[]): string {
  const rows = [...members]
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((
      m,
    ) => [
      String(m.id),
      m.peerAddress === "" ? "-" : m.peerAddress,
      m.learner ? "learner" : "voter",
    ]);
  return renderTable(MEMBER_HEADER, rows);
}

/** Runs one membership command; never throws for RPC errors. */
export async function runMemberCommand(
  cmd: MemberCommand,
  opts: RunOptions,
): Promise<CommandOutput> {
  try {
    switch (cmd.name) {
      case "member_list": {
        const res = await callEndpoints(opts, (c, o) => c.cluster.listMembers({}, o));
        return ok(renderMembers(res.members) + "\n");
      }
      case "member_add": {
        const res = await callEndpoints(
          opts,
          (c, o) =>
            c.cluster.addMember(
              { id: cmd.id, peerAddress: cmd.peerAddress, learner: cmd.learner },
              o,
            ),
        );
        return ok(
          `added member ${cmd.id} as a ${cmd.learner ? "learner" : "voter"} ` +
            `(config index ${res.configIndex})\n${renderMembers(res.members)}\n`,
        );
      }
      case "member_promote": {
        const res = await callEndpoints(opts, (c, o) => c.cluster.promoteMember({ id: cmd.id }, o));
        return ok(
          `promoted member ${cmd.id} to voter (config index ${res.configIndex})\n` +
            `${renderMembers(res.members)}\n`,
        );
      }
      case "member_remove": {
        const res = await callEndpoints(opts, (c, o) => c.cluster.removeMember({ id: cmd.id }, o));
        return ok(
          `removed member ${cmd.id} (config index ${res.configIndex})\n` +
            `${renderMembers(res.members)}\n`,
        );
      }
      case "transfer_leader": {
        const res = await callEndpoints(
          opts,
          (c, o) => c.cluster.transferLeadership({ targetId: cmd.id }, o),
        );
        return ok(`leader is now node ${res.leaderId} (term ${res.term})\n`);
      }
    }
  } catch (e) {
    const err = ConnectError.from(e);
    const hint = err.code === Code.DeadlineExceeded
      ? " (the change may still take effect: check with member list)"
      : "";
    return {
      stdout: "",
      stderr: `error: ${codeName(err.code)}: ${err.rawMessage}${hint}\n`,
      exitCode: EXIT.FAILED,
    };
  }
}

function ok(stdout: string): CommandOutput {
  return { stdout, stderr: "", exitCode: EXIT.OK };
}

/** A member id argument: a positive integer, or an error message. */
export function parseMemberId(text: string, what: string): bigint | string {
  if (
    !/^\d+$/.test(text) || BigInt(text) === 0n || BigInt(text) > BigInt(Number.MAX_SAFE_INTEGER)
  ) {
    return `Cannot parse ${what}: "${text}" is not a positive integer`;
  }
  return BigInt(text);
}
