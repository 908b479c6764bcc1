/**
 * The attacks the tests and `measure.ts` lay to a node, by name, each bounded by
 * the time it is given.
 *
 * @module
 */

import {
  type AttackReport,
  bigUnfinishedBodies,
  continuationFlood,
  controlFlood,
  hpackBomb,
  hugePrefixTrickle,
  rapidReset,
  slowHeaders,
  unfinishedStreams,
  unreadResponses,
} from "./_attacker.ts";

/** One named attack. */
export interface Attack {
  readonly name: string;
  readonly run: (port: number, durationMs: number) => Promise<AttackReport>;
  /**
   * Why attacks_test.ts does not lay this one, if it does not (measure.ts does):
   * its peak is the cost of the calls themselves, which no limit of the node
   * bounds under the test's peak bound.
   */
  readonly measuredOnly?: string;
}

/** Every attack, in the order of issue 15. */
export const ATTACKS: readonly Attack[] = [
  {
    name: "none (the normal client alone)",
    run: async (_port, durationMs) => {
      await new Promise((r) => setTimeout(r, durationMs));
      return {
        sent: 0,
        unit: "",
        connections: 0,
        closedByServer: 0,
        goaways: 0,
        goawayCodes: [],
        resets: new Map(),
        serverSettings: undefined,
      };
    },
  },
  {
    name: "unfinished streams, 1 connection",
    run: (port, durationMs) =>
      unfinishedStreams({ port, durationMs, maxStreamsPerConnection: 100_000 }),
  },
  {
    name: "unfinished streams, 4 connections",
    run: (port, durationMs) =>
      unfinishedStreams({ port, durationMs, connections: 4, maxStreamsPerConnection: 50_000 }),
  },
  { name: "rapid reset", run: (port, durationMs) => rapidReset({ port, durationMs }) },
  {
    name: "CONTINUATION flood",
    run: (port, durationMs) => continuationFlood({ port, durationMs }),
  },
  { name: "HPACK bomb", run: (port, durationMs) => hpackBomb({ port, durationMs }) },
  {
    name: "SETTINGS flood",
    run: (port, durationMs) => controlFlood("settings", { port, durationMs }),
  },
  { name: "PING flood", run: (port, durationMs) => controlFlood("ping", { port, durationMs }) },
  {
    name: "WINDOW_UPDATE flood",
    run: (port, durationMs) => controlFlood("window-update", { port, durationMs }),
  },
  {
    name: "huge length prefix, trickle",
    run: (port, durationMs) => hugePrefixTrickle({ port, durationMs, connections: 4 }),
  },
  {
    name: "big unfinished uploads, 4 connections",
    run: (port, durationMs) => bigUnfinishedBodies({ port, durationMs, connections: 4 }),
  },
  {
    name: "unread responses, 4 connections",
    run: (port, durationMs) => unreadResponses({ port, durationMs, connections: 4 }),
    measuredOnly: "400 Gets of a 1 MiB value allocate about 3.5 MiB each while they are " +
      "answered, read or not: +1 GB at the peak with the limits too (the call byte budget " +
      "then resets the answers past it, and RSS comes back once the connections close; " +
      "limits_test.ts tests the budget)",
  },
  {
    name: "slow headers (slowloris)",
    run: (port, durationMs) => slowHeaders({ port, durationMs, connections: 50 }),
  },
];
