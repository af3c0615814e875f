//! One step out: [`Peer::ready`] takes raft-rs's Ready and turns it into the
//! [`Ready`] value; [`Peer::persisted`] hears back; snapshots go out as chunk
//! streams and come in as installs.

use raft::eraftpb::{Message, MessageType};
use raft::{SnapshotStatus, INVALID_ID};

use std::sync::Arc;

use crate::core::auth::AuthStore;
use crate::core::batching::batch_appends;
use crate::core::dedup::{AppliedIds, DEDUP_WINDOW};
use crate::core::integrity::Integrity;
use crate::core::lease::Lessor;
use crate::core::membership::Members;
use crate::core::mvcc::Mvcc;
use crate::core::reads::HistoryJob;
use crate::core::ready::{DiskWrite, LogWrite, Ready};
use crate::core::snapshot;
use crate::engine::{Engine, WriteBatch};
use crate::Result;

use super::Peer;

impl<E: Engine, T> Peer<E, T> {
    /// True when [`Peer::ready`] has work to do.
    pub fn has_ready(&self) -> bool {
        !self.completions.is_empty()
            || self.members_changed
            || !self.compactions.is_empty()
            || self.reads_flushable()
            || self.reads_servable()
            || !self.range_jobs.is_empty()
            || self.watches.has_windows()
            || (self.raw.has_ready() && !self.snapshot_waits())
            || self.integrity.failed()
    }

    /// A received snapshot is handed out for install only once every earlier
    /// [`LogWrite`] is durable, and one install at a time.
    pub(super) fn snapshot_waits(&self) -> bool {
        (self.handed > self.durable || self.installing.is_some()) && self.raw.snap().is_some_and(|s| !s.is_empty())
    }

    /// One step: everything the peer decided since the last one, for the
    /// driver to carry out in the order [`Ready`]'s contract gives.
    ///
    /// In a step the peer serves the reads that earlier steps' applies made
    /// ready, starts a ReadIndex round for the queued ones, and takes one
    /// raft-rs Ready: its messages go out at once (snapshots become chunk
    /// streams), its committed entries — already persisted here and on a
    /// quorum — are applied into [`Ready::apply`] and their callers answered,
    /// and its entries and hard state (or a snapshot install) become the
    /// [`Ready::log_write`], with the messages that must wait for it. The
    /// peer goes on taking proposals and applying while that write is in
    /// flight (raft-rs's asynchronous Ready); the storage already serves the
    /// new entries from its cache, as raft-rs requires.
    pub fn ready(&mut self) -> Result<Ready<E, T>> {
        if let Some(e) = self.integrity.failure() {
            return Err(e);
        }
        let caught = Integrity::catch(|| self.next_ready());
        self.integrity.settle(caught)?
    }

    fn next_ready(&mut self) -> Result<Ready<E, T>> {
        let mut out = Ready::new();
        // Earlier steps' apply batches are written by now (the contract):
        // one view of them serves every read and history window of the step.
        let mut view = None;
        self.serve_reads(&mut view);
        self.flush_reads();
        out.ranges = std::mem::take(&mut self.range_jobs);
        let windows = self.watches.take_windows();
        out.histories = windows
            .into_iter()
            .map(|w| {
                let view = Arc::clone(view.get_or_insert_with(|| Arc::new(self.mvcc.view())));
                HistoryJob { watch: w.watch, from: w.from, until: w.until, req: w.req, view }
            })
            .collect();
        if self.raw.has_ready() && !self.snapshot_waits() {
            out.log_write = self.take_raft_ready(&mut out.messages)?;
        }
        out.apply = self.mvcc.take_batch(std::mem::take(&mut self.apply_meta));
        let events = std::mem::take(&mut self.applied_events);
        self.watches.dispatch(&events);
        self.compactions.extend(self.mvcc.take_compaction());
        out.compactions = std::mem::take(&mut self.compactions);
        out.completions = std::mem::take(&mut self.completions);
        if std::mem::take(&mut self.members_changed) {
            out.members = Some(self.members.list());
        }
        Ok(out)
    }

    /// Takes one raft-rs Ready: sends, applies, and returns what must be
    /// made durable.
    pub(super) fn take_raft_ready(&mut self, messages: &mut Vec<Message>) -> Result<Option<LogWrite>> {
        let mut rd = self.raw.ready();
        self.note_soft_state(&rd);
        if !rd.messages().is_empty() {
            self.send(rd.take_messages(), messages);
        }
        self.take_read_states(&mut rd, messages);
        let mut log = WriteBatch::new();
        let snap = rd.snapshot();
        let installs = if snap.is_empty() {
            // raft-rs hands out only entries persisted here and on a quorum.
            self.apply(rd.take_committed_entries())?;
            None
        } else {
            // A snapshot Ready carries no committed entries; the state
            // machine is replaced once the install is durable (`persisted`).
            let meta = snap.get_metadata().clone();
            snapshot::stage_restore(&self.engine, snap, &mut log)?;
            self.raw.mut_store().apply_snapshot_meta(&meta, &mut log)?;
            Some((meta.index, meta.term))
        };
        self.raw.mut_store().append(rd.entries(), &mut log)?;
        if let Some(hs) = rd.hs() {
            self.raw.mut_store().set_hard_state(hs.clone(), &mut log)?;
        }
        let (number, mut sync) = (rd.number(), rd.must_sync() || installs.is_some());
        self.raw.mut_store().staged(number);
        // Snapshots among the messages that wait become chunk streams only
        // once the write is durable (`persisted`); the rest wait in the
        // LogWrite.
        let (snapshots, then_send): (Vec<Message>, Vec<Message>) =
            rd.take_persisted_messages().into_iter().partition(|m| m.get_msg_type() == MessageType::MsgSnapshot);
        self.raw.advance_append_async(rd);
        if installs.is_none() {
            self.raw.advance_apply_to(self.applied_index);
            sync |= self.maybe_compact_log(&mut log)?;
        }
        if let Some(to) = self.handover.take() {
            self.raw.raft.send_timeout_now(to);
        }
        if log.is_empty() && installs.is_none() && self.handed <= self.durable {
            // Nothing to wait for: this Ready is as durable as the last one.
            messages.extend(then_send);
            self.send(snapshots, messages);
            self.raw.mut_store().written(number);
            self.raw.on_persist_ready(number);
            self.durable = number;
            self.handed = number;
            return Ok(None);
        }
        self.handed = number;
        if !snapshots.is_empty() {
            self.waiting_snapshots.push_back((number, snapshots));
        }
        if let Some(install) = installs {
            self.installing = Some((number, install));
        }
        Ok(Some(LogWrite { write: DiskWrite { number, batch: log, sync }, then_send, installs }))
    }

    /// Reports that every [`LogWrite`] up to `number` is durable (the driver
    /// sends their `then_send` messages): raft counts this member's copy of
    /// the entries, and a snapshot install among them replaces the state
    /// machine.
    pub fn persisted(&mut self, number: u64) -> Result<()> {
        let caught = Integrity::catch(|| self.persisted_through(number));
        self.integrity.settle(caught)?
    }

    fn persisted_through(&mut self, number: u64) -> Result<()> {
        self.durable = self.durable.max(number);
        let installed = self.installing.filter(|(n, _)| *n <= number).map(|(_, at)| at);
        if let Some((index, term)) = installed {
            self.installing = None;
            self.finish_install(index, term)?;
        }
        while let Some((_, snapshots)) = self.waiting_snapshots.pop_front_if(|(n, _)| *n <= number) {
            let mut none = Vec::new();
            self.send(snapshots, &mut none);
        }
        self.raw.mut_store().written(number);
        self.raw.on_persist_ready(number);
        if let Some((index, _)) = installed {
            self.raw.advance_apply_to(index);
        }
        Ok(())
    }

    /// Reopens the state machine on an installed snapshot.
    pub(super) fn finish_install(&mut self, index: u64, term: u64) -> Result<()> {
        self.mvcc = Mvcc::open(self.engine.clone())?;
        self.mvcc.set_max_response_bytes(self.cfg.max_response_bytes);
        self.mvcc.share_integrity(&self.integrity);
        self.mvcc.set_prev_values(self.watches.wants_prev_values());
        self.lessor = Lessor::open(&self.engine, self.mvcc.leased_keys(), self.now, self.cfg.tick_interval)?;
        if !crate::mutation::active("snapshot-keeps-members") {
            self.members = Members::load(&self.engine)?;
        }
        self.members_changed = true;
        self.alarms = crate::core::alarm::Alarms::load(&self.engine)?;
        self.applied_ids = AppliedIds::load(&self.engine, DEDUP_WINDOW)?;
        let shared = Arc::clone(self.auth.shared());
        self.auth = AuthStore::load(&self.engine, shared, self.cfg.tick_interval)?;
        self.watches.resync(&self.mvcc);
        self.applied_index = index;
        self.applied_term = term;
        self.compacted_at = index;
        self.by_index = self.by_index.split_off(&(index + 1));
        tracing::info!(id = self.cfg.id, index, term, "snapshot installed");
        Ok(())
    }

    /// Tracks leadership from a Ready's soft state.
    pub(super) fn note_soft_state(&mut self, rd: &raft::Ready) {
        if let Some(ss) = rd.ss() {
            if ss.leader_id != self.last_leader {
                self.last_leader = ss.leader_id;
                if ss.leader_id != INVALID_ID {
                    self.leader_changes += 1;
                }
            }
        }
    }

    /// Sends raft's messages, appends to one follower merged
    /// ([`batch_appends`]), except snapshots: each becomes a chunk stream
    /// handed out by [`Peer::snapshot_chunks`].
    pub(super) fn send(&mut self, msgs: Vec<Message>, out: &mut Vec<Message>) {
        let (snapshots, msgs): (Vec<Message>, Vec<Message>) =
            msgs.into_iter().partition(|m| m.get_msg_type() == MessageType::MsgSnapshot);
        out.extend(batch_appends(msgs, self.cfg.max_size_per_msg));
        for m in snapshots {
            let to = m.to;
            let view = snapshot::descriptor_id(m.get_snapshot())
                .and_then(|id| Some((id, self.raw.store().take_outgoing(id)?)));
            match view {
                Some((id, view)) => {
                    self.outgoing.retain(|o| o.to != to);
                    self.outgoing.push(snapshot::Outgoing::new(m, id, view));
                }
                None => self.raw.report_snapshot(to, SnapshotStatus::Failure),
            }
        }
    }

    /// True while snapshots are being streamed to followers (the driver
    /// should call [`Peer::snapshot_chunks`] without waiting for a tick).
    pub fn is_streaming_snapshots(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// The next snapshot chunks to send: up to `max` per follower for which
    /// `room(follower)` says the transport has space. A stream whose last
    /// chunk went out is reported to raft as sent; if a chunk is lost the
    /// follower keeps rejecting appends and the leader streams a new
    /// snapshot.
    pub fn snapshot_chunks(&mut self, room: &mut dyn FnMut(u64) -> bool, max: usize) -> Result<Vec<Message>> {
        let caught = Integrity::catch(|| self.next_chunks(room, max));
        self.integrity.settle(caught)?
    }

    fn next_chunks(&mut self, room: &mut dyn FnMut(u64) -> bool, max: usize) -> Result<Vec<Message>> {
        let mut out = Vec::new();
        let chunk_bytes = self.cfg.snapshot_chunk_bytes;
        for stream in self.outgoing.iter_mut() {
            for _ in 0..max {
                if stream.is_done() || !room(stream.to) {
                    break;
                }
                out.extend(stream.next_chunk(chunk_bytes)?);
            }
        }
        let done: Vec<u64> = self.outgoing.iter().filter(|s| s.is_done()).map(|s| s.to).collect();
        self.outgoing.retain(|s| !s.is_done());
        for to in done {
            self.raw.report_snapshot(to, SnapshotStatus::Finish);
        }
        Ok(out)
    }

    /// Compacts the raft log into `log` when enough entries were applied
    /// since the last compaction; true when it did. The log write must then
    /// be synced, which also makes the apply batches before it durable
    /// before the entries go.
    pub(super) fn maybe_compact_log(&mut self, log: &mut WriteBatch) -> Result<bool> {
        if self.applied_index < self.compacted_at + self.cfg.snapshot_entries + self.cfg.log_keep_entries {
            return Ok(false);
        }
        let to = self.applied_index - self.cfg.log_keep_entries;
        self.raw.mut_store().compact(to, log)?;
        self.compacted_at = to;
        tracing::debug!(id = self.cfg.id, to, "raft log compacted");
        Ok(true)
    }
}
