/**
 * Metrics that arrive after the node: the hooks and the interceptor a node is
 * started with when its metrics (src/metrics/, prom-client) are loaded only once it
 * serves. Loading prom-client and the HTTP port's modules is a few hundred
 * milliseconds of one core that three nodes restarted together would otherwise
 * spend before, or while, they elect a leader (README, "Start-up time"); main.ts
 * loads them an election timeout after the node knows a leader, and attaches them
 * here.
 *
 * What happens before they are attached: the node's hooks ({@link NodeObserver})
 * are queued and replayed in order on attach, so every counter and histogram
 * ends up as if the metrics had been there from the start; the WAL's file
 * operations run untimed (the fsyncs of opening the WAL at boot are not in the
 * disk histograms); and calls are timed as the metrics' interceptor times them
 * (src/metrics/call_timing.ts), their ends queued and counted on attach (a call
 * under way then is counted when it ends). The interceptor never holds a call:
 * the peers' votes and appends pass through it, and the metrics wait for the
 * leader they elect.
 *
 * @module
 */

import type { Interceptor } from "@connectrpc/connect";
import { type CallEnded, callTimingInterceptor } from "../metrics/call_timing.ts";
import { DENO_WAL_IO, type WalIo } from "../wal/mod.ts";
import type { NodeObserver } from "./node_observer.ts";

/** The hooks of {@link NodeObserver} that report something (all but walIo). */
type Hook = Exclude<keyof NodeObserver, "walIo">;

/** The most hook calls queued before attach; past it they are dropped (and counted). */
export const MAX_QUEUED_HOOKS = 100_000;

/** A node's observer and interceptor now, its metrics' once {@link LateMetrics.attach}ed. */
export class LateMetrics {
  #observer: NodeObserver | undefined;
  #interceptors: readonly Interceptor[] | undefined;
  #queue: [Hook, unknown[]][] = [];
  #calls: Parameters<CallEnded>[] = [];
  #recordCall: CallEnded | undefined;
  /** Hook calls and ended calls dropped from a full queue. */
  dropped = 0;

  /** For `RaftKvNodeOptions.observer`. */
  readonly observer: NodeObserver;
  /** For the gRPC server's interceptors: passes calls through until attached. */
  readonly interceptor: Interceptor;

  constructor() {
    const hook = (name: Hook) => (...args: unknown[]) => {
      const real = this.#observer;
      if (real !== undefined) {
        (real[name] as ((...a: unknown[]) => void) | undefined)?.(...args);
        return;
      }
      if (this.#queue.length >= MAX_QUEUED_HOOKS) this.dropped++;
      else this.#queue.push([name, args]);
    };
    const io = (name: keyof WalIo) => (...args: unknown[]) => {
      const real = this.#observer?.walIo?.[name] ?? DENO_WAL_IO[name];
      return (real as (...a: unknown[]) => Promise<void>).apply(this.#observer?.walIo, args);
    };
    this.observer = {
      readyHandled: hook("readyHandled"),
      walSaved: hook("walSaved"),
      proposed: hook("proposed"),
      proposalEnded: hook("proposalEnded"),
      softStateChanged: hook("softStateChanged"),
      snapshotInstalled: hook("snapshotInstalled"),
      compacted: hook("compacted"),
      peerSent: hook("peerSent"),
      peerRoundTrip: hook("peerRoundTrip"),
      walIo: { write: io("write"), sync: io("sync"), truncate: io("truncate") },
    };
    const timing = callTimingInterceptor((...call) => {
      if (this.#recordCall !== undefined) this.#recordCall(...call);
      else if (this.#calls.length >= MAX_QUEUED_HOOKS) this.dropped++;
      else this.#calls.push(call);
    });
    // Each chain is built once per `next` (the fast lane asks once per method),
    // not per call (closures per call: issue 11's heap profile); the metrics'
    // interceptors are attached once, so the chain through them never changes.
    this.interceptor = (next) => {
      let timed: ReturnType<Interceptor> | undefined;
      let metered: ReturnType<Interceptor> | undefined;
      return (req) => {
        const real = this.#interceptors;
        if (real === undefined) return (timed ??= timing(next))(req);
        return (metered ??= real.reduceRight((n, i) => i(n), next))(req);
      };
    };
  }

  /** Whether the metrics are attached. */
  get attached(): boolean {
    return this.#observer !== undefined;
  }

  /**
   * From now on, reports to `observer` (after what was queued, in order) and calls
   * go through `interceptors`; the calls that ended before are told to `recordCall`,
   * as are those under way when they end.
   */
  attach(
    observer: NodeObserver,
    interceptors: readonly Interceptor[],
    recordCall: CallEnded = () => {},
  ): void {
    if (this.#observer !== undefined) throw new Error("Invariant: metrics attached twice");
    for (const [name, args] of this.#queue) {
      (observer[name] as ((...a: unknown[]) => void) | undefined)?.(...args);
    }
    this.#queue = [];
    for (const call of this.#calls) recordCall(...call);
    this.#calls = [];
    this.#recordCall = recordCall;
    this.#observer = observer;
    this.#interceptors = interceptors;
  }
}
