/**
 * `KVService/Range`: a page of the keys in a range, linearizable through ReadIndex
 * at the leader (dissertation §6.4) by default, or served from this node's applied
 * state with `serializable` (possibly stale, never a round to the leader).
 *
 * @module
 */

import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { RangeRequest, RangeResponse } from "../gen/raftkv/v1/kv_pb.ts";
import {
  checkRangeQuery,
  type RangeQuery,
  rangeQueryOf as toQuery,
  rangeResponseOf,
} from "../kv/range.ts";
import { KvInputError } from "../kv/validate.ts";
import type { RaftKvNode } from "./node.ts";
import { type Router, toConnectError } from "./route.ts";

/** A RangeRequest as the store's query; INVALID_ARGUMENT when it breaks a rule. */
export function rangeQueryOf(req: RangeRequest): RangeQuery {
  const query = toQuery(req);
  try {
    checkRangeQuery(query);
  } catch (err) {
    if (err instanceof KvInputError) throw new ConnectError(err.message, Code.InvalidArgument);
    throw err;
  }
  return query;
}

/** Reads a page from `node`'s applied state as it stands now. */
export function readRange(node: RaftKvNode, query: RangeQuery): RangeResponse {
  return rangeResponseOf(node.kv.range(query), node.kv.appliedIndex);
}

/** The Range handler of the KVService implementation. */
export function rangeHandler(
  node: RaftKvNode,
  router: Router,
): { range(req: RangeRequest, ctx: HandlerContext): Promise<RangeResponse> } {
  return {
    async range(req, ctx) {
      const query = rangeQueryOf(req);
      if (req.serializable) {
        try {
          return readRange(node, query);
        } catch (err) {
          throw toConnectError(err);
        }
      }
      return await router.route(
        ctx,
        async (signal) => {
          await node.linearizableRead(signal);
          return readRange(node, query);
        },
        (client, opts) => client.range(req, opts),
      );
    },
  };
}
