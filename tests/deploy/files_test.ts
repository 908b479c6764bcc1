/**
 * Static checks of the deployment files under `deploy/`, since no Docker engine,
 * Kubernetes or systemd runs here: every YAML file parses; the Dockerfile pins
 * Deno, runs as a non-root user with its data on a volume; every node command
 * (Dockerfile, Compose through the image, Kubernetes, systemd, the READMEs) grants
 * exactly what `deno task node` grants, with the data dir in place of `./data`;
 * and the peers of every Compose service and Kubernetes pod, read with the node's
 * own `parseNodeFlags` from the environment that node would get, describe one
 * consistent cluster whose addresses are names defined in the same file.
 *
 * @module
 */

import * as assert from "node:assert/strict";
import { formatHostPort, type HostPort, type NodeOptions } from "../../src/server/flags.ts";
import {
  checkNodeCommand,
  deployFiles,
  describe,
  dockerImage,
  grantsOf,
  k8sExpand,
  markdownNodeCommands,
  type NodeCommand,
  parseDenoRun,
  parseEnvFile,
  parseUnit,
  parseYaml,
  readRepoFile,
  REPO_ROOT,
  runWithFakeDeno,
  taskCommand,
  taskEnv,
} from "./_deploy.ts";
import { NODE_ENV } from "../../scripts/cluster.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

/** The Deno version CI installs (`DENO_VERSION=` in .ci/run): the one pin. */
function denoPin(): string {
  const m = /^DENO_VERSION="(\d+\.\d+\.\d+)"$/m.exec(readRepoFile(".ci/run"));
  if (m === null) throw new Error(`.ci/run has no DENO_VERSION="X.Y.Z" line`);
  return m[1]!;
}

function peersText(peers: Map<number, HostPort>): string {
  return [...peers].map(([id, a]) => `${id}=${formatHostPort(a)}`).join(",");
}

Deno.test("every YAML file under deploy/ parses", () => {
  const yamls = deployFiles().filter((f) => /\.ya?ml$/.test(f));
  assert.ok(yamls.length >= 3, `expected the compose and Kubernetes files, found ${yamls}`);
  for (const f of yamls) {
    const docs = parseYaml(f);
    assert.ok(docs.length > 0, `${f} holds no document`);
    for (const d of docs) assert.equal(typeof d, "object", `${f}: a document is not a mapping`);
  }
});

Deno.test("Deno is pinned at the CI version everywhere under deploy/", () => {
  const pin = denoPin();
  assert.equal(pin, "2.9.3", "the pin moved: check deploy/ and its README along with it");
  const { stages } = dockerImage();
  for (const s of stages) {
    assert.ok(
      s.from === `denoland/deno:${pin}` || s.from === `denoland/deno:debian-${pin}`,
      `deploy/Dockerfile: FROM ${s.from} is not denoland/deno:${pin}`,
    );
  }
  // Any X.Y.Z under deploy/ is the pin, or the range of releases the pin avoids.
  const badRange = /2\.9\.4(?:-|–| through | to )2\.9\.6/g;
  const version = /(?<![\d.])\d+\.\d+\.\d+(?![\d.])/g;
  const strays: string[] = [];
  for (const f of deployFiles()) {
    readRepoFile(f).split("\n").forEach((line, i) => {
      for (const m of line.replace(badRange, "").matchAll(version)) {
        if (m[0] !== pin) strays.push(`${f}:${i + 1}: ${m[0]} in "${line.trim()}"`);
      }
    });
  }
  assert.deepEqual(strays, [], `versions other than Deno ${pin} under deploy/`);
});

Deno.test("every node command grants what `deno task node` grants, but for its data dir", () => {
  const task = parseDenoRun("deno task node", taskCommand("node"));
  const taskOpts = checkNodeCommand(task, {});
  assert.equal(taskOpts.dataDir, "./data");
  assert.ok(task.entry.endsWith("src/server/main.ts"));
  const taskEnv = grantsOf(task).env;

  const { cmd: docker, env: dockerEnvVars } = dockerImage();
  const unit = parseUnit(readRepoFile("deploy/systemd/raftkv.service"), "raftkv.service");
  const execStart = unit.get("Service")?.get("ExecStart") ?? [];
  assert.equal(execStart.length, 1, "raftkv.service should have one ExecStart=");
  const systemd = parseDenoRun("deploy/systemd/raftkv.service", execStart[0]!.split(" "));

  const documented = [
    ...markdownNodeCommands("deploy/README.md"),
    ...markdownNodeCommands("README.md"),
  ];
  const docs = documented.filter((c) => c.where.startsWith("deploy/README.md"));
  assert.ok(docs.length >= 2, "deploy/README.md should show the node command (bundle and source)");
  const commands: [NodeCommand, Record<string, string>][] = [
    [docker, dockerEnvVars],
    [systemd, {}],
    ...documented.map((c): [NodeCommand, Record<string, string>] => [c, {}]),
  ];
  // The memory tuning of `deno task node` (README, "Memory") goes wherever a node runs.
  const taskV8 = grantsOf(task).other.filter((f) => f.startsWith("--v8-flags="));
  assert.equal(taskV8.length, 1, 'deno task node should set --v8-flags (README, "Memory")');
  for (const [cmd, env] of commands) {
    checkNodeCommand(cmd, env);
    assert.deepEqual(grantsOf(cmd).env, taskEnv, `${cmd.where}: --allow-env differs in order`);
    assert.deepEqual(grantsOf(cmd).other, taskV8, `${cmd.where}: not deno task node's --v8-flags`);
  }
  // The deployed ones: the bundle, with the data dir on the command line (so no variable
  // can move it away from what the permissions grant).
  for (const cmd of [docker, systemd]) {
    assert.match(cmd.entry, /^\/(app|opt\/raftkv)\/raftkv-node\.js$/, cmd.where);
    assert.deepEqual(cmd.args, ["--data-dir", "/var/lib/raftkv"], cmd.where);
  }
  // The deploy README shows exactly the deployed command.
  assert.ok(
    docs.some((c) =>
      c.entry.endsWith("raftkv-node.js") &&
      JSON.stringify(c.denoFlags) === JSON.stringify(docker.denoFlags)
    ),
    `deploy/README.md should show ${describe(docker)}`,
  );
});

Deno.test("deploy/Dockerfile: build stage caches and bundles, runtime is non-root, on a volume", () => {
  const { stages, final, one, cmd, env, healthcheck } = dockerImage();
  assert.equal(stages.length, 2, "a build stage and a runtime stage");
  const build = stages[0]!;
  const runs = build.body.filter((i) => i.keyword === "RUN").map((i) => i.rest);
  assert.ok(runs.includes("deno install --frozen"), `build stage runs ${runs.join("; ")}`);
  assert.ok(runs.includes("deno task bundle"), `build stage runs ${runs.join("; ")}`);
  const copied = build.body.filter((i) => i.keyword === "COPY").map((i) => i.rest.split(/\s+/)[0]);
  for (const need of ["deno.json", "src/", "deploy/healthcheck.ts"]) {
    assert.ok(copied.includes(need), `build stage should COPY ${need}: ${copied}`);
  }
  const lockCopy = build.body.find((i) => i.keyword === "COPY" && i.rest.includes("deno.lock"));
  assert.ok(lockCopy, "build stage should COPY deno.lock (with --frozen: exactly what it pins)");
  // Every file the Dockerfile and its ignore file let into the context exists.
  const ignore = readRepoFile("deploy/Dockerfile.dockerignore").split("\n")
    .filter((l) => l.startsWith("!")).map((l) => l.slice(1));
  for (const p of ignore) Deno.statSync(`${REPO_ROOT}${p}`);
  for (const c of copied) {
    assert.ok(ignore.includes(c!), `${c} is copied but excluded by Dockerfile.dockerignore`);
  }

  // The runtime stage.
  assert.equal(one("USER"), "deno");
  assert.equal(one("EXPOSE"), "7001");
  assert.equal(one("VOLUME"), "/var/lib/raftkv");
  const fromBuild = final.body.find((i) => i.keyword === "COPY" && i.rest.startsWith("--from="));
  assert.ok(fromBuild, "the runtime stage copies the bundles from the build stage");
  for (const f of taskCommand("bundle").filter((w) => w.startsWith("deploy/dist/"))) {
    assert.ok(fromBuild.rest.includes(`/src/${f}`), `runtime stage lacks ${f}: ${fromBuild.rest}`);
  }
  assert.match(fromBuild.rest, /\s\/app\/$/);
  assert.equal(cmd.entry, "/app/raftkv-node.js");
  const opts = checkNodeCommand(cmd, env);
  assert.equal(opts.dataDir, one("VOLUME"));
  assert.equal(opts.listen.host, "0.0.0.0", "the image listens on every interface");
  assert.equal(String(opts.listen.port), one("EXPOSE"));
  assert.equal(env.DENO_NO_UPDATE_CHECK, "1");

  // HEALTHCHECK CMD deno run --allow-net=ADDR /app/healthcheck.js ADDR, ADDR the node's port.
  const health = parseDenoRun("HEALTHCHECK", healthcheck.argv);
  assert.equal(health.entry, "/app/healthcheck.js");
  assert.deepEqual(health.denoFlags, [`--allow-net=127.0.0.1:${opts.listen.port}`]);
  assert.deepEqual(health.args, [`127.0.0.1:${opts.listen.port}`]);
  for (const opt of ["--interval=", "--timeout=", "--start-period=", "--retries="]) {
    assert.ok(healthcheck.options.includes(opt), `HEALTHCHECK should set ${opt}`);
  }
});

/** Checks that `nodes` (by name) form one cluster whose peer hosts are those names. */
function checkCluster(
  what: string,
  nodes: Map<string, NodeOptions>,
  hostOf: (name: string, opts: NodeOptions) => string,
  port: number,
): void {
  const ids = [...nodes.values()].map((o) => o.id);
  assert.equal(new Set(ids).size, ids.length, `${what}: ids ${ids} are not unique`);
  const first = [...nodes.values()][0]!;
  for (const [name, o] of nodes) {
    assert.ok(o.peers.has(o.id), `${what} ${name}: id ${o.id} is not in its peers`);
    assert.equal(
      peersText(o.peers),
      peersText(first.peers),
      `${what} ${name}: peers differ from the first node's`,
    );
    assert.deepEqual(o.listen, { host: "0.0.0.0", port }, `${what} ${name}: listen`);
    assert.equal(o.clusterId, first.clusterId, `${what} ${name}: cluster id`);
    assert.equal(o.dataDir, "/var/lib/raftkv", `${what} ${name}: data dir`);
  }
  // Every peer is one of the nodes, at its name, on the port it listens on.
  assert.deepEqual([...first.peers.keys()].sort(), [...ids].sort(), `${what}: peers vs nodes`);
  for (const [name, o] of nodes) {
    assert.deepEqual(first.peers.get(o.id), { host: hostOf(name, o), port }, `${what}: ${name}`);
  }
}

for (
  const file of [
    "deploy/docker-compose.yml",
    "deploy/docker-compose.5-nodes.yml",
    "deploy/docker-compose.tls.yml",
  ]
) {
  Deno.test(`${file}: every node's flags, through the image, make one cluster`, () => {
    const [compose] = parseYaml(file) as Any[];
    const { cmd, env: imageEnv, one } = dockerImage();
    const services = compose.services as Record<string, Any>;
    const volumes = Object.keys(compose.volumes ?? {});
    const nodes = new Map<string, NodeOptions>();
    const hostPorts: string[] = [];
    const httpHostPorts: string[] = [];
    const usedVolumes: string[] = [];
    for (const [name, svc] of Object.entries(services)) {
      assert.equal(svc.build?.dockerfile, "deploy/Dockerfile", `${name}: build`);
      assert.equal(svc.build?.context, "..", `${name}: build context is the repository`);
      assert.equal(svc.command, undefined, `${name}: runs the image's CMD, no command`);
      assert.equal(svc.entrypoint, undefined, `${name}: no entrypoint`);
      const env = { ...imageEnv, ...svc.environment } as Record<string, string>;
      for (const [k, v] of Object.entries(svc.environment ?? {})) {
        assert.equal(typeof v, "string", `${name}: ${k} should be a string`);
      }
      const opts = checkNodeCommand({ ...cmd, where: `${file} ${name}` }, env);
      nodes.set(name, opts);
      // Ports: the container side is the node's port; host ports are distinct.
      const ports = (svc.ports ?? []) as string[];
      assert.equal(ports.length, 2, `${name}: the gRPC and the HTTP port published`);
      const parts = ports[0]!.split(":");
      assert.equal(Number(parts[parts.length - 1]), opts.listen.port, `${name}: container port`);
      assert.equal(one("EXPOSE"), String(opts.listen.port));
      hostPorts.push(parts[parts.length - 2]!);
      // The HTTP port (metrics, probes, web view), on the host's loopback only like gRPC:
      // it has no authentication (observability_test.ts checks Prometheus scrapes it).
      assert.ok(opts.httpListen !== undefined, `${name}: RAFTKV_HTTP_LISTEN is not set`);
      const [ip, hostHttp, containerHttp] = ports[1]!.split(":");
      assert.equal(Number(containerHttp), opts.httpListen.port, `${name}: container HTTP port`);
      assert.equal(ip, "127.0.0.1", `${name}: the HTTP port is published on the loopback only`);
      assert.equal(
        parts[0],
        "127.0.0.1",
        `${name}: the gRPC port is published on the loopback only`,
      );
      httpHostPorts.push(hostHttp!);
      // Its own named volume on the data dir, and with TLS the certificates, read-only.
      const mounts = ((svc.volumes ?? []) as string[]).map((v) => v.split(":"));
      const tlsMount = opts.tls === undefined ? [] : [["./tls", "/etc/raftkv/tls", "ro"]];
      assert.deepEqual(mounts.slice(1), tlsMount, `${name}: the TLS mount`);
      assert.deepEqual(mounts.map((m) => m[1]).slice(0, 1), [opts.dataDir], `${name}: volume`);
      assert.ok(volumes.includes(mounts[0]![0]!), `${name}: volume ${mounts[0]![0]} undeclared`);
      usedVolumes.push(mounts[0]![0]!);
    }
    assert.equal(new Set(hostPorts).size, hostPorts.length, `host ports ${hostPorts} repeat`);
    assert.deepEqual(hostPorts, [...nodes.keys()].map((_, i) => String(7001 + i)));
    assert.deepEqual(httpHostPorts, [...nodes.keys()].map((_, i) => String(8001 + i)));
    assert.equal(new Set(usedVolumes).size, usedVolumes.length, "volumes are shared");
    checkCluster(file, nodes, (name) => name, 7001);
    const size = Number(/(\d)-nodes/.exec(file)?.[1] ?? 3);
    assert.equal(nodes.size, size, `${file}: ${size} nodes`);
  });
}

Deno.test("compose files have distinct project names (their volumes never mix)", () => {
  const names = [
    "deploy/docker-compose.yml",
    "deploy/docker-compose.5-nodes.yml",
    "deploy/docker-compose.tls.yml",
  ]
    .map((f) => (parseYaml(f)[0] as Any).name);
  assert.equal(new Set(names).size, names.length, `project names ${names}`);
});

Deno.test("deploy/kubernetes/raftkv.yaml: each ordinal's pod is a node of one cluster", async () => {
  const docs = parseYaml("deploy/kubernetes/raftkv.yaml") as Any[];
  const byKind = (kind: string) => docs.filter((d) => d.kind === kind);
  const [sts] = byKind("StatefulSet");
  assert.ok(sts, "a StatefulSet");
  const services = byKind("Service");
  const [pdb] = byKind("PodDisruptionBudget");
  const labels = sts.spec.template.metadata.labels;
  assert.deepEqual(sts.spec.selector.matchLabels, labels);

  const headless = services.find((s) => s.metadata.name === sts.spec.serviceName);
  assert.ok(headless, `the StatefulSet's serviceName ${sts.spec.serviceName} is defined`);
  assert.equal(headless.spec.clusterIP, "None", "the peer Service is headless");
  assert.equal(headless.spec.publishNotReadyAddresses, true, "peers resolve before ready");
  const client = services.find((s) => s !== headless);
  assert.ok(client, "a client Service");
  assert.notEqual(client.spec.clusterIP, "None");
  for (const s of services) assert.deepEqual(s.spec.selector, labels, s.metadata.name);
  assert.equal(pdb.spec.maxUnavailable, 1);
  assert.deepEqual(pdb.spec.selector.matchLabels, labels);
  assert.equal(sts.spec.podManagementPolicy, "Parallel");

  const pod = sts.spec.template.spec;
  assert.equal(pod.containers.length, 1);
  const c = pod.containers[0];
  const grpc = c.ports.find((p: Any) => p.name === "grpc");
  const port = grpc.containerPort as number;
  for (const s of services) {
    assert.deepEqual(
      // The HTTP port (metrics, probes, web view) is checked in observability_test.ts.
      s.spec.ports.filter((p: Any) => p.name !== "http").map((p: Any) => [p.port, p.targetPort]),
      [[port, "grpc"]],
      `${s.metadata.name}: ports`,
    );
  }
  for (const probe of [c.readinessProbe, c.livenessProbe]) {
    assert.deepEqual(probe.grpc, { port, service: "" });
  }
  const claim = sts.spec.volumeClaimTemplates[0].metadata.name;
  const mount = c.volumeMounts.find((m: Any) => m.name === claim);
  assert.ok(mount, `the volume claim ${claim} is mounted`);
  assert.equal(pod.securityContext.runAsUser, 1993, "the image's deno user");
  assert.equal(pod.securityContext.fsGroup, 1993, "the volume is writable by it");
  assert.equal(pod.securityContext.runAsNonRoot, true);

  // Simulate each pod: Kubernetes' env and $(VAR) expansion, then the container's command
  // with a stand-in deno, then the node's own flag parser.
  const ns = "ops-test";
  const replicas = sts.spec.replicas as number;
  const nodes = new Map<string, NodeOptions>();
  for (let ordinal = 0; ordinal < replicas; ordinal++) {
    const podName = `${sts.metadata.name}-${ordinal}`;
    const vars: Record<string, string> = { HOSTNAME: podName };
    for (const e of c.env) {
      if (e.valueFrom !== undefined) {
        assert.equal(e.valueFrom.fieldRef?.fieldPath, "metadata.namespace", e.name);
        vars[e.name] = ns;
      } else {
        vars[e.name] = k8sExpand(String(e.value), vars);
      }
    }
    const command = [...c.command, ...(c.args ?? [])].map((a: string) => k8sExpand(a, vars));
    const ran = await runWithFakeDeno(command, vars);
    const cmd = parseDenoRun(`pod ${podName}`, ran.argv);
    const opts = checkNodeCommand(cmd, ran.env);
    assert.equal(opts.id, ordinal + 1, `${podName}: id is ordinal + 1`);
    assert.equal(opts.dataDir, mount.mountPath, `${podName}: data dir on the volume`);
    assert.equal(cmd.entry, "/app/raftkv-node.js");
    const taskV8 = grantsOf(parseDenoRun("deno task node", taskCommand("node"))).other;
    assert.deepEqual(grantsOf(cmd).other, taskV8, `${podName}: not deno task node's --v8-flags`);
    nodes.set(podName, opts);
  }
  const svc = headless.metadata.name;
  checkCluster(
    "kubernetes",
    nodes,
    (podName) => `${podName}.${svc}.${ns}.svc.cluster.local`,
    port,
  );

  // A hostname without an ordinal is refused, not turned into a wrong id.
  const expanded = [...c.command].map((a: string) => k8sExpand(a, { HOSTNAME: "raftkv" }));
  await assert.rejects(runWithFakeDeno(expanded, { HOSTNAME: "raftkv" }), /exited 2/);
});

Deno.test("deploy/systemd: the unit has its sections and hardening, the env file makes a node", async () => {
  const text = readRepoFile("deploy/systemd/raftkv.service");
  const unit = parseUnit(text, "raftkv.service");
  assert.deepEqual([...unit.keys()], ["Unit", "Service", "Install"]);
  const svc = unit.get("Service")!;
  const one = (key: string) => {
    const v = svc.get(key);
    assert.ok(v !== undefined && v.length === 1, `[Service] ${key}= once, got ${v}`);
    return v[0]!;
  };
  const required: Record<string, string> = {
    User: "raftkv",
    Group: "raftkv",
    StateDirectory: "raftkv",
    Restart: "on-failure",
    KillSignal: "SIGTERM",
    NoNewPrivileges: "yes",
    ProtectSystem: "strict",
    ReadWritePaths: "/var/lib/raftkv",
    ProtectHome: "yes",
    PrivateTmp: "yes",
    RestartPreventExitStatus: "2",
    EnvironmentFile: "/etc/raftkv/raftkv.env",
  };
  for (const [k, v] of Object.entries(required)) assert.equal(one(k), v, `[Service] ${k}`);
  assert.equal(svc.get("MemoryDenyWriteExecute"), undefined, "V8's JIT needs W+X memory");
  assert.ok(unit.get("Install")?.get("WantedBy")?.includes("multi-user.target"));
  const exec = parseDenoRun("ExecStart", one("ExecStart").split(" "));
  assert.equal(
    one("ExecStart").split(" ")[0],
    "/usr/bin/deno",
    "ExecStart= needs an absolute path",
  );

  // The example env file, as EnvironmentFile= reads it, makes a valid node.
  const env = parseEnvFile(readRepoFile("deploy/systemd/raftkv.env"), "raftkv.env");
  assert.equal(env.RAFTKV_DATA_DIR, undefined, "the unit fixes the data dir, not the env file");
  const opts = checkNodeCommand(exec, env);
  assert.equal(opts.dataDir, `/var/lib/${one("StateDirectory")}`);
  assert.ok(opts.peers.has(opts.id));
  assert.equal(opts.peers.get(opts.id)!.port, opts.listen.port, "its own entry has its port");
  for (const [, a] of opts.peers) assert.equal(a.port, opts.listen.port);

  // systemd's own reading, where it is installed (the binary must exist: point it at ours).
  const analyze = "/usr/bin/systemd-analyze";
  const have = await Deno.stat(analyze).then(() => true, () => false);
  if (!have) {
    console.log(`${analyze} not installed: systemd's own check of the unit skipped`);
    return;
  }
  const dir = await Deno.makeTempDir({ prefix: "raftkv_unit_" });
  try {
    await Deno.writeTextFile(
      `${dir}/raftkv.service`,
      text.replace("ExecStart=/usr/bin/deno ", `ExecStart=${Deno.execPath()} `),
    );
    const out = await new Deno.Command(analyze, {
      args: ["verify", `${dir}/raftkv.service`],
      stdin: "null",
    }).output();
    const said = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    assert.ok(out.success, `systemd-analyze verify failed:\n${said}`);
    const aboutUs = said.split("\n").filter((l) => l.includes("raftkv.service"));
    assert.deepEqual(aboutUs, [], `systemd-analyze verify warned:\n${said}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deploy/README.md covers what an operator needs", () => {
  const text = readRepoFile("deploy/README.md");
  for (
    const needle of [
      "deno task bundle",
      "deno compile",
      "not tested",
      "docker compose",
      "docker-compose.5-nodes.yml",
      "kubectl apply",
      "replicas: 5",
      "systemctl",
      "deno task cluster --nodes 5",
      "lost entries it had acknowledged",
      "wal/",
      "LOCK",
      "7001",
      "2.9.3",
      "snapshot",
    ]
  ) {
    assert.ok(text.includes(needle), `deploy/README.md should mention "${needle}"`);
  }
});

Deno.test("every deployed node gets the allocator setting of `deno task node`", () => {
  // README, "Memory": glibc's mmap threshold fixed, so freed large buffers go back to
  // the system. The scripts' nodes get it from NODE_ENV, the task from deno.json.
  assert.deepEqual(taskEnv("node"), NODE_ENV, "deno task node's variables");
  const image = dockerImage().env; // Compose and Kubernetes run the image
  const unit = parseUnit(readRepoFile("deploy/systemd/raftkv.service"), "raftkv.service");
  const systemd: Record<string, string> = {};
  for (const line of unit.get("Service")?.get("Environment") ?? []) {
    for (const pair of line.split(/\s+/)) {
      const eq = pair.indexOf("=");
      if (eq > 0) systemd[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  for (const [name, value] of Object.entries(NODE_ENV)) {
    assert.equal(image[name], value, `deploy/Dockerfile: ENV ${name}`);
    assert.equal(systemd[name], value, `deploy/systemd/raftkv.service: Environment=${name}`);
  }
});
