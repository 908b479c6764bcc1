/**
 * The bytes of the leader's small proposals, packed side by side into shared
 * buffers (slabs) instead of one ArrayBuffer each.
 *
 * Why: a leader keeps every entry it proposed in its in-memory log until
 * compaction, up to `--snapshot-entries` + `--snapshot-catchup-entries` of them
 * (15,000 by default). As `encodeCommand` returns it, each entry's data is its own
 * ArrayBuffer of about 300 bytes for a 256-byte put, and an ArrayBuffer costs far
 * more than its bytes: a JSArrayBuffer of 96 bytes on the V8 heap, and off it a
 * V8 BackingStore, its ArrayBuffer extension and a malloc chunk header for the
 * bytes. Heap snapshots of a loaded 3-node cluster (issue 9's longrun: 256-byte
 * puts, 48 in flight) showed the leader holding 24,660 ArrayBuffers against a
 * follower's 11,133, whose entries are views into the few peer batches they
 * arrived in. Packed here, an entry's data is a view (a Uint8Array, which it had
 * anyway) into a 64 KiB slab shared with about 200 neighbours.
 *
 * What it costs: one copy of each small proposal (the encoded command, which
 * dies young, is copied into the slab). A slab is freed by the garbage collector
 * once none of its entries is referenced: the log compacts entries in index order,
 * which is the order they were packed, so old slabs die whole and at most the
 * oldest live slab holds some compacted entries' bytes. Entries bigger than
 * {@link PACKED_MAX_BYTES} keep their own buffer: a large value must not pin a
 * slab, nor a slab pin it.
 *
 * Raft does not care where an entry's bytes live; every reader of an entry's data
 * (the WAL, the peer codec, the state machine) reads it through its view
 * (byteOffset and length), never its whole `.buffer`, and nothing writes to it.
 *
 * @module
 */

/** The size of one slab: a malloc below glibc's mmap threshold as the nodes run it (128 KiB). */
export const SLAB_BYTES = 64 * 1024;

/** Proposals up to this size are packed; bigger ones keep the buffer they came in. */
export const PACKED_MAX_BYTES = 4 * 1024;

/** Packs small byte strings into shared slabs; see the module comment. */
export class EntrySlab {
  readonly #slabBytes: number;
  readonly #packedMax: number;
  #slab: Uint8Array;
  #used = 0;

  constructor(slabBytes = SLAB_BYTES, packedMax = PACKED_MAX_BYTES) {
    if (!(packedMax > 0 && packedMax <= slabBytes)) {
      throw new RangeError(
        `Cannot make an entry slab: packed entries of up to ${packedMax} bytes do not fit slabs of ${slabBytes} bytes`,
      );
    }
    this.#slabBytes = slabBytes;
    this.#packedMax = packedMax;
    this.#slab = new Uint8Array(0);
  }

  /**
   * `bytes` as a view into a slab holding a copy of them, or `bytes` itself when it is
   * empty or bigger than the packed maximum. The caller must not write to the view
   * (its neighbours share the buffer), nor keep using `bytes` expecting them to be
   * the same object.
   */
  pack(bytes: Uint8Array): Uint8Array {
    const n = bytes.byteLength;
    if (n === 0 || n > this.#packedMax) return bytes;
    if (this.#used + n > this.#slab.byteLength) {
      this.#slab = new Uint8Array(this.#slabBytes);
      this.#used = 0;
    }
    const view = this.#slab.subarray(this.#used, this.#used + n);
    view.set(bytes);
    this.#used += n;
    return view;
  }
}
