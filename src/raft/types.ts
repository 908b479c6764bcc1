/**
 * The vocabulary of the Raft core: node ids, log entries, the persistent hard
 * state, snapshots, and the one message type every protocol exchange uses.
 *
 * Terms and indexes are plain `number`s: they are safe up to 2^53, far beyond
 * any log this process will hold. The gRPC edge (protobuf `uint64`, which
 * protoc-gen-es maps to `bigint`) converts in one codec, nowhere else.
 *
 * @module
 */

/** A node's identity inside a cluster: a positive integer. 0 means "none". */
export type NodeId = number;

/** The absence of a node id (no leader known, no vote cast). */
export const NONE: NodeId = 0;

/**
 * What an entry carries: a command for the state machine (`normal`), or a
 * membership change (`conf_change`, whose data is `encodeConfChange(cc)`, see
 * confchange/codec.ts). A conf change takes effect when the application applies
 * its entry and calls `RawNode.applyConfChange` (etcd-io/raft's design).
 */
export type EntryType = "normal" | "conf_change";

/** One slot of the replicated log (Figure 2: "log[]"). */
export interface Entry {
  /** The term of the leader that created the entry. */
  readonly term: number;
  /** The position in the log, starting at 1. */
  readonly index: number;
  readonly type: EntryType;
  /** The command for the state machine; empty for the no-op a new leader appends (§8). */
  readonly data: Uint8Array;
}

/**
 * The state that must be on stable storage before a node answers any RPC
 * (Figure 2, "Persistent state on all servers"), plus the commit index, kept so a
 * restarted node need not rediscover it.
 */
export interface HardState {
  readonly term: number;
  /** The candidate voted for in `term`, or {@link NONE}. */
  readonly vote: NodeId;
  readonly commit: number;
}

/** The hard state of a node that has never run. */
export const EMPTY_HARD_STATE: HardState = { term: 0, vote: NONE, commit: 0 };

/**
 * A cluster membership (etcd-io/raft's `ConfState`): who votes, who only
 * learns. While a joint configuration is in force (dissertation §4.3), decisions
 * need a majority of `voters` (the incoming configuration) AND of
 * `votersOutgoing`. Every list is in ascending order; an id is in at most one of
 * `voters` and `learners`, and every id of `learnersNext` is in `votersOutgoing`.
 */
export interface ConfState {
  /** The incoming (or only) majority configuration. */
  readonly voters: readonly NodeId[];
  /** Members that receive the log and snapshots but never vote or count (etcd's Learners). */
  readonly learners: readonly NodeId[];
  /** The outgoing majority configuration; non-empty only while joint. */
  readonly votersOutgoing: readonly NodeId[];
  /** Voters being demoted to learners: they become learners when the joint state is left. */
  readonly learnersNext: readonly NodeId[];
  /** Leave the joint state automatically once it is applied (etcd's AutoLeave). */
  readonly autoLeave: boolean;
}

/** A simple (not joint) configuration of `voters` and `learners`, each sorted. */
export function confStateOf(
  voters: readonly NodeId[],
  learners: readonly NodeId[] = [],
): ConfState {
  return {
    voters: [...voters].sort((a, b) => a - b),
    learners: [...learners].sort((a, b) => a - b),
    votersOutgoing: [],
    learnersNext: [],
    autoLeave: false,
  };
}

/** Every member of `cs` (voters of either half and learners), ascending, without repeats. */
export function confMembers(cs: ConfState): NodeId[] {
  return [...new Set([...cs.voters, ...cs.votersOutgoing, ...cs.learners, ...cs.learnersNext])]
    .sort((a, b) => a - b);
}

/** What one step of a membership change does to one node. */
export type ConfChangeType = "add_voter" | "add_learner" | "remove";

/** One node's part of a {@link ConfChange}. */
export interface ConfChangeSingle {
  readonly type: ConfChangeType;
  readonly nodeId: NodeId;
}

/**
 * A membership change (etcd-io/raft's ConfChangeV2). With `transition: "auto"`,
 * a single change is made directly (one voter at a time is safe, §4.1) and
 * several enter a joint configuration that is left automatically once applied;
 * with `"explicit"` the joint configuration stays until a change with no
 * `changes` (the "leave joint" change) is applied.
 */
export interface ConfChange {
  readonly changes: readonly ConfChangeSingle[];
  readonly transition: "auto" | "explicit";
  /** Opaque to the core; the runtime puts the member's address etc. here. */
  readonly context: Uint8Array;
  /**
   * Set by the core, not by the proposer: the configuration the leader
   * validated the change against, carried in the entry so that a node that
   * joined with an empty configuration can apply it too (see confchange/codec.ts).
   * Pass what `decodeConfChange` returns to `applyConfChange` as it is.
   */
  readonly base?: ConfState;
}

/**
 * What a snapshot stands for (§7): the log up to and including `index`, whose
 * entry there had `term`, applied to the state machine, under membership `conf`.
 * After it, the log need not hold any entry at or below `index`: only the term at
 * `index` is remembered, for the consistency check of the entry after it.
 */
export interface SnapshotMeta {
  /** The last index the snapshot covers (the paper's "last included index"). */
  readonly index: number;
  /** The term of the entry at `index` ("last included term"). */
  readonly term: number;
  /** The membership as of `index` (the paper's "latest configuration as of that index"). */
  readonly conf: ConfState;
}

/**
 * A state-machine snapshot: its metadata and the application's bytes. The core
 * never looks inside `data`; the runtime produces it from its state machine
 * (after applying up to `meta.index`) and restores the state machine from it.
 */
export interface Snapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

/** True for the "no snapshot" value (index 0): nothing is compacted. */
export function isEmptySnapshot(s: Snapshot): boolean {
  return s.meta.index === 0;
}

/** A node's role (§5.1). `pre_candidate` is the PreVote phase (dissertation §9.6). */
export type Role = "follower" | "pre_candidate" | "candidate" | "leader";

/**
 * Every message the core sends or receives. Local messages (`hup`, `beat`,
 * `check_quorum`) never cross the network; the core raises them itself.
 */
export type MessageType =
  /** AppendEntries request; with no entries it still carries the consistency check. */
  | "app"
  /** AppendEntries response. */
  | "app_resp"
  /** RequestVote request (§5.2). */
  | "vote"
  | "vote_resp"
  /** PreVote request: "would you vote for me?", with no term change (dissertation §9.6). */
  | "pre_vote"
  | "pre_vote_resp"
  /** Heartbeat: an empty AppendEntries that asserts leadership and carries the commit index. */
  | "heartbeat"
  | "heartbeat_resp"
  /**
   * InstallSnapshot request (§7, Figure 13): the leader no longer holds the
   * entries this follower needs, so it sends its snapshot instead (etcd's MsgSnap).
   * The follower answers with an `app_resp`.
   */
  | "snap"
  /**
   * Leadership transfer (dissertation §3.10): the leader tells the transferee,
   * whose log it has brought up to date, to campaign now (etcd's MsgTimeoutNow).
   */
  | "timeout_now"
  /**
   * A request to transfer leadership to node `context` (etcd's
   * MsgTransferLeader), forwarded by a follower to its leader.
   */
  | "transfer_leader";

/**
 * One protocol message. Which fields mean what depends on `type`:
 *
 * | type            | index / logTerm                          | other fields                         |
 * |-----------------|------------------------------------------|--------------------------------------|
 * | app             | prevLogIndex / prevLogTerm               | entries, commit                      |
 * | app_resp        | accepted: last index matched; rejected: the rejected prevLogIndex | reject, rejectHint, logTerm (hint term) |
 * | vote, pre_vote  | candidate's lastLogIndex / lastLogTerm   | context: 1 on a leadership transfer's campaign |
 * | *_resp (votes)  | rejected: commit's term in logTerm       | reject, commit (the voter's)         |
 * | heartbeat       | unused                                   | commit (capped at the follower's match), context |
 * | heartbeat_resp  | unused                                   | context (echoed)                     |
 * | snap            | unused                                   | snapshot                             |
 * | timeout_now     | unused                                   |                                      |
 * | transfer_leader | unused                                   | context: the transferee              |
 *
 * `snapshot` is set on `snap` messages only; every other type leaves it absent.
 */
export interface Message {
  readonly type: MessageType;
  readonly from: NodeId;
  readonly to: NodeId;
  /** The sender's term; for `pre_vote` the term the sender would campaign in. */
  readonly term: number;
  readonly index: number;
  readonly logTerm: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
  readonly reject: boolean;
  /**
   * On a rejected `app_resp`: the follower's best guess of where logs may agree,
   * the largest index `<= index` whose term is `<= logTerm` of the request
   * (fast back-up, §5.3 "the follower can include the term of the conflicting entry").
   */
  readonly rejectHint: number;
  /**
   * On `heartbeat` and `heartbeat_resp`: the leader's ReadIndex round, echoed by
   * the follower (see read_only.ts).
   */
  readonly context: number;
  /** On `snap`: the snapshot to install. Absent on every other type. */
  readonly snapshot?: Snapshot;
}

/**
 * Builds a message, defaulting every field the type does not use. `snapshot` is
 * left absent unless given (only `snap` messages carry one).
 */
export function message(
  fields: Pick<Message, "type" | "from" | "to"> & Partial<Message>,
): Message {
  return {
    term: 0,
    index: 0,
    logTerm: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: 0,
    ...fields,
  };
}

/** True for the messages a node answers with its own term and vote (elections). */
export function isVoteRequest(type: MessageType): boolean {
  return type === "vote" || type === "pre_vote";
}

/** The response type that answers a vote request. */
export function voteResponseType(type: MessageType): MessageType {
  if (type === "vote") return "vote_resp";
  if (type === "pre_vote") return "pre_vote_resp";
  throw new Error(`not a vote request: ${type}`);
}
