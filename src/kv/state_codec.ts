/**
 * The key-value state codec: the bytes of a snapshot's state (`Snapshot.data` in the
 * core, the middle of a snapshot file, see `src/snapshot/file.ts`). They hold all a
 * node needs to go on from the snapshot's index as if it had applied every entry up
 * to it (§7 of the Raft paper): the keys and values, the client sessions (so a retry
 * of a write applied before the snapshot is still answered once, dissertation §6.3),
 * the applied index and term, and the applied chain's link (`applied_chain.ts`).
 *
 * Layout, integers little-endian, u64 limited to 2^53 - 1:
 *
 * ```
 * magic "RKVSTATE" | u32 version (2; 1 is still read)
 * u64 applied index | u64 applied term | 32 bytes applied-chain link
 * u64 sessions' clock (ms) | u32 session count
 *   per session, idlest first: u64 id | u64 last sequence | u64 last active (ms) | result
 * u32 key count
 *   per key, in the store's order: u32 key length | key (UTF-8) | u32 value length | value
 * version 2 on: u32 section count
 *   per section: u32 tag | u32 body length | body
 * ```
 *
 * Sections carry what later versions added, each under its own tag, so one can be
 * added without moving anything before it; a reader refuses a tag it does not know
 * (ignoring state it cannot interpret would make its store differ from its peers').
 * Tag 1, key indexes: per key, in the key section's order, u64 create index | u64 mod
 * index. Tag 2, leases: u32 count, per lease in id order u64 id | u64 TTL (seconds).
 * Tag 3, key leases: u32 count, per key with a lease, in key order, u32 the key's
 * position in the key section | u64 lease. Tag 4, members (the registry of members.ts,
 * present only when a member is registered): u32 count, per member by ascending id u64
 * id | u8 learner | u32 address length | address (UTF-8). Tag 5, the applied chain's open
 * group (present only when it is not empty): its frames, as `applied_chain.ts` lays them
 * out; the 32-byte link above is then the link after the last group that closed. A
 * version 1 state has no sections: its keys count as created and last changed at its
 * applied index, and it has no leases.
 *
 * A result is a u8 tag and its fields: 0 none; 1 put (u64 index); 2 delete (u8
 * deleted); 3 compare-and-swap (u8 succeeded, u8 found, u32 length, value); 4 no-op;
 * 5 session opened (u64 id); 6 session error (u32 length, UTF-8 message); 7 transaction
 * (u8 succeeded, u32 length, the encoded TxnResponse); 8 lease granted (u64 id, u64 ttl);
 * 9 lease revoked (u8 found, u64 keys deleted); 10 lease not found (u64 id).
 *
 * The encoding is deterministic: nodes that applied the same entries hold their keys
 * and sessions in the same order (the order comes only from the applied commands),
 * so they encode the same bytes. Keys are not sorted: that would cost the apply path
 * time for nothing the state machine needs. The snapshot file around these bytes
 * carries the checksum; this decoder still checks every length, so bad bytes fail
 * with a {@link KvStateCodecError} naming the offset, never a crash or a wrong store.
 *
 * @module
 */

import { CHAIN_LINK_BYTES, checkChainGroup } from "./applied_chain.ts";
import type { MemberRecord } from "./members.ts";
import type { SessionImage } from "./sessions.ts";
import type { ApplyResult, KvStoreState } from "./store.ts";

/** The first eight bytes of an encoded state. */
const MAGIC = new TextEncoder().encode("RKVSTATE");
/** The version this code writes and reads. */
export const KV_STATE_VERSION = 2;
/** The oldest version this code still reads. */
const OLDEST_READ_VERSION = 1;

const enum Section {
  KeyIndexes = 1,
  Leases = 2,
  KeyLeases = 3,
  Members = 4,
  ChainGroup = 5,
}

/** Everything a snapshot's state holds: the store, and where the node's log stood. */
export interface KvSnapshotState {
  /** The store's state (its applied index is the snapshot's index). */
  readonly store: KvStoreState;
  /** The term of the entry at the applied index (0 before any entry). */
  readonly appliedTerm: number;
  /**
   * The applied chain's link (`applied_chain.ts`): after the last group that closed
   * when `chainGroup` holds frames, else the chain's value at the applied index.
   */
  readonly chainLink: Uint8Array;
  /** The applied chain's open group, its frames ending at the applied index (none: empty). */
  readonly chainGroup?: Uint8Array;
  /** The member registry, by ascending id (absent or empty: none registered). */
  readonly members?: readonly MemberRecord[];
}

/** Bytes that are not an encoded key-value state of this version. */
export class KvStateCodecError extends Error {
  override name = "KvStateCodecError";
  constructor(reason: string) {
    super(`Cannot decode key-value state: ${reason}`);
  }
}

const enum Tag {
  None = 0,
  Put = 1,
  Delete = 2,
  Cas = 3,
  Noop = 4,
  SessionOpened = 5,
  SessionError = 6,
  Txn = 7,
  LeaseGranted = 8,
  LeaseRevoked = 9,
  LeaseNotFound = 10,
}

const utf8 = new TextEncoder();
/** Keys whose UTF-8 form one step computes, while sizing the output. */
const KEYS_PER_STEP = 4096;

/** The encoded bytes of `state`. */
export function encodeKvState(state: KvSnapshotState): Uint8Array {
  const steps = encodeKvStateInSteps(state, Infinity);
  for (;;) {
    const next = steps.next();
    if (next.done) return next.value;
  }
}

/**
 * Encodes `state` a slice at a time: the generator yields after every few
 * thousand keys while sizing the output, then after roughly every `bytesPerStep`
 * bytes of keys and values (plus 64 per key), and returns the encoded bytes, so a caller
 * on the event loop can let other work run between slices (the node takes snapshots
 * without stalling its Ready loop). The result equals {@link encodeKvState}'s.
 * `state` must not change meanwhile; {@link KvStore.exportState} gives one that does not.
 */
export function* encodeKvStateInSteps(
  state: KvSnapshotState,
  bytesPerStep = 1 << 20,
): Generator<void, Uint8Array> {
  const { store, appliedTerm, chainLink } = state;
  if (chainLink.length !== CHAIN_LINK_BYTES) {
    throw new Error(`Cannot encode key-value state: the chain link is ${chainLink.length} bytes`);
  }
  const sessions = store.sessions.map((s) => ({ s, result: encodeResult(s.lastResult) }));
  const members = (state.members ?? []).map((m) => ({ m, address: utf8.encode(m.peerAddress) }));
  const chainGroup = state.chainGroup ?? new Uint8Array(0);
  // Sizes first, so the output is allocated once.
  let size = MAGIC.length + 4 + 8 + 8 + CHAIN_LINK_BYTES + 8 + 4 + 4;
  if (members.length > 0) size += 8 + 4;
  if (chainGroup.length > 0) size += 8 + chainGroup.length;
  for (const { address } of members) size += 13 + address.length;
  for (const { result } of sessions) size += 24 + result.length;
  if (store.keys.length !== store.values.length) {
    throw new Error(
      `Cannot encode key-value state: ${store.keys.length} keys but ${store.values.length} values`,
    );
  }
  const n = store.keys.length;
  for (
    const [name, list] of [["create", store.createIndexes], ["mod", store.modIndexes]] as const
  ) {
    if (list !== undefined && list.length !== n) {
      throw new Error(
        `Cannot encode key-value state: ${n} keys but ${list.length} ${name} indexes`,
      );
    }
  }
  // The sections: their count, and the key indexes (tag, length, 16 bytes per key).
  size += 4 + 8 + 16 * n;
  const leases = store.leases ?? [];
  size += 8 + 4 + 16 * leases.length;
  if (store.keyLeases !== undefined && store.keyLeases.length !== n) {
    throw new Error(
      `Cannot encode key-value state: ${n} keys but ${store.keyLeases.length} key leases`,
    );
  }
  let leased = 0;
  for (const lease of store.keyLeases ?? []) if (lease !== 0) leased++;
  size += 8 + 4 + 12 * leased;
  const keys: Uint8Array[] = new Array(n);
  let sinceYield = 0;
  for (let i = 0; i < n; i++) {
    const k = utf8.encode(store.keys[i]!);
    keys[i] = k;
    size += 8 + k.length + store.values[i]!.length;
    // Encoding keys allocates: a slice of keys per step keeps each one short.
    if (++sinceYield >= KEYS_PER_STEP) {
      sinceYield = 0;
      yield;
    }
  }
  yield;
  const out = new Uint8Array(size);
  const w = new Writer(out);
  w.bytes(MAGIC);
  w.u32(KV_STATE_VERSION);
  w.u64(store.appliedIndex);
  w.u64(appliedTerm);
  w.bytes(chainLink);
  w.u64(store.sessionsNowMs);
  w.u32(sessions.length);
  for (const { s, result } of sessions) {
    w.u64(s.id);
    w.u64(s.lastSequence);
    w.u64(s.lastActiveMs);
    w.bytes(result);
  }
  w.u32(n);
  sinceYield = 0;
  for (let i = 0; i < n; i++) {
    const value = store.values[i]!;
    const k = keys[i]!;
    w.u32(k.length);
    w.bytes(k);
    w.u32(value.length);
    w.bytes(value);
    sinceYield += 64 + k.length + value.length;
    if (sinceYield >= bytesPerStep) {
      sinceYield = 0;
      yield;
    }
  }
  w.u32(3 + (members.length > 0 ? 1 : 0) + (chainGroup.length > 0 ? 1 : 0));
  w.u32(Section.KeyIndexes);
  w.u32(16 * n);
  for (let i = 0; i < n; i++) {
    w.u64(store.createIndexes?.[i] ?? store.appliedIndex);
    w.u64(store.modIndexes?.[i] ?? store.appliedIndex);
  }
  w.u32(Section.Leases);
  w.u32(4 + 16 * leases.length);
  w.u32(leases.length);
  for (const { id, ttl } of leases) {
    w.u64(id);
    w.u64(ttl);
  }
  w.u32(Section.KeyLeases);
  w.u32(4 + 12 * leased);
  w.u32(leased);
  store.keyLeases?.forEach((lease, i) => {
    if (lease === 0) return;
    w.u32(i);
    w.u64(lease);
  });
  if (members.length > 0) {
    w.u32(Section.Members);
    w.u32(4 + members.reduce((sum, { address }) => sum + 13 + address.length, 0));
    w.u32(members.length);
    for (const { m, address } of members) {
      w.u64(m.id);
      w.u8(m.learner ? 1 : 0);
      w.u32(address.length);
      w.bytes(address);
    }
  }
  if (chainGroup.length > 0) {
    w.u32(Section.ChainGroup);
    w.u32(chainGroup.length);
    w.bytes(chainGroup);
  }
  if (w.offset !== size) {
    throw new Error(`Invariant: encoded ${w.offset} bytes of state, sized ${size}`);
  }
  return out;
}

/**
 * Decodes bytes written by {@link encodeKvState}. Values are copied out, so the
 * caller may reuse `bytes`.
 *
 * @throws {KvStateCodecError} naming what is wrong and where: another magic or
 * version, a length past the end, an unknown result tag, a repeated key or session,
 * bytes left over.
 */
export function decodeKvState(bytes: Uint8Array): KvSnapshotState {
  const r = new Reader(bytes);
  const magic = r.bytes(MAGIC.length, "the magic");
  if (!magic.every((b, i) => b === MAGIC[i])) {
    throw new KvStateCodecError("it does not start with RKVSTATE");
  }
  const version = r.u32("the version");
  if (version < OLDEST_READ_VERSION || version > KV_STATE_VERSION) {
    throw new KvStateCodecError(
      `version ${version}; this node reads versions ${OLDEST_READ_VERSION} to ${KV_STATE_VERSION}`,
    );
  }
  const appliedIndex = r.u64("the applied index");
  const appliedTerm = r.u64("the applied term");
  const chainLink = r.bytes(CHAIN_LINK_BYTES, "the chain link").slice();
  const sessionsNowMs = r.u64("the sessions' clock");
  const sessionCount = r.u32("the session count");
  const sessions: SessionImage[] = [];
  const ids = new Set<number>();
  for (let i = 0; i < sessionCount; i++) {
    const id = r.u64(`session ${i}'s id`);
    if (ids.has(id)) throw new KvStateCodecError(`session ${id} appears twice`);
    ids.add(id);
    const lastSequence = r.u64(`session ${id}'s sequence`);
    const lastActiveMs = r.u64(`session ${id}'s last activity`);
    const lastResult = decodeResult(r, `session ${id}'s result`);
    sessions.push({ id, lastSequence, lastActiveMs, lastResult });
  }
  const keyCount = r.u32("the key count");
  const keys: string[] = new Array(keyCount);
  const values: Uint8Array[] = new Array(keyCount);
  const seen = new Set<string>();
  const text = new TextDecoder("utf-8", { fatal: true });
  // Labels built only for an error message: a string per key and field cost more
  // than the rest of the decode (a restart decodes every key of the snapshot).
  const at = { i: 0 };
  const keyLength = new ItemLabel(at, "key ", "'s length");
  const keyName = new ItemLabel(at, "key ");
  const valueLength = new ItemLabel(at, "key ", "'s value length");
  const valueName = new ItemLabel(at, "key ", "'s value");
  for (let i = 0; i < keyCount; i++) {
    at.i = i;
    const keyBytes = r.bytes(r.u32(keyLength), keyName);
    let key: string;
    try {
      key = asciiString(keyBytes) ?? text.decode(keyBytes);
    } catch {
      throw new KvStateCodecError(`key ${i} at offset ${r.offset} is not UTF-8`);
    }
    if (seen.has(key)) throw new KvStateCodecError(`key ${JSON.stringify(key)} appears twice`);
    seen.add(key);
    const value = r.bytes(r.u32(valueLength), valueName).slice();
    keys[i] = key;
    values[i] = value;
  }
  const members: MemberRecord[] = [];
  let createIndexes: number[] | undefined;
  let modIndexes: number[] | undefined;
  let leases: { id: number; ttl: number }[] | undefined;
  let keyLeases: number[] | undefined;
  let chainGroup = new Uint8Array(0);
  const sectionCount = version >= 2 ? r.u32("the section count") : 0;
  const tags = new Set<number>();
  for (let s = 0; s < sectionCount; s++) {
    const tag = r.u32(`section ${s}'s tag`);
    if (tags.has(tag)) throw new KvStateCodecError(`section ${tag} appears twice`);
    tags.add(tag);
    const length = r.u32(`section ${tag}'s length`);
    const end = r.offset + length;
    switch (tag) {
      case Section.KeyIndexes: {
        if (length !== 16 * keyCount) {
          throw new KvStateCodecError(
            `the key indexes section is ${length} bytes; ${keyCount} keys take ${16 * keyCount}`,
          );
        }
        createIndexes = new Array(keyCount);
        modIndexes = new Array(keyCount);
        const create = new ItemLabel(at, "key ", "'s create index");
        const mod = new ItemLabel(at, "key ", "'s mod index");
        for (let i = 0; i < keyCount; i++) {
          at.i = i;
          createIndexes[i] = r.u64(create);
          modIndexes[i] = r.u64(mod);
        }
        break;
      }
      case Section.Leases: {
        const count = r.u32("the lease count");
        leases = [];
        for (let i = 0; i < count; i++) {
          leases.push({ id: r.u64(`lease ${i}'s id`), ttl: r.u64(`lease ${i}'s TTL`) });
        }
        break;
      }
      case Section.KeyLeases: {
        const count = r.u32("the key lease count");
        keyLeases = new Array(keyCount).fill(0);
        for (let i = 0; i < count; i++) {
          const position = r.u32(`key lease ${i}'s position`);
          if (position >= keyCount) {
            throw new KvStateCodecError(`key lease ${i} names key ${position} of ${keyCount}`);
          }
          keyLeases[position] = r.u64(`key lease ${i}`);
        }
        break;
      }
      case Section.Members: {
        const memberCount = r.u32("the member count");
        for (let i = 0; i < memberCount; i++) {
          const id = r.u64(`member ${i}'s id`);
          if (id === 0) throw new KvStateCodecError(`member ${i} has id 0`);
          const prior = members[members.length - 1];
          if (prior !== undefined && prior.id >= id) {
            throw new KvStateCodecError(`member ${id} is out of order or repeated`);
          }
          const learner = r.bool(`member ${id}'s learner flag`);
          const addressBytes = r.bytes(
            r.u32(`member ${id}'s address length`),
            `member ${id}'s address`,
          );
          let peerAddress: string;
          try {
            peerAddress = text.decode(addressBytes);
          } catch {
            throw new KvStateCodecError(`member ${id}'s address is not UTF-8`);
          }
          members.push({ id, peerAddress, learner });
        }
        break;
      }
      case Section.ChainGroup: {
        const group = r.bytes(length, "the applied chain's open group").slice();
        const wrong = checkChainGroup(group, appliedIndex);
        if (wrong !== undefined) throw new KvStateCodecError(wrong);
        chainGroup = group;
        break;
      }
      default:
        throw new KvStateCodecError(
          `unknown section ${tag} at offset ${r.offset - 8} (written by a newer version?)`,
        );
    }
    if (r.offset !== end) {
      throw new KvStateCodecError(`section ${tag} ends at ${r.offset}, its length says ${end}`);
    }
  }
  if (r.offset !== bytes.length) {
    throw new KvStateCodecError(
      `${bytes.length - r.offset} bytes left over after the last section at offset ${r.offset}`,
    );
  }
  if (appliedIndex > 0 && appliedTerm === 0) {
    throw new KvStateCodecError(`applied index ${appliedIndex} has no term`);
  }
  return {
    store: {
      appliedIndex,
      sessionsNowMs,
      sessions,
      keys,
      values,
      ...(createIndexes === undefined ? {} : { createIndexes, modIndexes }),
      ...(leases === undefined ? {} : { leases }),
      ...(keyLeases === undefined ? {} : { keyLeases }),
    },
    appliedTerm,
    chainLink,
    chainGroup,
    members,
  };
}

function encodeResult(result: ApplyResult | undefined): Uint8Array {
  if (result === undefined) return Uint8Array.of(Tag.None);
  switch (result.kind) {
    case "put": {
      const w = new Writer(new Uint8Array(9));
      w.u8(Tag.Put);
      w.u64(result.index);
      return w.out;
    }
    case "delete":
      return Uint8Array.of(Tag.Delete, result.deleted ? 1 : 0);
    case "cas": {
      const w = new Writer(new Uint8Array(7 + result.value.length));
      w.u8(Tag.Cas);
      w.u8(result.succeeded ? 1 : 0);
      w.u8(result.found ? 1 : 0);
      w.u32(result.value.length);
      w.bytes(result.value);
      return w.out;
    }
    case "noop":
      return Uint8Array.of(Tag.Noop);
    case "session_opened": {
      const w = new Writer(new Uint8Array(9));
      w.u8(Tag.SessionOpened);
      w.u64(result.id);
      return w.out;
    }
    case "txn": {
      const w = new Writer(new Uint8Array(6 + result.response.length));
      w.u8(Tag.Txn);
      w.u8(result.succeeded ? 1 : 0);
      w.u32(result.response.length);
      w.bytes(result.response);
      return w.out;
    }
    case "lease_granted": {
      const w = new Writer(new Uint8Array(17));
      w.u8(Tag.LeaseGranted);
      w.u64(result.id);
      w.u64(result.ttl);
      return w.out;
    }
    case "lease_revoked": {
      const w = new Writer(new Uint8Array(10));
      w.u8(Tag.LeaseRevoked);
      w.u8(result.found ? 1 : 0);
      w.u64(result.deleted);
      return w.out;
    }
    case "lease_not_found": {
      const w = new Writer(new Uint8Array(9));
      w.u8(Tag.LeaseNotFound);
      w.u64(result.id);
      return w.out;
    }
    case "session_error": {
      const m = utf8.encode(result.message);
      const w = new Writer(new Uint8Array(5 + m.length));
      w.u8(Tag.SessionError);
      w.u32(m.length);
      w.bytes(m);
      return w.out;
    }
  }
}

function decodeResult(r: Reader, what: string): ApplyResult | undefined {
  const tag = r.u8(what);
  switch (tag) {
    case Tag.None:
      return undefined;
    case Tag.Put:
      return { kind: "put", index: r.u64(what) };
    case Tag.Delete:
      return { kind: "delete", deleted: r.bool(what) };
    case Tag.Cas: {
      const succeeded = r.bool(what);
      const found = r.bool(what);
      const value = r.bytes(r.u32(what), what).slice();
      return { kind: "cas", succeeded, found, value };
    }
    case Tag.Noop:
      return { kind: "noop" };
    case Tag.SessionOpened:
      return { kind: "session_opened", id: r.u64(what) };
    case Tag.Txn: {
      const succeeded = r.bool(what);
      const response = r.bytes(r.u32(what), what).slice();
      return { kind: "txn", succeeded, response };
    }
    case Tag.LeaseGranted:
      return { kind: "lease_granted", id: r.u64(what), ttl: r.u64(what) };
    case Tag.LeaseRevoked:
      return { kind: "lease_revoked", found: r.bool(what), deleted: r.u64(what) };
    case Tag.LeaseNotFound:
      return { kind: "lease_not_found", id: r.u64(what) };
    case Tag.SessionError: {
      const m = r.bytes(r.u32(what), what);
      try {
        return {
          kind: "session_error",
          message: new TextDecoder("utf-8", { fatal: true }).decode(m),
        };
      } catch {
        throw new KvStateCodecError(`${what} holds a message that is not UTF-8`);
      }
    }
    default:
      throw new KvStateCodecError(`${what} has unknown tag ${tag} at offset ${r.offset - 1}`);
  }
}

class Writer {
  readonly #view: DataView;
  offset = 0;
  constructor(readonly out: Uint8Array) {
    this.#view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  }
  u8(n: number): void {
    this.#view.setUint8(this.offset, n);
    this.offset += 1;
  }
  u32(n: number): void {
    this.#view.setUint32(this.offset, n, true);
    this.offset += 4;
  }
  u64(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new Error(`Cannot encode key-value state: ${n} is not an integer in 0..2^53-1`);
    }
    this.#view.setUint32(this.offset, n % 0x1_0000_0000, true);
    this.#view.setUint32(this.offset + 4, Math.floor(n / 0x1_0000_0000), true);
    this.offset += 8;
  }
  bytes(b: Uint8Array): void {
    this.out.set(b, this.offset);
    this.offset += b.length;
  }
}

/** What a read is of, for an error message: a string, or an {@link ItemLabel} built only then. */
type Label = string | ItemLabel;

/** Names item `at.i` of a list ("key 7's length"), as a string only when asked (an error). */
class ItemLabel {
  constructor(
    readonly at: { i: number },
    readonly before: string,
    readonly after = "",
  ) {}
  toString(): string {
    return `${this.before}${this.at.i}${this.after}`;
  }
}

/**
 * `bytes` as a string when they are all ASCII (what keys mostly are), without a
 * call into the runtime's decoder per key; undefined otherwise (then decoded as
 * UTF-8, which checks them). Long ones go to the decoder, which is faster there.
 */
function asciiString(bytes: Uint8Array): string | undefined {
  if (bytes.length > 64) return undefined;
  let s = "";
  for (let k = 0; k < bytes.length; k++) {
    const b = bytes[k]!;
    if (b >= 0x80) return undefined;
    s += String.fromCharCode(b);
  }
  return s;
}

class Reader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  offset = 0;
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  #need(n: number, what: Label): void {
    if (this.offset + n > this.#bytes.length) {
      throw new KvStateCodecError(
        `${what} at offset ${this.offset} needs ${n} bytes, only ${
          this.#bytes.length - this.offset
        } remain (truncated?)`,
      );
    }
  }
  u8(what: Label): number {
    this.#need(1, what);
    return this.#view.getUint8(this.offset++);
  }
  bool(what: Label): boolean {
    const b = this.u8(what);
    if (b > 1) throw new KvStateCodecError(`${what} has ${b} where a boolean (0 or 1) belongs`);
    return b === 1;
  }
  u32(what: Label): number {
    this.#need(4, what);
    const n = this.#view.getUint32(this.offset, true);
    this.offset += 4;
    return n;
  }
  u64(what: Label): number {
    this.#need(8, what);
    const lo = this.#view.getUint32(this.offset, true);
    const hi = this.#view.getUint32(this.offset + 4, true);
    if (hi >= 1 << 21) {
      throw new KvStateCodecError(`${what} at offset ${this.offset} is above 2^53 - 1`);
    }
    this.offset += 8;
    return hi * 0x1_0000_0000 + lo;
  }
  bytes(n: number, what: Label): Uint8Array {
    this.#need(n, what);
    const b = this.#bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return b;
  }
}
