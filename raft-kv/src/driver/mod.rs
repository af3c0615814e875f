//! [`Driver`]: carries out a [`Peer`]'s [`Ready`] — the one place that owns
//! the durability and ordering rules.
//!
//! The production node and the simulator both drive their peers through
//! it; they differ only in what they plug in as [`Io`]: real sockets, a
//! writer thread and compaction threads, or a simulated network and disk.
//! What the driver decides, and the simulator therefore tests:
//!
//! - the order of a [`Ready`]: apply batch written, messages sent,
//!   completions released, then the log write;
//! - whether a log write is written *inline*, on the calling thread — when
//!   the caller has nothing else queued and no earlier write is in flight,
//!   the two hand-offs to a writer cost more latency than they hide — or
//!   submitted to the background writer, which must keep submission order
//!   (and may merge what queued up during one fsync: [`DiskWrite::merge`]);
//! - which messages wait for which write, released by [`Driver::persisted`]
//!   before the peer hears that its write is durable.

mod background;
pub mod blocking;
pub mod builder;
pub mod call;
mod compactions;
pub(crate) mod inbox;
pub mod input;
mod local_reads;
mod log_writer;
pub mod mailbox;
mod member;
pub mod metrics;
pub mod node;
pub mod state;
pub mod transport;

use std::collections::VecDeque;

use raft::eraftpb::Message;

use crate::api::Member;
use crate::core::mvcc::Compaction;
use crate::core::peer::Peer;
use crate::core::reads::{HistoryJob, RangeJob};
use crate::core::ready::{Completion, DiskWrite, LogWrite, Ready};
use crate::engine::Engine;
use crate::Result;

/// What a driver plugs in: the outside world of one member.
pub trait Io<E: Engine, T> {
    /// Sends raft messages to their members.
    fn send(&mut self, msgs: Vec<Message>);
    /// Delivers a finished request to its caller.
    fn complete(&mut self, completion: Completion<T>);
    /// Hands a log write to the background writer. Writes reach the engine
    /// in submission order; each is reported with [`Driver::persisted`].
    fn submit(&mut self, write: DiskWrite);
    /// Runs a physical compaction of history, on some other thread or at
    /// some later step.
    fn compact(&mut self, job: Compaction<E>);
    /// The members changed (for the transport's address book).
    fn members_changed(&mut self, members: Vec<Member>);
    /// Serves a range off the peer's thread: runs `job` on some other
    /// thread or at some later step and delivers its completion (or, when
    /// the readers are saturated, `job.refuse()`'s).
    fn range(&mut self, job: RangeJob<E::Snapshot, T>);
    /// Reads a window of watch history off the peer's thread: runs `job`
    /// (or refuses it) and hands the result to [`Peer::history_read`]
    /// between steps.
    fn history(&mut self, job: HistoryJob<E::Snapshot>);
    /// The peer's applied state may have moved: an apply batch was just
    /// written (its completions not yet released), or a write that may hold
    /// a snapshot install is durable. For views of the applied state served
    /// off the peer's thread; by default nothing.
    fn applied(&mut self, peer: &Peer<E, T>) {
        let _ = peer;
    }
}

/// Executes [`Ready`]s for one member (see the module docs).
#[derive(Debug)]
pub struct Driver<E> {
    engine: E,
    /// Log writes submitted and not yet reported durable, oldest first,
    /// with the messages that wait for each.
    waiting: VecDeque<(u64, Vec<Message>)>,
}

impl<E: Engine> Driver<E> {
    /// A driver writing to `engine` (the peer's).
    pub fn new(engine: E) -> Self {
        Driver { engine, waiting: VecDeque::new() }
    }

    /// Runs one step of `peer` if it has work; true if it did. `idle`: the
    /// caller has nothing else queued, so a log write with nothing in flight
    /// before it is written inline.
    pub fn step<T>(&mut self, peer: &mut Peer<E, T>, idle: bool, io: &mut impl Io<E, T>) -> Result<bool> {
        if !peer.has_ready() {
            return Ok(false);
        }
        let ready = peer.ready()?;
        self.execute(peer, ready, idle, io)?;
        Ok(true)
    }

    /// Carries out `ready`, in the order its contract gives.
    pub fn execute<T>(
        &mut self,
        peer: &mut Peer<E, T>,
        ready: Ready<E, T>,
        idle: bool,
        io: &mut impl Io<E, T>,
    ) -> Result<()> {
        let Ready { messages, apply, log_write, completions, compactions, members, ranges, histories } = ready;
        // 1. Applied state first: the peer's next reads and the compaction
        //    jobs read it. Unsynced: the next synced write covers it.
        if !apply.is_empty() {
            self.engine.write(apply, false)?;
            io.applied(peer);
        }
        // 2. The leader's appends leave before its own fsync.
        if !messages.is_empty() {
            io.send(messages);
        }
        // 3. Committed by a quorum and applied here: answer now, without
        //    waiting for this step's own fsync.
        for c in completions {
            io.complete(c);
        }
        // Reads over snapshots of the applied state, off this thread.
        for job in ranges {
            io.range(job);
        }
        for job in histories {
            io.history(job);
        }
        // 4. The log write, in order after every earlier one.
        if let Some(LogWrite { write, then_send, .. }) = log_write {
            if crate::mutation::active("append-ack-before-durable") && !then_send.is_empty() {
                io.send(then_send);
                self.waiting.push_back((write.number, Vec::new()));
                io.submit(write);
            } else if idle && self.waiting.is_empty() {
                let number = write.write_to(&self.engine)?;
                if !then_send.is_empty() {
                    io.send(then_send);
                }
                peer.persisted(number)?;
                io.applied(peer);
            } else {
                self.waiting.push_back((write.number, then_send));
                io.submit(write);
            }
        }
        for job in compactions {
            io.compact(job);
        }
        if let Some(members) = members {
            io.members_changed(members);
        }
        Ok(())
    }

    /// The writer made every submitted write up to Ready `number` durable:
    /// sends the messages that waited for them, then tells the peer.
    pub fn persisted<T>(&mut self, peer: &mut Peer<E, T>, number: u64, io: &mut impl Io<E, T>) -> Result<()> {
        while let Some((_, msgs)) = self.waiting.pop_front_if(|(n, _)| *n <= number) {
            if !msgs.is_empty() {
                io.send(msgs);
            }
        }
        peer.persisted(number)?;
        io.applied(peer);
        Ok(())
    }

    /// Forgets the writes in flight (the member crashed: they are lost with
    /// its writer).
    pub fn reset(&mut self) {
        self.waiting.clear();
    }
}
