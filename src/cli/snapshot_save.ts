/**
 * `deno task client snapshot save FILE`: a backup of the cluster's state (etcd's
 * `etcdctl snapshot save`). It streams ClusterService/SnapshotSave from the first
 * endpoint that serves it into `FILE.part`, makes that durable, reads it back and
 * checks it as a node would (src/snapshot/file.ts: magic, version, lengths,
 * CRC-32C, and the index and term the node announced), and only then renames it to
 * FILE. So FILE, once it exists, is a whole, verified snapshot; a failed save leaves
 * no FILE and removes its `.part`. `deno task node --restore FILE` starts a new
 * cluster from it (README, "Backup and restore").
 *
 * A node serves the state it has applied; a follower's may lag the leader's by a
 * little. List the leader first in --endpoints for the newest state.
 *
 * @module
 */

import { dirname } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { decodeSnapshotFile, SnapshotCorruptionError } from "../snapshot/file.ts";
import { cannotConnect, shortReason } from "../client/reasons.ts";
import { type CommandOutput, EXIT, type RunOptions } from "./commands.ts";

/** What one endpoint sent. */
interface Received {
  readonly index: bigint;
  readonly term: bigint;
  readonly size: number;
}

function usage(stderr: string): CommandOutput {
  return { stdout: "", stderr: `error: ${stderr}\n`, exitCode: EXIT.USAGE };
}

function failure(stderr: string): CommandOutput {
  return { stdout: "", stderr: `error: ${stderr}\n`, exitCode: EXIT.FAILED };
}

/** Why `file` cannot be written, in words, from a Deno file-system error. */
function fsReason(err: unknown, path: string): string {
  if (err instanceof Deno.errors.NotFound) return `directory ${dirname(path)} does not exist`;
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (err instanceof Deno.errors.NotCapable) {
    return "Deno's permissions do not allow writing there";
  }
  if (err instanceof Deno.errors.IsADirectory) return "it is a directory";
  return err instanceof Error ? err.message : String(err);
}

/** Saves a snapshot from the first endpoint that serves one into `file`. */
export async function runSnapshotSave(file: string, opts: RunOptions): Promise<CommandOutput> {
  const part = `${file}.part`;
  try {
    if ((await Deno.stat(file)).isDirectory) {
      return usage(`Cannot save snapshot to ${file}: it is a directory`);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      return usage(`Cannot save snapshot to ${file}: ${fsReason(err, file)}`);
    }
  }
  // Created before any byte is asked for, so a path that cannot be written is
  // reported at once, not after the transfer.
  let out: Deno.FsFile;
  try {
    out = await Deno.open(part, { write: true, create: true, truncate: true, mode: 0o600 });
  } catch (err) {
    return usage(`Cannot save snapshot to ${file}: cannot create ${part}: ${fsReason(err, part)}`);
  }
  let received: Received | undefined;
  let from = "";
  const errors: string[] = [];
  const deadline = (opts.now ?? Date.now)() + opts.timeoutMs;
  try {
    for (const endpoint of opts.endpoints) {
      const left = deadline - (opts.now ?? Date.now)();
      if (left <= 0) {
        errors.push(`${endpoint}: not tried, the time budget ran out`);
        continue;
      }
      try {
        await out.truncate(0);
        await out.seek(0, Deno.SeekMode.Start);
        received = await download(opts.clients(endpoint).cluster, out, left);
        from = endpoint;
        break;
      } catch (err) {
        if (err instanceof LocalWriteError) throw err;
        errors.push(`${endpoint}: ${shortReason(err)}`);
        if (!cannotConnect(err) && ConnectError.from(err).code !== Code.Unavailable) break;
      }
    }
    if (received === undefined) {
      out.close();
      await Deno.remove(part).catch(() => {});
      return failure(`Cannot save snapshot: no endpoint served one\n  ${errors.join("\n  ")}`);
    }
    await out.sync();
    out.close();
  } catch (err) {
    try {
      out.close();
    } catch { /* already closed */ }
    await Deno.remove(part).catch(() => {});
    if (err instanceof LocalWriteError) {
      return failure(`Cannot save snapshot to ${file}: ${fsReason(err.cause, part)}`);
    }
    throw err;
  }

  // Read back what is on disk, as a node restoring it would.
  try {
    const snapshot = decodeSnapshotFile(await Deno.readFile(part), part);
    if (
      BigInt(snapshot.meta.index) !== received.index || BigInt(snapshot.meta.term) !== received.term
    ) {
      throw new SnapshotCorruptionError(
        part,
        `it holds ${snapshot.meta.term}/${snapshot.meta.index}, the node announced ` +
          `${received.term}/${received.index}`,
      );
    }
    await Deno.rename(part, file);
  } catch (err) {
    await Deno.remove(part).catch(() => {});
    if (err instanceof SnapshotCorruptionError) {
      return failure(`the snapshot from ${from} does not check out: ${err.message}`);
    }
    return failure(`Cannot save snapshot to ${file}: ${fsReason(err, file)}`);
  }
  // The rename is durable once the directory is (best effort: not every platform
  // lets a directory be opened for sync).
  try {
    const dir = await Deno.open(dirname(file), { read: true });
    try {
      await dir.sync();
    } finally {
      dir.close();
    }
  } catch { /* best effort */ }
  return {
    stdout: `Saved snapshot at index ${received.index}, term ${received.term} ` +
      `(${received.size} bytes) from ${from} to ${file}\n`,
    stderr: "",
    exitCode: EXIT.OK,
  };
}

/** A write to the local file failed: not the endpoint's fault, no other endpoint will help. */
class LocalWriteError extends Error {
  override name = "LocalWriteError";
}

/** Streams one endpoint's snapshot into `out`; throws on any trouble. */
async function download(
  cluster: ReturnType<RunOptions["clients"]>["cluster"],
  out: Deno.FsFile,
  timeoutMs: number,
): Promise<Received> {
  let header: Received | undefined;
  let written = 0;
  for await (const res of cluster.snapshotSave({}, { timeoutMs })) {
    if (header === undefined) {
      const size = Number(res.size);
      if (res.index === 0n || size === 0 || !Number.isSafeInteger(size)) {
        throw new ConnectError(
          `the first response announced index ${res.index} and size ${res.size}`,
          Code.Internal,
        );
      }
      header = { index: res.index, term: res.term, size };
    }
    if (written + res.chunk.length > header.size) {
      throw new ConnectError(
        `the node sent more than the ${header.size} bytes it announced`,
        Code.Internal,
      );
    }
    try {
      for (let n = 0; n < res.chunk.length;) n += await out.write(res.chunk.subarray(n));
    } catch (err) {
      throw new LocalWriteError("write failed", { cause: err });
    }
    written += res.chunk.length;
  }
  if (header === undefined) throw new ConnectError("the node sent nothing", Code.Internal);
  if (written !== header.size) {
    throw new ConnectError(
      `the stream ended after ${written} of the ${header.size} bytes announced`,
      Code.DataLoss,
    );
  }
  return header;
}
