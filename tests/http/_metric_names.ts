/**
 * Every metric a node exports by name, with its type: the metrics test checks a
 * live exposition against it, and the deploy test checks that the Grafana
 * dashboard asks only for these.
 *
 * @module
 */

import type { Family } from "./_prom.ts";

/** Every raftkv metric and its type (README, "Metrics", lists what each measures). */
export const RAFTKV_METRICS: Record<string, Family["type"]> = {
  raftkv_has_leader: "gauge",
  raftkv_leader_id: "gauge",
  raftkv_leader_changes_seen_total: "counter",
  raftkv_term: "gauge",
  raftkv_role: "gauge",
  raftkv_commit_index: "gauge",
  raftkv_applied_index: "gauge",
  raftkv_last_log_index: "gauge",
  raftkv_proposals_committed_total: "counter",
  raftkv_proposals_applied_total: "counter",
  raftkv_proposals_failed_total: "counter",
  raftkv_proposals_pending: "gauge",
  raftkv_wal_fsync_duration_seconds: "histogram",
  raftkv_wal_save_duration_seconds: "histogram",
  raftkv_ready_loop_duration_seconds: "histogram",
  raftkv_peer_round_trip_seconds: "histogram",
  raftkv_peer_send_failures_total: "counter",
  raftkv_follower_lag_entries: "gauge",
  raftkv_snapshots_taken_total: "counter",
  raftkv_snapshots_installed_total: "counter",
  raftkv_log_compactions_total: "counter",
  raftkv_grpc_requests_total: "counter",
  raftkv_grpc_request_duration_seconds: "histogram",
  raftkv_grpc_fast_lane_calls_total: "counter",
  raftkv_process_resident_memory_bytes: "gauge",
  raftkv_nodejs_eventloop_lag_seconds: "gauge",
  raftkv_nodejs_heap_size_used_bytes: "gauge",
};
