/**
 * The policy file and the authorizer: what a rule grants (a key prefix, "" for
 * every key, "*" for every client, admin apart), what each method needs, the
 * refusal text (identity and key named), and the errors of a bad file (file and
 * rule named).
 *
 * @module
 */

import assert from "node:assert/strict";
import { Authorizer, needOf } from "../../src/tls/authorizer.ts";
import { allows, parsePolicy, PolicyError } from "../../src/tls/policy.ts";

const POLICY = await parsePolicy(
  `
rules:
  - identity: alice
    read: ["app/", "shared/"]
    write: ["app/"]
  - identity: ops
    read: [""]
    admin: true
  - identity: "*"
    read: ["public/"]
`,
  "p.yaml",
);

Deno.test("a rule grants its prefixes, '' every key, '*' every client; admin is apart", () => {
  assert.ok(allows(POLICY, "alice", "write", "app/x"));
  assert.ok(!allows(POLICY, "alice", "write", "shared/x"));
  assert.ok(allows(POLICY, "alice", "read", "shared/x"));
  assert.ok(!allows(POLICY, "alice", "admin", undefined));
  assert.ok(allows(POLICY, "ops", "read", "anything"));
  assert.ok(!allows(POLICY, "ops", "write", "anything"));
  assert.ok(allows(POLICY, "ops", "admin", undefined));
  assert.ok(allows(POLICY, "mallory", "read", "public/x"), "'*' grants every client");
  assert.ok(!allows(POLICY, "mallory", "read", "app/x"));
  // A prefix is a prefix of the key as written: "app" without the slash is another prefix.
  assert.ok(!allows(POLICY, "alice", "write", "application"));
});

Deno.test("each method needs its permission: CAS reads and writes, Cluster calls administer", () => {
  const kv = "raftkv.v1.KVService";
  assert.deepEqual(needOf(kv, "Get", { key: "k" }), { permissions: ["read"], key: "k" });
  assert.deepEqual(needOf(kv, "Put", { key: "k" }), { permissions: ["write"], key: "k" });
  assert.deepEqual(needOf(kv, "Delete", { key: "k" }), { permissions: ["write"], key: "k" });
  assert.deepEqual(needOf(kv, "CompareAndSwap", { key: "k" }), {
    permissions: ["read", "write"],
    key: "k",
  });
  assert.deepEqual(needOf(kv, "OpenSession", {}), { permissions: [], key: undefined });
  assert.deepEqual(needOf("raftkv.v1.ClusterService", "Status", {}).permissions, ["admin"]);
  // A method nobody classified (added later) needs admin: refused by default.
  assert.deepEqual(needOf(kv, "Compact", { key: "k" }).permissions, ["admin"]);
});

Deno.test("a refusal names the identity, the permission and the key", () => {
  const a = Authorizer.of(POLICY);
  assert.equal(
    a.refusal("alice", needOf("raftkv.v1.KVService", "Put", { key: "app/1" })),
    undefined,
  );
  assert.equal(
    a.refusal("alice", needOf("raftkv.v1.KVService", "CompareAndSwap", { key: "shared/1" })),
    'client "alice" may not write key "shared/1" (no rule of --auth-policy p.yaml grants it)',
  );
  assert.match(
    a.refusal("alice", needOf("raftkv.v1.ClusterService", "SnapshotSave", undefined))!,
    /client "alice" may not administer the cluster/,
  );
  // Without a policy every authenticated client may do anything.
  assert.equal(
    Authorizer.of(undefined).refusal("x", needOf("raftkv.v1.ClusterService", "Status", {})),
    undefined,
  );
});

Deno.test("Range and Watch read their whole range; a prefix or [start, end) inside a grant", () => {
  const a = Authorizer.of(POLICY);
  const kv = "raftkv.v1.KVService";
  for (const method of ["Range", "Watch"]) {
    assert.equal(a.refusal("alice", needOf(kv, method, { prefix: "app/" })), undefined);
    assert.equal(a.refusal("alice", needOf(kv, method, { prefix: "shared/cfg/" })), undefined);
    assert.equal(
      a.refusal("alice", needOf(kv, method, { start: "app/a", end: "app/m" })),
      undefined,
    );
    assert.equal(a.refusal("alice", needOf(kv, method, { start: "app/", end: "app0" })), undefined);
    assert.match(
      a.refusal("alice", needOf(kv, method, { start: "app/a", end: "b" }))!,
      /client "alice" may not read keys \["app\/a", "b"\)/,
    );
    assert.match(
      a.refusal("alice", needOf(kv, method, {}))!,
      /may not read keys \["", the end\)/,
      "no range is every key",
    );
    assert.equal(a.refusal("ops", needOf(kv, method, {})), undefined, "'' grants every range");
  }
  assert.equal(a.refusal("alice", needOf(kv, "Watch", { key: "app/k" })), undefined);
  assert.match(a.refusal("alice", needOf(kv, "Watch", { key: "secret" }))!, /read key "secret"/);
});

Deno.test("a Txn needs read for each compare and get, write for each put and delete", () => {
  const a = Authorizer.of(POLICY);
  const txn = (m: unknown) => a.refusal("alice", needOf("raftkv.v1.KVService", "Txn", m));
  const put = (key: string) => ({ op: { case: "put", value: { key } } });
  const get = (key: string) => ({ op: { case: "get", value: { key } } });
  assert.equal(
    txn({ compares: [{ key: "shared/v" }], success: [put("app/x")], failure: [get("shared/y")] }),
    undefined,
  );
  assert.match(txn({ success: [put("shared/x")] })!, /may not write key "shared\/x"/);
  assert.match(txn({ compares: [{ key: "secret" }] })!, /may not read key "secret"/);
  assert.match(
    txn({ failure: [{ op: { case: "range", value: { prefix: "" } } }] })!,
    /may not read keys/,
  );
  // Leases name no key; a client that may write somewhere may hold one.
  const lease = needOf("raftkv.v1.KVService", "LeaseGrant", { ttlSeconds: 5n });
  assert.equal(a.refusal("alice", lease), undefined);
  assert.match(a.refusal("ops", lease)!, /may not write any key/);
  // The keep-alive stream, each of its requests: the same rule.
  const renew = needOf("raftkv.v1.KVService", "LeaseKeepAliveStream", { id: 7n });
  assert.equal(a.refusal("alice", renew), undefined);
  assert.match(a.refusal("ops", renew)!, /may not write any key/);
});

Deno.test("a bad policy file is refused naming the file and the rule", async () => {
  const bad = (text: string, why: RegExp) =>
    assert.rejects(() => parsePolicy(text, "bad.yaml"), (e: unknown) => {
      assert.ok(e instanceof PolicyError);
      assert.match(e.message, /^Cannot use --auth-policy bad\.yaml: /);
      assert.match(e.message, why);
      return true;
    });
  await bad("rules: [", /not YAML/);
  await bad("- a\n- b\n", /expected a mapping with a "rules" list/);
  await bad("rule:\n  - identity: a\n", /unknown field "rule"/);
  await bad("rules:\n  - read: [a]\n", /rule 1 needs an "identity"/);
  await bad(
    "rules:\n  - identity: a\n  - identity: b\n    wirte: [x]\n",
    /rule 2 has unknown field "wirte"/,
  );
  await bad("rules:\n  - identity: a\n    read: app/\n", /rule 1: "read" must be a list/);
  await bad(
    "rules:\n  - identity: a\n    admin: yes please\n",
    /rule 1: "admin" must be true or false/,
  );
});
