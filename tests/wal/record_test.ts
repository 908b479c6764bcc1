import assert from "node:assert/strict";
import { crc32c } from "../../src/wal/crc32c.ts";
import {
  decodeEntry,
  decodeHardState,
  decodeSaveHeader,
  decodeSegmentHeader,
  encodeEntry,
  encodeHardState,
  encodeSaveHeader,
  encodeSegmentHeader,
  type Frame,
  frameSize,
  isHeaderAt,
  readFrame,
  readHeader,
  RecordType,
  writeFrame,
} from "../../src/wal/record.ts";
import { entry } from "./_helpers.ts";

Deno.test("crc32c matches the published CRC-32C check values", () => {
  const ascii = new TextEncoder().encode("123456789");
  assert.equal(crc32c(ascii), 0xe3069283);
  // RFC 3720, appendix B.4.
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(new Uint8Array(32).map((_, i) => i)), 0x46dd794e);
  assert.equal(crc32c(new Uint8Array(32).map((_, i) => 31 - i)), 0x113fdb5c);
  assert.equal(crc32c(new Uint8Array()), 0);
});

Deno.test("crc32c chains: the CRC of a then b continues from the CRC of a", () => {
  const bytes = new Uint8Array(1000).map((_, i) => (i * 131) ^ (i >> 3));
  for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) {
    assert.equal(crc32c(bytes.subarray(cut), crc32c(bytes.subarray(0, cut))), crc32c(bytes));
  }
});

Deno.test("frames are 16 bytes of header plus the payload padded to 8 bytes", () => {
  assert.equal(frameSize(0), 16);
  assert.equal(frameSize(1), 24);
  assert.equal(frameSize(8), 24);
  assert.equal(frameSize(9), 32);
});

Deno.test("a written frame reads back intact, with its chain CRC continuing the previous one", () => {
  const payload = new TextEncoder().encode("hello, frame");
  const buf = new Uint8Array(8 + frameSize(payload.length));
  const chain = writeFrame(buf, 8, RecordType.entry, payload, 3, 8, 0xdeadbeef);
  const f = readFrame(buf, 3, 8, 0xdeadbeef) as Frame;
  assert.ok(!("damage" in f));
  assert.equal(f.type, RecordType.entry);
  assert.deepStrictEqual(f.payload, payload);
  assert.equal(f.chainCrc, chain);
  assert.equal(f.size, 32);
  // After another chain, the same bytes are not the record that follows.
  assert.match(
    (readFrame(buf, 3, 8, 0) as { damage: string }).damage,
    /^bad CRC .*does not follow/,
  );
  // Padding is zero.
  assert.deepStrictEqual([...buf.subarray(8 + 16 + payload.length)], [0, 0, 0, 0]);
});

Deno.test("a frame header validates only at the position it was written for", () => {
  const payload = new Uint8Array([1, 2, 3]);
  const buf = new Uint8Array(64);
  writeFrame(buf, 0, RecordType.entry, payload, 5, 0, 0);
  assert.ok(!("damage" in readFrame(buf, 5, 0, 0)));
  assert.ok(isHeaderAt(buf, 5, 0) && isHeaderAt(buf, 5, 0, RecordType.entry));
  assert.ok(!isHeaderAt(buf, 5, 0, RecordType.save));
  assert.match((readHeader(buf, 6, 0) as { damage: string }).damage, /^bad header CRC/);
  assert.ok(!isHeaderAt(buf, 6, 0));
  const moved = new Uint8Array(64);
  moved.set(buf.subarray(0, 24), 8);
  assert.match((readHeader(moved, 5, 8) as { damage: string }).damage, /^bad header CRC/);
  assert.ok(!isHeaderAt(moved, 5, 8));
});

Deno.test("a frame header checks out without its payload: the question costs the same for any length", () => {
  const payload = new Uint8Array(100_000).fill(7);
  const buf = new Uint8Array(frameSize(payload.length));
  writeFrame(buf, 0, RecordType.entry, payload, 0, 0, 0);
  // Only the first 16 bytes are there; the header is still recognized.
  const head = buf.subarray(0, 16);
  assert.ok(isHeaderAt(head, 0, 0));
  const h = readHeader(head, 0, 0);
  assert.ok(!("damage" in h));
  assert.equal(h.length, 100_000);
  assert.match(
    (readFrame(head, 0, 0, 0) as { damage: string }).damage,
    /^record of 100016 bytes runs past the end of the file \(16 bytes left\)$/,
  );
});

Deno.test("any single flipped byte anywhere in a frame makes it not intact", () => {
  const payload = new TextEncoder().encode("abcdefghijk");
  const size = frameSize(payload.length);
  const buf = new Uint8Array(size);
  writeFrame(buf, 0, RecordType.hardState, payload, 0, 0, 7);
  for (let i = 0; i < size; i++) {
    for (const mask of [0x01, 0x80, 0xff]) {
      const bad = buf.slice();
      bad[i]! ^= mask;
      assert.ok("damage" in readFrame(bad, 0, 0, 7), `flip ${mask} at ${i} went unnoticed`);
      // The header alone fails for a flip in its first 16 bytes.
      if (i < 16) assert.ok(!isHeaderAt(bad, 0, 0), `header flip ${mask} at ${i} went unnoticed`);
    }
  }
});

Deno.test("readFrame says what is wrong with a short or damaged frame", () => {
  const buf = new Uint8Array(40);
  writeFrame(buf, 0, RecordType.entry, new Uint8Array(20), 0, 0, 0);
  const damage = (bytes: Uint8Array): string =>
    (readFrame(bytes, 0, 0, 0) as { damage: string }).damage;
  assert.equal(damage(buf.subarray(0, 10)), "incomplete record header (10 of 16 bytes)");
  assert.equal(
    damage(buf.subarray(0, 39)),
    "record of 40 bytes runs past the end of the file (39 bytes left)",
  );
  const huge = buf.slice();
  new DataView(huge.buffer).setUint32(0, 0xfffffff0, true);
  assert.match(damage(huge), /^bad header CRC/);
  const reserved = buf.slice();
  reserved[6] = 1;
  assert.equal(damage(reserved), "bad record header (reserved bytes not zero)");
  const data = buf.slice();
  data[30]! ^= 1;
  assert.match(damage(data), /^bad CRC \(stored 0x[0-9a-f]{8}, expected 0x[0-9a-f]{8}\)/);
});

Deno.test("an entry a snapshot holds is decoded as a view of its payload; one after it, as a copy", () => {
  const e = entry(100, 7);
  const payload = encodeEntry(e);
  const held = decodeEntry(payload, 100);
  const after = decodeEntry(payload, 99);
  assert.deepStrictEqual(held, e);
  assert.deepStrictEqual(after, e);
  assert.equal(held.data.buffer, payload.buffer, "a view: no copy made");
  assert.notEqual(after.data.buffer, payload.buffer, "a copy: the payload may be reused");
});

Deno.test("entries, hard states and segment headers round-trip through their codecs", () => {
  const e = entry(12345, 67);
  assert.deepStrictEqual(decodeEntry(encodeEntry(e)), e);
  const max = Number.MAX_SAFE_INTEGER;
  const far = { ...e, index: max, term: max };
  assert.deepStrictEqual(decodeEntry(encodeEntry(far)), far);
  const hs = { term: max, vote: 3, commit: 2 ** 40 };
  assert.deepStrictEqual(decodeHardState(encodeHardState(hs)), hs);
  const h = { seq: 9, firstIndex: 2 ** 33, prevCrc: 0xffffffff, version: 1 };
  assert.deepStrictEqual(decodeSegmentHeader(encodeSegmentHeader(h)), h);
  const save = { bytes: 2 ** 40, records: 0xffffffff };
  assert.deepStrictEqual(decodeSaveHeader(encodeSaveHeader(save)), save);
});

Deno.test("codecs refuse unsafe numbers, unknown entry types and malformed payloads", () => {
  assert.throws(
    () => encodeEntry({ ...entry(1, 1), term: 2 ** 53 }),
    /entry term must be a non-negative safe integer/,
  );
  assert.throws(() => encodeEntry({ ...entry(1, 1), index: 1.5 }), /entry index must be/);
  assert.throws(
    () => encodeEntry({ ...entry(1, 1), type: "joint" as "normal" }),
    /unknown entry type "joint"/,
  );
  assert.throws(() => encodeHardState({ term: 1, vote: -1, commit: 0 }), /hard state vote must be/);
  assert.throws(
    () => decodeEntry(new Uint8Array(16)),
    /entry payload of 16 bytes is shorter than 17/,
  );
  const badType = encodeEntry(entry(1, 1));
  badType[16] = 9;
  assert.throws(() => decodeEntry(badType), /unknown entry type code 9/);
  const tooBig = encodeEntry(entry(1, 1));
  tooBig[7] = 0xff; // high bits of the index
  assert.throws(() => decodeEntry(tooBig), /entry index exceeds 2\^53/);
  assert.throws(
    () => decodeHardState(new Uint8Array(25)),
    /hard state payload is 25 bytes, expected 24/,
  );
  assert.throws(() => decodeSegmentHeader(new Uint8Array(8)), /segment header payload is 8 bytes/);
  assert.throws(() => encodeSaveHeader({ bytes: 16, records: 0 }), /save record count must be/);
  assert.throws(
    () => decodeSaveHeader(encodeSaveHeader({ bytes: 24, records: 2 })),
    /save of 2 records cannot be 24 bytes/,
  );
  assert.throws(() => decodeSaveHeader(new Uint8Array(16)), /save of 0 records/);
});
