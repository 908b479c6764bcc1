/**
 * `/healthz` and `/readyz`, for probes that do not speak gRPC (Kubernetes,
 * load balancers), as etcd's `/health` and Kubernetes' own `/livez` `/readyz`.
 *
 * - healthz: the process serves HTTP. Always 200 while it does.
 * - readyz: the node knows a leader and has applied everything it knows to be
 *   committed, so a read it serves (or forwards) is not answered from behind.
 *   200 when ready, 503 with the reason when not.
 *
 * @module
 */

import type { NodeId } from "../raft/types.ts";

/** What the probes read. */
export interface ProbeSource {
  status(): { id: NodeId; lead: NodeId; term: number; commit: number; kvApplied: number };
}

/** A probe's answer: an HTTP status and a JSON body. */
export interface ProbeAnswer {
  readonly status: 200 | 503;
  readonly body: Record<string, unknown>;
}

/** `/healthz`: the process answers. */
export function healthz(source: ProbeSource): ProbeAnswer {
  return { status: 200, body: { status: "ok", id: source.status().id } };
}

/** `/readyz`: a leader is known and what is committed is applied (see the module doc). */
export function readyz(source: ProbeSource): ProbeAnswer {
  const s = source.status();
  const facts = { id: s.id, leader: s.lead, term: s.term, commit: s.commit, applied: s.kvApplied };
  if (s.lead === 0) {
    return { status: 503, body: { ready: false, reason: "no leader is known", ...facts } };
  }
  if (s.kvApplied < s.commit) {
    return {
      status: 503,
      body: {
        ready: false,
        reason: `applied ${s.kvApplied} of ${s.commit} committed entries`,
        ...facts,
      },
    };
  }
  return { status: 200, body: { ready: true, ...facts } };
}
