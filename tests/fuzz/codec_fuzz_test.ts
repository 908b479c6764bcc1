/**
 * The codec alone, on mutated and random bytes: decoding a SendRequest and every
 * message in it (codec.ts `messageFromPb`) either fails with protobuf's parse
 * error or a CodecError, or yields messages that hold every property the codec
 * promises (see codec.ts). Fast and in-process; the gRPC fuzz and the core fuzz
 * beside it cover the node and the core behind it.
 *
 * Seeded: replay with `RAFTKV_CODEC_FUZZ_SEED=<seed>`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  CommandSchema,
  EntrySchema,
  EntryType,
  MessageSchema,
  MessageType,
  type SendRequest,
  SendRequestSchema,
} from "../../src/gen/raftkv/v1/raft_pb.ts";
import { decodeCommand } from "../../src/kv/command.ts";
import { randomInt, seededRandom } from "../../src/raft/rand.ts";
import type { Message } from "../../src/raft/types.ts";
import { CodecError, MAX_TERM, messageFromPb } from "../../src/server/codec.ts";
import { refusedByState } from "../../src/server/raft_service.ts";
import { hex, mutate, randomBytes } from "./_mutate.ts";

const ROUNDS = 20_000;

function seeds(): Uint8Array[] {
  const data = toBinary(
    CommandSchema,
    create(CommandSchema, {
      timeMs: 5n,
      op: { case: "put", value: { key: "k", value: new Uint8Array(2) } },
    }),
  );
  const send = (...messages: Parameters<typeof create<typeof MessageSchema>>[1][]) =>
    toBinary(
      SendRequestSchema,
      create(SendRequestSchema, {
        clusterId: "c",
        messages: messages.map((m) => create(MessageSchema, m)),
      }),
    );
  return [
    send({
      type: MessageType.APP,
      from: 2n,
      to: 1n,
      term: 3n,
      index: 4n,
      logTerm: 2n,
      commit: 4n,
      entries: [
        create(EntrySchema, { term: 3n, index: 5n, type: EntryType.NORMAL, data }),
        create(EntrySchema, { term: 3n, index: 6n, type: EntryType.NORMAL }),
      ],
    }),
    send({ type: MessageType.HEARTBEAT, from: 2n, to: 1n, term: 3n, commit: 4n, context: 7n }),
    send(
      {
        type: MessageType.APP_RESP,
        from: 2n,
        to: 1n,
        term: 3n,
        index: 6n,
        reject: true,
        rejectHint: 5n,
        logTerm: 2n,
      },
      { type: MessageType.VOTE, from: 3n, to: 1n, term: 4n, index: 6n, logTerm: 3n },
      { type: MessageType.PRE_VOTE_RESP, from: 3n, to: 1n, term: 4n },
    ),
  ];
}

/** The properties codec.ts promises of every message it returns. */
function assertPromises(m: Message, what: string): void {
  for (
    const k of [
      "from",
      "to",
      "term",
      "index",
      "logTerm",
      "commit",
      "rejectHint",
      "context",
    ] as const
  ) {
    assert.ok(Number.isSafeInteger(m[k]) && m[k] >= 0, `${what}: ${k} ${m[k]}`);
  }
  assert.ok(m.term <= MAX_TERM, `${what}: term ${m.term}`);
  if (["app", "heartbeat", "vote", "pre_vote"].includes(m.type)) assert.ok(m.term >= 1, what);
  assert.ok(m.logTerm <= m.term, what);
  if (m.reject) assert.ok(m.rejectHint <= m.index, what);
  if (m.type !== "app") assert.equal(m.entries.length, 0, what);
  let prev = m.logTerm;
  m.entries.forEach((e, k) => {
    assert.equal(e.index, m.index + 1 + k, what);
    assert.ok(e.term >= 1 && e.term <= m.term && e.term >= prev, what);
    prev = e.term;
    if (e.data.length > 0) {
      try {
        const c = decodeCommand(e.data);
        const top = BigInt(Number.MAX_SAFE_INTEGER);
        assert.ok(c.timeMs <= top && c.sessionId <= top && c.sequence <= top, what);
      } catch (err) {
        if (err instanceof assert.AssertionError) throw err;
        // Not a Command: let through, applied as a no-op.
      }
    }
  });
}

Deno.test("codec fuzz: messageFromPb refuses with a CodecError or returns a message that keeps every promise", () => {
  const seedText = Deno.env.get("RAFTKV_CODEC_FUZZ_SEED");
  const seed = seedText !== undefined ? Number(seedText) : Math.floor(Math.random() * 2 ** 31);
  const random = seededRandom(seed);
  const pool = seeds();
  const counts = { unparsable: 0, refused: 0, accepted: 0 };
  for (let i = 0; i < ROUNDS; i++) {
    const bytes = random() < 0.1 ? randomBytes(random, randomInt(random, 0, 200)) : mutate(
      random,
      pool[randomInt(random, 0, pool.length)]!,
      pool[randomInt(random, 0, pool.length)]!,
    ).bytes;
    const what = `round ${i}, seed ${seed} (replay with RAFTKV_CODEC_FUZZ_SEED=${seed}), input ${
      hex(bytes)
    }`;
    let req: SendRequest;
    try {
      req = fromBinary(SendRequestSchema, bytes);
    } catch {
      counts.unparsable++;
      continue;
    }
    for (const pm of req.messages) {
      let m: Message;
      try {
        m = messageFromPb(pm);
      } catch (err) {
        assert.ok(err instanceof CodecError, `${what}: threw ${err}`);
        counts.refused++;
        continue;
      }
      assertPromises(m, what);
      counts.accepted++;
    }
  }
  console.log(
    `codec fuzz seed ${seed}: ${counts.unparsable} unparsable, ${counts.refused} messages refused, ` +
      `${counts.accepted} accepted`,
  );
  assert.ok(
    counts.accepted > 0 && counts.refused > 0,
    "the fuzz never reached one of the outcomes",
  );
});

function fromHex(h: string): Uint8Array {
  return new Uint8Array(h.match(/../g)!.map((b) => parseInt(b, 16)));
}

Deno.test("codec regressions: the exact messages that stopped a node are refused", async (t) => {
  await t.step("a granted pre-vote of term 2^53 - 1 (core fuzz, seed 425621067)", () => {
    // Stepped into a pre-candidate already in that term, it won the pre-election and
    // campaigned in term 2^53, which the WAL cannot store: the node stopped.
    const m = fromBinary(MessageSchema, fromHex("08061003180120ffffffffffffff0f"));
    assert.throws(() => messageFromPb(m), /term 9007199254740991 is above the largest term/);
  });
  await t.step("an acknowledgement past the leader's log", () => {
    // Node 3 acknowledging index 9 to a leader of term 19 whose log ends at 8: the
    // leader tried to send it entries from index 10 and stopped on an invariant.
    const m = messageFromPb(fromBinary(MessageSchema, fromHex("08021003180120132809")));
    assert.match(
      refusedByState(m, { role: "leader", term: 19, lastIndex: 8 }) ?? "",
      /node 3 acknowledges index 9 in term 19, but this leader's log ends at 8/,
    );
    // The same message is fine for a leader that has index 9, and for a follower.
    assert.equal(refusedByState(m, { role: "leader", term: 19, lastIndex: 9 }), undefined);
    assert.equal(refusedByState(m, { role: "follower", term: 19, lastIndex: 8 }), undefined);
  });
  await t.step("an entry whose command has time_ms 2^60", () => {
    // Appended, committed and applied, it stopped the node at every start.
    const m = fromBinary(
      MessageSchema,
      fromHex("0801100218012001280130013a17080110021801220f2080808080808080801052030a01784002"),
    );
    assert.throws(() => messageFromPb(m), /time_ms 1152921504606846976 is above 2\^53 - 1/);
  });
});
