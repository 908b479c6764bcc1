/**
 * `raftkv.v1.KVService`: the public key-value API. Writes are proposed to the
 * Raft log and answered only once committed and applied; reads are
 * linearizable through ReadIndex (dissertation §6.4); writes in a client session
 * are applied exactly once (dissertation §6.3).
 *
 * @module
 */

import { create, fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  CompareAndSwapResponseSchema,
  DeleteResponseSchema,
  GetResponseSchema,
  KVService,
  OpenSessionResponseSchema,
  PutResponseSchema,
  type Session,
  TxnResponseSchema,
} from "../gen/raftkv/v1/kv_pb.ts";
import { CommandSchema } from "../gen/raftkv/v1/raft_pb.ts";
import { encodeCommand } from "../kv/command.ts";
import type { ApplyResult } from "../kv/store.ts";
import { checkTxn } from "../kv/txn.ts";
import { KvInputError, validateKey, validateLeaseId, validateValue } from "../kv/validate.ts";
import { checkSession, expectKind } from "./kv_apply.ts";
import { leaseHandlers } from "./kv_lease.ts";
import { rangeHandler } from "./kv_range.ts";
import type { Lessor } from "./lessor.ts";
import type { RaftKvNode } from "./node.ts";
import { watchHandler } from "./watch.ts";
import type { WatchHub } from "../kv/watch_hub.ts";
import type { Router } from "./route.ts";

type Op = MessageInitShape<typeof CommandSchema>["op"];

/** Checks input the way the store requires, as INVALID_ARGUMENT. */
function checked(check: () => void): void {
  try {
    check();
  } catch (err) {
    if (err instanceof KvInputError) throw new ConnectError(err.message, Code.InvalidArgument);
    throw err;
  }
}

/** The KVService implementation for one node. */
export function kvService(
  node: RaftKvNode,
  router: Router,
  watches: WatchHub,
  lessor: Lessor,
): ServiceImpl<typeof KVService> {
  /**
   * Proposes `op` on this node, the leader, stamped with the leader's clock (the
   * log's time, for session expiry) and the request's session, and waits for it
   * to be applied (the promise's `result`). With `keep`, the command is handed to the node as well, to be
   * applied as it is rather than decoded again (node.propose): `op` must then own
   * its bytes (no view into a request's buffer).
   */
  const propose = (
    op: Op,
    session: Session | undefined,
    signal: AbortSignal,
    keep: boolean,
  ): Promise<{ result: ApplyResult }> => {
    const command = create(CommandSchema, {
      sessionId: session?.id ?? 0n,
      sequence: session?.sequence ?? 0n,
      timeMs: BigInt(Date.now()),
      op,
    });
    const data = encodeCommand(command);
    return node.propose(data, signal, keep ? command : undefined);
  };
  /** {@link propose}'s outcome: what applying `op` produced. */
  const apply = async (
    op: Op,
    session: Session | undefined,
    signal: AbortSignal,
    keep = false,
  ): Promise<ApplyResult> => (await propose(op, session, signal, keep)).result;

  return {
    ...rangeHandler(node, router),
    ...watchHandler(watches),
    ...leaseHandlers(node, router, lessor, apply),

    put(req, ctx) {
      checked(() => {
        validateKey(req.key);
        validateValue(req.value);
        validateLeaseId(req.lease);
      });
      checkSession(req.session);
      return router.route(
        ctx,
        async (signal) => {
          // The value copied: the command is kept until applied (apply's `keep`), and
          // the request's bytes are a view into the body's buffer, a node Buffer, whose
          // own slice() is a view too: a new Uint8Array of it is a copy.
          const op: Op = {
            case: "put",
            value: { key: req.key, value: new Uint8Array(req.value), lease: req.lease },
          };
          // propose, not apply: one async function fewer per put (issue 11's heap profile).
          const put = expectKind((await propose(op, req.session, signal, true)).result, "put");
          return create(PutResponseSchema, { index: BigInt(put.index) });
        },
        (client, opts) => client.put(req, opts),
      );
    },

    get(req, ctx) {
      checked(() => validateKey(req.key));
      return router.route(
        ctx,
        async (signal) => {
          await node.linearizableRead(signal);
          // The store's own buffer, not a copy: the answer is encoded, never changed.
          const got = node.kv.readRecord(req.key);
          return create(GetResponseSchema, {
            found: got !== undefined,
            value: got?.value ?? new Uint8Array(),
            createIndex: BigInt(got?.createIndex ?? 0),
            modIndex: BigInt(got?.modIndex ?? 0),
            lease: BigInt(got?.lease ?? 0),
          });
        },
        (client, opts) => client.get(req, opts),
      );
    },

    delete(req, ctx) {
      checked(() => validateKey(req.key));
      checkSession(req.session);
      return router.route(
        ctx,
        async (signal) => {
          const op: Op = { case: "delete", value: { key: req.key } };
          const del = expectKind(await apply(op, req.session, signal), "delete");
          return create(DeleteResponseSchema, { deleted: del.deleted });
        },
        (client, opts) => client.delete(req, opts),
      );
    },

    compareAndSwap(req, ctx) {
      checked(() => {
        validateKey(req.key);
        validateValue(req.value);
        if (req.expected !== undefined) validateValue(req.expected);
      });
      checkSession(req.session);
      return router.route(
        ctx,
        async (signal) => {
          const op: Op = {
            case: "compareAndSwap",
            value: { key: req.key, value: req.value, expected: req.expected },
          };
          const cas = expectKind(await apply(op, req.session, signal), "cas");
          return create(CompareAndSwapResponseSchema, {
            succeeded: cas.succeeded,
            found: cas.found,
            value: cas.value,
          });
        },
        (client, opts) => client.compareAndSwap(req, opts),
      );
    },

    txn(req, ctx) {
      checked(() => checkTxn(req));
      checkSession(req.session);
      return router.route(
        ctx,
        async (signal) => {
          // The session travels in the command's own fields, not inside the op.
          const op: Op = { case: "txn", value: { ...req, session: undefined } };
          const txn = expectKind(await apply(op, req.session, signal), "txn");
          return fromBinary(TxnResponseSchema, txn.response);
        },
        (client, opts) => client.txn(req, opts),
      );
    },

    openSession(req, ctx) {
      return router.route(
        ctx,
        async (signal) => {
          const opened = expectKind(
            await apply({ case: "openSession", value: {} }, undefined, signal),
            "session_opened",
          );
          return create(OpenSessionResponseSchema, { sessionId: BigInt(opened.id) });
        },
        (client, opts) => client.openSession(req, opts),
      );
    },
  };
}
