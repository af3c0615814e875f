//! [`SimNetwork`]: a network driven by a simulator's virtual clock.
//!
//! Unlike [`MemNetwork`](crate::MemNetwork), nothing here delivers by
//! itself. The simulator hands outbound messages to [`SimNetwork::send`] with
//! the current virtual time and its own seeded RNG; each message is dropped,
//! duplicated or given a random delay (which reorders messages) according to
//! the current [`LinkFaults`]; snapshot chunks keep their order on each link
//! and are never duplicated, as on a stream transport's snapshot lane. The simulator then asks for the next delivery
//! time and pops due messages with [`SimNetwork::pop_due`]. Partitions
//! (symmetric, one-way, isolation) cut links both for new messages and for
//! messages already in flight when they come due. All randomness comes from
//! the caller's RNG and all state is kept in ordered maps, so a run is a pure
//! function of the seed.
//!
//! ```
//! use raft_kv::RaftMessage;
//! use rand::SeedableRng;
//! use transport_mem::sim::{LinkFaults, SimNetwork};
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1);
//! let mut net = SimNetwork::new(LinkFaults { min_delay: 2, max_delay: 2, ..LinkFaults::reliable() });
//! let msg = RaftMessage { from: 1, to: 2, ..Default::default() };
//! net.send(10, 1, vec![msg], &mut rng);
//! assert_eq!(net.next_delivery(), Some(12));
//! assert!(net.pop_due(11).is_none());
//! let env = net.pop_due(12).expect("due at 12");
//! assert_eq!((env.from, env.to), (1, 2));
//!
//! net.partition(&[1], &[2]);
//! net.send(20, 1, vec![RaftMessage { from: 1, to: 2, ..Default::default() }], &mut rng);
//! assert_eq!(net.in_flight(), 0);
//! assert_eq!(net.stats().blocked, 1);
//! ```

use std::collections::{BTreeMap, BTreeSet};

use raft::eraftpb::MessageType;
use raft_kv::RaftMessage;

/// Where the simulated network draws its randomness from: 64 random bits at
/// a time. Implemented for rand's generators; the simulator implements it
/// for its own pinned RNG, so the network's draws never depend on a `rand`
/// release.
pub trait Entropy {
    /// The next 64 random bits.
    fn next_u64(&mut self) -> u64;
}

impl Entropy for rand::rngs::StdRng {
    fn next_u64(&mut self) -> u64 {
        rand::RngCore::next_u64(self)
    }
}

impl Entropy for rand::rngs::SmallRng {
    fn next_u64(&mut self) -> u64 {
        rand::RngCore::next_u64(self)
    }
}

/// Random per-message faults of every link, in the simulator's time unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkFaults {
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a message is delivered twice (each copy with its own
    /// delay).
    pub duplicate: f64,
    /// Smallest delay of a message.
    pub min_delay: u64,
    /// Largest ordinary delay of a message (inclusive). Delays are drawn
    /// uniformly from `min_delay..=max_delay`, so messages overtake each
    /// other.
    pub max_delay: u64,
    /// Probability that a message is slow: its delay is drawn from
    /// `max_delay..=slow_delay` instead (a long reorder).
    pub slow: f64,
    /// Largest delay of a slow message.
    pub slow_delay: u64,
}

impl LinkFaults {
    /// No loss, no duplicates, a delay of one time unit.
    pub fn reliable() -> Self {
        LinkFaults { drop: 0.0, duplicate: 0.0, min_delay: 1, max_delay: 1, slow: 0.0, slow_delay: 1 }
    }
}

impl Default for LinkFaults {
    fn default() -> Self {
        Self::reliable()
    }
}

/// Counters of what the simulated network did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimNetStats {
    /// Messages accepted for delivery (duplicates counted once more).
    pub sent: u64,
    /// Messages handed out by [`SimNetwork::pop_due`].
    pub delivered: u64,
    /// Messages lost to random drop.
    pub dropped: u64,
    /// Extra copies created by duplication.
    pub duplicated: u64,
    /// Messages lost to a partition (when sent or when due).
    pub blocked: u64,
}

/// A message in flight.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Sender.
    pub from: u64,
    /// Destination (also `msg.to`).
    pub to: u64,
    /// Virtual time it was sent.
    pub sent_at: u64,
    /// Virtual time it is delivered.
    pub deliver_at: u64,
    /// The raft message.
    pub msg: RaftMessage,
}

/// A deterministic network for a single-threaded simulator. See the module
/// docs.
#[derive(Debug, Clone, Default)]
pub struct SimNetwork {
    faults: LinkFaults,
    /// Directed links that lose everything: (from, to).
    blocked: BTreeSet<(u64, u64)>,
    /// In flight, by (delivery time, sequence number): ties are delivered in
    /// send order.
    queue: BTreeMap<(u64, u64), Envelope>,
    /// Message types never duplicated (see [`SimNetwork::never_duplicate`]).
    no_dup: BTreeSet<i32>,
    /// Per directed link, the latest delivery time of a snapshot chunk in
    /// flight: chunks travel in order, as on the TCP transport's snapshot
    /// lane (one stream per peer), which the chunk protocol relies on.
    snapshot_lane: BTreeMap<(u64, u64), u64>,
    seq: u64,
    stats: SimNetStats,
}

/// A uniform draw from `0..n` (`n > 0`), computed from one `u64` so the
/// result depends only on the RNG's output stream.
fn below(rng: &mut dyn Entropy, n: u64) -> u64 {
    ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64
}

/// True with probability `p`.
fn chance(rng: &mut dyn Entropy, p: f64) -> bool {
    p > 0.0 && ((rng.next_u64() >> 11) as f64) < p * (1u64 << 53) as f64
}

impl SimNetwork {
    /// An empty network with the given random faults.
    pub fn new(faults: LinkFaults) -> Self {
        SimNetwork { faults, ..Default::default() }
    }

    /// Never duplicates messages of type `ty` (they may still be lost,
    /// delayed and reordered). For message types whose duplication the
    /// system under test is known not to tolerate yet.
    pub fn never_duplicate(&mut self, ty: MessageType) {
        self.no_dup.insert(ty as i32);
    }

    /// The current random faults.
    pub fn faults(&self) -> LinkFaults {
        self.faults
    }

    /// Replaces the random faults (for messages sent from now on).
    pub fn set_faults(&mut self, faults: LinkFaults) {
        self.faults = faults;
    }

    /// Sends `msgs` from `from` at virtual time `now`, drawing every random
    /// choice from `rng`.
    pub fn send(&mut self, now: u64, from: u64, msgs: Vec<RaftMessage>, rng: &mut dyn Entropy) {
        for msg in msgs {
            let to = msg.to;
            if self.is_blocked(from, to) {
                self.stats.blocked += 1;
                continue;
            }
            if chance(rng, self.faults.drop) {
                self.stats.dropped += 1;
                continue;
            }
            if msg.get_msg_type() == MessageType::MsgSnapshot {
                // A stream lane: in order, never duplicated; loss (a broken
                // connection) still applies.
                let at = now + self.delay(rng);
                let lane = self.snapshot_lane.entry((from, to)).or_default();
                let at = at.max(*lane);
                *lane = at;
                self.enqueue(Envelope { from, to, sent_at: now, deliver_at: at, msg });
                continue;
            }
            if chance(rng, self.faults.duplicate) && !self.no_dup.contains(&(msg.get_msg_type() as i32)) {
                self.stats.duplicated += 1;
                let at = now + self.delay(rng);
                self.enqueue(Envelope { from, to, sent_at: now, deliver_at: at, msg: msg.clone() });
            }
            let at = now + self.delay(rng);
            self.enqueue(Envelope { from, to, sent_at: now, deliver_at: at, msg });
        }
    }

    fn delay(&self, rng: &mut dyn Entropy) -> u64 {
        let f = &self.faults;
        let lo = f.min_delay.max(1);
        let hi = f.max_delay.max(lo);
        if chance(rng, f.slow) && f.slow_delay > hi {
            hi + below(rng, f.slow_delay - hi + 1)
        } else {
            lo + below(rng, hi - lo + 1)
        }
    }

    fn enqueue(&mut self, env: Envelope) {
        self.seq += 1;
        self.stats.sent += 1;
        self.queue.insert((env.deliver_at, self.seq), env);
    }

    /// The virtual time of the next message in flight, if any.
    pub fn next_delivery(&self) -> Option<u64> {
        self.queue.keys().next().map(|(at, _)| *at)
    }

    /// The next message due at or before `now`. Messages whose link is cut
    /// when they come due are lost (a partition also loses what was in
    /// flight).
    pub fn pop_due(&mut self, now: u64) -> Option<Envelope> {
        loop {
            let entry = self.queue.first_entry()?;
            if entry.key().0 > now {
                return None;
            }
            let env = entry.remove();
            if self.is_blocked(env.from, env.to) {
                self.stats.blocked += 1;
                continue;
            }
            self.stats.delivered += 1;
            return Some(env);
        }
    }

    /// Messages in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// True when messages from `from` to `to` are lost.
    pub fn is_blocked(&self, from: u64, to: u64) -> bool {
        self.blocked.contains(&(from, to))
    }

    /// Cuts the link from `from` to `to` (one way).
    pub fn block(&mut self, from: u64, to: u64) {
        self.blocked.insert((from, to));
    }

    /// Cuts every link from group `a` to group `b` (one way: `b` still
    /// reaches `a`).
    pub fn partition_one_way(&mut self, a: &[u64], b: &[u64]) {
        for &x in a {
            for &y in b {
                if x != y {
                    self.blocked.insert((x, y));
                }
            }
        }
    }

    /// Cuts every link between groups `a` and `b`, both ways.
    pub fn partition(&mut self, a: &[u64], b: &[u64]) {
        self.partition_one_way(a, b);
        self.partition_one_way(b, a);
    }

    /// Cuts `id` off from every member of `all` (both ways).
    pub fn isolate(&mut self, id: u64, all: &[u64]) {
        let others: Vec<u64> = all.iter().copied().filter(|m| *m != id).collect();
        self.partition(&[id], &others);
    }

    /// Removes every partition and cut link (random faults stay as set).
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// The cut links, as (from, to) pairs in order.
    pub fn blocked_links(&self) -> Vec<(u64, u64)> {
        self.blocked.iter().copied().collect()
    }

    /// Loses every message in flight to `id` (a member that crashed loses
    /// its socket buffers).
    pub fn drop_to(&mut self, id: u64) {
        let before = self.queue.len();
        self.queue.retain(|_, env| env.to != id);
        self.stats.dropped += (before - self.queue.len()) as u64;
    }

    /// What the network has done so far.
    pub fn stats(&self) -> SimNetStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn msg(from: u64, to: u64, index: u64) -> RaftMessage {
        RaftMessage { from, to, index, ..Default::default() }
    }

    #[test]
    fn snapshot_chunks_keep_their_order_and_are_never_duplicated() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let faults = LinkFaults { min_delay: 1, max_delay: 50, duplicate: 0.5, ..LinkFaults::reliable() };
        let mut net = SimNetwork::new(faults);
        for i in 0..40 {
            let mut m = msg(1, 2, i);
            m.set_msg_type(MessageType::MsgSnapshot);
            net.send(i / 4, 1, vec![m], &mut rng);
        }
        let order: Vec<u64> = drain(&mut net).into_iter().map(|(_, index)| index).collect();
        assert_eq!(order, (0..40).collect::<Vec<_>>());
        // Other messages still reorder under the same faults.
        for i in 0..40 {
            net.send(100 + i / 4, 1, vec![msg(1, 2, i)], &mut rng);
        }
        let order: Vec<u64> = drain(&mut net).into_iter().map(|(_, index)| index).collect();
        assert!(order.len() > 40 && order.windows(2).any(|w| w[0] > w[1]));
    }

    fn drain(net: &mut SimNetwork) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        while let Some(at) = net.next_delivery() {
            while let Some(env) = net.pop_due(at) {
                out.push((env.deliver_at, env.msg.index));
            }
        }
        out
    }

    #[test]
    fn same_seed_same_schedule_and_delays_reorder() {
        let faults = LinkFaults { drop: 0.2, duplicate: 0.2, min_delay: 1, max_delay: 20, slow: 0.1, slow_delay: 200 };
        let run = |seed| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut net = SimNetwork::new(faults);
            net.send(0, 1, (0..200).map(|i| msg(1, 2, i)).collect(), &mut rng);
            (drain(&mut net), net.stats())
        };
        let (a, sa) = run(3);
        let (b, sb) = run(3);
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        assert!(sa.dropped > 0 && sa.duplicated > 0);
        let order: Vec<u64> = a.iter().map(|(_, i)| *i).collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_ne!(order, sorted, "random delays reorder messages");
        assert!(a.iter().all(|(at, _)| (1..=200).contains(at)));
    }

    #[test]
    fn partitions_cut_new_and_in_flight_messages() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut net = SimNetwork::new(LinkFaults { min_delay: 5, max_delay: 5, ..LinkFaults::reliable() });
        net.send(0, 1, vec![msg(1, 2, 1), msg(1, 3, 2)], &mut rng);
        net.partition_one_way(&[1], &[2]);
        assert!(net.is_blocked(1, 2) && !net.is_blocked(2, 1));
        assert_eq!(drain(&mut net), vec![(5, 2)]);
        net.isolate(3, &[1, 2, 3]);
        net.send(10, 2, vec![msg(2, 3, 3), msg(2, 1, 4)], &mut rng);
        assert_eq!(drain(&mut net), vec![(15, 4)]);
        net.heal();
        assert!(net.blocked_links().is_empty());
        net.send(20, 1, vec![msg(1, 2, 5)], &mut rng);
        net.drop_to(2);
        assert_eq!(net.in_flight(), 0);
        assert_eq!(net.stats().blocked, 2);
    }
}
