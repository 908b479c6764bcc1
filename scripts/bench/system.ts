/**
 * What the bench needs of a system under test (raftkv or etcd), so one load
 * generator drives both the same way: how to open a gRPC channel to a member, the
 * RPC of each operation with its requests serialized in advance, a check of each
 * answer, and the pids whose CPU time is the system's cost.
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import type * as grpc from "@grpc/grpc-js";

/** The operations the bench can measure. */
export const OPS = ["put", "get", "put-follower", "get-follower"] as const;
/** One operation: a put or a linearizable get, sent to the leader or to a follower. */
export type Op = typeof OPS[number];

/** One unary RPC of an operation, with every request serialized before the run. */
export interface UnaryOp {
  /** The gRPC method path, `/etcdserverpb.KV/Put`. */
  readonly path: string;
  /** The member the calls go to, `127.0.0.1:port`. */
  readonly address: string;
  /** The serialized request for key number `i` (0 <= i < keys). */
  request(i: number): Buffer;
  /** Undefined when the serialized answer is right, else what is wrong with it. */
  check(response: Buffer): string | undefined;
}

/** A running cluster of one system. */
export interface SystemUnderTest {
  /** "raftkv" or "etcd". */
  readonly name: string;
  /** What was run: a version, a commit, a path. */
  readonly description: string;
  /** The pid of every member's server process. */
  readonly pids: readonly number[];
  /** A new channel (its own HTTP/2 connection) to `address`. */
  channel(address: string): grpc.Client;
  /** The RPC that performs `op`. */
  op(op: Op): UnaryOp;
  /** Stops every member (SIGKILL: the data is thrown away). */
  stop(): Promise<void>;
}

/** The key every system is written and read at for key number `i`: `bench/000042`. */
export function benchKey(i: number): string {
  return `bench/${String(i).padStart(6, "0")}`;
}
