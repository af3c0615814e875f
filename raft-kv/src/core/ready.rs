//! [`Ready`]: everything one step of a [`crate::core::peer::Peer`] decided, as data.
//!
//! The peer never sends, syncs or spawns; [`crate::core::peer::Peer::ready`] returns a
//! `Ready` and the driver carries it out (`Driver`, in the driver module, does for
//! both the production node and the simulator). Tests assert on it.
//!
//! # Contract
//!
//! A driver handles each `Ready` completely, in this order, before it calls
//! the peer again (except [`crate::core::peer::Peer::persisted`] from step 4):
//!
//! 1. **`apply`** is written to the engine unsynced, first. The peer's reads
//!    (served at the start of its next step) and the compaction jobs assume
//!    it is there. It need not be durable: applied data becomes durable with
//!    the next synced write (the engine's contract: a synced write makes
//!    every earlier write durable), and a crash that loses it re-applies the
//!    entries from the log.
//! 2. **`messages`** may go out at once — before this step's log write is
//!    durable. That is what raft allows for a leader's appends, and what
//!    lets it replicate while it fsyncs.
//! 3. **`completions`** may be released at once: they are answers to entries
//!    that a quorum persisted and this member applied (in `apply`), or to
//!    reads served from applied state, or refusals.
//! 4. **`log_write`** is made durable after every earlier `LogWrite` (writes
//!    may be merged into one engine batch and one fsync); only then are its
//!    `then_send` messages sent (a follower's append response, a vote) and
//!    the peer told with [`crate::core::peer::Peer::persisted`] — which also finishes a
//!    snapshot install.
//! 5. **`compactions`** may run on any thread, after `apply` is written.
//! 6. **`members`**, when set, is the new address book for the transport.
//! 7. **`ranges`** and **`histories`** are reads over engine snapshots the
//!    peer took at its applied state: run them on any thread, any time
//!    later (a bounded pool may refuse them: `refuse`). A range job
//!    completes its caller; a history job's result goes back to the peer
//!    with [`crate::core::peer::Peer::history_read`], between steps.

use raft::eraftpb::Message;

use crate::api::Member;
use crate::command::Response;
use crate::core::mvcc::Compaction;
use crate::core::reads::{HistoryJob, RangeJob};
use crate::engine::{Engine, WriteBatch};
use crate::Result;

/// A finished request: the caller's token and the outcome.
pub type Completion<T> = (T, Result<Response>);

/// The work of one [`crate::core::peer::Peer::ready`] step. See the module docs for the
/// order a driver must follow.
#[must_use = "a Ready must be carried out by the driver"]
pub struct Ready<E: Engine, T> {
    /// Raft messages to send now (before `log_write` is durable).
    pub messages: Vec<Message>,
    /// The state-machine changes of the entries applied in this step, with
    /// the applied index: write unsynced, before anything else.
    pub apply: WriteBatch,
    /// New log entries, hard state, log truncation or a snapshot install, to
    /// make durable in order.
    pub log_write: Option<LogWrite>,
    /// Requests finished in this step.
    pub completions: Vec<Completion<T>>,
    /// Physical compactions of history to run off the peer's thread.
    pub compactions: Vec<Compaction<E>>,
    /// The members, when they changed since the last step.
    pub members: Option<Vec<Member>>,
    /// Client ranges to read off the peer's thread.
    pub ranges: Vec<RangeJob<E::Snapshot, T>>,
    /// Windows of watch history to read off the peer's thread.
    pub histories: Vec<HistoryJob<E::Snapshot>>,
}

impl<E: Engine, T> Ready<E, T> {
    pub(crate) fn new() -> Self {
        Ready {
            messages: Vec::new(),
            apply: WriteBatch::new(),
            log_write: None,
            completions: Vec::new(),
            compactions: Vec::new(),
            members: None,
            ranges: Vec::new(),
            histories: Vec::new(),
        }
    }

    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.apply.is_empty()
            && self.log_write.is_none()
            && self.completions.is_empty()
            && self.compactions.is_empty()
            && self.members.is_none()
            && self.ranges.is_empty()
            && self.histories.is_empty()
    }
}

impl<E: Engine, T> std::fmt::Debug for Ready<E, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ready")
            .field("messages", &self.messages.len())
            .field("apply_ops", &self.apply.len())
            .field("log_write", &self.log_write)
            .field("completions", &self.completions.len())
            .field("compactions", &self.compactions.len())
            .field("members", &self.members.as_ref().map(Vec::len))
            .field("ranges", &self.ranges.len())
            .field("histories", &self.histories.len())
            .finish()
    }
}

/// What a step needs made durable, and what waits for it.
#[derive(Debug)]
pub struct LogWrite {
    /// The write itself, for the disk.
    pub write: DiskWrite,
    /// Messages to send only once `write` is durable (votes, a follower's
    /// append responses: raft must not promise what a crash could lose).
    pub then_send: Vec<Message>,
    /// `(index, term)` of the snapshot this write installs, if it does: the
    /// state machine is replaced when [`crate::core::peer::Peer::persisted`] reports it.
    pub installs: Option<(u64, u64)>,
}

/// One engine write of the raft log, in Ready order.
#[derive(Debug)]
pub struct DiskWrite {
    /// raft-rs's number of the (last) Ready this write persists.
    pub number: u64,
    /// Entries, hard state, truncation, snapshot data (possibly empty: then
    /// only its order matters).
    pub batch: WriteBatch,
    /// Whether the write must be fsynced (new entries, term or vote,
    /// truncation, snapshot install).
    pub sync: bool,
}

impl DiskWrite {
    /// Merges consecutive writes into one (group commit): one engine batch,
    /// synced if any of them must be, reported under the last number.
    /// `None` when `writes` is empty.
    pub fn merge(writes: impl IntoIterator<Item = DiskWrite>) -> Option<DiskWrite> {
        let mut merged: Option<DiskWrite> = None;
        for w in writes {
            match &mut merged {
                None => merged = Some(w),
                Some(m) => {
                    m.batch.extend(w.batch);
                    m.sync |= w.sync;
                    m.number = w.number;
                }
            }
        }
        merged
    }

    /// Writes this to `engine` (nothing for an empty batch) and returns the
    /// number to report with [`crate::core::peer::Peer::persisted`].
    pub fn write_to(self, engine: &impl Engine) -> Result<u64> {
        if !self.batch.is_empty() {
            let written = engine.write(self.batch, self.sync);
            if written.is_err() && crate::mutation::active("write-error-ignored") {
                return Ok(self.number);
            }
            written?;
        }
        Ok(self.number)
    }
}
