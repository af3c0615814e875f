//! `etcd_network_peer_round_trip_time_seconds{To}`: etcd probes each peer
//! every few seconds and records the round trip. raft-kv's peer port speaks
//! a framed protocol that would count a probe as a bad handshake, so the
//! probe is a TCP connect to the peer's advertised client URL (SYN to
//! SYN-ACK: one network round trip, whatever the scheme), closed at once.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::etcd::Shared;

/// etcd's buckets for the metric: 0.1 ms doubling 16 times.
const BUCKETS: [f64; 16] = [
    0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512, 0.1024, 0.2048, 0.4096, 0.8192,
    1.6384, 3.2768,
];
/// How often each peer is probed.
const INTERVAL: Duration = Duration::from_secs(5);
/// A probe slower than this is a failed one (not recorded).
const TIMEOUT: Duration = Duration::from_secs(2);

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
    fn observe(&self, peer: u64, d: Duration) {
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

/// `host:port` of a URL such as `http://10.0.0.2:2379`.
fn host_port(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hp = rest.split('/').next()?;
    (!hp.is_empty()).then_some(hp)
}

/// Probes every other member every [`INTERVAL`] until the member stops.
pub async fn probe(ctx: Shared) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if ctx.node.state().stopped {
            return;
        }
        let Ok(members) = ctx.node.member_list().await else { continue };
        ctx.metrics.rtt.retain(&members.iter().map(|m| m.id).collect::<Vec<_>>());
        for m in members.iter().filter(|m| m.id != ctx.member_id) {
            let Some(hp) = m.client_ur_ls.first().and_then(|u| host_port(u)) else { continue };
            let start = Instant::now();
            if let Ok(Ok(_conn)) = tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(hp)).await {
                ctx.metrics.rtt.observe(m.id, start.elapsed());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_buckets() {
        assert_eq!(host_port("http://a:1/x"), Some("a:1"));
        assert_eq!(host_port("https://10.0.0.1:2379"), Some("10.0.0.1:2379"));
        assert_eq!(host_port("http://"), None);
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
