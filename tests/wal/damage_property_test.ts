/**
 * Random damage, seeded: truncations, byte flips, zeroed runs and deleted
 * segments at random places of a multi-segment WAL. Whatever the damage, open()
 * either recovers exactly the state after some save (saves are recovered whole),
 * or throws WalCorruptionError; never anything else, never wrong data. Where the
 * damage is simple enough to classify (one truncation, one flipped byte) the
 * outcome is pinned exactly: a truncation of the last segment and a flip inside
 * the last save are torn writes, a flip anywhere else is corruption at the record
 * it hit.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { randomInt, seededRandom } from "../../src/raft/rand.ts";
import { EMPTY_HARD_STATE, type Entry, type HardState } from "../../src/raft/types.ts";
import { Wal, WalCorruptionError, type WalRecovery } from "../../src/wal/mod.ts";
import {
  applyRecords,
  buildWal,
  type BuiltWal,
  entry,
  type Saves,
  withTempDir,
  writeFiles,
} from "./_helpers.ts";

const SEED = 20240917;
const TRIALS = 200;
const SEGMENT_BYTES = 300;

/** Saves without overwrites, each with a distinct hard state (commit = save number). */
function saves(): Saves {
  const out: [HardState, Entry[]][] = [];
  let next = 1;
  for (let s = 0; s < 14; s++) {
    const n = 1 + (s % 4);
    const es: Entry[] = [];
    for (let k = 0; k < n; k++, next++) es.push(entry(next, 1 + Math.floor(s / 3)));
    out.push([{ term: 1 + Math.floor(s / 3), vote: 1 + (s % 3), commit: s }, es]);
  }
  return out;
}

type Expectation =
  | { readonly kind: "recovers"; readonly keptRecords: number }
  | { readonly kind: "corrupt"; readonly file: string; readonly offset: number }
  | { readonly kind: "either" };

interface Damage {
  readonly what: string;
  readonly files: Map<string, Uint8Array>;
  readonly expect: Expectation;
}

/** Picks one damage at random and says what open() must do about it. */
function damage(built: BuiltWal, random: () => number): Damage {
  const files = new Map(built.files);
  const names = built.names;
  const pick = <T>(xs: readonly T[]): T => xs[randomInt(random, 0, xs.length)]!;
  const lastName = names.at(-1)!;
  const recordsBefore = (name: string, offset: number): number => {
    // Records of the saves that end at or before `offset` of `name`, or in earlier segments.
    let kept = 0;
    for (const [k, save] of built.saves.entries()) {
      if (save.name < name || (save.name === name && save.end <= offset)) {
        kept = built.saves[k + 1]?.recordsBefore ?? built.records.length;
      }
    }
    return kept;
  };
  const lastSave = built.saves.length - 1;
  const kind = randomInt(random, 0, 6);
  switch (kind) {
    case 0: { // truncate the last segment: always a torn tail, so always recovers
      const bytes = files.get(lastName)!;
      const cut = randomInt(random, 0, bytes.length);
      files.set(lastName, bytes.subarray(0, cut));
      return {
        what: `truncate ${lastName} to ${cut}`,
        files,
        expect: { kind: "recovers", keptRecords: recordsBefore(lastName, cut) },
      };
    }
    case 1: { // flip one byte: torn tail if in the last save of the last segment, else corruption
      const name = pick(names);
      const bytes = files.get(name)!.slice();
      const at = randomInt(random, 0, bytes.length);
      bytes[at]! ^= randomInt(random, 1, 256);
      files.set(name, bytes);
      const frames = built.frames.filter((f) => f.name === name);
      const hit = frames.find((f) => f.offset <= at && at < f.end)!;
      const what = `flip byte ${at} of ${name}`;
      if (name === lastName && hit.save === lastSave) {
        return { what, files, expect: { kind: "recovers", keptRecords: recordsBefore(name, at) } };
      }
      return { what, files, expect: { kind: "corrupt", file: name, offset: hit.offset } };
    }
    case 2: { // truncate a segment that is not the last (if any)
      const name = pick(names.length > 1 ? names.slice(0, -1) : names);
      const bytes = files.get(name)!;
      const cut = randomInt(random, 0, bytes.length);
      files.set(name, bytes.subarray(0, cut));
      return { what: `truncate ${name} to ${cut}`, files, expect: { kind: "either" } };
    }
    case 3: { // zero a run of bytes
      const name = pick(names);
      const bytes = files.get(name)!.slice();
      const at = randomInt(random, 0, bytes.length);
      const len = randomInt(random, 1, 200);
      bytes.fill(0, at, at + len);
      files.set(name, bytes);
      return { what: `zero ${len} bytes at ${at} of ${name}`, files, expect: { kind: "either" } };
    }
    case 4: { // several flips across segments
      const n = randomInt(random, 2, 6);
      const parts: string[] = [];
      for (let i = 0; i < n; i++) {
        const name = pick(names);
        const bytes = files.get(name)!.slice();
        const at = randomInt(random, 0, bytes.length);
        bytes[at]! ^= randomInt(random, 1, 256);
        files.set(name, bytes);
        parts.push(`${name}@${at}`);
      }
      return { what: `flip ${parts.join(", ")}`, files, expect: { kind: "either" } };
    }
    default: { // delete a segment
      const name = pick(names);
      files.delete(name);
      return { what: `delete ${name}`, files, expect: { kind: "either" } };
    }
  }
}

/**
 * The invariant every successful recovery must satisfy: saves come back whole, so
 * the state is exactly the one after some save (or the empty one).
 */
function assertSaveBoundary(built: BuiltWal, r: WalRecovery, what: string): void {
  const final = applyRecords(built.records).entries;
  assert.ok(r.entries.length <= final.length, what);
  assert.deepStrictEqual(r.entries, final.slice(0, r.entries.length), what);
  const k = built.afterSave.findIndex((s) =>
    JSON.stringify(s.hardState) === JSON.stringify(r.hardState)
  );
  if (k < 0) {
    assert.deepStrictEqual(r.hardState, EMPTY_HARD_STATE, `${what}: hard state never saved`);
    assert.equal(r.entries.length, 0, `${what}: entries without their save's hard state`);
    return;
  }
  assert.equal(r.entries.length, built.afterSave[k]!.lastIndex, `${what}: not a save boundary`);
}

Deno.test("random damage (seeded, 200 trials): open recovers the state after some save or throws WalCorruptionError, never wrong data", async () => {
  await withTempDir(async (root) => {
    const built = await buildWal(join(root, "base"), saves(), SEGMENT_BYTES);
    assert.ok(built.names.length >= 4, `only ${built.names.length} segments`);
    const random = seededRandom(SEED);
    const outcomes = { recovered: 0, corrupt: 0 };
    for (let trial = 0; trial < TRIALS; trial++) {
      const d = damage(built, random);
      const what = `trial ${trial}: ${d.what}`;
      const dir = join(root, `t${trial}`);
      await Deno.mkdir(dir);
      await writeFiles(dir, d.files);
      let result: { wal: Wal; recovery: WalRecovery } | undefined;
      try {
        result = await Wal.open(dir, { segmentBytes: SEGMENT_BYTES });
      } catch (err) {
        if (!(err instanceof WalCorruptionError)) throw new Error(`${what}: threw ${err}`);
        assert.notEqual(d.expect.kind, "recovers", `${what}: ${err.message}`);
        if (d.expect.kind === "corrupt") {
          assert.equal(err.file, join(dir, d.expect.file), `${what}: ${err.message}`);
          assert.equal(err.offset, d.expect.offset, `${what}: ${err.message}`);
        }
        outcomes.corrupt++;
        await Deno.remove(dir, { recursive: true });
        continue;
      }
      assert.notEqual(d.expect.kind, "corrupt", `${what}: recovered`);
      const { wal, recovery } = result;
      assertSaveBoundary(built, recovery, what);
      if (d.expect.kind === "recovers") {
        const exact = applyRecords(built.records.slice(0, d.expect.keptRecords));
        assert.deepStrictEqual(recovery.hardState, exact.hardState, what);
        assert.deepStrictEqual(recovery.entries, exact.entries, what);
      }
      // The recovered WAL takes appends and reopens cleanly.
      const more = entry(recovery.entries.length + 1, 99);
      await wal.save({ term: 99, vote: 1, commit: 0 }, [more]);
      await wal.close();
      const again = await Wal.open(dir, { segmentBytes: SEGMENT_BYTES });
      assert.deepStrictEqual(again.recovery.entries, [...recovery.entries, more], what);
      assert.deepStrictEqual(again.recovery.warnings, [], what);
      await again.wal.close();
      outcomes.recovered++;
      await Deno.remove(dir, { recursive: true });
    }
    // Both outcomes must actually have been exercised.
    assert.ok(outcomes.recovered > 20 && outcomes.corrupt > 20, JSON.stringify(outcomes));
  });
});
