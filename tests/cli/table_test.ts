import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { renderStatus, type StatusResult } from "../../src/cli/commands.ts";
import { renderTable } from "../../src/cli/table.ts";
import { Role, StatusResponseSchema } from "../../src/gen/raftkv/v1/cluster_pb.ts";

Deno.test("renderTable", async (t) => {
  await t.step("pads columns to the widest cell, two spaces apart, no trailing spaces", () => {
    const out = renderTable(["A", "LONGER", "C"], [["xxxx", "y", ""], ["z", "", "w"]]);
    assert.equal(out, ["A     LONGER  C", "xxxx  y", "z             w"].join("\n"));
  });
  await t.step("extra cells go after the last column without widening it", () => {
    const out = renderTable(["A", "B"], [["1", "2"], ["3", "4", "(note here)"]]);
    assert.equal(out, ["A  B", "1  2", "3  4  (note here)"].join("\n"));
  });
  await t.step("missing cells render empty; no rows renders the header alone", () => {
    assert.equal(renderTable(["A", "B"], [["1"]]), "A  B\n1");
    assert.equal(renderTable(["A", "B"], []), "A  B");
  });
});

Deno.test("renderStatus shows every node, a down node with its reason", () => {
  const results: StatusResult[] = [
    {
      endpoint: "127.0.0.1:7001",
      status: create(StatusResponseSchema, {
        id: 1n,
        role: Role.LEADER,
        term: 3n,
        leaderId: 1n,
        commitIndex: 42n,
        appliedIndex: 42n,
        lastLogIndex: 43n,
        snapshotIndex: 40n,
        firstIndex: 21n,
      }),
    },
    {
      endpoint: "127.0.0.1:7002",
      status: create(StatusResponseSchema, {
        id: 2n,
        role: Role.PRE_CANDIDATE,
        term: 2n,
        leaderId: 0n,
        commitIndex: 7n,
        appliedIndex: 6n,
        lastLogIndex: 9n,
      }),
    },
    { endpoint: "127.0.0.1:7003", error: "connection refused" },
  ];
  assert.equal(
    renderStatus(results),
    [
      "ENDPOINT        ID  ROLE           TERM  LEADER  COMMIT  APPLIED  LAST  SNAPSHOT  FIRST",
      "127.0.0.1:7001  1   leader         3     1       42      42       43    40        21",
      "127.0.0.1:7002  2   pre-candidate  2     -       7       6        9     0         0",
      "127.0.0.1:7003  -   down           -     -       -       -        -     -         -      (connection refused)",
    ].join("\n"),
  );
});
