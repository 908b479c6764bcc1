import assert from "node:assert/strict";
import { HeartbeatRoundTrips } from "../../src/server/heartbeat_round_trips.ts";
import { message } from "../../src/raft/types.ts";

const hb = (to: number) => message({ type: "heartbeat", from: 1, to, term: 1 });
const resp = (from: number) => message({ type: "heartbeat_resp", from, to: 1, term: 1 });

Deno.test("a heartbeat's answer is timed from the heartbeat, once per follower", () => {
  const rt = new HeartbeatRoundTrips();
  rt.sent([hb(2), hb(3)], 1_000);
  assert.equal(rt.received(resp(2), 1_004), 0.004);
  assert.equal(rt.received(resp(2), 1_005), undefined, "a second answer is not timed again");
  assert.equal(rt.received(resp(3), 1_010), 0.01);
});

Deno.test("a lost heartbeat makes the next answer count from the first send", () => {
  const rt = new HeartbeatRoundTrips();
  rt.sent([hb(2)], 1_000);
  rt.sent([hb(2)], 1_100);
  assert.equal(rt.received(resp(2), 1_150), 0.15);
});

Deno.test("other messages are not timed, and losing leadership forgets what was outstanding", () => {
  const rt = new HeartbeatRoundTrips();
  rt.sent([message({ type: "app", from: 1, to: 2, term: 1 })], 1_000);
  assert.equal(
    rt.received(message({ type: "app_resp", from: 2, to: 1, term: 1 }), 1_001),
    undefined,
  );
  rt.sent([hb(2)], 1_000);
  rt.reset();
  assert.equal(rt.received(resp(2), 1_002), undefined);
});
