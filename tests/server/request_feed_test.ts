/**
 * A RequestFeed (src/server/request_feed.ts) gives its requests in order either
 * way it is taken: iterated, as Connect's handler input, or drained, pushed to a
 * callback as they come; an error that ends it comes after the requests before
 * it; a check an interceptor adds runs on each request before anyone takes it,
 * and one that throws ends the feed there, as a generator's check would.
 */

import assert from "node:assert/strict";
import { RequestFeed } from "../../src/server/request_feed.ts";

async function collect<T>(it: AsyncIterable<T>): Promise<{ got: T[]; error?: unknown }> {
  const got: T[] = [];
  try {
    for await (const r of it) got.push(r);
  } catch (error) {
    return { got, error };
  }
  return { got };
}

Deno.test("iterated: the requests in order, those pushed before and after the first read, then the end", async () => {
  const feed = new RequestFeed<number>();
  feed.push(1);
  const result = collect(feed);
  feed.push(2);
  await Promise.resolve();
  feed.push(3);
  feed.end();
  assert.deepEqual(await result, { got: [1, 2, 3] });
});

Deno.test("drained: queued requests first, then each in the turn it is pushed; the drain settles at the end", async () => {
  const feed = new RequestFeed<number>();
  feed.push(1);
  const got: number[] = [];
  const done = feed.drain((r) => got.push(r));
  assert.deepEqual(got, [1]);
  feed.push(2);
  assert.deepEqual(got, [1, 2], "pushed synchronously, no microtask between");
  feed.end();
  await done;
});

Deno.test("an error ends the feed after the requests before it, either way", async () => {
  const iterated = new RequestFeed<number>();
  iterated.push(1);
  iterated.end(new Error("torn"));
  iterated.push(2);
  const r = await collect(iterated);
  assert.deepEqual(r.got, [1]);
  assert.match(String(r.error), /torn/);

  const drained = new RequestFeed<number>();
  const got: number[] = [];
  const done = drained.drain((x) => got.push(x));
  drained.push(1);
  drained.end(new Error("torn"));
  await assert.rejects(done, /torn/);
  assert.deepEqual(got, [1]);
});

Deno.test("a drain callback that throws stops the feed: nothing more is taken, the reader is told", async () => {
  const stops: unknown[] = [];
  const feed = new RequestFeed<number>((reason) => stops.push(reason));
  const done = feed.drain((x) => {
    if (x === 2) throw new Error("refused 2");
  });
  feed.push(1);
  feed.push(2);
  assert.ok(feed.stopped);
  feed.push(3);
  await assert.rejects(done, /refused 2/);
  assert.equal(stops.length, 1);
});

Deno.test("a check runs on each request before it is taken; one that throws ends the feed there", async () => {
  const seen: number[] = [];
  const check = (x: number) => {
    seen.push(x);
    if (x === 3) throw new Error("check refused 3");
  };
  const iterated = new RequestFeed<number>();
  assert.equal(iterated.withCheck(check), iterated, "the same feed, still drainable");
  for (const x of [1, 2, 3, 4]) iterated.push(x);
  const r = await collect(iterated);
  assert.deepEqual(r.got, [1, 2]);
  assert.match(String(r.error), /check refused 3/);
  assert.deepEqual(seen, [1, 2, 3]);

  const drained = new RequestFeed<number>().withCheck(check);
  const got: number[] = [];
  const done = drained.drain((x) => got.push(x));
  for (const x of [1, 2, 3, 4]) drained.push(x);
  await assert.rejects(done, /check refused 3/);
  assert.deepEqual(got, [1, 2]);
});
