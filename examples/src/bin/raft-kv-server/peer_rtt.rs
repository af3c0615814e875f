//! `etcd_network_peer_round_trip_time_seconds{To}`: etcd probes each peer
//! over its peer HTTP endpoint and records the round trip. raft-kv measures
//! the raft path itself: the peer transport times a heartbeat to a peer
//! until that peer's answer is read (`transport_tcp::RoundTripHook`, at
//! most one sample per peer a second), and [`PeerRtt::observe`] files it
//! here. So the figure covers both transports and the peer's raft loop; as
//! only the leader sends heartbeats, only the leader reports round trips.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use parking_lot::Mutex;

use crate::etcd::Shared;

/// etcd's buckets for the metric: 0.1 ms doubling 16 times.
const BUCKETS: [f64; 16] = [
    0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512, 0.1024, 0.2048, 0.4096, 0.8192,
    1.6384, 3.2768,
];
/// How often peers that left the cluster are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(5);

#[derive(Default, Clone)]
struct Hist {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Round-trip histograms by peer id (members only, so bounded).
#[derive(Default)]
pub struct PeerRtt(Mutex<BTreeMap<u64, Hist>>);

impl PeerRtt {
    /// Records one round trip to `peer`.
    pub fn observe(&self, peer: u64, d: Duration) {
        let s = d.as_secs_f64();
        let mut m = self.0.lock();
        let h = m.entry(peer).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += s;
    }

    /// Forgets peers that are no longer members.
    fn retain(&self, members: &[u64]) {
        self.0.lock().retain(|id, _| members.contains(id));
    }

    /// Appends the histogram family.
    pub fn render(&self, out: &mut String) {
        const NAME: &str = "etcd_network_peer_round_trip_time_seconds";
        let _ = writeln!(out, "# HELP {NAME} Round-Trip-Time histogram between peers\n# TYPE {NAME} histogram");
        for (id, h) in self.0.lock().iter() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(out, "{NAME}_bucket{{To=\"{id:x}\",le=\"{b}\"}} {}", h.counts[i]);
            }
            let _ = writeln!(out, "{NAME}_bucket{{To=\"{id:x}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{NAME}_sum{{To=\"{id:x}\"}} {}\n{NAME}_count{{To=\"{id:x}\"}} {}", h.sum, h.count);
        }
    }
}

/// Forgets the round trips of peers that are no longer members, every
/// [`PRUNE_EVERY`], until the member stops.
pub async fn prune(ctx: Shared) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if ctx.node.state().stopped {
            return;
        }
        if let Ok(members) = ctx.node.member_list().await {
            ctx.metrics.rtt.retain(&members.iter().map(|m| m.id).collect::<Vec<_>>());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_pruning() {
        let r = PeerRtt::default();
        r.observe(0xab, Duration::from_micros(300));
        r.retain(&[0xab]);
        let mut out = String::new();
        r.render(&mut out);
        assert!(out.contains("etcd_network_peer_round_trip_time_seconds_bucket{To=\"ab\",le=\"0.0002\"} 0"), "{out}");
        assert!(out.contains("etcd_network_peer_round_trip_time_seconds_bucket{To=\"ab\",le=\"0.0004\"} 1"), "{out}");
        r.retain(&[]);
        let mut out = String::new();
        r.render(&mut out);
        assert!(!out.contains("To="), "{out}");
    }
}
