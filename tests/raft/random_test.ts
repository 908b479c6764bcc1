/**
 * Randomized fault runs of the Raft core on the simulated cluster.
 *
 * Each seed builds a 3- or 5-node cluster and drives it through a fault phase
 * drawn from the seed (drops, duplicates, delays that reorder, symmetric and
 * one-way partitions, isolation, crashes and restarts, crashes in the middle of a
 * Ready, several at once, and log compaction at random points on any node, so
 * that followers behind get snapshots, with crashes while a node takes or
 * installs one) with proposals and ReadIndex reads throughout, and membership
 * changes at random points (learners added and promoted, voters added, removed
 * and demoted, joint changes left automatically or explicitly, leadership
 * transfers; one or two spare nodes start with an empty configuration, as joining nodes
 * do, and removed nodes keep running with their disks), applied as the runtime
 * applies them (applyConfChange in log order, the configuration kept with the
 * state machine and its snapshots, restored after a crash), every commit checked
 * against a quorum of the configuration in force,
 * checking the Raft safety properties after every step and every confirmed read
 * against the history (linearizability), and the state each node applied (or
 * restored from a snapshot) against every other's at the same index. Most seeds
 * give writes a duration, as
 * the runtime's fsync has: nodes go on stepping messages and ticking while a
 * write is in flight, and crash in that window too. Then every fault ends and the
 * run must be live:
 * a leader all members of its configuration follow within
 * {@link LEADER_BOUND_TICKS}, and a new command applied on every member within
 * {@link COMMIT_BOUND_TICKS} more.
 *
 * Environment:
 * - `RAFT_SEED=123` runs only seed 123 and prints its full trace;
 * - `RAFT_SEEDS=2000` runs seeds 1..2000 (default 500).
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  ConfChangeRejected,
  LeaderTransferRefused,
  NotLeaderError,
  ProposalDroppedError,
} from "../../src/raft/errors.ts";
import { Raft } from "../../src/raft/raft.ts";
import { ReadOnly } from "../../src/raft/read_only.ts";
import { jointCommittedIndex } from "../../src/raft/quorum/joint.ts";
import { ProgressTracker } from "../../src/raft/tracker/tracker.ts";
import { type Random, randomInt, seededRandom } from "../../src/raft/rand.ts";
import type { ConfChangeSingle, ConfState, NodeId, Snapshot } from "../../src/raft/types.ts";
import { type ClusterStats, SimCluster, type WriteDelay } from "./sim/cluster.ts";
import {
  checkAppliedAgree,
  checkLogsMatch,
  dataKey,
  InvariantViolation,
} from "./sim/invariants.ts";

/** The core's default electionTick; the bounds below are counted in it. */
const ELECTION_TICK = 10;

/**
 * Ticks allowed, once every fault has ended, for a leader that every node
 * follows. Why 50 election timeouts: messages still in flight drain within 11
 * ticks (10 ms delay + 100 ms extra, 10 ms ticks); a leader cut off during the
 * faults steps down within one timeout (CheckQuorum), and lease-holding followers
 * ignore votes for one more. After that, each election round lasts at most one
 * randomized timeout, < 2 * electionTick ticks, and fails only on a split vote,
 * which needs two timeouts (drawn independently from 10 values) to fire within
 * about a round trip of each other: well under half of the rounds. 50 timeouts
 * leave room for ~20 failed rounds in a row (< 1e-6 at one in two); a run that
 * needs more is a liveness bug, not bad luck. (Measured worst case: 81 ticks over the 500
 * default seeds, 87 over 5,000; the summary line prints it.)
 */
const LEADER_BOUND_TICKS = 50 * ELECTION_TICK;

/**
 * Ticks allowed, after that leader exists, for one new command to be applied on
 * every node, on top of the catch-up time of {@link catchUpTicks}. The leader
 * probes a lagging follower back (fast back-up skips a whole term per round trip,
 * and a run has at most a few dozen terms) and then streams; 20 election
 * timeouts is several times what the probing takes.
 */
const COMMIT_BOUND_TICKS = 20 * ELECTION_TICK;

/**
 * Ticks a follower `lag` entries behind needs to catch up: each round trip
 * (<= 2 ticks: two 10 ms delays once the network is clean) moves at most
 * `maxInflightMsgs` appends, each of at least one entry, and of only one when
 * maxSizePerMsg is below the size of two commands (~10 bytes each).
 *
 * With one entry per append that pipelining cannot be counted on: even a clean
 * network gives each message its own delay (1 to 10 ms), so a stream of
 * single-entry appends arrives out of order, the follower rejects those that
 * leave a gap, and the leader falls back to probing, one append per round trip
 * (the runtime's per-peer streams are FIFO; the simulated network is not). The
 * bound then allows one entry per round trip. (Seeds 3047 and 4504 hit this
 * before snapshots existed; it does not depend on them.)
 */
function catchUpTicks(
  lag: number,
  maxSizePerMsg: number,
  maxInflightMsgs: number,
  maxWriteMs: number,
): number {
  const perAppend = maxSizePerMsg >= 1024 ? 256 : 1;
  // A round trip also waits for the follower's write, and the leader sends the
  // next appends only after its own write of the Ready before (10 ms ticks).
  const roundTrip = 2 + 2 * Math.ceil(maxWriteMs / 10);
  const perRoundTrip = perAppend === 1 ? 1 : perAppend * maxInflightMsgs;
  return roundTrip * Math.ceil(lag / perRoundTrip);
}

/**
 * Write durations a seed may draw, in virtual ms (10 ms ticks; electionTick 10):
 * none (the Ready handled inside the step, as before), fast disks, and disks
 * whose fsync takes up to 40% of the election timeout. A node whose writes take
 * longer than the election timeout cannot keep a leader (its heartbeats wait for
 * its writes), which is a configuration error, not something to test for safety.
 */
const WRITE_DELAYS: readonly (WriteDelay | undefined)[] = [
  undefined,
  { min: 1, max: 5 },
  { min: 1, max: 20 },
  { min: 5, max: 40 },
];

/** Fault kinds, in the order the summary prints them. */
const FAULT_KINDS = [
  "drop",
  "duplicate",
  "reorder",
  "hold",
  "clean",
  "partition",
  "cut",
  "stall",
  "isolate",
  "heal",
  "crash",
  "crash_mid_ready",
  "bounce",
  "slow_disk",
  "restart",
  "campaign",
  "churn",
  "churn_kill",
  "compact",
  "snapshot_crash",
] as const;
type FaultKind = typeof FAULT_KINDS[number];

/** Relative weights of the fault kinds picked during the fault phase (restarts are separate). */
const FAULT_WEIGHTS: readonly (readonly [FaultKind, number])[] = [
  ["drop", 3],
  ["duplicate", 2],
  ["reorder", 3],
  ["hold", 2],
  ["clean", 2],
  ["partition", 3],
  ["cut", 3],
  ["stall", 3],
  ["isolate", 2],
  ["heal", 3],
  ["crash", 3],
  ["crash_mid_ready", 3],
  ["bounce", 3],
  ["slow_disk", 3],
  ["campaign", 1],
  ["churn", 1],
  ["compact", 4],
];
const TOTAL_WEIGHT = FAULT_WEIGHTS.reduce((s, [, w]) => s + w, 0);

/** Fault-then-heal rounds per seed, and fault ticks per round (both drawn from the seed). */
const MIN_ROUNDS = 3;
const MAX_ROUNDS = 6;
const MIN_FAULT_TICKS = 200;
const MAX_FAULT_TICKS = 500;

/** Probability per tick that a fault is injected. */
const FAULT_RATE = 0.08;
/** Probability per tick that a down node restarts (mean downtime: 20 ticks). */
const RESTART_RATE = 1 / 20;
/**
 * During leader churn: probability per tick that the current leader is killed
 * (crashed now, or at its next write). Short-lived leaders leave many terms of
 * partly replicated entries behind: the histories of Figure 8 (§5.4.2).
 */
const CHURN_KILL_RATE = 0.25;
/** Probability per tick of a round of proposals. */
const PROPOSE_RATE = 0.35;
/** Probability per tick that stalled links are released (mean stall: 20 ticks). */
const RELEASE_RATE = 1 / 20;
/** Probability per tick that one node's disk (slow or not) is back to its normal speed. */
const DISK_RECOVER_RATE = 1 / 30;
/** Probability per tick of a round of ReadIndex reads. */
const READ_RATE = 0.3;
/**
 * Entries a compaction keeps behind the snapshot (etcd's SnapshotCatchUpEntries):
 * often none, so any follower behind needs the snapshot, sometimes a few, so some
 * catch up from the log and others not.
 */
const COMPACT_KEEP: readonly number[] = [0, 0, 0, 1, 5, 20];
/**
 * Probability per tick that a node with a snapshot write in flight (taking its
 * own, or installing the leader's) crashes right then. Those writes last a few
 * ticks at most, so the other crash faults seldom land inside one.
 */
const SNAPSHOT_CRASH_RATE = 0.1;

/**
 * Probability per tick of a membership operation at the leader: add a learner,
 * promote one, add or remove a voter, demote one, two changes at once through a
 * joint configuration (left automatically, or explicitly by a later operation),
 * or a leadership transfer. One or two nodes beyond the initial voters start with
 * an empty configuration, as nodes started to join do, so there is someone to add;
 * removed nodes keep running (and their disks) and may be added back.
 */
const MEMBERSHIP_RATE = 0.03;
/**
 * Extra nodes, started with an empty configuration: one or two, drawn per seed
 * (idle spares cost time on every tick; removed nodes can be added back too).
 */
const SPARES: readonly number[] = [1, 2];

/** Membership operations, in the order the summary prints them. */
const MEMBER_OPS = [
  "add_learner",
  "promote",
  "add_voter",
  "remove",
  "demote",
  "joint",
  "leave",
  "transfer",
] as const;
type MemberOp = typeof MEMBER_OPS[number];
const MEMBER_WEIGHTS: readonly (readonly [MemberOp, number])[] = [
  ["add_learner", 3],
  ["promote", 3],
  ["add_voter", 1],
  ["remove", 3],
  ["demote", 1],
  ["joint", 2],
  ["leave", 2],
  ["transfer", 3],
];

/** What one seed did. */
interface SeedResult {
  size: number;
  faults: Record<FaultKind, number>;
  /** Membership operations accepted by the leader, by kind, and those it refused. */
  members: Record<MemberOp, number>;
  membersRefused: number;
  /** Conf changes applied (on any node), and the nodes ending as voters. */
  confChangesApplied: number;
  finalVoters: number;
  proposals: number;
  rejected: number;
  committed: number;
  /** The cluster's counters: writes in flight, reads. */
  sim: ClusterStats;
  virtualMs: number;
  leaderTicks: number;
  commitTicks: number;
}

/** A failed seed, with what a reader needs to replay and diagnose it. */
class SeedFailure extends Error {
  override name = "SeedFailure";
  constructor(readonly seed: number, cause: unknown, readonly report: string) {
    super(report, { cause });
  }
}

function replayCommand(seed: number): string {
  return `RAFT_SEED=${seed} deno test -A tests/raft/random_test.ts`;
}

/**
 * One membership operation at the leader, drawn from `rng`. Returns the kind
 * when the leader took it, "refused" when it refused (a change still pending, a
 * transfer under way, a change that would remove the last voter...), or
 * undefined when there is no leader or nothing to act on.
 */
function membershipOp(rng: Random, cluster: SimCluster): MemberOp | "refused" | undefined {
  const lead = cluster.leader();
  if (lead === undefined) return undefined;
  const conf: ConfState = cluster.status(lead)!.conf;
  const joint = conf.votersOutgoing.length > 0;
  const members = new Set(cluster.members(conf));
  const strangers = cluster.ids.filter((id) => !members.has(id));
  const learners = conf.learners;
  const voters = conf.voters;
  let x = rng() * MEMBER_WEIGHTS.reduce((s, [, w]) => s + w, 0);
  let op: MemberOp = "transfer";
  for (const [kind, w] of MEMBER_WEIGHTS) {
    x -= w;
    if (x < 0) {
      op = kind;
      break;
    }
  }
  const one = (type: ConfChangeSingle["type"], from: readonly NodeId[]) =>
    from.length === 0 ? undefined : [{ type, nodeId: pick(rng, from) }];
  let changes: ConfChangeSingle[] | undefined;
  let transition: "auto" | "explicit" = "auto";
  switch (op) {
    case "add_learner":
      changes = one("add_learner", strangers);
      break;
    case "promote":
      changes = one("add_voter", learners);
      break;
    case "add_voter":
      changes = one("add_voter", strangers);
      break;
    case "remove":
      changes = one("remove", [...members]);
      break;
    case "demote":
      changes = one("add_learner", voters);
      break;
    case "joint": {
      // A voter out and another in (a replacement), or two in.
      const incoming = [...learners, ...strangers];
      if (incoming.length === 0 || voters.length === 0) return undefined;
      const a = pick(rng, incoming);
      const out = voters.filter((id) => id !== a);
      changes = rng() < 0.5 && out.length > 0
        ? [{ type: "add_voter", nodeId: a }, { type: "remove", nodeId: pick(rng, out) }]
        : [
          { type: "add_voter", nodeId: a },
          ...(one("add_learner", incoming.filter((id) => id !== a)) ?? []),
        ];
      if (rng() < 0.3) transition = "explicit";
      break;
    }
    case "leave":
      if (!joint || conf.autoLeave) return undefined;
      changes = [];
      break;
    case "transfer": {
      const to = voters.filter((id) => id !== lead);
      if (to.length === 0) return undefined;
      try {
        cluster.transferLeader(lead, pick(rng, to));
        return op;
      } catch (e) {
        if (e instanceof LeaderTransferRefused) return "refused";
        throw e;
      }
    }
  }
  if (changes === undefined) return undefined;
  try {
    cluster.proposeConfChange(lead, { changes, transition, context: new Uint8Array() });
    return op;
  } catch (e) {
    if (
      e instanceof ConfChangeRejected || e instanceof ProposalDroppedError ||
      e instanceof NotLeaderError
    ) return "refused";
    throw e;
  }
}

function pickFault(rng: Random): FaultKind {
  let x = rng() * TOTAL_WEIGHT;
  for (const [kind, w] of FAULT_WEIGHTS) {
    x -= w;
    if (x < 0) return kind;
  }
  return FAULT_WEIGHTS[FAULT_WEIGHTS.length - 1]![0];
}

function pick<T>(rng: Random, xs: readonly T[]): T {
  return xs[randomInt(rng, 0, xs.length)]!;
}

function shuffled<T>(rng: Random, xs: readonly T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = randomInt(rng, 0, i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** The current leader half the time, else any running node; undefined when all are down. */
function victim(rng: Random, cluster: SimCluster): NodeId | undefined {
  const lead = cluster.leader();
  if (lead !== undefined && rng() < 0.5) return lead;
  const up = cluster.upIds();
  return up.length === 0 ? undefined : pick(rng, up);
}

/**
 * A node to crash: one writing a snapshot (its own, or one from the leader) half
 * the time when there is one, so crashes hit those writes often; else a
 * {@link victim}.
 */
function crashVictim(rng: Random, cluster: SimCluster): NodeId | undefined {
  const writing = cluster.snapshotting();
  if (writing.length > 0 && rng() < 0.5) return pick(rng, writing);
  return victim(rng, cluster);
}

/** Applies one fault of `kind`. Returns false when it could not apply (nothing to act on). */
function inject(rng: Random, cluster: SimCluster, kind: FaultKind): boolean {
  const ids = cluster.ids;
  const round2 = (x: number): number => Math.round(x * 100) / 100;
  switch (kind) {
    case "drop":
      cluster.network.setFaults({ drop: round2(0.05 + rng() * 0.45) });
      return true;
    case "duplicate":
      cluster.network.setFaults({ duplicate: round2(0.05 + rng() * 0.45) });
      return true;
    case "reorder":
      cluster.network.setFaults({
        reorder: round2(0.1 + rng() * 0.5),
        maxExtraDelay: randomInt(rng, 10, 101),
      });
      return true;
    case "hold":
      cluster.network.setFaults({ holdForDown: round2(0.3 + rng() * 0.7) });
      return true;
    case "clean":
      cluster.network.setFaults({ drop: 0, duplicate: 0, reorder: 0, holdForDown: 0 });
      return true;
    case "partition": {
      const order = shuffled(rng, ids);
      const k = randomInt(rng, 1, ids.length);
      cluster.partition(order.slice(0, k), order.slice(k));
      return true;
    }
    case "cut": {
      const n = randomInt(rng, 1, 4);
      for (let i = 0; i < n; i++) {
        const [from, to] = shuffled(rng, ids);
        cluster.cut(from!, to!);
      }
      return true;
    }
    case "stall": {
      // Every link into one node stops moving (favouring a candidate, whose
      // grants then arrive in one burst), until released a while later.
      if (cluster.network.anyStalled) return false;
      const candidates = cluster.upIds().filter((id) => cluster.status(id)?.role === "candidate");
      const into = candidates.length > 0 && rng() < 0.5 ? pick(rng, candidates) : pick(rng, ids);
      for (const from of ids) if (from !== into) cluster.network.stall(from, into);
      return true;
    }
    case "isolate": {
      const lead = cluster.leader();
      cluster.isolate(lead !== undefined && rng() < 0.5 ? lead : pick(rng, ids));
      return true;
    }
    case "heal":
      cluster.heal();
      return true;
    case "crash": {
      const id = crashVictim(rng, cluster);
      if (id === undefined) return false;
      cluster.crash(id);
      return true;
    }
    case "bounce": {
      // kill -9 under a supervisor that restarts the process at once. Candidates
      // are favoured: one that dies before its term is durable comes back at the
      // term before, while its grants may still be on their way to it.
      const candidates = cluster.upIds().filter((id) => cluster.status(id)?.role === "candidate");
      const id = candidates.length > 0 && rng() < 0.7
        ? pick(rng, candidates)
        : crashVictim(rng, cluster);
      if (id === undefined) return false;
      cluster.crash(id);
      cluster.restart(id);
      return true;
    }
    case "slow_disk": {
      // One node's fsync stalls for longer than an election timeout for a while
      // (a busy or failing disk): it keeps stepping messages and ticking, and its
      // election timer can fire, with a write in flight.
      const id = pick(rng, ids);
      cluster.setWriteDelay(id, { min: 50, max: randomInt(rng, 100, 401) });
      return true;
    }
    case "crash_mid_ready": {
      const id = victim(rng, cluster);
      if (id === undefined) return false;
      cluster.crashMidReady(id, rng() < 0.75 ? "before_persist" : "after_persist");
      return true;
    }
    case "campaign": {
      const candidates = cluster.upIds().filter((id) => cluster.status(id)?.role !== "leader");
      if (candidates.length === 0) return false;
      cluster.campaign(pick(rng, candidates));
      return true;
    }
    case "compact": {
      // Any running node, the leader more often (its compaction is what makes
      // followers behind need a snapshot).
      const id = victim(rng, cluster);
      if (id === undefined) return false;
      return cluster.compact(id, pick(rng, COMPACT_KEEP));
    }
    case "churn":
    case "churn_kill":
    case "restart":
    case "snapshot_crash":
      return false; // Scheduled by the run loop, not applied here.
  }
}

/** Runs one seed. Throws {@link SeedFailure} on any violation, error or liveness failure. */
function runSeed(seed: number, traceCapacity: number): SeedResult {
  // The schedule's own PRNG; nodes use seed*31+id (ids <= 5) and the network seed*31.
  const rng = seededRandom(seed * 31 + 29);
  const size = rng() < 0.5 ? 3 : 5;
  // Mostly the defaults; sometimes without PreVote and/or CheckQuorum.
  const preVote = rng() < 0.75;
  const checkQuorum = rng() < 0.75;
  // Flow control: mostly the defaults; sometimes one or two entries per append
  // (proposals are ~8 bytes) and a tiny in-flight window, so logs are shipped
  // piecemeal and followers sit at many different match indexes.
  const maxSizePerMsg = pick(rng, [1024 * 1024, 1024 * 1024, 16, 1]);
  const maxInflightMsgs = pick(rng, [256, 256, 4, 1]);
  const writeDelay = pick(rng, WRITE_DELAYS);
  const rounds = randomInt(rng, MIN_ROUNDS, MAX_ROUNDS + 1);
  const memberRng = seededRandom(seed * 31 + 23);
  const cluster = new SimCluster({
    size,
    spares: pick(memberRng, SPARES),
    seed,
    preVote,
    checkQuorum,
    maxSizePerMsg,
    maxInflightMsgs,
    traceCapacity,
    ...(writeDelay === undefined ? {} : { writeDelay }),
  });
  const config = `${size} nodes, preVote:${preVote} checkQuorum:${checkQuorum}` +
    ` maxSizePerMsg:${maxSizePerMsg} maxInflightMsgs:${maxInflightMsgs}` +
    ` writes:${writeDelay === undefined ? "instant" : `${writeDelay.min}-${writeDelay.max}ms`}`;
  const faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  const members = Object.fromEntries(MEMBER_OPS.map((k) => [k, 0])) as Record<MemberOp, number>;
  let membersRefused = 0;
  const encoder = new TextEncoder();
  let proposalNo = 0;
  let leaderTicks = 0;
  let commitTicks = 0;
  let phase = "setup";
  cluster.trace.add(
    0,
    `seed ${seed}: ${config}, ${rounds} rounds`,
  );
  try {
    for (let round = 1; round <= rounds; round++) {
      const faultTicks = randomInt(rng, MIN_FAULT_TICKS, MAX_FAULT_TICKS + 1);
      let churnUntil = -1;
      phase = `round ${round}/${rounds}: fault phase`;
      cluster.trace.add(cluster.now, `=== ${phase}, ${faultTicks} ticks ===`);
      for (let t = 0; t < faultTicks; t++) {
        if (rng() < FAULT_RATE) {
          const kind = pickFault(rng);
          if (kind === "churn") {
            churnUntil = t + randomInt(rng, 20, 100);
            cluster.trace.add(cluster.now, `leader churn until fault tick ${churnUntil}`);
            faults.churn++;
          } else if (inject(rng, cluster, kind)) {
            faults[kind]++;
          }
        }
        if (memberRng() < MEMBERSHIP_RATE) {
          const done = membershipOp(memberRng, cluster);
          if (done === "refused") membersRefused++;
          else if (done !== undefined) members[done]++;
        }
        if (cluster.network.anyStalled && rng() < RELEASE_RATE) cluster.network.release();
        if (rng() < DISK_RECOVER_RATE) cluster.setWriteDelay(pick(rng, cluster.ids), undefined);
        if (t < churnUntil && rng() < CHURN_KILL_RATE) {
          const lead = cluster.leader();
          if (lead !== undefined) {
            if (rng() < 0.5) cluster.crash(lead);
            else cluster.crashMidReady(lead, rng() < 0.5 ? "before_persist" : "after_persist");
            faults.churn_kill++;
          }
        }
        const writing = cluster.snapshotting();
        if (writing.length > 0 && rng() < SNAPSHOT_CRASH_RATE) {
          cluster.crash(pick(rng, writing));
          faults.snapshot_crash++;
        }
        for (const id of cluster.ids) {
          if (!cluster.isUp(id) && rng() < RESTART_RATE) {
            cluster.restart(id);
            faults.restart++;
          }
        }
        if (rng() < PROPOSE_RATE) {
          const n = randomInt(rng, 1, 4);
          for (let i = 0; i < n; i++) {
            const lead = cluster.leader();
            const up = cluster.upIds();
            if (up.length === 0) break;
            const at = lead !== undefined && rng() < 0.8 ? lead : pick(rng, up);
            try {
              cluster.propose(at, encoder.encode(`s${seed}p${++proposalNo}`));
            } catch (e) {
              if (!(e instanceof NotLeaderError) && !(e instanceof ProposalDroppedError)) throw e;
            }
          }
        }
        if (rng() < READ_RATE) {
          const n = randomInt(rng, 1, 3);
          for (let i = 0; i < n; i++) {
            const lead = cluster.leader();
            const up = cluster.upIds();
            if (up.length === 0) break;
            // Mostly at the leader; sometimes at a node that only believes it leads.
            const leaders = up.filter((id) => cluster.status(id)?.role === "leader");
            const at = lead !== undefined && rng() < 0.7
              ? lead
              : leaders.length > 0 && rng() < 0.7
              ? pick(rng, leaders)
              : pick(rng, up);
            try {
              cluster.readIndex(at);
            } catch (e) {
              if (!(e instanceof NotLeaderError)) throw e;
            }
          }
        }
        cluster.tick();
      }

      phase = `round ${round}/${rounds}: liveness, electing a leader`;
      cluster.trace.add(cluster.now, `=== every fault ends: ${phase} ===`);
      cluster.recover();
      const start = cluster.stats.ticks;
      const elected = cluster.runUntil(
        () => cluster.stableLeader() !== undefined,
        LEADER_BOUND_TICKS,
      );
      leaderTicks = Math.max(leaderTicks, cluster.stats.ticks - start);
      assert.ok(
        elected,
        `no leader that every node follows within ${LEADER_BOUND_TICKS} ticks after healing`,
      );

      phase = `round ${round}/${rounds}: liveness, committing a command`;
      const leaderStatus = cluster.status(cluster.stableLeader()!)!;
      const leaderLast = leaderStatus.lastIndex;
      // Every member of the configuration in force must apply it; nodes removed
      // (or never added) hear nothing from the leader.
      const inForce = cluster.members(leaderStatus.conf);
      const lag = Math.max(...inForce.map((id) => leaderLast - cluster.disk(id).lastIndex()));
      const commitBound = COMMIT_BOUND_TICKS +
        catchUpTicks(lag, maxSizePerMsg, maxInflightMsgs, writeDelay?.max ?? 0);
      const final = encoder.encode(`s${seed}r${round}final`);
      const finalKey = dataKey(final);
      const membersNow = (): NodeId[] =>
        cluster.members(cluster.status(cluster.leader() ?? inForce[0]!)?.conf ?? leaderStatus.conf);
      const appliedEverywhere = (): boolean =>
        membersNow().every((id) =>
          cluster.applied(id).findLast((e) => dataKey(e.data) === finalKey) !== undefined
        );
      const commitStart = cluster.stats.ticks;
      // A member added by an entry the new leader commits only now (a change
      // proposed in the fault phase) starts as far behind as its disk is: it gets
      // the catch-up time for its own lag from the moment it joins.
      let deadline = commitStart + commitBound;
      let farthest = lag;
      const counted = new Set(inForce);
      let proposedAt: { lead: NodeId; term: number } | undefined;
      let timedOut = false;
      cluster.runUntil(() => {
        if (appliedEverywhere()) return true;
        for (const id of membersNow()) {
          if (counted.has(id)) continue;
          counted.add(id);
          const newest = Math.max(...cluster.ids.map((n) => cluster.disk(n).lastIndex()));
          const joinLag = Math.max(0, newest - cluster.disk(id).lastIndex());
          farthest = Math.max(farthest, joinLag);
          deadline += catchUpTicks(joinLag, maxSizePerMsg, maxInflightMsgs, writeDelay?.max ?? 0);
        }
        if (cluster.stats.ticks >= deadline) {
          timedOut = true;
          return true;
        }
        const lead = cluster.stableLeader();
        const term = lead === undefined ? undefined : cluster.status(lead)?.term;
        if (lead !== undefined && term !== undefined) {
          if (proposedAt === undefined || proposedAt.lead !== lead || proposedAt.term !== term) {
            // First proposal, or the leader changed since (the entry may be lost): propose again.
            try {
              cluster.propose(lead, final);
              proposedAt = { lead, term };
            } catch (e) {
              // A transfer started in the fault phase may still be under way.
              if (!(e instanceof ProposalDroppedError)) throw e;
            }
          }
        }
        return false;
      }, Number.MAX_SAFE_INTEGER);
      commitTicks = Math.max(commitTicks, cluster.stats.ticks - commitStart);
      assert.ok(
        !timedOut,
        `a command proposed at the leader was not applied on every node within` +
          ` ${deadline - commitStart} ticks (the farthest node was ${farthest} entries behind)`,
      );
    }

    phase = "final checks";
    checkLogsMatch(new Map(cluster.ids.map((id) => [id, cluster.disk(id)])));
    checkAppliedAgree(new Map(cluster.ids.map((id) => [id, cluster.applied(id)])));
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    const trace = traceCapacity > 2000 ? cluster.trace.dump() : cluster.trace.dump(80);
    const report = [
      `seed ${seed} failed during the ${phase} at ${cluster.now} virtual ms` +
      ` (${config}):`,
      `  ${err.name}: ${err.message}`,
      `replay: ${replayCommand(seed)}`,
      "cluster:",
      cluster.describe(),
      "trace:",
      trace,
      "stack:",
      (err.stack ?? "").split("\n").slice(1, 8).join("\n"),
    ].join("\n");
    throw new SeedFailure(seed, e, report);
  }
  // Every committed entry is seen by the checker, through some node's log (a
  // node's own state machine may hold some only through a snapshot).
  const committed = cluster.checker.stats().commands;
  if (traceCapacity > 2000) console.log(cluster.trace.dump());
  return {
    size,
    faults,
    members,
    membersRefused,
    confChangesApplied: cluster.stats.confChangesApplied,
    finalVoters: cluster.conf(cluster.stableLeader() ?? 1).voters.length,
    proposals: cluster.stats.proposals,
    rejected: cluster.stats.proposalsRejected,
    committed,
    sim: { ...cluster.stats },
    virtualMs: cluster.now,
    leaderTicks,
    commitTicks,
  };
}

/** Totals across seeds, for the summary line. */
class Totals {
  seeds = 0;
  sizes = { 3: 0, 5: 0 } as Record<number, number>;
  faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  members = Object.fromEntries(MEMBER_OPS.map((k) => [k, 0])) as Record<MemberOp, number>;
  membersRefused = 0;
  confChangesApplied = 0;
  finalVoters = new Map<number, number>();
  proposals = 0;
  rejected = 0;
  committed = 0;
  virtualMs = 0;
  worstLeaderTicks = 0;
  worstCommitTicks = 0;
  asyncSeeds = 0;
  asyncWrites = 0;
  stepsDuringWrite = 0;
  ticksDuringWrite = 0;
  crashesDuringWrite = 0;
  tornWrites = 0;
  readsStarted = 0;
  readsConfirmed = 0;
  readsServed = 0;
  readsAbandoned = 0;
  snapshotsTaken = 0;
  snapshotsSent = 0;
  snapshotsFailed = 0;
  snapshotsInstalled = 0;
  restartsFromSnapshot = 0;
  crashesDuringSnapshotTake = 0;
  crashesDuringSnapshotInstall = 0;
  failed: number[] = [];

  add(r: SeedResult): void {
    this.seeds++;
    this.sizes[r.size] = (this.sizes[r.size] ?? 0) + 1;
    for (const k of FAULT_KINDS) this.faults[k] += r.faults[k];
    for (const k of MEMBER_OPS) this.members[k] += r.members[k];
    this.membersRefused += r.membersRefused;
    this.confChangesApplied += r.confChangesApplied;
    this.finalVoters.set(r.finalVoters, (this.finalVoters.get(r.finalVoters) ?? 0) + 1);
    this.proposals += r.proposals;
    this.rejected += r.rejected;
    this.committed += r.committed;
    this.virtualMs += r.virtualMs;
    this.worstLeaderTicks = Math.max(this.worstLeaderTicks, r.leaderTicks);
    this.worstCommitTicks = Math.max(this.worstCommitTicks, r.commitTicks);
    if (r.sim.asyncWrites > 0) this.asyncSeeds++;
    this.asyncWrites += r.sim.asyncWrites;
    this.stepsDuringWrite += r.sim.stepsDuringWrite;
    this.ticksDuringWrite += r.sim.ticksDuringWrite;
    this.crashesDuringWrite += r.sim.crashesDuringWrite;
    this.tornWrites += r.sim.tornWrites;
    this.readsStarted += r.sim.readsStarted;
    this.readsConfirmed += r.sim.readsConfirmed;
    this.readsServed += r.sim.readsServed;
    this.readsAbandoned += r.sim.readsAbandoned;
    this.snapshotsTaken += r.sim.snapshotsTaken;
    this.snapshotsSent += r.sim.snapshotsSent;
    this.snapshotsFailed += r.sim.snapshotsReportedFailed;
    this.snapshotsInstalled += r.sim.snapshotsInstalled;
    this.restartsFromSnapshot += r.sim.restartsFromSnapshot;
    this.crashesDuringSnapshotTake += r.sim.crashesDuringSnapshotTake;
    this.crashesDuringSnapshotInstall += r.sim.crashesDuringSnapshotInstall;
  }

  line(wallMs: number): string {
    const f = FAULT_KINDS.map((k) => `${k}:${this.faults[k]}`).join(" ");
    const mem = MEMBER_OPS.map((k) => `${k}:${this.members[k]}`).join(" ");
    const ends = [...this.finalVoters].sort((a, b) => a[0] - b[0]).map(([v, n]) => `${v}:${n}`)
      .join(" ");
    return `random raft: ${this.seeds} seeds (3 nodes: ${this.sizes[3]}, 5 nodes: ` +
      `${this.sizes[5]}), ${this.failed.length} failed; faults ${f}; membership ${mem} ` +
      `(refused ${this.membersRefused}), conf changes applied ${this.confChangesApplied}, ` +
      `voters at the end (count:seeds) ${ends}; proposals ` +
      `${this.proposals} (not leader: ${this.rejected}), committed ${this.committed}; virtual ` +
      `time ${(this.virtualMs / 1000).toFixed(1)} s; worst after heal: leader in ` +
      `${this.worstLeaderTicks} ticks, commit in ${this.worstCommitTicks} ticks; writes in ` +
      `flight: ${this.asyncWrites} in ${this.asyncSeeds} seeds, messages stepped during them ` +
      `${this.stepsDuringWrite}, ticks ${this.ticksDuringWrite}, crashes ${this.crashesDuringWrite}` +
      ` (torn ${this.tornWrites}); reads started ${this.readsStarted}, confirmed and checked ` +
      `${this.readsConfirmed}, served ${this.readsServed}, abandoned ${this.readsAbandoned}; ` +
      `snapshots taken ${this.snapshotsTaken}, sent ${this.snapshotsSent} (lost ` +
      `${this.snapshotsFailed}), installed ${this.snapshotsInstalled}, restarts from one ` +
      `${this.restartsFromSnapshot}, crashes while taking one ${this.crashesDuringSnapshotTake}, ` +
      `while installing one ${this.crashesDuringSnapshotInstall}; wall ` +
      `${(wallMs / 1000).toFixed(1)} s`;
  }
}

const onlySeed = Deno.env.get("RAFT_SEED");
const seedCount = Number(Deno.env.get("RAFT_SEEDS") ?? "500");
const BATCH = 50;

if (onlySeed !== undefined) {
  Deno.test(`random raft: replay seed ${onlySeed}`, () => {
    const seed = Number(onlySeed);
    assert.ok(Number.isInteger(seed), `RAFT_SEED must be an integer, got "${onlySeed}"`);
    const started = performance.now();
    const r = runSeed(seed, 1_000_000);
    const totals = new Totals();
    totals.add(r);
    console.log(totals.line(performance.now() - started));
  });
} else {
  Deno.test(`random raft: ${seedCount} seeds of faults, safety checked at every step`, async (t) => {
    assert.ok(Number.isInteger(seedCount) && seedCount > 0, `bad RAFT_SEEDS "${seedCount}"`);
    const totals = new Totals();
    const started = performance.now();
    for (let lo = 1; lo <= seedCount; lo += BATCH) {
      const hi = Math.min(seedCount, lo + BATCH - 1);
      await t.step(`seeds ${lo}-${hi}`, () => {
        const failures: SeedFailure[] = [];
        for (let seed = lo; seed <= hi; seed++) {
          try {
            totals.add(runSeed(seed, 2000));
          } catch (e) {
            if (!(e instanceof SeedFailure)) throw e;
            failures.push(e);
            totals.failed.push(seed);
          }
        }
        if (failures.length > 0) {
          const others = failures.slice(1).map((f) =>
            `${f.report.split("\n").slice(0, 2).join("\n")}\n  replay: ${replayCommand(f.seed)}`
          );
          throw new Error(
            `${failures.length} seed(s) failed: ${failures.map((f) => f.seed).join(", ")}\n\n` +
              `${failures[0]!.report}\n\n${others.join("\n")}`,
          );
        }
      });
    }
    console.log(totals.line(performance.now() - started));
  });
}

/**
 * Bugs injected on purpose, to show that the runs see them. Each replaces one
 * core method for the duration of its search and gives it back afterwards.
 */
const MUTANTS: readonly {
  readonly bug: string;
  readonly property: string;
  readonly inject: () => () => void;
}[] = [
  {
    bug: "a read confirmed without a quorum",
    property: "Linearizable Reads",
    inject: () => {
      const release = ReadOnly.prototype.release;
      // Every pending read is confirmed at once, as if the leader's own ack were a quorum.
      ReadOnly.prototype.release = function (this: ReadOnly): void {
        for (const p of this.pending.splice(0)) {
          this.ready.push({ requestId: p.requestId, index: p.index });
        }
      };
      return () => {
        ReadOnly.prototype.release = release;
      };
    },
  },
  {
    bug: "a read that skips the wait for a current-term commit",
    property: "Linearizable Reads",
    inject: () => {
      const readIndex = Raft.prototype.readIndex;
      // A new leader's commit index may be behind what its predecessor committed
      // (§6.4 step 1); registering the read at it anyway is the bug.
      Raft.prototype.readIndex = function (this: Raft, requestId: number): void {
        if (this.role !== "leader") throw new NotLeaderError(this.lead);
        this.readOnly.add(requestId, this.log.committed);
      };
      return () => {
        Raft.prototype.readIndex = readIndex;
      };
    },
  },
  {
    bug: "a follower that keeps its log when it holds the snapshot's index, whatever the term",
    property: "State Machine Safety",
    inject: () => {
      const restore = Raft.prototype.restore;
      // Figure 13 step 6 keeps the log only if the entry at the snapshot's index
      // has the snapshot's term; skipping the term check commits a stale entry.
      Raft.prototype.restore = function (this: Raft, snap: Snapshot): boolean {
        const { index } = snap.meta;
        if (index > this.log.committed && index <= this.log.lastIndex()) {
          this.log.commitTo(index);
          return false;
        }
        return restore.call(this, snap);
      };
      return () => {
        Raft.prototype.restore = restore;
      };
    },
  },
  {
    bug: "a joint configuration that commits on a majority of its incoming half alone",
    property: "Configuration Safety",
    inject: () => {
      const committed = ProgressTracker.prototype.committed;
      // Dissertation §4.3: under joint consensus agreement needs a majority of
      // C_old AND of C_new; counting C_new alone lets C_new decide by itself.
      ProgressTracker.prototype.committed = function (this: ProgressTracker): number {
        return jointCommittedIndex(
          { incoming: this.config.incoming, outgoing: [] },
          (id) => this.progress.get(id)?.match ?? 0,
        );
      };
      return () => {
        ProgressTracker.prototype.committed = committed;
      };
    },
  },
];

/** How many seeds a mutant's search may take before the runs are judged blind to it. */
const MUTANT_SEEDS = 300;

if (onlySeed === undefined) {
  for (const mutant of MUTANTS) {
    Deno.test(`random raft: the runs catch ${mutant.bug}`, () => {
      const restore = mutant.inject();
      let caught: { seed: number; failure: SeedFailure } | undefined;
      try {
        for (let seed = 1; seed <= MUTANT_SEEDS && caught === undefined; seed++) {
          try {
            runSeed(seed, 200);
          } catch (e) {
            if (!(e instanceof SeedFailure)) throw e;
            caught = { seed, failure: e };
          }
        }
      } finally {
        restore();
      }
      assert.ok(caught !== undefined, `no seed in 1..${MUTANT_SEEDS} caught ${mutant.bug}`);
      const cause = caught.failure.cause;
      assert.ok(
        cause instanceof InvariantViolation && cause.property === mutant.property,
        `seed ${caught.seed} failed, but not on ${mutant.property}:\n${caught.failure.report}`,
      );
      console.log(`caught at seed ${caught.seed}: ${cause.message}`);
    });
  }
}
