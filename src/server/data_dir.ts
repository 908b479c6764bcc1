/**
 * A node's data directory: the lock that keeps it to one process, the identity of
 * the cluster member it holds, and its write-ahead log.
 *
 * ```
 * <data-dir>/LOCK           locked (flock) while a node runs on the directory; 0600
 * <data-dir>/identity.json  node id, cluster id and members it was bootstrapped with; 0600
 * <data-dir>/wal/           the write-ahead log (src/wal/); 0700
 * <data-dir>/snap/          snapshots of the state machine (src/snapshot/store.ts); 0700
 * ```
 *
 * **Snapshots.** The WAL holds only the entries after (or a little before) the
 * newest snapshot, so the two are opened together: the newest snapshot that passes
 * its checks is loaded first, and the WAL is opened knowing its index (the WAL
 * refuses a gap between the snapshot and its first entry). A damaged newest
 * snapshot is set aside (renamed `.broken`) and an older one used only when the
 * WAL still holds every entry after the older one; otherwise the node refuses to
 * start, naming the damaged file and its damage. It never runs on a state that
 * silently lacks entries.
 *
 * **Identity.** A data dir belongs to one member of one cluster. etcd records the
 * member and cluster ids in its WAL and, once data exists, refuses or ignores the
 * flags that would bootstrap another cluster; without that, a node restarted with
 * other `--peers` (say, alone) elects itself on a log that belongs to a bigger
 * cluster, and two nodes apply different entries at one index (issue 16). So the
 * first start on an empty data dir writes `identity.json`, and every later start
 * compares the flags with it (the node id, the cluster id, the set of member ids
 * and their addresses) and refuses, saying what the directory holds and what to do,
 * if they differ. `--peers` only bootstraps an empty data dir.
 *
 * **Bootstrap.** The WAL is created first (built in `wal.tmp`, renamed, the data
 * dir fsynced: see `Wal.create`), then the identity (written to a temp file,
 * fsynced, renamed, the data dir fsynced). A crash between the two leaves a WAL
 * with no identity, which the next start takes as a data dir made before identity
 * files existed: it records the identity from the flags, with a warning, as it does
 * for such old data dirs. The other way round (an identity and no WAL) is never a
 * crash's doing: the WAL, and with it the node's term and vote, was lost, and
 * starting as a new node could vote twice in a term. That is refused.
 *
 * **Durability.** Directories the node creates, the data dir included, are 0700,
 * and each one's parent is fsynced so that it survives a power loss. `deno task
 * node` grants Deno access to `./data` only, so the directory above a data dir it
 * creates cannot be opened to be fsynced: that is logged, and the new name becomes
 * durable with the file system's next metadata commit (seconds on ext4). Create
 * the data dir beforehand (deployments do: it is a volume) to avoid the window.
 *
 * @module
 */

import { basename, join } from "node:path";
import type { Logger } from "../raft/logger.ts";
import { EMPTY_HARD_STATE, type NodeId, type Snapshot } from "../raft/types.ts";
import { SNAP_DIR, SnapshotStore } from "../snapshot/store.ts";
import {
  exists,
  FILE_MODE,
  fsync,
  mkdirDurable,
  type SyncFn,
  Wal,
  WalCorruptionError,
  type WalIo,
  type WalRecovery,
  writeFileAtomic,
} from "../wal/mod.ts";
import type { PeerAddress } from "./transport.ts";

/** The name of the identity file in a data dir. */
export const IDENTITY_FILE = "identity.json";

/** The name of the WAL directory in a data dir. */
export const WAL_DIR = "wal";

/**
 * The size at which the node's WAL starts a new segment: 4 MiB, not the WAL's
 * 64 MiB default (etcd's). Compaction deletes whole segments only, so the segment
 * size is how much stale log a data dir may carry behind its snapshot and read
 * again at every start; at a few hundred bytes an entry, 4 MiB is a roll (two
 * more fsyncs) every ten thousand entries or so.
 */
export const WAL_SEGMENT_BYTES = 4 * 1024 * 1024;

/** The name of the lock file in a data dir. */
export const LOCK_FILE = "LOCK";

/** The cluster member a data dir belongs to. */
export interface DataDirIdentity {
  /** This node's id. */
  readonly nodeId: NodeId;
  /** The cluster's name (`--cluster-id`). */
  readonly clusterId: string;
  /** Every member, this node included, at the address this node dials it. */
  readonly peers: ReadonlyMap<NodeId, PeerAddress>;
  /**
   * True for a node that joined a running cluster (`--join`): `peers` is then only
   * where it reached the members when it joined, not a configuration; the
   * configuration comes from the log, and a restart need not repeat `--peers`
   * exactly. Absent (false) for a node that bootstrapped its cluster from `peers`.
   */
  readonly joined?: boolean;
  /**
   * For a node that joined: its cluster's bootstrap voters, the configuration
   * before the log's first entry, once learned from a member (join.ts).
   */
  readonly bootstrap?: readonly NodeId[];
}

/**
 * A data dir that cannot be used: a lock held by another process, flags that
 * disagree with its identity, a missing WAL, an OS error. The message is complete
 * and user-facing ("Cannot use data dir DIR: ...").
 */
export class DataDirError extends Error {
  /** Builds the error with its complete message. */
  constructor(message: string) {
    super(message);
    this.name = "DataDirError";
  }
}

/** Options of {@link openDataDir}. */
export interface OpenDataDirOptions {
  /** The data dir (`--data-dir`); created if absent. */
  readonly dir: string;
  /** Who the flags say this node is. */
  readonly identity: DataDirIdentity;
  /** Where warnings and info lines go. */
  readonly logger: Logger;
  /** Replaces the WAL's file operations and fsyncs, for tests. */
  readonly io?: Partial<WalIo>;
}

/**
 * A data dir in use: its lock (held until closed), its WAL and what the WAL
 * recovered, its snapshot directory and the snapshot to start from.
 */
export interface OpenedDataDir {
  /** The locked LOCK file; closing it releases the data dir. */
  readonly lock: Deno.FsFile;
  readonly wal: Wal;
  readonly recovery: WalRecovery;
  readonly snapshots: SnapshotStore;
  /** The newest valid snapshot, which the WAL continues; undefined if there is none. */
  readonly snapshot: Snapshot | undefined;
  /** Its file. */
  readonly snapshotPath: string | undefined;
  /** The identity the data dir holds (the flags' on a new data dir): how it began. */
  readonly identity: DataDirIdentity;
}

interface OpenedStorage {
  wal: Wal;
  recovery: WalRecovery;
  snapshots: SnapshotStore;
  snapshot: Snapshot | undefined;
  snapshotPath: string | undefined;
  identity: DataDirIdentity;
}

/**
 * Opens a node's data dir: creates it if absent, takes its lock, checks its
 * identity against the flags (or records it, on a new or older data dir), and
 * opens (or, on an empty data dir, creates) its WAL.
 *
 * @throws {DataDirError} when the data dir cannot be used, saying why and what to do
 * @throws {WalCorruptionError} when its WAL is damaged
 */
export async function openDataDir(options: OpenDataDirOptions): Promise<OpenedDataDir> {
  const { dir, logger } = options;
  const sync: SyncFn = options.io?.sync?.bind(options.io) ?? fsync;
  const made = await inDataDir(dir, () => mkdirDurable(dir, sync));
  for (const parent of made.unsynced) {
    logger.warn(
      "cannot fsync the directory holding the new data dir: Deno's permissions do not cover it; " +
        "create the data dir beforehand to be safe from a power loss in the next seconds",
      { dir, parent },
    );
  }
  // Two processes appending to one log would corrupt it: hold an exclusive lock on
  // the data dir for as long as the node runs.
  const lock = await inDataDir(
    dir,
    () => Deno.open(join(dir, LOCK_FILE), { create: true, write: true, mode: FILE_MODE }),
  );
  try {
    if (!(await lock.tryLock(true))) {
      throw new DataDirError(`Cannot use data dir ${dir}: another process holds its lock`);
    }
    const opened = await inDataDir(dir, () => openLocked(options, sync));
    return { lock, ...opened };
  } catch (err) {
    lock.close();
    throw err;
  }
}

async function openLocked(
  options: OpenDataDirOptions,
  sync: SyncFn,
): Promise<OpenedStorage> {
  const { dir, identity, logger } = options;
  const identityPath = join(dir, IDENTITY_FILE);
  const walDir = join(dir, WAL_DIR);
  const walOptions = { logger, io: options.io, segmentBytes: WAL_SEGMENT_BYTES };
  const openSnapshots = () => SnapshotStore.open(join(dir, SNAP_DIR), { logger, sync });
  // A temp file is what a crash during an atomic write leaves; the real file is intact.
  await Deno.remove(`${identityPath}.tmp`).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
  const held = await readIdentity(dir);
  const hasWal = await exists(walDir);

  if (held !== undefined) {
    const differs = identityDifferences(held, identity);
    if (differs.length > 0) throw new DataDirError(mismatchMessage(dir, held, identity, differs));
    if (!hasWal) {
      throw new DataDirError(
        `Cannot use data dir ${dir}: its write-ahead log ${walDir} is missing, but its ` +
          `${IDENTITY_FILE} says it holds ${
            describeIdentity(held)
          }. The node's term, vote and log are ` +
          `gone, and starting it as a new member could let it vote twice in a term. Restore the ` +
          `WAL from a backup, or replace the disk as deploy/README.md says (empty the whole data ` +
          `dir, ${IDENTITY_FILE} included, then start the node with its usual flags)`,
      );
    }
    return {
      ...await openWithSnapshot(dir, walDir, walOptions, await openSnapshots(), logger),
      identity: held,
    };
  }

  if (hasWal) {
    // Open first: a damaged WAL is refused before anything is written.
    const opened = await openWithSnapshot(dir, walDir, walOptions, await openSnapshots(), logger);
    try {
      await writeFileAtomic(identityPath, encodeIdentity(identity), sync);
    } catch (err) {
      await opened.wal.close();
      throw err;
    }
    logger.warn(
      `the data dir has a write-ahead log but no ${IDENTITY_FILE} (it predates identity files, ` +
        `or its first start was cut short): recorded the identity from the flags`,
      { dir, identity: describeIdentity(identity) },
    );
    return { ...opened, identity };
  }

  const wal = await Wal.create(walDir, walOptions);
  let snapshots;
  try {
    await writeFileAtomic(identityPath, encodeIdentity(identity), sync);
    snapshots = await openSnapshots();
  } catch (err) {
    await wal.close();
    throw err;
  }
  logger.info("bootstrapped a new data dir", { dir, identity: describeIdentity(identity) });
  return {
    wal,
    recovery: { hardState: EMPTY_HARD_STATE, entries: [], firstIndex: 1, warnings: [] },
    snapshots,
    snapshot: undefined,
    snapshotPath: undefined,
    identity,
  };
}

/**
 * Loads the newest valid snapshot and opens the WAL after it. A damaged newer
 * snapshot is set aside only if the WAL covers the gap down to the snapshot used
 * (or to index 1); otherwise this refuses with a {@link DataDirError} naming the
 * damaged file, its damage and the WAL's gap.
 */
async function openWithSnapshot(
  dir: string,
  walDir: string,
  walOptions: { logger: Logger; io: Partial<WalIo> | undefined; segmentBytes: number },
  snapshots: SnapshotStore,
  logger: Logger,
): Promise<Omit<OpenedStorage, "identity">> {
  const loaded = await snapshots.loadNewest();
  const snapshotIndex = loaded.snapshot?.meta.index ?? 0;
  let opened;
  try {
    opened = await Wal.open(walDir, { ...walOptions, snapshotIndex });
  } catch (err) {
    const newest = loaded.damaged[0];
    if (!(err instanceof WalCorruptionError) || newest === undefined) throw err;
    const fallback = loaded.path === undefined
      ? "no older snapshot is valid"
      : `the older snapshot ${basename(loaded.path)} is at index ${snapshotIndex}`;
    throw new DataDirError(
      `Cannot use data dir ${dir}: ${newest.error.message}; ${fallback}, and the WAL does not ` +
        `hold every entry after it (${err.message}). The node cannot rebuild its state. ` +
        `Restore the data dir from a backup, or replace the disk as deploy/README.md says ` +
        `(the node then catches up from the leader)`,
    );
  }
  for (const d of loaded.damaged) {
    logger.warn("a snapshot is damaged; starting from an older one, which the WAL continues", {
      file: d.path,
      damage: d.error.message,
      using: loaded.path ?? "none (the WAL from index 1)",
    });
    await snapshots.markBroken(d.path);
  }
  return { ...opened, snapshots, snapshot: loaded.snapshot, snapshotPath: loaded.path };
}

/**
 * Runs one step of opening the data dir, turning an OS error (a file where the
 * directory should be, no permission, a read-only or full disk) into a
 * {@link DataDirError} that names the directory, for main to print without a stack
 * trace. WAL damage and Deno's own permission refusals pass through: main explains
 * those itself.
 */
async function inDataDir<T>(dir: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    if (
      !(err instanceof Error) || typeof code !== "string" || err instanceof Deno.errors.NotCapable
    ) {
      throw err;
    }
    const why = err instanceof Deno.errors.AlreadyExists || err instanceof Deno.errors.NotADirectory
      ? `it, or a directory above it, is a file (${err.message})`
      : err.message;
    throw new DataDirError(`Cannot use data dir ${dir}: ${why}`);
  }
}

// ---- the identity file ---------------------------------------------------------------------------

const FORMAT = "raftkv data dir";
const VERSION = 1;

/** The identity as `identity.json` holds it: JSON, members sorted by id. */
export function encodeIdentity(identity: DataDirIdentity): Uint8Array {
  const peers = [...identity.peers].sort(([a], [b]) => a - b)
    .map(([id, a]) => ({ id, host: a.host, port: a.port }));
  const doc = {
    format: FORMAT,
    version: VERSION,
    nodeId: identity.nodeId,
    clusterId: identity.clusterId,
    peers,
    // Only when set: a bootstrapped node's file stays byte for byte what it was.
    ...(identity.joined === true ? { joined: true } : {}),
    ...(identity.bootstrap !== undefined ? { bootstrap: [...identity.bootstrap] } : {}),
  };
  return new TextEncoder().encode(JSON.stringify(doc, null, 2) + "\n");
}

/** Parses `identity.json`; throws a RangeError naming what is wrong. */
export function decodeIdentity(bytes: Uint8Array): DataDirIdentity {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw new RangeError(`not JSON (${(err as Error).message})`);
  }
  const o = v as Record<string, unknown> | null;
  if (typeof o !== "object" || o === null || Array.isArray(o)) {
    throw new RangeError("not a JSON object");
  }
  if (o.format !== FORMAT) throw new RangeError(`"format" is not "${FORMAT}"`);
  if (o.version !== VERSION) throw new RangeError(`unsupported "version" ${o.version}`);
  const isId = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) > 0;
  if (!isId(o.nodeId)) throw new RangeError(`"nodeId" is not a positive integer`);
  if (typeof o.clusterId !== "string" || o.clusterId === "") {
    throw new RangeError(`"clusterId" is not a non-empty string`);
  }
  if (!Array.isArray(o.peers) || o.peers.length === 0) {
    throw new RangeError(`"peers" is not a non-empty list`);
  }
  const peers = new Map<NodeId, PeerAddress>();
  for (const p of o.peers as unknown[]) {
    const e = p as Record<string, unknown> | null;
    if (
      typeof e !== "object" || e === null || !isId(e.id) || typeof e.host !== "string" ||
      e.host === "" || !Number.isInteger(e.port) || (e.port as number) < 0 ||
      (e.port as number) > 65535
    ) {
      throw new RangeError(`bad member ${JSON.stringify(p)}`);
    }
    if (peers.has(e.id)) throw new RangeError(`member ${e.id} is listed twice`);
    peers.set(e.id, { host: e.host, port: e.port as number });
  }
  if (!peers.has(o.nodeId)) throw new RangeError(`node ${o.nodeId} is not among its members`);
  if (o.joined !== undefined && typeof o.joined !== "boolean") {
    throw new RangeError(`"joined" is not a boolean`);
  }
  let bootstrap: NodeId[] | undefined;
  if (o.bootstrap !== undefined) {
    if (!Array.isArray(o.bootstrap) || o.bootstrap.length === 0 || !o.bootstrap.every(isId)) {
      throw new RangeError(`"bootstrap" is not a non-empty list of node ids`);
    }
    bootstrap = o.bootstrap as NodeId[];
  }
  return {
    nodeId: o.nodeId,
    clusterId: o.clusterId,
    peers,
    ...(o.joined ? { joined: true } : {}),
    ...(bootstrap !== undefined ? { bootstrap } : {}),
  };
}

/** Replaces the identity file of data dir `dir` (atomically, durably). */
export async function writeIdentity(dir: string, identity: DataDirIdentity): Promise<void> {
  await writeFileAtomic(join(dir, IDENTITY_FILE), encodeIdentity(identity), fsync);
}

/**
 * Reads the identity of data dir `dir`, or undefined if it has none.
 * @throws {DataDirError} if the file exists but cannot be parsed
 */
export async function readIdentity(dir: string): Promise<DataDirIdentity | undefined> {
  const path = join(dir, IDENTITY_FILE);
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  try {
    return decodeIdentity(bytes);
  } catch (err) {
    throw new DataDirError(
      `Cannot use data dir ${dir}: its identity file ${path} is damaged (${
        (err as Error).message
      }). If you know which member this data dir belongs to, remove the file and start the ` +
        `node with that member's --id, --cluster-id and --peers: it is written again from them`,
    );
  }
}

/** What differs between two identities: "node id", "cluster id", "member set". */
export function identityDifferences(held: DataDirIdentity, flags: DataDirIdentity): string[] {
  const out: string[] = [];
  if (held.nodeId !== flags.nodeId) out.push("node id");
  if (held.clusterId !== flags.clusterId) out.push("cluster id");
  // A node that joined takes its configuration from the log: its --peers is only an
  // address book, which may grow as the cluster does.
  if (held.joined === true) return out;
  const same = held.peers.size === flags.peers.size &&
    [...held.peers].every(([id, a]) => {
      const b = flags.peers.get(id);
      return b !== undefined && b.host === a.host && b.port === a.port;
    });
  if (!same) out.push("member set");
  return out;
}

function formatAddress(a: PeerAddress): string {
  return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

function formatPeers(peers: ReadonlyMap<NodeId, PeerAddress>): string {
  return [...peers].sort(([a], [b]) => a - b).map(([id, a]) => `${id}=${formatAddress(a)}`)
    .join(",");
}

/** `node 1 of cluster "raftkv" with members 1=127.0.0.1:7001,2=...`. */
export function describeIdentity(identity: DataDirIdentity): string {
  return `node ${identity.nodeId} of cluster ${JSON.stringify(identity.clusterId)} with members ` +
    formatPeers(identity.peers);
}

/** A flag value as a shell word: as is when plain, else single-quoted. */
function shellWord(s: string): string {
  return /^[A-Za-z0-9_.,:=@%+/[\]-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

function mismatchMessage(
  dir: string,
  held: DataDirIdentity,
  flags: DataDirIdentity,
  differs: readonly string[],
): string {
  // The --listen rule (flags.ts) wants this node's own --peers entry to match --listen.
  const self = held.peers.get(held.nodeId)!;
  const flagSelf = flags.peers.get(held.nodeId);
  const listen = flagSelf?.host === self.host && flagSelf.port === self.port
    ? ""
    : ` --listen ${formatAddress(self)}`;
  const flagsFor = `--id ${held.nodeId}${listen} --cluster-id ${shellWord(held.clusterId)} ` +
    `--peers ${shellWord(formatPeers(held.peers))}`;
  return `Cannot use data dir ${dir}: it holds ${describeIdentity(held)}, but the flags say ` +
    `${describeIdentity(flags)} (another ${differs.join(", another ")}). ` +
    `--peers only bootstraps an empty data dir: start this one with ${flagsFor}, or give a new ` +
    `node an empty --data-dir`;
}
