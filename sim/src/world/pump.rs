//! The driver pump: every member's production [`raft_kv::Driver`] over its Ready
//! steps, a simulated log writer and background compactions ([`SimIo`]).

use raft_kv::{Completion, DiskWrite, Io, MemEngine};

use super::{OpId, Reads, World};
use crate::checker::ViolationKind;

/// How long a member may go on after refusing a corrupt read before the
/// simulator calls it a violation: a few ticks (its next Ready fails at
/// once; this only covers the order of one step's work).
const CORRUPT_STOP_GRACE: u64 = crate::config::TICK * 4;

/// Snapshot chunks a member sends per simulation step.
const SNAPSHOT_CHUNKS_PER_STEP: usize = 2;

impl World {
    /// Runs every member's driver until none has work.
    pub(super) fn pump(&mut self) {
        for round in 0..16 {
            let mut busy = false;
            for i in 0..self.members.len() {
                let m = &mut self.members[i];
                let id = m.id;
                let Some(peer) = m.peer.as_mut() else { continue };
                let mut io = SimIo::new(&mut m.log_queue, &mut m.compactions, &mut m.reads);
                // The log writer finishes its queue now or later (always by
                // the last round), like a disk of varying speed.
                let flush = !io.queue.is_empty() && (round == 15 || self.rng_disk.chance(0.6));
                if flush {
                    let merged = DiskWrite::merge(io.queue.drain(..));
                    let res = merged.map_or(Ok(()), |w| {
                        w.write_to(&m.engine).and_then(|number| m.driver.persisted(peer, number, &mut io))
                    });
                    if let Err(e) = res {
                        if self.member_failed(i, "log write", e) {
                            return;
                        }
                        continue;
                    }
                    busy = true;
                }
                // Background compactions run at some later step.
                if !io.compactions.is_empty() && self.rng_disk.chance(0.3) {
                    let failed = io.compactions.drain(..).map(|job| job.run()).find_map(|r| r.err());
                    if let Some(e) = failed {
                        if self.member_failed(i, "compaction", e) {
                            return;
                        }
                        continue;
                    }
                }
                // The readers run what was handed to them at some later step
                // (a range answers its client; a history window goes back to
                // the peer between steps).
                if !(io.reads.ranges.is_empty() && io.reads.histories.is_empty()) && self.rng_disk.chance(0.5) {
                    let done: Vec<_> = io.reads.ranges.drain(..).map(|job| job.run()).collect();
                    io.done.extend(done);
                    for job in io.reads.histories.drain(..) {
                        peer.history_read(job.run());
                    }
                    busy = true;
                }
                let ready = peer.has_ready();
                let streaming = round == 0 && peer.is_streaming_snapshots();
                if !ready && !streaming && !io.has_output() {
                    continue;
                }
                // Half the time the member is "idle" and the driver writes
                // inline; otherwise the write queues for the writer.
                let idle = ready && self.rng_disk.chance(0.5);
                let res = if ready { m.driver.step(peer, idle, &mut io).map(|_| ()) } else { Ok(()) };
                busy |= ready || !io.queue.is_empty();
                let is_leader = peer.is_leader();
                // A removed member may lag forever: its terms are not checked.
                let new_term = (is_leader && !m.was_leader && !m.removed).then(|| peer.term());
                super::note_leading(&mut m.was_leader, &mut m.clock, is_leader, self.now);
                // Snapshots stream in chunks, a few per step, as the
                // bounded snapshot transport has room (loss and delay still
                // apply).
                let chunks = if streaming {
                    let (now, pipes, stats) = (self.now, &mut self.snapshot_pipes, &mut self.stats);
                    let mut room = |to: u64| {
                        let free = pipes.room(id, to, now);
                        stats.snapshot_refusals += u64::from(!free);
                        free
                    };
                    peer.snapshot_chunks(&mut room, SNAPSHOT_CHUNKS_PER_STEP)
                } else {
                    Ok(Vec::new())
                };
                let (out, done) = (std::mem::take(&mut io.out), std::mem::take(&mut io.done));
                self.net.send(self.now, id, out, &mut self.rng_net);
                match chunks {
                    Ok(chunks) => self.net.send(self.now, id, chunks, &mut self.rng_net),
                    Err(e) => {
                        if self.member_failed(i, "snapshot_chunks", e) {
                            return;
                        }
                        continue;
                    }
                }
                if let Some(term) = new_term {
                    self.stats.leader_terms += 1;
                    self.trace.event(self.now, format_args!("m{id} leader of term {term}"));
                    match self.leaders.get(&term) {
                        Some(&other) if other != id => self.violate(
                            ViolationKind::TwoLeaders,
                            format!("members {other} and {id} were both leader of term {term}"),
                        ),
                        _ => {
                            self.leaders.insert(term, id);
                        }
                    }
                }
                for (token, result) in done {
                    self.on_completion(token, result);
                }
                if let Err(e) = res {
                    if self.member_failed(i, "ready", e) {
                        return;
                    }
                    continue;
                }
                self.check_fault_noticed(i);
            }
            if !busy {
                break;
            }
        }
    }
}

impl World {
    /// Member `i` failed with `e` in `what`. After an injected disk fault
    /// that is the member stopping on an internal fatal error, as `Node`
    /// does (exit non-zero, never ack): it goes down like a crash and
    /// restarts later. Any other error is a violation that ends the run
    /// (true).
    pub(super) fn member_failed(&mut self, i: usize, what: &str, e: raft_kv::Error) -> bool {
        let m = &mut self.members[i];
        if matches!(e, raft_kv::Error::Corruption(_)) && m.engine.corrupted() {
            // It refused the wrong bytes and stops, as the server exits.
            let id = m.id;
            self.stats.corrupt_read_stops += 1;
            self.trace.event(self.now, format_args!("m{id} stops on a corrupt read in {what}: {e}"));
            self.crash(i);
            return false;
        }
        let fired = m.engine.faults_fired();
        if fired > m.faults_seen {
            m.faults_seen = fired;
            let id = m.id;
            self.stats.disk_fault_stops += 1;
            self.trace.event(self.now, format_args!("m{id} stops on a disk fault in {what}: {e}"));
            self.crash(i);
            return false;
        }
        let id = m.id;
        self.violate(ViolationKind::CoreError, format!("m{id} {what}: {e}"));
        self.stopped = true;
        true
    }

    /// Member `id` refused a client's request over a corrupt read: it must
    /// stop by itself within a step or two (the production peer fails its
    /// next Ready; see `raft_kv::core::integrity`).
    pub(super) fn refused_corrupt_read(&mut self, id: u64) {
        if let Some(i) = self.index_of(id).filter(|&i| self.members[i].peer.is_some()) {
            let incarnation = self.members[i].incarnation;
            self.corrupt_refusals.push((id, incarnation, self.now + CORRUPT_STOP_GRACE));
        }
    }

    /// Reads every key of member `i` on its own thread, as a serializable
    /// range would: a corrupt version among them is refused, and the
    /// member must then stop by itself.
    pub(super) fn scan_after_corruption(&mut self, i: usize) {
        let Some(peer) = self.members[i].peer.as_ref() else { return };
        let all = raft_kv::RangeRequest::range(vec![0u8], vec![0u8]).serializable();
        if let Err(raft_kv::Error::Corruption(_)) = peer.mvcc().range(&all) {
            let id = self.members[i].id;
            self.trace.event(self.now, format_args!("m{id} refuses a scan over a corrupt read"));
            self.refused_corrupt_read(id);
        }
    }

    /// Flags (and then stops) the members still running past their
    /// deadline after refusing a corrupt read.
    pub(super) fn check_corrupt_refusals(&mut self) {
        let now = self.now;
        for (id, incarnation, deadline) in std::mem::take(&mut self.corrupt_refusals) {
            let Some(i) = self.index_of(id) else { continue };
            let m = &self.members[i];
            if m.peer.is_none() || m.incarnation != incarnation {
                continue; // it stopped (or crashed) since
            }
            if now < deadline {
                self.corrupt_refusals.push((id, incarnation, deadline));
                continue;
            }
            self.violate(ViolationKind::CorruptRead, format!("m{id} refused a corrupt read and kept running"));
            self.crash(i);
        }
    }

    /// A disk fault fired in member `i` and the member went on as if the
    /// write had succeeded: a violation (it may have acknowledged what is
    /// not on disk). The member is then stopped like one that noticed.
    fn check_fault_noticed(&mut self, i: usize) {
        let m = &mut self.members[i];
        let fired = m.engine.faults_fired();
        if fired > m.faults_seen && m.peer.is_some() {
            m.faults_seen = fired;
            let id = m.id;
            self.violate(ViolationKind::DiskFault, format!("m{id} went on after a failed disk write"));
            self.crash(i);
        }
    }
}

/// A member's outside world in the simulator: messages and completions
/// are collected for the step to deliver, log writes queue for the
/// simulated disk, compactions wait for a later step.
struct SimIo<'a> {
    out: Vec<raft_kv::RaftMessage>,
    done: Vec<Completion<OpId>>,
    queue: &'a mut Vec<DiskWrite>,
    compactions: &'a mut Vec<raft_kv::Compaction<MemEngine>>,
    reads: &'a mut Reads,
}

impl<'a> SimIo<'a> {
    fn new(
        queue: &'a mut Vec<DiskWrite>,
        compactions: &'a mut Vec<raft_kv::Compaction<MemEngine>>,
        reads: &'a mut Reads,
    ) -> Self {
        SimIo { out: Vec::new(), done: Vec::new(), queue, compactions, reads }
    }

    fn has_output(&self) -> bool {
        !self.out.is_empty() || !self.done.is_empty()
    }
}

impl Io<MemEngine, OpId> for SimIo<'_> {
    fn send(&mut self, msgs: Vec<raft_kv::RaftMessage>) {
        self.out.extend(msgs);
    }
    fn complete(&mut self, completion: Completion<OpId>) {
        self.done.push(completion);
    }
    fn submit(&mut self, write: DiskWrite) {
        self.queue.push(write);
    }
    fn compact(&mut self, job: raft_kv::Compaction<MemEngine>) {
        self.compactions.push(job);
    }
    fn members_changed(&mut self, _members: Vec<raft_kv::Member>) {}
    fn range(&mut self, job: raft_kv::RangeJob<raft_kv::engine::MemSnapshot, OpId>) {
        self.reads.ranges.push(job);
    }
    fn history(&mut self, job: raft_kv::HistoryJob<raft_kv::engine::MemSnapshot>) {
        self.reads.histories.push(job);
    }
}

/// The snapshot transport's back-pressure: each (leader, follower) pipe
/// holds at most [`SnapshotPipes::ROOM`] chunks in flight and drains one
/// every `chunk_time` units (network weather sets it: a slow link fills the
/// pipe, and the leader's sends are refused until it drains; 0: always
/// room, as at the start and after the heal).
#[derive(Debug)]
pub(super) struct SnapshotPipes {
    /// When each pipe is empty again.
    free_at: std::collections::BTreeMap<(u64, u64), u64>,
    /// Time one chunk takes to drain.
    pub(super) chunk_time: u64,
}

impl SnapshotPipes {
    /// Chunks one pipe holds.
    pub(super) const ROOM: u64 = 4;

    /// Pipes draining a chunk every `chunk_time` units.
    pub(super) fn new(chunk_time: u64) -> Self {
        SnapshotPipes { free_at: std::collections::BTreeMap::new(), chunk_time }
    }

    /// Whether the pipe `from -> to` has room for a chunk at `now`; if so
    /// the chunk takes it.
    pub(super) fn room(&mut self, from: u64, to: u64, now: u64) -> bool {
        if self.chunk_time == 0 {
            return true;
        }
        let free_at = self.free_at.entry((from, to)).or_insert(0);
        let queued = free_at.saturating_sub(now);
        if queued + self.chunk_time > Self::ROOM * self.chunk_time {
            return false;
        }
        *free_at = now.max(*free_at) + self.chunk_time;
        true
    }
}
