/**
 * CRC-32C (Castagnoli, polynomial 0x82F63B78 reflected), the checksum etcd's WAL,
 * iSCSI and ext4 metadata use. Table-driven, slicing by 8 bytes.
 *
 * @module
 */

const POLY = 0x82f63b78;

/** Eight 256-entry tables: TABLES[k][b] is the CRC of byte `b` followed by `k` zero bytes. */
const TABLES: Uint32Array = (() => {
  const t = new Uint32Array(8 * 256);
  for (let b = 0; b < 256; b++) {
    let c = b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[b] = c >>> 0;
  }
  for (let b = 0; b < 256; b++) {
    let c = t[b]!;
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff]! ^ (c >>> 8);
      t[k * 256 + b] = c >>> 0;
    }
  }
  return t;
})();

/** Bytes checksummed so far in this process: see {@link crc32cBytesChecked}. */
let bytesChecked = 0;

/**
 * How many bytes {@link crc32c} and {@link crc32cRange} have checksummed in this
 * process so far. The difference across a synchronous piece of work is what that work
 * checksummed (nothing else runs in between): WAL recovery reports its CRC work this
 * way, so tests can bound it without a clock (see `WalOptions.recoveryCost`).
 */
export function crc32cBytesChecked(): number {
  return bytesChecked;
}

/**
 * Returns the CRC-32C of `bytes`, continuing from `crc` (the CRC of whatever came
 * before; 0 to start). As with Go's `crc32.Update`,
 * `crc32c(b, crc32c(a)) === crc32c(a ++ b)`, so a checksum can be chained.
 *
 * @example
 * ```ts
 * crc32c(new TextEncoder().encode("123456789")); // 0xe3069283
 * ```
 */
export function crc32c(bytes: Uint8Array, crc = 0): number {
  return crc32cRange(bytes, 0, bytes.length, crc);
}

/** The CRC-32C of `bytes[start..end)`, continuing from `crc`; {@link crc32c} without a subarray. */
export function crc32cRange(bytes: Uint8Array, start: number, end: number, crc = 0): number {
  bytesChecked += end - start;
  const t = TABLES;
  let c = ~crc >>> 0;
  let i = start;
  const end8 = end - ((end - start) % 8);
  for (; i < end8; i += 8) {
    const lo = (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)) ^
      c;
    c = t[7 * 256 + (lo & 0xff)]! ^
      t[6 * 256 + ((lo >>> 8) & 0xff)]! ^
      t[5 * 256 + ((lo >>> 16) & 0xff)]! ^
      t[4 * 256 + (lo >>> 24)]! ^
      t[3 * 256 + bytes[i + 4]!]! ^
      t[2 * 256 + bytes[i + 5]!]! ^
      t[1 * 256 + bytes[i + 6]!]! ^
      t[bytes[i + 7]!]!;
  }
  for (; i < end; i++) c = t[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
