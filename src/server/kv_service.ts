/**
 * `raftkv.v1.KVService`: the public key-value API. Writes are proposed to the
 * Raft log and answered only once committed and applied; reads are
 * linearizable through ReadIndex (dissertation §6.4).
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  CompareAndSwapResponseSchema,
  DeleteResponseSchema,
  GetResponseSchema,
  KVService,
  PutResponseSchema,
} from "../gen/raftkv/v1/kv_pb.ts";
import { encodeCommand } from "../kv/command.ts";
import type { ApplyResult } from "../kv/store.ts";
import { KvInputError, validateKey, validateValue } from "../kv/validate.ts";
import type { RaftKvNode } from "./node.ts";
import type { Router } from "./route.ts";

/** Checks input the way the store requires, as INVALID_ARGUMENT. */
function checked(check: () => void): void {
  try {
    check();
  } catch (err) {
    if (err instanceof KvInputError) throw new ConnectError(err.message, Code.InvalidArgument);
    throw err;
  }
}

function expectKind<K extends ApplyResult["kind"]>(
  result: ApplyResult,
  kind: K,
): Extract<ApplyResult, { kind: K }> {
  if (result.kind !== kind) {
    throw new ConnectError(`applied a ${result.kind} where a ${kind} was proposed`, Code.Internal);
  }
  return result as Extract<ApplyResult, { kind: K }>;
}

/** The KVService implementation for one node. */
export function kvService(node: RaftKvNode, router: Router): ServiceImpl<typeof KVService> {
  return {
    put(req, ctx) {
      checked(() => {
        validateKey(req.key);
        validateValue(req.value);
      });
      return router.route(
        ctx,
        async (signal) => {
          const data = encodeCommand({
            op: { case: "put", value: { key: req.key, value: req.value } },
          });
          const { index } = await node.propose(data, signal);
          return create(PutResponseSchema, { index: BigInt(index) });
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
          const value = node.kv.get(req.key);
          return create(GetResponseSchema, {
            found: value !== undefined,
            value: value ?? new Uint8Array(),
          });
        },
        (client, opts) => client.get(req, opts),
      );
    },

    delete(req, ctx) {
      checked(() => validateKey(req.key));
      return router.route(
        ctx,
        async (signal) => {
          const data = encodeCommand({ op: { case: "delete", value: { key: req.key } } });
          const { result } = await node.propose(data, signal);
          return create(DeleteResponseSchema, { deleted: expectKind(result, "delete").deleted });
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
      return router.route(
        ctx,
        async (signal) => {
          const data = encodeCommand({
            op: {
              case: "compareAndSwap",
              value: { key: req.key, value: req.value, expected: req.expected },
            },
          });
          const { result } = await node.propose(data, signal);
          const cas = expectKind(result, "cas");
          return create(CompareAndSwapResponseSchema, {
            succeeded: cas.succeeded,
            found: cas.found,
            value: cas.value,
          });
        },
        (client, opts) => client.compareAndSwap(req, opts),
      );
    },
  };
}
