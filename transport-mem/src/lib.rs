//! An in-memory network for raft-kv members living in one process.
//!
//! A [`MemNetwork`] routes raft messages between the members that joined it,
//! delivering each one immediately into the destination's
//! [`Mailbox`](raft_kv::Mailbox). Faults can be switched on at any time:
//! random message loss (from a seeded RNG, so a test run is repeatable),
//! one-way and symmetric partitions, isolation of a member, and heal.
//!
//! ```
//! use raft_kv::{Config, MemEngine, Node};
//! use transport_mem::MemNetwork;
//!
//! let net = MemNetwork::new(7);
//! let nodes: Vec<Node> = (1..=3)
//!     .map(|id| {
//!         let b = Node::builder(Config::new(id).peers(vec![1, 2, 3])).engine(MemEngine::new());
//!         let t = net.join(id, b.mailbox());
//!         b.transport(t).start().unwrap()
//!     })
//!     .collect();
//! # let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
//! # while nodes[0].status().unwrap().state.leader == 0 && std::time::Instant::now() < deadline {
//! #     std::thread::sleep(std::time::Duration::from_millis(20));
//! # }
//! nodes[0].put("k", "v").unwrap();
//! net.isolate(3); // member 3 hears nothing and is heard by no one
//! net.heal();
//! ```

pub mod sim;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parking_lot::Mutex;
use raft_kv::{Mailbox, RaftMessage, Transport};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Counters of what the network did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Messages handed to a mailbox.
    pub delivered: u64,
    /// Messages dropped by a fault or because the destination was unknown.
    pub dropped: u64,
}

struct NetState {
    mailboxes: BTreeMap<u64, Mailbox>,
    /// Directed links that drop everything: (from, to).
    blocked: BTreeSet<(u64, u64)>,
    drop_rate: f64,
    rng: SmallRng,
    stats: NetStats,
}

/// A network of in-process members. Cheap to clone (clones share the
/// network).
#[derive(Clone)]
pub struct MemNetwork {
    state: Arc<Mutex<NetState>>,
}

impl std::fmt::Debug for MemNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state.lock();
        f.debug_struct("MemNetwork")
            .field("members", &st.mailboxes.keys().collect::<Vec<_>>())
            .field("blocked", &st.blocked)
            .field("drop_rate", &st.drop_rate)
            .finish()
    }
}

impl MemNetwork {
    /// An empty network whose random faults come from `seed`.
    pub fn new(seed: u64) -> Self {
        MemNetwork {
            state: Arc::new(Mutex::new(NetState {
                mailboxes: BTreeMap::new(),
                blocked: BTreeSet::new(),
                drop_rate: 0.0,
                rng: SmallRng::seed_from_u64(seed),
                stats: NetStats::default(),
            })),
        }
    }

    /// Adds (or replaces, after a restart) member `id`, whose inbound
    /// messages go to `mailbox`, and returns its transport.
    pub fn join(&self, id: u64, mailbox: Mailbox) -> MemTransport {
        self.state.lock().mailboxes.insert(id, mailbox);
        MemTransport { id, net: self.clone() }
    }

    /// Removes member `id`: messages to it are dropped until it joins again.
    pub fn leave(&self, id: u64) {
        self.state.lock().mailboxes.remove(&id);
    }

    /// Drops every message from `from` to `to` (one way).
    pub fn block(&self, from: u64, to: u64) {
        self.state.lock().blocked.insert((from, to));
    }

    /// Cuts every link between group `a` and group `b`, both ways.
    pub fn partition(&self, a: &[u64], b: &[u64]) {
        let mut st = self.state.lock();
        for &x in a {
            for &y in b {
                st.blocked.insert((x, y));
                st.blocked.insert((y, x));
            }
        }
    }

    /// Cuts member `id` off from every other member, both ways.
    pub fn isolate(&self, id: u64) {
        let others: Vec<u64> = self.state.lock().mailboxes.keys().copied().filter(|m| *m != id).collect();
        self.partition(&[id], &others);
    }

    /// Removes every partition and block (random loss stays as set).
    pub fn heal(&self) {
        self.state.lock().blocked.clear();
    }

    /// Drops each message with probability `rate` (0.0 to 1.0).
    pub fn set_drop_rate(&self, rate: f64) {
        self.state.lock().drop_rate = rate.clamp(0.0, 1.0);
    }

    /// What the network has done so far.
    pub fn stats(&self) -> NetStats {
        self.state.lock().stats
    }

    fn route(&self, from: u64, msgs: Vec<RaftMessage>) {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        for msg in msgs {
            let to = msg.to;
            let lost = st.blocked.contains(&(from, to)) || (st.drop_rate > 0.0 && st.rng.random_bool(st.drop_rate));
            let delivered = !lost && st.mailboxes.get(&to).is_some_and(|mb| mb.deliver(msg));
            if delivered {
                st.stats.delivered += 1;
            } else {
                st.stats.dropped += 1;
            }
        }
    }
}

/// The [`Transport`] of one member of a [`MemNetwork`].
#[derive(Debug, Clone)]
pub struct MemTransport {
    id: u64,
    net: MemNetwork,
}

impl Transport for MemTransport {
    fn send(&mut self, msgs: Vec<RaftMessage>) {
        self.net.route(self.id, msgs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_count_blocked_and_unknown_destinations() {
        let net = MemNetwork::new(1);
        let mut t = MemTransport { id: 1, net: net.clone() };
        let m = RaftMessage { to: 9, ..Default::default() }; // nobody
        t.send(vec![m.clone()]);
        assert_eq!(net.stats(), NetStats { delivered: 0, dropped: 1 });
        net.block(1, 9);
        t.send(vec![m]);
        assert_eq!(net.stats().dropped, 2);
    }
}
