//! Prometheus metrics of the server, rendered in the text exposition format.
//!
//! Raft figures come from the state the member publishes; leader changes are
//! counted from its stream of state changes; proposal latency is
//! measured around each proposal from this member (submit → applied here);
//! request counts by gRPC/HTTP method are counted by the handlers.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use raft_kv::{MemberState, Role};

/// Upper bounds of the latency histograms, in seconds.
const BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096];

/// A latency histogram with fixed buckets.
#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += s;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {}", self.counts[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", self.sum, self.count);
    }
}

/// Every metric of one server.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<&'static str, u64>>,
    proposals_ok: AtomicU64,
    proposals_failed: AtomicU64,
    proposal_latency: Mutex<Histogram>,
    leader_changes: AtomicU64,
    last_leader: AtomicU64,
}

impl Metrics {
    /// Counts one request to `method` (a gRPC method or HTTP path).
    pub fn request(&self, method: &'static str) {
        *self.requests.lock().entry(method).or_default() += 1;
    }

    /// Records one proposal's outcome and its latency (submit → applied).
    pub fn observe_proposal(&self, took: Duration, ok: bool) {
        if ok {
            self.proposals_ok.fetch_add(1, Ordering::Relaxed);
            self.proposal_latency.lock().observe(took);
        } else {
            self.proposals_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a leader change when `now` names a new leader.
    pub fn observe_state(&self, now: &MemberState) {
        if now.leader != 0 && self.last_leader.swap(now.leader, Ordering::Relaxed) != now.leader {
            self.leader_changes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text of every metric, plus the transport's counters
    /// and the member's disk latencies.
    pub fn render(
        &self,
        s: &MemberState,
        db_size: Option<u64>,
        transport: &transport_tcp::Metrics,
        node: &raft_kv::metrics::NodeMetrics,
    ) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, kind: &str, help: &str, v: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        {
            gauge("etcd_server_has_leader", "gauge", "1 when the member knows a leader.", f64::from(s.leader != 0));
            gauge(
                "etcd_server_is_leader",
                "gauge",
                "1 when the member is the leader.",
                f64::from(s.role == Role::Leader),
            );
            gauge("raft_kv_raft_term", "gauge", "Current raft term.", s.term as f64);
            gauge(
                "etcd_server_proposals_committed_total",
                "gauge",
                "Highest committed raft index.",
                s.commit_index as f64,
            );
            gauge(
                "etcd_server_proposals_applied_total",
                "gauge",
                "Highest applied raft index.",
                s.applied_index as f64,
            );
            if let Some(db_size) = db_size {
                gauge("etcd_mvcc_db_total_size_in_bytes", "gauge", "Approximate engine size.", db_size as f64);
            }
            gauge("raft_kv_mvcc_revision", "gauge", "Current store revision.", s.revision as f64);
            gauge("raft_kv_mvcc_compact_revision", "gauge", "Store compact revision.", s.compact_revision as f64);
        }
        gauge(
            "etcd_server_leader_changes_seen_total",
            "counter",
            "Leader changes seen by this member.",
            self.leader_changes.load(Ordering::Relaxed) as f64,
        );
        gauge(
            "raft_kv_proposals_succeeded_total",
            "counter",
            "Proposals from this member that applied.",
            self.proposals_ok.load(Ordering::Relaxed) as f64,
        );
        gauge(
            "etcd_server_proposals_failed_total",
            "counter",
            "Proposals from this member that failed.",
            self.proposals_failed.load(Ordering::Relaxed) as f64,
        );
        gauge(
            "raft_kv_transport_messages_sent_total",
            "counter",
            "Raft messages sent.",
            transport.messages_sent as f64,
        );
        gauge(
            "raft_kv_transport_messages_received_total",
            "counter",
            "Raft messages received.",
            transport.messages_received as f64,
        );
        gauge(
            "raft_kv_transport_messages_dropped_total",
            "counter",
            "Raft messages dropped.",
            transport.messages_dropped as f64,
        );
        gauge(
            "raft_kv_peer_messages_refused_total",
            "counter",
            "Peer messages refused before raft saw them (forged or malformed).",
            node.refused_peer_messages.load(Ordering::Relaxed) as f64,
        );
        self.proposal_latency.lock().render(
            &mut out,
            "raft_kv_proposal_apply_duration_seconds",
            "Time from proposing on this member to the entry being applied here.",
        );
        render_engine_histogram(
            &mut out,
            "etcd_disk_wal_fsync_duration_seconds",
            "Synced raft log writes (one fsync per Ready).",
            &node.fsync.snapshot(),
        );
        render_engine_histogram(
            &mut out,
            "etcd_disk_backend_commit_duration_seconds",
            "Apply batch writes to the state machine.",
            &node.apply_write.snapshot(),
        );
        let _ = writeln!(
            out,
            "# HELP raft_kv_requests_total Client requests by method.\n# TYPE raft_kv_requests_total counter"
        );
        for (method, n) in self.requests.lock().iter() {
            let _ = writeln!(out, "raft_kv_requests_total{{method=\"{method}\"}} {n}");
        }
        out
    }
}

/// Renders one of the member's engine histograms.
fn render_engine_histogram(out: &mut String, name: &str, help: &str, h: &raft_kv::metrics::HistogramSnapshot) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (b, n) in raft_kv::metrics::BUCKETS.iter().zip(&h.cumulative) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", h.sum_seconds, h.count);
}
