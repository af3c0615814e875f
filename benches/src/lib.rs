//! Shared helpers for the raft-kv benchmarks: an in-process 3-member
//! cluster on RocksDB in temp dirs over transport-mem.

use std::time::{Duration, Instant};

use raft_kv::{Config, Node, RocksEngine};
use transport_mem::MemNetwork;

/// A running 3-member cluster; dropping it stops the members and removes
/// their data.
pub struct Cluster {
    /// The members, by id order.
    pub nodes: Vec<Node>,
    /// The leader when the cluster came up.
    pub leader: Node,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    /// Starts three members and waits for a leader.
    pub fn start() -> Cluster {
        let net = MemNetwork::new(1);
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
        let nodes: Vec<Node> = (1..=3u64)
            .map(|id| {
                let b = Node::builder(Config::new(id).peers(vec![1, 2, 3]))
                    .engine(RocksEngine::open(dirs[(id - 1) as usize].path()).expect("engine"));
                let t = net.join(id, b.mailbox());
                b.transport(t).start().expect("start")
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        let leader = loop {
            if let Some(l) = nodes.iter().find(|n| n.status().map(|s| s.state.leader == n.id()).unwrap_or(false)) {
                break l.clone();
            }
            assert!(Instant::now() < deadline, "no leader");
            std::thread::sleep(Duration::from_millis(20));
        };
        Cluster { nodes, leader, _dirs: dirs }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &self.nodes {
            n.shutdown();
        }
    }
}
