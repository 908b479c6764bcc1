/**
 * Reading a node's `/metrics` in tests: fetched, and parsed by the Prometheus
 * project's own text format parser (`prometheus_client.parser` of the official
 * Python client, Debian's python3-prometheus-client, run with /usr/bin/python3 as
 * the interop tests run theirs), not by the code under test: a malformed
 * exposition fails here. (parse-prometheus-text-format from npm was tried first:
 * it merges the samples of a labelled histogram into one and drops their labels.)
 *
 * @module
 */

/** One sample: `raftkv_term`, `raftkv_wal_save_duration_seconds_count`... */
export interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** A metric family as the parser returns it (counters named without `_total`). */
export interface Family {
  readonly name: string;
  readonly type: "counter" | "gauge" | "histogram" | "summary" | "unknown" | "untyped";
  readonly help: string;
  readonly samples: readonly Sample[];
}

/** A parsed exposition. */
export class Exposition {
  readonly families: readonly Family[];

  constructor(families: readonly Family[]) {
    this.families = families;
  }

  /** The family of metric `name` (a counter's name with its `_total`). */
  family(name: string): Family | undefined {
    return this.families.find((f) =>
      f.name === name || (f.type === "counter" && `${f.name}_total` === name)
    );
  }

  /** The samples named `name` whose labels include `labels`. */
  samples(name: string, labels: Record<string, string> = {}): Sample[] {
    return this.families.flatMap((f) => f.samples).filter((s) =>
      s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
    );
  }

  /**
   * The sum of the samples named `name` with `labels` (a histogram's: its
   * `_count`); 0 when there is none yet (a counter that never moved).
   */
  value(name: string, labels: Record<string, string> = {}): number {
    if (this.family(name) === undefined) throw new Error(`no metric ${name} in the exposition`);
    const sampleName = this.family(name)?.type === "histogram" ? `${name}_count` : name;
    return this.samples(sampleName, labels).reduce((sum, s) => sum + s.value, 0);
  }
}

const PARSER = `
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
# JSON has no NaN or infinities, which the exposition format allows (a gauge with no
# sample yet): those go as strings, and the reader turns them back into numbers.
def value(v):
    if math.isnan(v): return "NaN"
    if math.isinf(v): return "Infinity" if v > 0 else "-Infinity"
    return v
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type, "help": f.documentation,
                "samples": [{"name": s.name, "labels": s.labels, "value": value(s.value)} for s in f.samples]})
print(json.dumps(out))
`;

/** Parses an exposition; throws with the parser's message on malformed text. */
export async function parseExposition(text: string): Promise<Exposition> {
  const child = new Deno.Command("/usr/bin/python3", {
    args: ["-c", PARSER],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const out = await child.output();
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) {
    throw new Error(
      `the Prometheus parser rejected the exposition (python3-prometheus-client installed?):\n${stderr}`,
    );
  }
  const families = JSON.parse(new TextDecoder().decode(out.stdout)) as Family[];
  return new Exposition(families.map((f) => ({
    ...f,
    samples: f.samples.map((s) => ({ ...s, value: Number(s.value) })),
  })));
}

/** Fetches and parses `${url}/metrics`. */
export async function scrape(url: string): Promise<Exposition> {
  const res = await fetch(`${url}/metrics`);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status} ${text}`);
  return await parseExposition(text);
}
