/**
 * Histogram buckets, in seconds, shared by the duration metrics so that
 * dashboards can compare them. etcd's disk histograms start at 1 ms and double
 * (`etcd_disk_wal_fsync_duration_seconds`); a tmpfs or a cached write is faster,
 * so these start at 0.1 ms.
 *
 * @module
 */

/** 0.1 ms to about 6.5 s, doubling: fsyncs, WAL saves, Ready loops. */
export const DISK_BUCKETS: readonly number[] = Array.from(
  { length: 17 },
  (_, i) => 0.0001 * 2 ** i,
);

/** 0.5 ms to about 8 s, doubling: network round trips and calls. */
export const NETWORK_BUCKETS: readonly number[] = Array.from(
  { length: 15 },
  (_, i) => 0.0005 * 2 ** i,
);
