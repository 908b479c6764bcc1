/**
 * `KVService/Lease*`: granting, revoking, renewing and timing leases. Grant and
 * revoke go through the log; renewals and time-to-live are answered by the leader's
 * {@link Lessor}, whose deadlines are not replicated. A follower forwards all four.
 *
 * @module
 */

import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  type LeaseGrantRequest,
  type LeaseGrantResponse,
  LeaseGrantResponseSchema,
  type LeaseKeepAliveRequest,
  type LeaseKeepAliveResponse,
  LeaseKeepAliveResponseSchema,
  type LeaseKeepAliveStreamRequest,
  type LeaseKeepAliveStreamResponse,
  LeaseKeepAliveStreamResponseSchema,
  type LeaseRevokeRequest,
  type LeaseRevokeResponse,
  LeaseRevokeResponseSchema,
  type LeaseTimeToLiveRequest,
  type LeaseTimeToLiveResponse,
  LeaseTimeToLiveResponseSchema,
  type Session,
} from "../gen/raftkv/v1/kv_pb.ts";
import { checkSession, expectKind } from "./kv_apply.ts";
import type { CommandSchema } from "../gen/raftkv/v1/raft_pb.ts";
import type { ApplyResult } from "../kv/store.ts";
import { type Lessor, MAX_LEASE_TTL } from "./lessor.ts";
import type { RaftKvNode } from "./node.ts";
import type { Router } from "./route.ts";

type Op = MessageInitShape<typeof CommandSchema>["op"];

/**
 * Proposes an operation, in the request's session if it has one, and waits for what
 * applying it produced.
 */
export type ApplyOp = (
  op: Op,
  session: Session | undefined,
  signal: AbortSignal,
) => Promise<ApplyResult>;

function leaseId(id: bigint): number {
  if (id === 0n || id > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ConnectError(
      `Cannot use lease id ${id}: get one from LeaseGrant`,
      Code.InvalidArgument,
    );
  }
  return Number(id);
}

function notFound(id: number): ConnectError {
  return new ConnectError(
    `lease ${id} not found (expired, revoked, or never granted)`,
    Code.NotFound,
  );
}

/** The lease handlers of the KVService implementation. */
export function leaseHandlers(node: RaftKvNode, router: Router, lessor: Lessor, apply: ApplyOp): {
  leaseGrant(req: LeaseGrantRequest, ctx: HandlerContext): Promise<LeaseGrantResponse>;
  leaseRevoke(req: LeaseRevokeRequest, ctx: HandlerContext): Promise<LeaseRevokeResponse>;
  leaseKeepAlive(req: LeaseKeepAliveRequest, ctx: HandlerContext): Promise<LeaseKeepAliveResponse>;
  leaseKeepAliveStream(
    reqs: AsyncIterable<LeaseKeepAliveStreamRequest>,
    ctx: HandlerContext,
  ): AsyncIterable<LeaseKeepAliveStreamResponse>;
  leaseTimeToLive(
    req: LeaseTimeToLiveRequest,
    ctx: HandlerContext,
  ): Promise<LeaseTimeToLiveResponse>;
} {
  /** Makes sure this leader has applied everything committed, then looks `id` up. */
  const current = async (id: number, signal: AbortSignal) => {
    if (node.kv.lease(id) === undefined) await node.linearizableRead(signal);
    return node.kv.lease(id);
  };
  return {
    leaseGrant(req, ctx) {
      if (req.ttl < 1n || req.ttl > BigInt(MAX_LEASE_TTL)) {
        throw new ConnectError(
          `Cannot grant a lease of TTL ${req.ttl}: give 1 to ${MAX_LEASE_TTL} seconds`,
          Code.InvalidArgument,
        );
      }
      checkSession(req.session);
      return router.route(ctx, async (signal) => {
        const ttl = Math.max(Number(req.ttl), lessor.minTtl);
        // In a session, a retry of a grant that was applied is answered with the
        // lease it granted (the session table holds the first result), so a client
        // that lost the answer does not leave a second lease behind.
        const result = expectKind(
          await apply(
            { case: "leaseGrant", value: { ttlSeconds: BigInt(ttl) } },
            req.session,
            signal,
          ),
          "lease_granted",
        );
        lessor.renew(result.id);
        return create(LeaseGrantResponseSchema, { id: BigInt(result.id), ttl: BigInt(result.ttl) });
      }, (client, opts) => client.leaseGrant(req, opts));
    },

    leaseRevoke(req, ctx) {
      const id = leaseId(req.id);
      return router.route(ctx, async (signal) => {
        const result = await apply(
          { case: "leaseRevoke", value: { id: req.id } },
          undefined,
          signal,
        );
        if (result.kind !== "lease_revoked") {
          throw new ConnectError(
            `applied a ${result.kind} where a lease revoke was proposed`,
            Code.Internal,
          );
        }
        if (!result.found) throw notFound(id);
        // The index: the lease's keys were deleted at the entry just applied.
        return create(LeaseRevokeResponseSchema, {
          index: BigInt(node.kv.appliedIndex),
          deleted: BigInt(result.deleted),
        });
      }, (client, opts) => client.leaseRevoke(req, opts));
    },

    leaseKeepAlive(req, ctx) {
      const id = leaseId(req.id);
      return router.route(ctx, async (signal) => {
        if (await current(id, signal) === undefined) throw notFound(id);
        const ttl = lessor.renew(id);
        if (ttl === undefined) throw notFound(id);
        return create(LeaseKeepAliveResponseSchema, { id: req.id, ttl: BigInt(ttl) });
      }, (client, opts) => client.leaseKeepAlive(req, opts));
    },

    /**
     * etcd's stream form: each request is one renewal, routed like a LeaseKeepAlive
     * call (a follower forwards each to the leader it knows), answered in order; a
     * lease that is gone is answered with TTL 0 (etcd's convention) and the stream
     * goes on, since it may renew other leases. An error (no leader in time, a bad id)
     * ends the stream; the client opens another.
     */
    async *leaseKeepAliveStream(reqs, ctx) {
      for await (const req of reqs) {
        const id = leaseId(req.id);
        const ttl = await router.route(ctx, async (signal) => {
          if (await current(id, signal) === undefined) return 0n;
          return BigInt(lessor.renew(id) ?? 0);
        }, async (client, opts) => {
          try {
            return (await client.leaseKeepAlive({ id: req.id }, opts)).ttl;
          } catch (err) {
            if (err instanceof ConnectError && err.code === Code.NotFound) return 0n;
            throw err;
          }
        });
        yield create(LeaseKeepAliveStreamResponseSchema, { id: req.id, ttl });
      }
    },

    leaseTimeToLive(req, ctx) {
      const id = leaseId(req.id);
      return router.route(ctx, async (signal) => {
        const lease = await current(id, signal);
        const left = lease === undefined ? undefined : lessor.remainingMs(id);
        if (lease === undefined || left === undefined) throw notFound(id);
        return create(LeaseTimeToLiveResponseSchema, {
          id: req.id,
          ttl: BigInt(Math.ceil(left / 1000)),
          grantedTtl: BigInt(lease.ttl),
          keys: req.keys ? lease.keys : [],
        });
      }, (client, opts) => client.leaseTimeToLive(req, opts));
    },
  };
}
