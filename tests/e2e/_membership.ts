/**
 * Helpers of the membership process tests: a steady writer whose acknowledged
 * writes are checked at the end, membership calls sent to any live node (they are
 * forwarded to the leader), and the end-of-test check that every member holds the
 * same state.
 *
 * @module
 */

import { Code, ConnectError } from "@connectrpc/connect";
import type { ListMembersResponse, StatusResponse } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { Role } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import {
  checkReads,
  type Cluster,
  codeName,
  sleep,
  utf8,
  waitFor,
  type WaitOptions,
} from "./_harness.ts";

/**
 * Writes `w<n>` = `v<n>` one after another through the live nodes, each retried
 * until acknowledged (values are unique, so a write applied twice is harmless), and
 * remembers every acknowledged one and the longest time between two
 * acknowledgements.
 */
export class SteadyWriter {
  /** Acknowledged writes: key -> value. */
  readonly acked = new Map<string, string>();
  /** The longest gap between two acknowledgements, in ms, and when it ended. */
  longestGapMs = 0;
  #lastAck = performance.now();
  #n = 0;
  readonly #stop = new AbortController();
  readonly #done: Promise<void>;
  readonly #errors = new Map<string, number>();

  constructor(readonly c: Cluster, readonly prefix = "w") {
    this.#done = this.#run();
  }

  async #run(): Promise<void> {
    let turn = 0;
    while (!this.#stop.signal.aborted) {
      const key = `${this.prefix}${++this.#n}`;
      const value = `v${this.#n}`;
      for (;;) {
        if (this.#stop.signal.aborted) return;
        const live = this.c.liveIds().filter((id) => !this.c.isPaused(id));
        if (live.length === 0) {
          await sleep(50); // pacing while every node is down
          continue;
        }
        const id = live[turn++ % live.length]!;
        try {
          await this.c.kv(id).put({ key, value: utf8(value) }, { timeoutMs: 2_000 });
          const now = performance.now();
          this.longestGapMs = Math.max(this.longestGapMs, now - this.#lastAck);
          this.#lastAck = now;
          this.acked.set(key, value);
          break;
        } catch (err) {
          const code = codeName(ConnectError.from(err).code);
          this.#errors.set(code, (this.#errors.get(code) ?? 0) + 1);
          await sleep(20); // pacing between retries
        }
      }
    }
  }

  /** Waits until at least `n` more writes are acknowledged than now. */
  async advance(n: number, options: WaitOptions = {}): Promise<void> {
    const target = this.acked.size + n;
    await waitFor(`${n} more writes to be acknowledged`, () => {
      this.c.checkNoCrash();
      return this.acked.size >= target;
    }, { timeoutMs: 60_000, ...options });
  }

  /** Stops writing (the write under way finishes) and returns how many were acknowledged. */
  async stop(): Promise<number> {
    this.#stop.abort();
    await this.#done;
    return this.acked.size;
  }

  /** Error codes seen on attempts, for failure messages. */
  errors(): string {
    return [...this.#errors].map(([k, v]) => `${k} ${v}`).join(", ") || "none";
  }
}

/**
 * Sends a membership call to the live nodes in turn until one answers; a definite
 * refusal (anything but UNAVAILABLE / DEADLINE_EXCEEDED) is thrown at once.
 */
export async function memberCall<T>(
  c: Cluster,
  what: string,
  call: (cluster: ReturnType<Cluster["clients"]>["cluster"]) => Promise<T>,
  options: WaitOptions = {},
): Promise<T> {
  let turn = 0;
  let definite: ConnectError | undefined;
  const result = await waitFor(what, async () => {
    const live = c.liveIds();
    const id = live[turn++ % live.length]!;
    try {
      return await call(c.clients(id).cluster);
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code !== Code.Unavailable && e.code !== Code.DeadlineExceeded) {
        definite = e;
        return true as unknown as T;
      }
      throw e;
    }
  }, { timeoutMs: 60_000, intervalMs: 100, ...options });
  if (definite !== undefined) throw definite;
  return result;
}

/**
 * ListMembers from node `id` (by default the leader, which applied every change it
 * answered for; a follower may lag), as `id:role` strings (`1:voter 4:learner`).
 */
export async function membersOf(c: Cluster, id?: number): Promise<string> {
  const from = id ?? await c.leader();
  const res: ListMembersResponse = await c.clients(from).cluster.listMembers({}, {
    timeoutMs: 2_000,
  });
  return res.members.map((m) => `${m.id}:${m.learner ? "learner" : "voter"}`).join(" ");
}

/**
 * Waits until `ids` all name one leader (among them), every one has applied the
 * leader's whole log, and they all report the same applied chain and state digest;
 * returns their statuses.
 */
export async function waitConverged(
  c: Cluster,
  ids: readonly number[],
  options: WaitOptions = {},
): Promise<StatusResponse[]> {
  return await waitFor(`nodes ${ids.join(",")} to converge on one state`, async () => {
    c.checkNoCrash();
    const all = await Promise.all(ids.map((id) => c.status(id, 1_000)));
    const lead = all[0]!.leaderId;
    const leader = all.find((s) => s.id === lead);
    if (leader === undefined || leader.role !== Role.LEADER) {
      throw new Error(`no leader among them (${all.map((s) => `${s.id}→${s.leaderId}`)})`);
    }
    if (leader.commitIndex !== leader.lastLogIndex) {
      throw new Error("leader has uncommitted entries");
    }
    const off = all.filter((s) => s.appliedIndex !== leader.commitIndex);
    if (off.length > 0) throw new Error(`behind: ${off.map((s) => `${s.id}@${s.appliedIndex}`)}`);
    const digests = new Set(all.map((s) => `${s.stateDigest}/${s.appliedChain}`));
    if (digests.size !== 1) {
      // Equal applied index, different states: no waiting fixes that.
      throw new Error(
        `DIVERGED at ${leader.commitIndex}: ${
          all.map((s) => `${s.id}:${s.stateDigest.slice(0, 8)}`).join(" ")
        }`,
      );
    }
    return all;
  }, { timeoutMs: 60_000, intervalMs: 200, ...options });
}

/** Reads every acknowledged write through each of `ids`; returns the mismatches. */
export async function lostWrites(
  c: Cluster,
  ids: readonly number[],
  acked: ReadonlyMap<string, string>,
): Promise<string[]> {
  const problems: string[] = [];
  for (const id of ids) problems.push(...await checkReads(c, id, acked));
  return problems;
}
