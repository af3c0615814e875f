//! Prometheus metrics of the server, rendered in the text exposition format.
//!
//! etcd's metric names, types, labels and histogram buckets (compared with a
//! real etcd 3.5.1's `/metrics` by the etcd_dropin test), so etcd's Grafana
//! dashboard and alert rules work unchanged. Raft figures come from the
//! state the member publishes; leader changes are counted from its stream of
//! state changes; pending and failed proposals and the disk latencies from
//! the member's own measurements (raft_kv::metrics); peer bytes from the
//! transport; peer round trips from peer_rtt.rs; gRPC calls by method and
//! code from grpc_metrics.rs; the key count from a count-only range per
//! scrape.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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
    proposal_latency: Mutex<Histogram>,
    leader_changes: AtomicU64,
    last_leader: AtomicU64,
    /// gRPC requests by method and code (grpc_metrics.rs).
    pub grpc: crate::grpc_metrics::GrpcMetrics,
    /// Round trips to the peers (peer_rtt.rs).
    pub rtt: Arc<crate::peer_rtt::PeerRtt>,
}

impl Metrics {
    /// Metrics whose peer round trips are `rtt` (which the peer transport
    /// fills).
    pub fn with_rtt(rtt: Arc<crate::peer_rtt::PeerRtt>) -> Self {
        Metrics { rtt, ..Default::default() }
    }

    /// Counts one request to `method` (a gRPC method or HTTP path).
    pub fn request(&self, method: &'static str) {
        *self.requests.lock().entry(method).or_default() += 1;
    }

    /// Records one client proposal's latency (submit → applied) if it
    /// applied; failures are counted by the member itself
    /// (`etcd_server_proposals_failed_total`).
    pub fn observe_proposal(&self, took: Duration, ok: bool) {
        if ok {
            self.proposals_ok.fetch_add(1, Ordering::Relaxed);
            self.proposal_latency.lock().observe(took);
        }
    }

    /// Counts a leader change when `now` names a new leader.
    pub fn observe_state(&self, now: &MemberState) {
        if now.leader != 0 && self.last_leader.swap(now.leader, Ordering::Relaxed) != now.leader {
            self.leader_changes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text of every metric: etcd's names, types, labels and
    /// buckets where etcd has the metric (its dashboards and alerts read
    /// them unchanged), `raft_kv_*` for raft-kv's own.
    pub fn render(&self, s: &MemberState, view: &View<'_>) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, kind: &str, help: &str, v: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        gauge(
            "etcd_server_has_leader",
            "gauge",
            "Whether or not a leader exists. 1 is existence, 0 is not.",
            f64::from(s.leader != 0),
        );
        gauge(
            "etcd_server_is_leader",
            "gauge",
            "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            f64::from(s.role == Role::Leader),
        );
        gauge(
            "etcd_server_leader_changes_seen_total",
            "counter",
            "The number of leader changes seen.",
            self.leader_changes.load(Ordering::Relaxed) as f64,
        );
        gauge(
            "etcd_server_proposals_committed_total",
            "gauge",
            "The total number of consensus proposals committed.",
            s.commit_index as f64,
        );
        gauge(
            "etcd_server_proposals_applied_total",
            "gauge",
            "The total number of consensus proposals applied.",
            s.applied_index as f64,
        );
        gauge(
            "etcd_server_proposals_pending",
            "gauge",
            "The current number of pending proposals to commit.",
            view.node.proposals_pending.load(Ordering::Relaxed).max(0) as f64,
        );
        gauge(
            "etcd_server_proposals_failed_total",
            "counter",
            "The total number of failed proposals seen.",
            view.node.proposals_failed.load(Ordering::Relaxed) as f64,
        );
        if let Some(db_size) = view.db_size {
            gauge(
                "etcd_mvcc_db_total_size_in_bytes",
                "gauge",
                "Total size of the underlying database physically allocated in bytes.",
                db_size.total as f64,
            );
            gauge(
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "gauge",
                "Total size of the underlying database logically in use in bytes.",
                db_size.in_use as f64,
            );
        }
        if let Some(keys) = view.keys {
            gauge("etcd_debugging_mvcc_keys_total", "gauge", "Total number of keys.", keys as f64);
        }
        gauge("raft_kv_raft_term", "gauge", "Current raft term.", s.term as f64);
        gauge("raft_kv_mvcc_revision", "gauge", "Current store revision.", s.revision as f64);
        gauge("raft_kv_mvcc_compact_revision", "gauge", "Store compact revision.", s.compact_revision as f64);
        gauge(
            "raft_kv_proposals_succeeded_total",
            "counter",
            "Proposals from this member's clients that applied.",
            self.proposals_ok.load(Ordering::Relaxed) as f64,
        );
        let t = view.transport;
        gauge("raft_kv_transport_messages_sent_total", "counter", "Raft messages sent.", t.messages_sent as f64);
        gauge(
            "raft_kv_transport_messages_received_total",
            "counter",
            "Raft messages received.",
            t.messages_received as f64,
        );
        gauge(
            "raft_kv_transport_messages_dropped_total",
            "counter",
            "Raft messages dropped.",
            t.messages_dropped as f64,
        );
        gauge(
            "raft_kv_peer_messages_refused_total",
            "counter",
            "Peer messages refused before raft saw them (forged or malformed).",
            view.node.refused_peer_messages.load(Ordering::Relaxed) as f64,
        );
        let _ = writeln!(out, "# HELP etcd_server_version Which version is running. 1 for 'server_version' label with current version.\n# TYPE etcd_server_version gauge\netcd_server_version{{server_version=\"{}\"}} 1", crate::etcd::ETCD_VERSION);
        let _ = writeln!(out, "# HELP etcd_cluster_version Which version is running. 1 for 'cluster_version' label with current cluster version\n# TYPE etcd_cluster_version gauge\netcd_cluster_version{{cluster_version=\"3.5\"}} 1");
        let _ = writeln!(out, "# HELP etcd_server_id Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.\n# TYPE etcd_server_id gauge\netcd_server_id{{server_id=\"{:x}\"}} 1", s.id);
        peer_counters(&mut out, view.peers);
        self.rtt.render(&mut out);
        self.proposal_latency.lock().render(
            &mut out,
            "raft_kv_proposal_apply_duration_seconds",
            "Time from proposing on this member to the entry being applied here.",
        );
        render_engine_histogram(
            &mut out,
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
            &view.node.fsync.snapshot(),
        );
        render_engine_histogram(
            &mut out,
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend.",
            &view.node.apply_write.snapshot(),
        );
        self.grpc.render(&mut out);
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

/// What [`Metrics::render`] reads besides the member's state.
pub struct View<'a> {
    /// The engine's size estimates (total and in use), if the member
    /// answered.
    pub db_size: Option<raft_kv::engine::DbSize>,
    /// Keys in the store (a count-only range), if the member answered.
    pub keys: Option<i64>,
    /// The peer transport's totals.
    pub transport: &'a transport_tcp::Metrics,
    /// The peer transport's counters by peer id.
    pub peers: &'a BTreeMap<u64, transport_tcp::Metrics>,
    /// The member's own measurements.
    pub node: &'a raft_kv::metrics::NodeMetrics,
}

/// etcd's per-peer byte counters (`To` / `From` the peer's id in hex).
fn peer_counters(out: &mut String, peers: &BTreeMap<u64, transport_tcp::Metrics>) {
    let _ = writeln!(
        out,
        "# HELP etcd_network_peer_sent_bytes_total The total number of bytes sent to peers.\n\
         # TYPE etcd_network_peer_sent_bytes_total counter"
    );
    for (id, m) in peers {
        let _ = writeln!(out, "etcd_network_peer_sent_bytes_total{{To=\"{id:x}\"}} {}", m.bytes_sent);
    }
    let _ = writeln!(
        out,
        "# HELP etcd_network_peer_received_bytes_total The total number of bytes received from peers.\n\
         # TYPE etcd_network_peer_received_bytes_total counter"
    );
    for (id, m) in peers {
        let _ = writeln!(out, "etcd_network_peer_received_bytes_total{{From=\"{id:x}\"}} {}", m.bytes_received);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The two size gauges report the engine's two estimates, not one
    /// figure twice.
    #[test]
    fn size_gauges_report_total_and_in_use() {
        let (transport, peers, node) = (transport_tcp::Metrics::default(), BTreeMap::new(), Default::default());
        let size = raft_kv::engine::DbSize { total: 9000, in_use: 1234 };
        let state = MemberState {
            id: 1,
            leader: 1,
            term: 1,
            role: Role::Leader,
            commit_index: 1,
            applied_index: 1,
            revision: 1,
            compact_revision: 0,
            stopped: false,
        };
        let view = View { db_size: Some(size), keys: None, transport: &transport, peers: &peers, node: &node };
        let text = Metrics::default().render(&state, &view);
        assert!(text.contains("\netcd_mvcc_db_total_size_in_bytes 9000\n"), "{text}");
        assert!(text.contains("\netcd_mvcc_db_total_size_in_use_in_bytes 1234\n"), "{text}");
    }
}
