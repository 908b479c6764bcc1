/**
 * deploy/'s observability files agree with the node: the Prometheus scrape
 * configuration parses and scrapes the HTTP ports `deno task cluster` opens and
 * the 3-node Compose files publish; the
 * Grafana dashboard is valid JSON whose every query asks for metrics the node
 * exports; the Kubernetes pods expose the HTTP port they listen on and are
 * annotated for scraping on it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parse, parseAllDocuments } from "yaml";
import { HTTP_PORT_OFFSET, nodeHttpAddress, parseClusterFlags } from "../../scripts/cluster.ts";
import { REPO_ROOT } from "../e2e/_harness.ts";
import { RAFTKV_METRICS } from "../http/_metric_names.ts";

const read = (path: string) => Deno.readTextFile(`${REPO_ROOT}${path}`);

Deno.test("deploy/prometheus/prometheus.yml scrapes deno task cluster's HTTP ports", async () => {
  // deno-lint-ignore no-explicit-any
  const config = parse(await read("deploy/prometheus/prometheus.yml")) as any;
  const local = config.scrape_configs.find((j: { job_name: string }) => j.job_name === "raftkv");
  assert.equal(local.metrics_path, "/metrics");
  const opts = parseClusterFlags([]);
  assert.deepEqual(
    local.static_configs[0].targets,
    [1, 2, 3].map((id) => nodeHttpAddress(opts, id)),
  );
  assert.equal(HTTP_PORT_OFFSET, 1000);
});

Deno.test("prometheus.yml's local job scrapes the HTTP ports docker-compose.yml publishes", async () => {
  // deno-lint-ignore no-explicit-any
  const config = parse(await read("deploy/prometheus/prometheus.yml")) as any;
  const local = config.scrape_configs.find((j: { job_name: string }) => j.job_name === "raftkv");
  for (const file of ["deploy/docker-compose.yml", "deploy/docker-compose.tls.yml"]) {
    // deno-lint-ignore no-explicit-any
    const compose = parse(await read(file)) as any;
    const published: string[] = [];
    for (
      const svc of Object.values(compose.services) as {
        ports: string[];
        environment: Record<string, string>;
      }[]
    ) {
      const listen = svc.environment.RAFTKV_HTTP_LISTEN;
      assert.ok(listen !== undefined, `${file}: a node without RAFTKV_HTTP_LISTEN`);
      const port = listen.split(":").at(-1);
      const http = svc.ports.find((p) => p.endsWith(`:${port}`));
      assert.ok(http !== undefined, `${file}: the HTTP port ${port} is not published`);
      const [ip, hostPort] = http.split(":");
      published.push(`${ip}:${hostPort}`);
    }
    assert.deepEqual(local.static_configs[0].targets, published, file);
  }
});

Deno.test("deploy/grafana/raftkv.json asks only for metrics the node exports", async () => {
  const dashboard = JSON.parse(await read("deploy/grafana/raftkv.json"));
  const exprs: string[] = dashboard.panels.flatMap((p: { targets: { expr: string }[] }) =>
    p.targets.map((t) => t.expr)
  );
  assert.ok(exprs.length >= 15, "a panel for each concern");
  const known = new Set(Object.keys(RAFTKV_METRICS));
  // prom-client's event-loop percentiles come with the lag gauge.
  known.add("raftkv_nodejs_eventloop_lag_p99_seconds");
  for (const expr of exprs) {
    for (const [name] of expr.matchAll(/raftkv_[a-z0-9_]+/g)) {
      const base = name.replace(/_(bucket|count|sum)$/, "");
      assert.ok(
        known.has(base),
        `the dashboard's "${expr}" asks for ${name}, which no node exports`,
      );
    }
  }
});

Deno.test("deploy/kubernetes/raftkv.yaml exposes the HTTP port and annotates it for scraping", async () => {
  const text = await read("deploy/kubernetes/raftkv.yaml");
  // deno-lint-ignore no-explicit-any
  type Any = any;
  const docs = parseAllDocuments(text).map((d) => d.toJS() as Any).filter((d) => d !== null);
  const set = docs.find((d) => d.kind === "StatefulSet");
  const pod = set.spec.template;
  const container = pod.spec.containers[0];
  const listen = container.env.find((e: { name: string }) => e.name === "RAFTKV_HTTP_LISTEN").value;
  const port = Number(listen.split(":").at(-1));
  assert.deepEqual(
    container.ports.find((p: { name: string }) => p.name === "http"),
    { name: "http", containerPort: port },
  );
  assert.equal(pod.metadata.annotations["prometheus.io/scrape"], "true");
  assert.equal(pod.metadata.annotations["prometheus.io/port"], String(port));
  assert.equal(pod.metadata.annotations["prometheus.io/path"], "/metrics");
  const headless = docs.find((d) => d.kind === "Service" && d.metadata.name === "raftkv");
  assert.ok(headless.spec.ports.some((p: { name: string }) => p.name === "http"));
});
