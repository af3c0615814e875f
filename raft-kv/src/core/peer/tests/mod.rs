//! Unit tests of [`Peer`]: each feeds peers inputs (campaigns, ticks, raft
//! messages, proposals, reads) and asserts on the exact [`Ready`] values
//! they produce. The harness, [`Cluster`], runs peers on [`MemEngine`]s over
//! a hand-run network: a test takes a Ready ([`Cluster::ready`]), inspects
//! it, carries it out ([`Cluster::execute`]) with its log write persisted or
//! held back ([`Cluster::persist`] releases it), and delivers in-flight
//! messages selectively ([`Cluster::deliver`]); [`Cluster::settle`] runs all
//! to quiescence. No threads or clock: the election timeout is fixed
//! (`max_election_ticks` = `election_ticks + 1`), so every run is the same.

mod alarms;
mod apply;
mod election;
mod integrity;
mod leases;
mod membership;
mod reads;
mod ready;
mod replication;
mod snapshots;
mod watches;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use raft::eraftpb::{Message, MessageType};

use super::Peer;
use crate::api::{PutRequest, RangeRequest};
use crate::command::{Command, Op, Response};
use crate::core::ready::{Completion, LogWrite, Ready};
use crate::engine::{Cf, Engine, MemEngine};
use crate::{Config, Result};

/// A peer under test: in-memory engine, `u32` tokens.
pub(super) type TestPeer = Peer<MemEngine, u32>;
/// A Ready of a [`TestPeer`].
pub(super) type TestReady = Ready<MemEngine, u32>;

/// The simulator's member settings (`sim`'s `member_config`): a fixed
/// election timeout of 10 ticks and a heartbeat every tick.
pub(super) fn config(id: u64, peers: &[u64]) -> Config {
    let mut c = Config::new(id).peers(peers.to_vec());
    c.election_ticks = 10;
    c.max_election_ticks = 11;
    c.heartbeat_ticks = 1;
    c
}

/// What to do with a Ready's log write in [`Cluster::execute`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Write {
    /// Make it durable now (after any held before it), send its `then_send`
    /// and report it persisted.
    Persist,
    /// Keep it in flight until [`Cluster::persist`].
    Hold,
}

/// A summary of one executed Ready, for assertions after the fact:
/// messages as `(type, to)`, sent at once or after the log write; the log
/// write as `(sync, installs)`; the apply batch's size; the completions; the
/// member ids when it reported members.
#[derive(Debug, Clone)]
pub(super) struct Trace {
    pub id: u64,
    pub messages: Vec<(MessageType, u64)>,
    pub then_send: Vec<(MessageType, u64)>,
    pub log_write: Option<(bool, Option<(u64, u64)>)>,
    pub apply_ops: usize,
    pub completions: Vec<Completion<u32>>,
    pub members: Option<Vec<u64>>,
}

/// N peers, their engines and a network the test delivers by hand.
#[derive(Default)]
pub(super) struct Cluster {
    peers: BTreeMap<u64, TestPeer>,
    engines: BTreeMap<u64, MemEngine>,
    /// Messages sent and not yet delivered, oldest first.
    pub net: Vec<Message>,
    /// Log writes handed out and not yet persisted, per member, oldest first.
    held: BTreeMap<u64, Vec<LogWrite>>,
    /// Members cut off: messages to or from them are dropped on delivery.
    pub isolated: BTreeSet<u64>,
    /// Completions released so far, per member.
    pub completed: BTreeMap<u64, Vec<Completion<u32>>>,
    /// Hold windows of watch history instead of reading them at once.
    pub hold_history: bool,
    /// Windows of watch history held, per member, oldest first.
    pub histories: BTreeMap<u64, Vec<crate::core::reads::HistoryJob<crate::engine::MemSnapshot>>>,
}

impl Cluster {
    /// Members `1..=n` of a new cluster with [`config`]'s settings.
    pub fn new(n: u64) -> Self {
        Self::with(n, |_| {})
    }

    /// Like [`Cluster::new`], with `tweak` applied to every member's config.
    /// Each member's first Ready (the initial members) is carried out.
    pub fn with(n: u64, tweak: impl Fn(&mut Config)) -> Self {
        let ids: Vec<u64> = (1..=n).collect();
        let mut c = Cluster::default();
        for &id in &ids {
            let mut cfg = config(id, &ids);
            tweak(&mut cfg);
            let engine = MemEngine::new();
            let peer = Peer::open(cfg, engine.clone()).expect("open");
            c.peers.insert(id, peer);
            c.engines.insert(id, engine);
            let rd = c.ready(id);
            c.execute(id, rd, Write::Persist);
        }
        c
    }

    /// Member `id`.
    pub fn peer(&mut self, id: u64) -> &mut TestPeer {
        self.peers.get_mut(&id).expect("no such member")
    }

    /// Member `id`'s engine.
    pub fn engine(&self, id: u64) -> &MemEngine {
        self.engines.get(&id).expect("no such member")
    }

    /// Member `id`'s next Ready, not yet carried out.
    pub fn ready(&mut self, id: u64) -> TestReady {
        self.peer(id).ready().expect("ready")
    }

    /// Carries out `rd` for member `id` in the contract's order: the apply
    /// batch written unsynced, messages onto the network, completions
    /// recorded, then the log write persisted or held as `write` says. The
    /// reads handed off run at once: a range's completion is recorded with
    /// the others, a history window goes back to the peer.
    pub fn execute(&mut self, id: u64, rd: TestReady, write: Write) -> Trace {
        let Ready { messages, apply, log_write, mut completions, compactions: _, members, ranges, histories } = rd;
        completions.extend(ranges.into_iter().map(|job| job.run()));
        let trace = Trace {
            id,
            messages: types(&messages),
            then_send: log_write.as_ref().map(|lw| types(&lw.then_send)).unwrap_or_default(),
            log_write: log_write.as_ref().map(|lw| (lw.write.sync, lw.installs)),
            apply_ops: apply.len(),
            completions: completions.clone(),
            members: members.map(|ms| ms.iter().map(|m| m.id).collect()),
        };
        if !apply.is_empty() {
            self.engine(id).write(apply, false).expect("apply write");
        }
        self.net.extend(messages);
        self.completed.entry(id).or_default().extend(completions);
        if let Some(lw) = log_write {
            self.held.entry(id).or_default().push(lw);
        }
        if self.hold_history {
            self.histories.entry(id).or_default().extend(histories);
        } else {
            for job in histories {
                let read = job.run();
                self.peer(id).history_read(read);
            }
        }
        if write == Write::Persist {
            self.persist(id);
        }
        trace
    }

    /// Takes member `id`'s next Ready and carries it out.
    pub fn run(&mut self, id: u64, write: Write) -> Trace {
        let rd = self.ready(id);
        self.execute(id, rd, write)
    }

    /// Makes member `id`'s held log writes durable in order, sends what
    /// waited for them and reports the last one persisted.
    pub fn persist(&mut self, id: u64) {
        let writes = self.held.remove(&id).unwrap_or_default();
        let mut last = None;
        for lw in writes {
            let number = lw.write.write_to(self.engine(id)).expect("log write");
            self.net.extend(lw.then_send);
            last = Some(number);
        }
        if let Some(number) = last {
            self.peer(id).persisted(number).expect("persisted");
        }
    }

    /// Log writes member `id` has in flight.
    pub fn held(&self, id: u64) -> usize {
        self.held.get(&id).map_or(0, Vec::len)
    }

    /// Delivers (steps) every message in flight that `pick` selects, in
    /// send order; the rest stay in flight. Messages to unknown or isolated
    /// members, or from isolated ones, are dropped. Returns how many were
    /// stepped.
    pub fn deliver(&mut self, pick: impl Fn(&Message) -> bool) -> usize {
        let (picked, rest): (Vec<Message>, Vec<Message>) = std::mem::take(&mut self.net).into_iter().partition(pick);
        self.net = rest;
        let live = |m: &Message| !self.isolated.contains(&m.to) && !self.isolated.contains(&m.from);
        let picked: Vec<Message> = picked.into_iter().filter(|m| live(m) && self.peers.contains_key(&m.to)).collect();
        let n = picked.len();
        for m in picked {
            match self.peer(m.to).step(m) {
                // A removed member that has not heard keeps talking.
                Ok(()) | Err(crate::Error::FromRemovedMember(_)) => {}
                Err(e) => panic!("step: {e}"),
            }
        }
        n
    }

    /// Delivers every message in flight.
    pub fn deliver_all(&mut self) -> usize {
        self.deliver(|_| true)
    }

    /// Runs every member to quiescence: Readies carried out with their
    /// writes persisted, snapshot chunks streamed, every message delivered.
    /// Returns the traces of the Readies it executed.
    pub fn settle(&mut self) -> Vec<Trace> {
        let mut traces = Vec::new();
        for _ in 0..100 {
            let mut busy = false;
            let ids: Vec<u64> = self.peers.keys().copied().collect();
            for id in ids {
                if self.held(id) > 0 {
                    self.persist(id);
                    busy = true;
                }
                if self.peer(id).has_ready() {
                    traces.push(self.run(id, Write::Persist));
                    busy = true;
                }
                if self.peer(id).is_streaming_snapshots() {
                    let chunks = self.peer(id).snapshot_chunks(&mut |_| true, 64).expect("chunks");
                    self.net.extend(chunks);
                    busy = true;
                }
            }
            busy |= self.deliver_all() > 0;
            if !busy {
                return traces;
            }
        }
        panic!("the cluster did not settle");
    }

    /// Elects `id`: it campaigns and the cluster settles. Asserts that every
    /// connected member then knows it as leader.
    pub fn elect(&mut self, id: u64) {
        self.peer(id).campaign().expect("campaign");
        self.settle();
        assert!(self.peer(id).is_leader(), "member {id} was not elected");
        let ids: Vec<u64> = self.peers.keys().copied().filter(|m| !self.isolated.contains(m)).collect();
        for m in ids {
            assert_eq!(self.peer(m).leader(), Some(id), "member {m} does not know the leader");
        }
    }

    /// Proposes a put of `key` = `value` on member `id` and settles;
    /// returns its outcome.
    pub fn put(&mut self, id: u64, key: &str, value: &str, token: u32) -> Result<Response> {
        self.peer(id).propose(put(key, value), token);
        self.settle();
        self.take_completion(id, token).expect("the put did not complete")
    }

    /// Removes and returns member `id`'s completion of `token`, if released.
    pub fn take_completion(&mut self, id: u64, token: u32) -> Option<Result<Response>> {
        let done = self.completed.entry(id).or_default();
        let at = done.iter().position(|(t, _)| *t == token)?;
        Some(done.remove(at).1)
    }

    /// The value of `key` in member `id`'s state machine (a local read).
    pub fn get(&mut self, id: u64, key: &str) -> Option<Bytes> {
        let resp = self.peer(id).mvcc().range(&RangeRequest::key(key.to_owned())).expect("range");
        resp.kvs.first().map(|kv| kv.value.clone())
    }
}

/// A put operation.
pub(super) fn put(key: &str, value: &str) -> Op {
    Op::Put(PutRequest::new(key.to_owned(), value.to_owned()))
}

/// `(type, to)` of each message, in order.
pub(super) fn types(msgs: &[Message]) -> Vec<(MessageType, u64)> {
    msgs.iter().map(|m| (m.get_msg_type(), m.to)).collect()
}

/// `(type, to)` of each message, sorted (for sets of messages to several
/// members, whose order raft does not promise).
pub(super) fn sorted(msgs: &[Message]) -> Vec<(MessageType, u64)> {
    let mut t = types(msgs);
    t.sort_by_key(|(ty, to)| (*ty as i32, *to));
    t
}

/// The messages of type `ty`.
pub(super) fn of_type(msgs: &[Message], ty: MessageType) -> Vec<&Message> {
    msgs.iter().filter(|m| m.get_msg_type() == ty).collect()
}

/// The operations of a message's entries that carry a command (an empty
/// entry, such as a new leader's, carries none).
pub(super) fn entry_ops(msg: &Message) -> Vec<Op> {
    msg.entries
        .iter()
        .filter(|e| !e.data.is_empty())
        .filter_map(|e| Command::decode(&e.data).expect("command").op)
        .collect()
}

/// A selector for [`Cluster::deliver`]: messages to `to`.
pub(super) fn to(to: u64) -> impl Fn(&Message) -> bool {
    move |m| m.to == to
}

/// A selector for [`Cluster::deliver`]: messages of type `ty` to `to`.
pub(super) fn to_of(to: u64, ty: MessageType) -> impl Fn(&Message) -> bool {
    move |m| m.to == to && m.get_msg_type() == ty
}
