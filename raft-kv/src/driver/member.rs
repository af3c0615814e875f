//! The node thread: the loop that owns a member's [`Peer`], takes its inbox,
//! ticks, and runs its [`Driver`] with the node's [`Io`] (transport, log
//! writer, compaction threads).

use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::eraftpb::Message;

use crate::api::Member;
use crate::core::peer::Peer;
use crate::core::reads::{HistoryJob, RangeJob};
use crate::core::ready::{Completion, DiskWrite};
use crate::driver::background::Background;
use crate::driver::call::Responder;
use crate::driver::compactions::Compactions;
use crate::driver::inbox::Inbox;
use crate::driver::input::{Callback, Input};
use crate::driver::local_reads::LocalReads;
use crate::driver::log_writer::LogWriter;
use crate::driver::metrics::NodeMetrics;
use crate::driver::state::StateBoard;
use crate::driver::transport::Transport;
use crate::driver::{Driver, Io};
use crate::engine::Engine;
use crate::{Config, Error};

/// Leadership transfers waiting for their outcome (`move_leader`).
#[derive(Default)]
struct Transfers {
    waiting: Vec<(u64, Instant, Responder<()>)>,
}

impl Transfers {
    /// Answers the transfers that have finished or run out of time, and
    /// asks raft again for those still going (a lost MsgTimeoutNow would
    /// otherwise stall them).
    fn check<E: Engine>(&mut self, peer: &mut Peer<E, Callback>, ticked: bool) {
        if self.waiting.is_empty() {
            return;
        }
        let now = Instant::now();
        let leader = peer.leader().unwrap_or(0);
        let mut still = Vec::new();
        for (to, deadline, tx) in self.waiting.drain(..) {
            if leader == to {
                tx.send(Ok(()));
            } else if now >= deadline {
                tx.send(Err(Error::Timeout));
            } else {
                if ticked && peer.is_leader() {
                    peer.transfer_leader(to);
                }
                still.push((to, deadline, tx));
            }
        }
        self.waiting = still;
    }
}

/// The node thread. Returns the fatal error that stopped it, if one did.
#[allow(clippy::too_many_arguments)]
pub(super) fn run<E: Engine>(
    mut peer: Peer<E, Callback>,
    mut driver: Driver<E>,
    cfg: Config,
    inbox: &Arc<Inbox<Input>>,
    readers: &Background,
    local_reads: &LocalReads,
    writer: &LogWriter,
    transport: &mut dyn Transport,
    board: &StateBoard,
    metrics: &NodeMetrics,
) -> Option<Error> {
    local_reads.publish(&peer);
    let mut next_tick = Instant::now() + cfg.tick_interval;
    let mut stop = false;
    let mut fatal: Option<Error> = None;
    let mut transfers = Transfers::default();
    // What the inbox held at the last take, handled `max_batch` at a time.
    let mut pending: std::collections::VecDeque<Input> = std::collections::VecDeque::new();
    let mut compactions = Compactions::default();
    let mut taken = Vec::new();
    // `stop`: shut down as asked; `fatal`: the error the member stops on.
    while !stop && fatal.is_none() {
        if pending.is_empty() {
            let mut wait = next_tick.saturating_duration_since(Instant::now());
            if peer.has_ready() {
                wait = Duration::ZERO;
            } else if peer.is_streaming_snapshots() {
                wait = wait.min(Duration::from_millis(1));
            }
            // Group commit: everything waiting goes into the same Ready.
            inbox.take_all(&mut taken, wait);
            pending.extend(taken.drain(..));
        }
        // The loop's Io, for the driver's calls below (built once per turn).
        let mut io = NodeIo {
            transport: &mut *transport,
            writer,
            compactions: &mut compactions,
            readers,
            local_reads,
            inbox,
            id: cfg.id,
        };
        for input in pending.drain(..pending.len().min(cfg.max_batch)) {
            match input {
                Input::Persisted(number) => {
                    if let Err(e) = driver.persisted(&mut peer, number, &mut io) {
                        fatal = Some(stopping_on(cfg.id, "storage failure", e));
                    }
                }
                Input::WriteFailed(e) => fatal = Some(stopping_on(cfg.id, "log write failed", e)),
                Input::MoveLeader(to, deadline, tx) => {
                    if !peer.is_leader() {
                        tx.send(Err(Error::not_leader(peer.leader().unwrap_or(0))));
                    } else {
                        peer.transfer_leader(to);
                        transfers.waiting.push((to, deadline, tx));
                    }
                }
                input => match handle(&mut peer, input, metrics) {
                    Ok(shutdown) => stop |= shutdown,
                    Err(e) => fatal = Some(stopping_on(cfg.id, "storage failure", e)),
                },
            }
        }
        let now = Instant::now();
        let ticked = now >= next_tick;
        if ticked {
            peer.tick();
            next_tick += cfg.tick_interval;
            if next_tick < now {
                next_tick = now + cfg.tick_interval;
            }
        }
        // Idle: nothing else queued, so a log write may be done inline.
        let idle = pending.is_empty() && inbox.is_empty();
        if let Err(e) = driver.step(&mut peer, idle, &mut io) {
            fatal = Some(stopping_on(cfg.id, "storage failure", e));
        }
        if peer.is_streaming_snapshots() {
            match peer.snapshot_chunks(&mut |to| transport.snapshot_room(to), 4) {
                Ok(chunks) if !chunks.is_empty() => transport.send(chunks),
                Ok(_) => {}
                Err(e) => fatal = Some(stopping_on(cfg.id, "storage failure", e)),
            }
        }
        transfers.check(&mut peer, ticked);
        board.publish(peer.member_state());
    }
    // A stopped member leaves no thread behind holding its engine open,
    // and no published view either.
    local_reads.clear();
    compactions.stop();
    for (cb, res) in peer.fail_all() {
        cb(res);
    }
    // Refuse new input and fail whatever is still queued.
    pending.extend(inbox.close());
    for input in pending {
        match input {
            Input::Propose(_, _, cb) | Input::Read(_, cb) | Input::Barrier(cb) => cb(Err(Error::Stopped)),
            // Dropping a responder completes its call with `Stopped`.
            _ => {}
        }
    }
    drop(transfers);
    tracing::info!(id = cfg.id, "member stopped");
    fatal
}

/// Handles one input; returns true on shutdown, and the error of a step
/// that failed on this member's own storage (fatal: the member stops).
fn handle<E: Engine>(peer: &mut Peer<E, Callback>, input: Input, metrics: &NodeMetrics) -> crate::Result<bool> {
    match input {
        Input::Raft(msg) => match peer.step(msg) {
            Ok(()) => {}
            Err(e) if is_fatal_step_error(&e) => return Err(e),
            Err(e) => {
                metrics.refused_peer_messages.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(id = peer.id(), error = %e, "dropped raft message");
            }
        },
        Input::Propose(op, auth, cb) => peer.propose_as(op, auth, cb),
        Input::Read(req, cb) => peer.read(req, cb),
        Input::Barrier(cb) => peer.read_barrier(cb),
        Input::Local(f) => f(peer),
        Input::History(read) => peer.history_read(read),
        Input::Shutdown => return Ok(true),
        // Handled by the loop in `run`.
        Input::Persisted(_) | Input::WriteFailed(_) | Input::MoveLeader(..) => {}
    }
    Ok(false)
}

/// Logs the fatal error member `id` stops on, and returns it.
fn stopping_on(id: u64, what: &str, e: Error) -> Error {
    tracing::error!(id, error = %e, "{what}; stopping member");
    e
}

/// Whether a failed step is this member's fault rather than the message's:
/// a write that failed (staging a snapshot chunk) is, and stops the member
/// as a failed log write does; anything else — a refused, malformed or
/// stale message — drops the message and is counted.
fn is_fatal_step_error(e: &Error) -> bool {
    matches!(e, Error::Storage(_))
}

/// The node thread's [`Io`]: the transport, the log writer thread, the
/// compaction threads, the readers and the view serializable reads use.
struct NodeIo<'a> {
    transport: &'a mut dyn Transport,
    writer: &'a LogWriter,
    compactions: &'a mut Compactions,
    readers: &'a Background,
    local_reads: &'a LocalReads,
    /// Where the readers hand windows of watch history back.
    inbox: &'a Arc<Inbox<Input>>,
    id: u64,
}

impl<E: Engine> Io<E, Callback> for NodeIo<'_> {
    fn send(&mut self, msgs: Vec<Message>) {
        self.transport.send(msgs);
    }
    fn complete(&mut self, (callback, result): Completion<Callback>) {
        callback(result);
    }
    fn submit(&mut self, write: DiskWrite) {
        self.writer.submit(write);
    }
    fn compact(&mut self, job: crate::core::mvcc::Compaction<E>) {
        self.compactions.start(self.id, job);
    }
    fn members_changed(&mut self, members: Vec<Member>) {
        self.transport.set_members(&members);
    }
    fn range(&mut self, job: RangeJob<E::Snapshot, Callback>) {
        let run = |job: RangeJob<E::Snapshot, Callback>| {
            let (callback, result) = job.run();
            callback(result);
        };
        if let Err((job, why)) = self.readers.submit(job, run) {
            let (callback, result) = job.refuse(why);
            callback(result);
        }
    }
    fn history(&mut self, job: HistoryJob<E::Snapshot>) {
        // The node thread's own input: never refused while it runs.
        let inbox = Arc::clone(self.inbox);
        let run = move |job: HistoryJob<E::Snapshot>| {
            let _ = inbox.push(Input::History(job.run()));
        };
        if let Err((job, _)) = self.readers.submit(job, run) {
            let _ = self.inbox.push(Input::History(job.refuse()));
        }
    }
    fn applied(&mut self, peer: &Peer<E, Callback>) {
        self.local_reads.publish(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::is_fatal_step_error;
    use crate::Error;

    /// A step that failed writing to this member's own disk stops it; one
    /// that refused what a peer sent (even bytes that fail to decode) only
    /// drops the message, so no peer can stop a member by sending garbage.
    #[test]
    fn only_a_failed_write_in_a_step_is_fatal() {
        assert!(is_fatal_step_error(&Error::storage("injected: write failed")));
        for refused in [
            Error::BadPeerMessage("term implausibly far".into()),
            Error::FromRemovedMember(7),
            Error::Corruption("snapshot chunk that does not decode".into()),
            Error::Raft("step local message".into()),
        ] {
            assert!(!is_fatal_step_error(&refused), "{refused:?}");
        }
    }
}
