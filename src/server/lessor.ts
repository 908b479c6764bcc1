/**
 * The leader's half of leases: when each lease runs out. The replicated half (which
 * leases exist, their TTL, their keys) is `src/kv/leases.ts`; deadlines are not
 * replicated, because they come from a clock, and no clock may enter the state
 * machine. Only the leader keeps deadlines and decides expiry, and an expiry takes
 * effect only through the log (a LeaseRevoke entry), so every node deletes a lease's
 * keys at the same index (etcd's lessor: `server/lease/lessor.go`).
 *
 * A node that becomes leader knows nothing of the keep-alives its predecessor
 * received, so it gives every lease it finds its full TTL plus an election timeout
 * before it may expire it (etcd's `Promote` with `extend`): a holder that kept its
 * lease alive on the old leader keeps it across the change. Keep-alives renew a
 * lease for its TTL from the moment the leader receives them.
 *
 * @module
 */

import { encodeCommand } from "../kv/command.ts";
import type { Logger } from "../raft/logger.ts";
import { NodeError, type RaftKvNode } from "./node.ts";

/** How often the leader looks for expired leases. */
export const LESSOR_TICK_MS = 100;

/** The longest TTL a lease may ask for: a year, in seconds. */
export const MAX_LEASE_TTL = 365 * 24 * 3600;

/** The leader's deadlines of the leases, and the expiry it proposes. */
export class Lessor {
  readonly #node: Pick<RaftKvNode, "id" | "options" | "kv" | "leader" | "propose">;
  readonly #log: Logger;
  /** Lease id -> deadline, in performance.now() ms; only while leading. */
  #deadlines = new Map<number, number>();
  #leading = false;
  /** Leases whose revoke is proposed and not yet applied. */
  readonly #revoking = new Set<number>();
  readonly #timer: ReturnType<typeof setInterval> | undefined;
  readonly #now: () => number;

  /**
   * A lessor for `node`, ticking every {@link LESSOR_TICK_MS} on the clock `now`
   * (performance.now by default); `tickMs` 0 leaves ticking to the caller (tests).
   */
  constructor(
    node: Pick<RaftKvNode, "id" | "options" | "kv" | "leader" | "propose">,
    now: () => number = () => performance.now(),
    tickMs = LESSOR_TICK_MS,
  ) {
    this.#node = node;
    this.#log = node.options.logger;
    this.#now = now;
    this.#timer = tickMs > 0 ? setInterval(() => this.tick(), tickMs) : undefined;
  }

  /**
   * The smallest TTL granted, in seconds: 1.5 election timeouts, rounded up (etcd's
   * `minTTL`), so a lease outlives the election that a leader change takes.
   */
  get minTtl(): number {
    return Math.ceil((1.5 * this.#node.options.electionMs) / 1000);
  }

  /** Brings the deadlines in line with leadership and with the leases applied. */
  #sync(now: number): boolean {
    const leading = this.#node.leader() === this.#node.id;
    if (leading !== this.#leading) {
      this.#leading = leading;
      this.#deadlines = new Map();
      this.#revoking.clear();
    }
    if (!leading) return false;
    const live = new Set<number>();
    const extension = this.#node.options.electionMs;
    for (const { id, ttl } of this.#node.kv.leases()) {
      live.add(id);
      // First seen by this leader: its full TTL and an election timeout.
      if (!this.#deadlines.has(id)) this.#deadlines.set(id, now + ttl * 1000 + extension);
    }
    for (const id of this.#deadlines.keys()) if (!live.has(id)) this.#deadlines.delete(id);
    for (const id of this.#revoking) if (!live.has(id)) this.#revoking.delete(id);
    return true;
  }

  /** Proposes a revoke for every lease past its deadline (on the leader). */
  tick(): void {
    const now = this.#now();
    if (!this.#sync(now)) return;
    for (const [id, deadline] of this.#deadlines) {
      if (deadline > now || this.#revoking.has(id)) continue;
      this.#revoking.add(id);
      const data = encodeCommand({
        timeMs: BigInt(Date.now()),
        op: { case: "leaseRevoke", value: { id: BigInt(id), expired: true } },
      });
      let proposed;
      try {
        proposed = this.#node.propose(data, AbortSignal.timeout(10_000));
      } catch (err) {
        this.#revoking.delete(id); // not the leader any more, or stopping: next tick decides
        if (!(err instanceof NodeError)) throw err;
        continue;
      }
      this.#log.info("lease expired: revoking it", { lease: id });
      proposed.catch(() => this.#revoking.delete(id));
    }
  }

  /**
   * Renews lease `id` for its TTL from now, on the leader. Returns the TTL in seconds,
   * or undefined if the lease does not exist in the state this node has applied.
   *
   * @throws {NodeError} `not_leader` on any other node.
   */
  renew(id: number): number | undefined {
    const now = this.#now();
    if (!this.#sync(now)) throw new NodeError("not_leader", "only the leader renews leases");
    const lease = this.#node.kv.lease(id);
    if (lease === undefined || this.#revoking.has(id)) return undefined;
    this.#deadlines.set(id, now + lease.ttl * 1000);
    return lease.ttl;
  }

  /**
   * The milliseconds left of lease `id`, as the leader sees it, or undefined if the
   * lease does not exist.
   *
   * @throws {NodeError} `not_leader` on any other node.
   */
  remainingMs(id: number): number | undefined {
    const now = this.#now();
    if (!this.#sync(now)) throw new NodeError("not_leader", "only the leader times leases");
    const deadline = this.#deadlines.get(id);
    return deadline === undefined ? undefined : Math.max(0, deadline - now);
  }

  /** Stops the timer. */
  close(): void {
    clearInterval(this.#timer);
  }
}
