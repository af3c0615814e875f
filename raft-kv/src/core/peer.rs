//! [`Peer`]: the sans-IO consensus member.
//!
//! A `Peer` owns the raft-rs [`RawNode`], the raft log ([`RaftLog`]) and the
//! state machine ([`Mvcc`]) over one [`Engine`]. It has no threads, clock or
//! sockets: a driver calls [`Peer::tick`] on its own schedule, feeds inbound
//! raft messages to [`Peer::step`], submits requests with [`Peer::propose`] and
//! [`Peer::read`], and takes each step's work as one value, [`Peer::ready`]
//! returning a [`Ready`] (messages, the apply batch, the log write and the
//! messages waiting for it, completions, compaction jobs), which the driver
//! carries out in the order the `Ready` contract gives and answers with
//! [`Peer::persisted`] once a log write is durable. The production node
//! and the simulator run the same driver over it (`Driver`, in the driver
//! module).
//!
//! Requests carry a caller-chosen token `T` (a callback, a client id...) that
//! comes back with the result.

use std::collections::{BTreeMap, VecDeque};

use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType, Message, MessageType};
use raft::{RawNode, SnapshotStatus, StateRole, INVALID_ID};
use raft_proto::ConfChangeI;

use crate::api::{
    DeleteRangeRequest, Event, LeaseGrantResponse, LeaseKeepAliveResponse, LeaseRevokeResponse,
    LeaseTimeToLiveResponse, RangeRequest, RequestOp, TxnRequest,
};
use crate::api::{Member, MembersResponse};
use crate::command::{Command, Op, Response};
use crate::core::dedup::{AppliedIds, DEDUP_WINDOW};
use crate::core::lease::Lessor;
use crate::core::membership::{self, Members};
use crate::core::mvcc::{Compaction, Mvcc};
use crate::core::raftlog::RaftLog;
use crate::core::ready::{Completion, DiskWrite, LogWrite, Ready};
use crate::core::snapshot;
use crate::core::status::{MemberState, Status};
use crate::core::watch::{WatchHub, WatchRequest, Watcher};
use crate::engine::{Cf, Engine, WriteBatch};
use crate::error::InvalidRequest;
use crate::keys::decode_u64;
use crate::{keys, Config, Error, Result};

struct Pending<T> {
    token: T,
    deadline: u64,
}

/// Linearizable reads that share one ReadIndex round.
struct ReadBatch<T> {
    /// The tick its ReadIndex went out.
    issued: u64,
    deadline: u64,
    reads: Vec<(RangeRequest, T)>,
}

/// While a ReadIndex issued less than this many ticks ago is in flight, new
/// linearizable reads wait for the next one: one confirmation round at a
/// time per member, carrying every read that queued meanwhile. A lost
/// ReadIndex (a leader change) holds reads back at most this long.
const READ_INDEX_RETRY_TICKS: u64 = 2;

/// The largest term a peer message may carry beyond this member's: a
/// member campaigning once per election timeout needs centuries to get this
/// far ahead, while `u64::MAX` from a forged message would overflow raft.
const MAX_TERM_JUMP: u64 = 1 << 32;

/// Expired leases a leader revokes per tick: a mass expiry becomes a steady
/// stream of revokes (1 000/s at the default tick, etcd's revoke rate)
/// instead of one burst of proposals.
const MAX_EXPIRY_REVOKES_PER_TICK: usize = 100;

/// etcd's largest lease TTL, in seconds ("etcdserver: too large lease TTL").
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// The sans-IO raft member. See the module docs.
pub struct Peer<E: Engine, T> {
    cfg: Config,
    raw: RawNode<RaftLog<E>>,
    mvcc: Mvcc<E>,
    engine: E,
    /// Ticks since start: the peer's only notion of time.
    now: u64,
    /// Boot count in the high half of this member's request ids (the
    /// member's own id travels beside them, see `Command::member`).
    request_prefix: u64,
    next_request: u64,
    /// Proposals waiting to apply, by request id.
    proposals: BTreeMap<u64, Pending<T>>,
    /// Log index → request id of proposals this member appended as leader,
    /// to detect ones overwritten by a later leader.
    by_index: BTreeMap<u64, u64>,
    /// Reads not yet sent for a ReadIndex.
    queued_reads: Vec<(RangeRequest, T)>,
    /// Read batches waiting for their ReadIndex, by context.
    inflight_reads: BTreeMap<u64, ReadBatch<T>>,
    /// Read batches with a read index, waiting for apply to reach it.
    ready_reads: VecDeque<(u64, ReadBatch<T>)>,
    next_read_ctx: u64,
    applied_index: u64,
    applied_term: u64,
    compacted_at: u64,
    completions: Vec<Completion<T>>,
    leader_changes: u64,
    last_leader: u64,
    /// The voter a removed leader hands over to once the current Ready is
    /// advanced (a follower may not add messages before that).
    handover: Option<u64>,
    lessor: Lessor,
    watches: WatchHub,
    /// Events applied in the current batch, dispatched to watchers once the
    /// batch is committed.
    applied_events: Vec<Event>,
    members: Members,
    /// Set when membership changed since the driver last asked.
    members_changed: bool,
    /// Snapshots being streamed to followers, one per follower.
    outgoing: Vec<snapshot::Outgoing<E::Snapshot>>,
    /// The snapshot being received, if any.
    incoming: Option<snapshot::Incoming>,
    /// The last local id given to a received snapshot stream.
    last_stream: u64,
    /// The number of the last Ready handed out as a [`LogWrite`].
    handed: u64,
    /// The highest Ready number reported durable ([`Peer::persisted`]).
    durable: u64,
    /// A snapshot install handed out and not yet durable: its Ready number,
    /// index and term.
    installing: Option<(u64, (u64, u64))>,
    /// Snapshot messages that wait for a LogWrite (by Ready number) before
    /// they become chunk streams.
    waiting_snapshots: VecDeque<(u64, Vec<Message>)>,
    /// Metadata (applied index, dedup records, lease and member records)
    /// staged beside the state machine's writes of the current step.
    apply_meta: WriteBatch,
    /// Physical compactions for the driver to run off this thread.
    compactions: Vec<Compaction<E>>,
    /// Recently applied command ids: a command applies at most once even if
    /// its proposal was duplicated on the way to the leader.
    applied_ids: AppliedIds,
}

fn raft_logger(id: u64) -> slog::Logger {
    slog::Logger::root(tracing_slog::TracingSlogDrain, slog::o!("raft_id" => id))
}

impl<E: Engine, T> Peer<E, T> {
    /// Opens member `cfg.id` on `engine`, recovering whatever state it holds.
    /// On an empty engine with `cfg.peers` set, bootstraps a new cluster of
    /// those voters.
    pub fn open(cfg: Config, engine: E) -> Result<Self> {
        if cfg.id == 0 {
            return Err(Error::invalid("member id must not be 0"));
        }
        let mut wb = WriteBatch::new();
        let fresh =
            engine.get(Cf::Meta, keys::CONF_STATE)?.is_none() && engine.get(Cf::Raft, keys::HARD_STATE)?.is_none();
        if fresh && !cfg.peers.is_empty() {
            bootstrap(&cfg, &mut wb)?;
        }
        let boots = engine.get(Cf::Raft, keys::BOOT_COUNT)?.map(|v| decode_u64(&v)).transpose()?.unwrap_or(0) + 1;
        wb.put(Cf::Raft, keys::BOOT_COUNT.to_vec(), boots.to_be_bytes().to_vec());
        engine.write(wb, true)?;

        let mut log = RaftLog::open(engine.clone(), cfg.log_cache_entries)?;
        let mvcc = Mvcc::open(engine.clone())?;
        let (applied_index, applied_term) = snapshot::applied(&engine)?;
        if log.hard_state().commit < applied_index {
            // Entries are applied (unsynced) before the Ready that carried
            // their commit index is persisted; a crash between the two can
            // leave the applied index ahead. Applied implies committed.
            let mut hs = log.hard_state().clone();
            hs.commit = applied_index;
            let mut wb = WriteBatch::new();
            log.set_hard_state(hs, &mut wb)?;
            engine.write(wb, true)?;
        }
        let rcfg = raft::Config {
            id: cfg.id,
            election_tick: cfg.election_ticks,
            max_election_tick: cfg.max_election_ticks,
            heartbeat_tick: cfg.heartbeat_ticks,
            applied: applied_index,
            max_size_per_msg: cfg.max_size_per_msg,
            max_inflight_msgs: cfg.max_inflight_msgs,
            check_quorum: cfg.check_quorum,
            pre_vote: cfg.pre_vote,
            // Not `batch_append`: it cut raft messages per write from ~4 to
            // ~0.3 under 64 clients, but the simulator found it builds
            // appends a follower cannot apply (seed 3: "to_commit 65 is out
            // of range [last_index 64]"), so it stays off.
            ..Default::default()
        };
        let compacted_at = log.first() - 1;
        let lessor = Lessor::open(&engine, mvcc.leased_keys(), 0, cfg.tick_interval)?;
        let watches = WatchHub::new(cfg.watch_buffer);
        let members = Members::load(&engine)?;
        let applied_ids = AppliedIds::load(&engine, DEDUP_WINDOW)?;
        // Chunks staged before a restart belong to streams that are gone.
        let mut wb = WriteBatch::new();
        snapshot::clear_staging(&engine, None, &mut wb)?;
        if !wb.is_empty() {
            engine.write(wb, false)?;
        }
        let raw = RawNode::new(&rcfg, log, &raft_logger(cfg.id))?;
        Ok(Peer {
            request_prefix: (boots & 0xffff_ffff) << 32,
            cfg,
            raw,
            mvcc,
            engine,
            now: 0,
            next_request: 0,
            proposals: BTreeMap::new(),
            by_index: BTreeMap::new(),
            queued_reads: Vec::new(),
            inflight_reads: BTreeMap::new(),
            ready_reads: VecDeque::new(),
            next_read_ctx: 0,
            applied_index,
            applied_term,
            compacted_at,
            completions: Vec::new(),
            leader_changes: 0,
            last_leader: INVALID_ID,
            handover: None,
            lessor,
            watches,
            applied_events: Vec::new(),
            members,
            members_changed: true,
            outgoing: Vec::new(),
            incoming: None,
            last_stream: 0,
            handed: 0,
            durable: 0,
            installing: None,
            waiting_snapshots: VecDeque::new(),
            apply_meta: WriteBatch::new(),
            compactions: Vec::new(),
            applied_ids,
        })
    }

    /// This member's id.
    pub fn id(&self) -> u64 {
        self.cfg.id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The leader this member knows of, if any.
    pub fn leader(&self) -> Option<u64> {
        Some(self.raw.raft.leader_id).filter(|l| *l != INVALID_ID)
    }

    /// True when this member is the leader.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// How many times this member has seen the leader change.
    pub fn leader_changes(&self) -> u64 {
        self.leader_changes
    }

    /// The state machine (for local, serializable reads and checks).
    pub fn mvcc(&self) -> &Mvcc<E> {
        &self.mvcc
    }

    /// Leader, term, role, indexes and revision: cheap enough to read
    /// after every step.
    pub fn member_state(&self) -> MemberState {
        MemberState {
            id: self.cfg.id,
            leader: self.raw.raft.leader_id,
            term: self.raw.raft.term,
            role: self.raw.raft.state.into(),
            commit_index: self.raw.raft.raft_log.committed,
            applied_index: self.applied_index,
            revision: self.mvcc.revision(),
            compact_revision: self.mvcc.compact_revision(),
            stopped: false,
        }
    }

    /// The member's full status, including the engine's size (which costs a
    /// few engine property reads; [`Peer::member_state`] is free).
    pub fn status(&self) -> Status {
        let cs = self.raw.store().conf_state();
        let MemberState { id, leader, term, role, commit_index, applied_index, revision, compact_revision, .. } =
            self.member_state();
        Status {
            id,
            leader,
            term,
            role,
            commit_index,
            applied_index,
            first_index: self.raw.store().first(),
            last_index: self.raw.raft.raft_log.last_index(),
            revision,
            compact_revision,
            db_size: self.engine.size_bytes(),
            voters: cs.voters.clone(),
            learners: cs.learners.clone(),
        }
    }

    /// Advances the peer's clock by one tick: elections, heartbeats and
    /// request timeouts.
    pub fn tick(&mut self) {
        self.now += 1;
        self.raw.tick();
        self.expire_requests();
        // Watchers that fell behind read what they missed from history.
        self.watches.catch_up(&self.mvcc);
        if self.is_leader() {
            let retry = self.cfg.election_ticks as u64 * 2;
            for (id, renewals) in self.lessor.expired(self.now, retry, MAX_EXPIRY_REVOKES_PER_TICK) {
                let revoke = crate::command::LeaseRevoke::conditional(id, renewals);
                self.propose_internal(Op::LeaseRevoke(revoke));
            }
        }
    }

    /// Proposes an operation of the member's own (lease expiry); nobody
    /// waits for it.
    fn propose_internal(&mut self, op: Op) {
        if let Err(e) = self.try_propose(op) {
            tracing::debug!(id = self.cfg.id, error = %e, "internal proposal failed");
        }
    }

    /// The shortest lease TTL granted, in seconds: one and a half election
    /// timeouts, so a lease survives a leader election (etcd's rule).
    pub fn min_lease_ttl(&self) -> i64 {
        let ms = self.cfg.tick_interval.as_millis() * self.cfg.election_ticks as u128 * 3 / 2;
        ms.div_ceil(1000).max(1) as i64
    }

    /// Lease `id`'s remaining life as this member sees it (exact on the
    /// leader; followers reset the clock at each grant and keep-alive).
    pub fn lease_time_to_live(&self, id: i64, keys: bool) -> LeaseTimeToLiveResponse {
        self.lessor.time_to_live(id, self.now, keys)
    }

    /// Ids of every lease.
    pub fn leases(&self) -> Vec<i64> {
        self.lessor.ids()
    }

    /// Starts a watch. History from a past start revision is queued at once;
    /// live events follow as entries apply.
    pub fn watch(&mut self, req: WatchRequest) -> Result<Watcher> {
        let w = self.watches.create(req, &self.mvcc)?;
        self.mvcc.set_prev_values(self.watches.wants_prev_values());
        Ok(w)
    }

    /// Cancels watch `id`.
    pub fn cancel_watch(&mut self, id: u64) {
        self.watches.cancel(id);
        self.mvcc.set_prev_values(self.watches.wants_prev_values());
    }

    /// Sends watch `id` a progress notification at the current revision.
    pub fn watch_progress(&mut self, id: u64) {
        self.watches.progress(id, self.mvcc.revision());
    }

    /// Starts an election now (tests and leader hand-off).
    pub fn campaign(&mut self) -> Result<()> {
        Ok(self.raw.campaign()?)
    }

    /// Refuses a message raft-rs would trust blindly (and panic or stop on):
    /// a term no election could have reached, a heartbeat committing beyond
    /// this member's log, an append whose entries are not contiguous, or a
    /// snapshot that
    /// did not come as this transport's chunk stream. A genuine member never
    /// sends any of these. (Senders are not checked against the
    /// configuration: a lagging member must accept a leader added after
    /// the configuration it has applied.)
    fn check_peer_message(&self, msg: &Message) -> Result<()> {
        let bad = |why: String| Err(Error::BadPeerMessage(why));
        if msg.term > self.raw.raft.term.saturating_add(MAX_TERM_JUMP) {
            return bad(format!("term {} is implausibly far beyond {}", msg.term, self.raw.raft.term));
        }
        let last = self.raw.raft.raft_log.last_index();
        if msg.get_msg_type() == MessageType::MsgHeartbeat && msg.commit > last {
            return bad(format!("heartbeat commits {} beyond the last index {last}", msg.commit));
        }
        if msg.get_msg_type() == MessageType::MsgAppend {
            // raft-rs appends what it is given; a gap would reach the log
            // store, which refuses it as a storage error and stops.
            for (i, e) in msg.entries.iter().enumerate() {
                if Some(e.index) != msg.index.checked_add(i as u64 + 1) {
                    return bad(format!("append at {} holds entry {} out of sequence", msg.index, e.index));
                }
            }
        }
        if msg.get_msg_type() == MessageType::MsgSnapshot && !snapshot::is_chunk(msg) {
            return bad("snapshot outside a chunk stream".into());
        }
        Ok(())
    }

    /// Asks the leader to hand leadership to `to`.
    pub fn transfer_leader(&mut self, to: u64) {
        self.raw.transfer_leader(to);
    }

    /// Feeds an inbound raft message. Messages from unknown or removed peers
    /// and messages not meant for this member are ignored by raft itself.
    pub fn step(&mut self, msg: Message) -> Result<()> {
        if msg.to != self.cfg.id {
            return Err(Error::BadPeerMessage(format!("message for member {} delivered to {}", msg.to, self.cfg.id)));
        }
        if raft::raw_node::is_local_msg(msg.get_msg_type()) {
            return Err(Error::BadPeerMessage("local raft message received from the network".into()));
        }
        self.check_peer_message(&msg)?;
        let msg = if snapshot::is_chunk(&msg) {
            let mut wb = WriteBatch::new();
            let complete = snapshot::receive_chunk(&mut self.incoming, &mut self.last_stream, msg, &mut wb)?;
            self.engine.write(wb, false)?;
            match complete {
                Some(m) => m,
                None => return Ok(()),
            }
        } else {
            msg
        };
        match self.raw.step(msg) {
            // A forwarded proposal reaching a member that knows no leader is
            // dropped, as the network might have dropped it.
            Ok(()) | Err(raft::Error::StepPeerNotFound) | Err(raft::Error::ProposalDropped) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn validate(&self, op: &Op) -> Result<()> {
        Mvcc::<E>::validate(op)?;
        if let Op::LeaseGrant(g) = op {
            if g.ttl > MAX_LEASE_TTL {
                return Err(InvalidRequest::LeaseTtlTooLarge.into());
            }
        }
        if let Op::Txn(txn) = op {
            check_txn_ops(txn, self.cfg.max_txn_ops)?;
        }
        Ok(())
    }

    /// Proposes a write. The outcome comes back from a later
    /// [`Peer::ready`] with `token`, once the entry is committed by a
    /// quorum that persisted it and applied here.
    pub fn propose(&mut self, op: Op, token: T) {
        if self.proposals.len() >= self.cfg.max_pending_proposals {
            self.completions.push((token, Err(Error::TooManyRequests)));
            return;
        }
        match self.try_propose(op) {
            Ok(id) => {
                self.proposals.insert(id, Pending { token, deadline: self.now + self.cfg.request_timeout_ticks });
            }
            Err(e) => self.completions.push((token, Err(e))),
        }
    }

    /// Proposes `op`, returning its request id.
    fn try_propose(&mut self, op: Op) -> Result<u64> {
        self.validate(&op)?;
        if self.raw.raft.leader_id == INVALID_ID {
            return Err(Error::NoLeader);
        }
        self.next_request = (self.next_request + 1) & 0xffff_ffff;
        let id = self.request_prefix | self.next_request;
        // Lease and member ids the member picks: from its full id and the
        // request id, so members do not pick alike.
        let picked = (self.cfg.id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ id) & (i64::MAX as u64);
        let picked = picked.max(1);
        let mut op = op;
        if let Op::LeaseGrant(g) = &mut op {
            if g.id == 0 {
                g.id = picked as i64;
            }
            g.ttl = g.ttl.max(self.min_lease_ttl());
        }
        if let Op::MemberAdd(m) = &mut op {
            if m.id == 0 {
                m.id = picked;
            }
        }
        self.members.check(&op)?;
        if let Op::MemberPromote(p) = &op {
            self.check_learner_ready(p.id)?;
        }
        let conf_change = membership::conf_change(&op);
        let data = Command::new(self.cfg.id, id, op).encode_to_vec();
        if data.len() > self.cfg.max_request_bytes {
            return Err(InvalidRequest::TooLarge.into());
        }
        match conf_change {
            Some(cc) => self.raw.propose_conf_change(data, cc)?,
            None => self.raw.propose(Vec::new(), data)?,
        }
        if self.is_leader() {
            self.by_index.insert(self.raw.raft.raft_log.last_index(), id);
        }
        Ok(id)
    }

    /// Refuses to promote a learner that is far behind the leader (it would
    /// weaken the quorum until it catches up). Only the leader can tell.
    fn check_learner_ready(&self, id: u64) -> Result<()> {
        if !self.is_leader() {
            return Err(Error::not_leader(self.leader().unwrap_or(0)));
        }
        let last = self.raw.raft.raft_log.last_index();
        let matched = self.raw.raft.prs().get(id).map_or(0, |p| p.matched);
        // etcd's rule: the learner has at least 90% of the leader's log.
        if matched * 10 < last * 9 {
            return Err(Error::LearnerNotReady);
        }
        Ok(())
    }

    /// A consistent copy of the state machine as of the applied index
    /// (encoded raft snapshot: metadata and data).
    pub fn backup(&self) -> Result<Vec<u8>> {
        Ok(snapshot::build(&self.engine.snapshot())?.write_to_bytes()?)
    }

    /// Every member, as of the applied index.
    pub fn members(&self) -> Vec<Member> {
        self.members.list()
    }

    /// Reads a range. A serializable request is served at once from local
    /// state; otherwise the read joins the next ReadIndex round and is served
    /// once this member has applied up to the read index (linearizable).
    pub fn read(&mut self, req: RangeRequest, token: T) {
        if req.serializable || self.cfg.unsafe_local_reads {
            let res = self.mvcc.range(&req).map(Response::Range);
            self.completions.push((token, res));
        } else if let Err(e) = Mvcc::<E>::validate_range(&req) {
            self.completions.push((token, Err(e)));
        } else {
            self.queued_reads.push((req, token));
        }
    }

    /// True when [`Peer::ready`] has work to do.
    pub fn has_ready(&self) -> bool {
        !self.completions.is_empty()
            || self.members_changed
            || !self.compactions.is_empty()
            || self.reads_flushable()
            || self.reads_servable()
            || (self.raw.has_ready() && !self.snapshot_waits())
    }

    /// A received snapshot is handed out for install only once every earlier
    /// [`LogWrite`] is durable, and one install at a time.
    fn snapshot_waits(&self) -> bool {
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
        let mut out = Ready::new();
        // Earlier steps' apply batches are written by now (the contract).
        self.serve_reads();
        self.flush_reads();
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
    fn take_raft_ready(&mut self, messages: &mut Vec<Message>) -> Result<Option<LogWrite>> {
        let mut rd = self.raw.ready();
        self.note_soft_state(&rd);
        if !rd.messages().is_empty() {
            self.send(rd.take_messages(), messages);
        }
        self.take_read_states(&mut rd);
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
        self.raw.on_persist_ready(number);
        if let Some((index, _)) = installed {
            self.raw.advance_apply_to(index);
        }
        Ok(())
    }

    /// Reopens the state machine on an installed snapshot.
    fn finish_install(&mut self, index: u64, term: u64) -> Result<()> {
        self.mvcc = Mvcc::open(self.engine.clone())?;
        self.mvcc.set_prev_values(self.watches.wants_prev_values());
        self.lessor = Lessor::open(&self.engine, self.mvcc.leased_keys(), self.now, self.cfg.tick_interval)?;
        self.members = Members::load(&self.engine)?;
        self.members_changed = true;
        self.applied_ids = AppliedIds::load(&self.engine, DEDUP_WINDOW)?;
        self.watches.resync(&self.mvcc);
        self.applied_index = index;
        self.applied_term = term;
        self.compacted_at = index;
        self.by_index = self.by_index.split_off(&(index + 1));
        tracing::info!(id = self.cfg.id, index, term, "snapshot installed");
        Ok(())
    }

    /// Whether queued reads may start a ReadIndex round now.
    fn reads_flushable(&self) -> bool {
        !self.queued_reads.is_empty()
            && self.inflight_reads.values().all(|b| b.issued + READ_INDEX_RETRY_TICKS <= self.now)
    }

    /// Whether a read batch's read index is applied.
    fn reads_servable(&self) -> bool {
        self.ready_reads.front().is_some_and(|(idx, _)| *idx <= self.applied_index)
    }

    fn flush_reads(&mut self) {
        if !self.reads_flushable() {
            return;
        }
        if self.raw.raft.leader_id == INVALID_ID {
            for (_, token) in self.queued_reads.drain(..) {
                self.completions.push((token, Err(Error::NoLeader)));
            }
            return;
        }
        // Contexts are unique across the cluster (the full member id, then
        // boot count and counter): raft-rs keys pending reads by context, so
        // a follower's forwarded read must never collide with another's, or
        // it could be answered with an older read index.
        self.next_read_ctx = (self.next_read_ctx + 1) & 0xffff_ffff;
        let ctx = self.request_prefix | self.next_read_ctx;
        let batch = ReadBatch {
            issued: self.now,
            deadline: self.now + self.cfg.request_timeout_ticks,
            reads: std::mem::take(&mut self.queued_reads),
        };
        self.inflight_reads.insert(ctx, batch);
        let mut context = self.cfg.id.to_be_bytes().to_vec();
        context.extend_from_slice(&ctx.to_be_bytes());
        self.raw.read_index(context);
    }

    /// Tracks leadership from a Ready's soft state.
    fn note_soft_state(&mut self, rd: &raft::Ready) {
        if let Some(ss) = rd.ss() {
            if ss.raft_state == StateRole::Leader {
                self.lessor.extend_all(self.now);
            }
            if ss.leader_id != self.last_leader {
                self.last_leader = ss.leader_id;
                if ss.leader_id != INVALID_ID {
                    self.leader_changes += 1;
                }
            }
        }
    }

    /// Moves read batches whose ReadIndex came back to the ready queue.
    fn take_read_states(&mut self, rd: &mut raft::Ready) {
        for rs in rd.take_read_states() {
            let ours = rs.request_ctx.get(..8) == Some(&self.cfg.id.to_be_bytes()[..]);
            let ctx = rs.request_ctx.get(8..).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
            if let Some(batch) = ctx.filter(|_| ours).and_then(|ctx| self.inflight_reads.remove(&ctx)) {
                self.ready_reads.push_back((rs.index, batch));
            }
        }
    }

    /// Sends raft's messages, except snapshots: each becomes a chunk stream
    /// handed out by [`Peer::snapshot_chunks`].
    fn send(&mut self, msgs: Vec<Message>, out: &mut Vec<Message>) {
        let (snapshots, msgs): (Vec<Message>, Vec<Message>) =
            msgs.into_iter().partition(|m| m.get_msg_type() == MessageType::MsgSnapshot);
        out.extend(msgs);
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

    /// Applies committed entries: one unsynced batch with the state-machine
    /// changes, the new applied index and `extra`.
    fn apply(&mut self, entries: Vec<Entry>) -> Result<()> {
        let Some(last) = entries.last() else {
            return Ok(());
        };
        let mut extra = std::mem::take(&mut self.apply_meta);
        let (last_index, last_term) = (last.index, last.term);
        for entry in entries {
            if entry.index <= self.applied_index {
                continue;
            }
            match entry.get_entry_type() {
                EntryType::EntryNormal => self.apply_normal(&entry, &mut extra),
                // An undecodable conf change is skipped like an undecodable
                // command: every member sees the same bytes and skips them
                // alike, instead of stopping (and stopping again on restart).
                EntryType::EntryConfChange => match ConfChange::parse_from_bytes(&entry.data) {
                    Ok(cc) => self.apply_conf_change(&entry, cc.into_v2(), &mut extra)?,
                    Err(e) => self.skip_undecodable(&entry, &e),
                },
                EntryType::EntryConfChangeV2 => match ConfChangeV2::parse_from_bytes(&entry.data) {
                    Ok(cc) => self.apply_conf_change(&entry, cc, &mut extra)?,
                    Err(e) => self.skip_undecodable(&entry, &e),
                },
            }
        }
        self.applied_index = last_index;
        self.applied_term = last_term;
        extra.put(Cf::Meta, keys::APPLIED_INDEX.to_vec(), last_index.to_be_bytes().to_vec());
        extra.put(Cf::Meta, keys::APPLIED_TERM.to_vec(), last_term.to_be_bytes().to_vec());
        self.apply_meta = extra;
        Ok(())
    }

    fn apply_normal(&mut self, entry: &Entry, extra: &mut WriteBatch) {
        // A proposal this member appended at this index as leader but that a
        // later leader replaced was never committed: fail it.
        let overwritten = self.by_index.remove(&entry.index);
        if entry.data.is_empty() {
            self.fail_overwritten(overwritten, None);
            return;
        }
        let cmd = match Command::decode(&entry.data) {
            Ok(cmd) => cmd,
            Err(e) => {
                // Every member sees the same bytes and skips them alike.
                tracing::error!(index = entry.index, error = %e, "skipping undecodable log entry");
                self.fail_overwritten(overwritten, None);
                return;
            }
        };
        // Only this member's own requests complete its callers.
        let mine = (cmd.member == self.cfg.id).then_some(cmd.id);
        self.fail_overwritten(overwritten, mine);
        if !self.applied_ids.record(cmd.request(), entry.index, extra) {
            tracing::debug!(id = self.cfg.id, request = cmd.id, "skipping a duplicated command");
            return;
        }
        let result = match &cmd.op {
            Some(op) => self.apply_op(op, extra),
            None => Err(Error::invalid("empty command")),
        };
        if let Some(p) = mine.and_then(|id| self.proposals.remove(&id)) {
            self.completions.push((p.token, result));
        }
    }

    /// The current raft term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// Applies one operation; its events feed the lessor at once (a later
    /// entry of the same batch may revoke a lease the key was just put with).
    fn apply_op(&mut self, op: &Op, extra: &mut WriteBatch) -> Result<Response> {
        let result = match op {
            Op::LeaseGrant(g) => self
                .lessor
                .grant(g.id, g.ttl, self.now, extra)
                .map(|()| Response::LeaseGrant(LeaseGrantResponse { id: g.id, ttl: g.ttl, ..Default::default() })),
            Op::LeaseKeepAlive(k) => self
                .lessor
                .renew(k.id, self.now, extra)
                .map(|ttl| Response::LeaseKeepAlive(LeaseKeepAliveResponse { id: k.id, ttl, header: None })),
            Op::LeaseRevoke(r) => self.revoke(r, extra),
            Op::MemberUpdate(_) => self.members.apply(op, extra).map(|member| {
                self.members_changed = true;
                Response::Members(MembersResponse { member, members: self.members.list() })
            }),
            Op::MemberAdd(_) | Op::MemberRemove(_) | Op::MemberPromote(_) => {
                Err(Error::invalid("membership change outside a conf change entry"))
            }
            kv_op => {
                self.check_leases(kv_op)?;
                self.mvcc.apply(kv_op)
            }
        };
        let events = self.mvcc.take_events();
        self.lessor.on_events(&events);
        self.applied_events.extend(events);
        result
    }

    /// Deletes a lease's keys (at one revision) and the lease — unless the
    /// revoke was for an expiry and a keep-alive applied since.
    fn revoke(&mut self, r: &crate::command::LeaseRevoke, extra: &mut WriteBatch) -> Result<Response> {
        let id = r.id;
        let keys = self.lessor.keys(id)?;
        if r.condition().is_some_and(|n| self.lessor.renewals(id) != Some(n)) {
            return Err(Error::invalid("lease was renewed after it was seen to expire"));
        }
        if !keys.is_empty() {
            let txn = keys.into_iter().fold(TxnRequest::new(), |t, k| t.and_then(DeleteRangeRequest::key(k)));
            self.mvcc.apply(&Op::Txn(txn))?;
        }
        self.lessor.remove(id, extra)?;
        Ok(Response::LeaseRevoke(LeaseRevokeResponse { header: crate::api::header(self.mvcc.revision()) }))
    }

    /// Refuses puts that name a lease that does not exist.
    fn check_leases(&self, op: &Op) -> Result<()> {
        fn walk(lessor: &Lessor, ops: &[RequestOp]) -> Result<()> {
            for op in ops {
                match &op.request {
                    Some(crate::api::request_op::Request::RequestPut(p))
                        if p.lease != 0 && !lessor.contains(p.lease) =>
                    {
                        return Err(Error::LeaseNotFound)
                    }
                    Some(crate::api::request_op::Request::RequestTxn(t)) => {
                        walk(lessor, &t.success)?;
                        walk(lessor, &t.failure)?;
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        match op {
            Op::Put(p) if p.lease != 0 && !self.lessor.contains(p.lease) => Err(Error::LeaseNotFound),
            Op::Txn(t) => {
                walk(&self.lessor, &t.success)?;
                walk(&self.lessor, &t.failure)
            }
            _ => Ok(()),
        }
    }

    /// Skips an entry whose data cannot be decoded; a proposal of ours at
    /// its index was overwritten.
    fn skip_undecodable(&mut self, entry: &Entry, e: &dyn std::fmt::Display) {
        tracing::error!(index = entry.index, error = %e, "skipping undecodable log entry");
        let overwritten = self.by_index.remove(&entry.index);
        self.fail_overwritten(overwritten, None);
    }

    fn fail_overwritten(&mut self, expected: Option<u64>, applied: Option<u64>) {
        if let Some(id) = expected.filter(|id| Some(*id) != applied) {
            if let Some(p) = self.proposals.remove(&id) {
                self.completions.push((p.token, Err(Error::ProposalDropped)));
            }
        }
    }

    fn apply_conf_change(&mut self, entry: &Entry, cc: ConfChangeV2, extra: &mut WriteBatch) -> Result<()> {
        let overwritten = self.by_index.remove(&entry.index);
        // The context is the command that described the change; raft's own
        // changes (leaving a joint configuration) have none.
        let cmd = Command::decode(&entry.context).ok().filter(|c| c.op.is_some());
        let mine = cmd.as_ref().filter(|c| c.member == self.cfg.id).map(|c| c.id);
        self.fail_overwritten(overwritten, mine);
        let result = match self.raw.apply_conf_change(&cc) {
            Ok(cs) => {
                self.raw.mut_store().set_conf_state(cs, extra)?;
                let member = match cmd.as_ref().and_then(|c| c.op.as_ref()) {
                    Some(op) => self.members.apply(op, extra)?,
                    None => None,
                };
                self.members_changed = true;
                self.after_conf_change();
                Ok(Response::Members(MembersResponse { member, members: self.members.list() }))
            }
            Err(e) => {
                // Raft refuses an invalid change the same way on every member.
                tracing::warn!(error = %e, "conf change refused");
                Err(Error::Raft(e.to_string()))
            }
        };
        if let Some(p) = mine.and_then(|id| self.proposals.remove(&id)) {
            self.completions.push((p.token, result));
        }
        Ok(())
    }

    /// A leader that is no longer a voter steps down at once and hands
    /// leadership to the voter with the most of its log (`MsgTimeoutNow`,
    /// sent once the current Ready is advanced). It must not stay leader:
    /// raft-rs 0.7 keeps no progress for a removed leader, and the next
    /// append response or persisted entry unwraps it and panics (found by
    /// the simulator).
    fn after_conf_change(&mut self) {
        if !self.is_leader() || self.raw.store().conf_state().voters.contains(&self.cfg.id) {
            return;
        }
        let me = self.cfg.id;
        let best = self
            .raw
            .raft
            .prs()
            .iter()
            .filter(|(id, _)| **id != me && self.raw.store().conf_state().voters.contains(id))
            .max_by_key(|(id, p)| (p.matched, **id))
            .map(|(id, _)| *id);
        tracing::info!(id = me, to = ?best, "removed from the cluster as leader; stepping down");
        let term = self.raw.raft.term;
        self.raw.raft.become_follower(term, INVALID_ID);
        // What the former leader had queued may go unsent (the network may
        // drop it too); a follower must not hold unpersisted messages.
        self.raw.raft.msgs.clear();
        self.handover = best;
    }

    fn serve_reads(&mut self) {
        while self.ready_reads.front().is_some_and(|(idx, _)| *idx <= self.applied_index) {
            let Some((_, batch)) = self.ready_reads.pop_front() else { break };
            for (req, token) in batch.reads {
                let res = self.mvcc.range(&req).map(Response::Range);
                self.completions.push((token, res));
            }
        }
    }

    fn expire_requests(&mut self) {
        let now = self.now;
        let expired: Vec<u64> = self.proposals.iter().filter(|(_, p)| p.deadline <= now).map(|(id, _)| *id).collect();
        for id in expired {
            if let Some(p) = self.proposals.remove(&id) {
                self.completions.push((p.token, Err(Error::Timeout)));
            }
        }
        self.by_index.retain(|_, id| self.proposals.contains_key(id));
        let expired: Vec<u64> =
            self.inflight_reads.iter().filter(|(_, b)| b.deadline <= now).map(|(ctx, _)| *ctx).collect();
        for ctx in expired {
            if let Some(batch) = self.inflight_reads.remove(&ctx) {
                self.completions.extend(batch.reads.into_iter().map(|(_, t)| (t, Err(Error::Timeout))));
            }
        }
        while self.ready_reads.front().is_some_and(|(_, b)| b.deadline <= now) {
            if let Some((_, batch)) = self.ready_reads.pop_front() {
                self.completions.extend(batch.reads.into_iter().map(|(_, t)| (t, Err(Error::Timeout))));
            }
        }
    }

    /// Compacts the raft log into `log` when enough entries were applied
    /// since the last compaction; true when it did. The log write must then
    /// be synced, which also makes the apply batches before it durable
    /// before the entries go.
    fn maybe_compact_log(&mut self, log: &mut WriteBatch) -> Result<bool> {
        if self.applied_index < self.compacted_at + self.cfg.snapshot_entries + self.cfg.log_keep_entries {
            return Ok(false);
        }
        let to = self.applied_index - self.cfg.log_keep_entries;
        self.raw.mut_store().compact(to, log)?;
        self.compacted_at = to;
        tracing::debug!(id = self.cfg.id, to, "raft log compacted");
        Ok(true)
    }

    /// Fails every pending request with [`Error::Stopped`] (on shutdown).
    pub fn fail_all(&mut self) -> Vec<Completion<T>> {
        let mut out = std::mem::take(&mut self.completions);
        out.extend(std::mem::take(&mut self.proposals).into_values().map(|p| (p.token, Err(Error::Stopped))));
        out.extend(self.queued_reads.drain(..).map(|(_, t)| (t, Err(Error::Stopped))));
        for (_, b) in std::mem::take(&mut self.inflight_reads) {
            out.extend(b.reads.into_iter().map(|(_, t)| (t, Err(Error::Stopped))));
        }
        for (_, b) in std::mem::take(&mut self.ready_reads) {
            out.extend(b.reads.into_iter().map(|(_, t)| (t, Err(Error::Stopped))));
        }
        self.by_index.clear();
        out
    }
}

/// Writes the initial state of a new cluster: as if every member had
/// installed the same snapshot at index 1, term 1, holding the initial
/// configuration. A member added later has an empty log, so the leader must
/// send it a snapshot, which carries the configuration and the members.
fn bootstrap(cfg: &Config, wb: &mut WriteBatch) -> Result<()> {
    let cs = raft::eraftpb::ConfState { voters: cfg.peers.clone(), ..Default::default() };
    wb.put(Cf::Meta, keys::CONF_STATE.to_vec(), cs.write_to_bytes()?);
    let hs = raft::eraftpb::HardState { term: 1, commit: 1, ..Default::default() };
    wb.put(Cf::Raft, keys::HARD_STATE.to_vec(), hs.write_to_bytes()?);
    let mut truncated = 1u64.to_be_bytes().to_vec();
    truncated.extend_from_slice(&1u64.to_be_bytes());
    wb.put(Cf::Raft, keys::TRUNCATED.to_vec(), truncated);
    wb.put(Cf::Meta, keys::APPLIED_INDEX.to_vec(), 1u64.to_be_bytes().to_vec());
    wb.put(Cf::Meta, keys::APPLIED_TERM.to_vec(), 1u64.to_be_bytes().to_vec());
    let mut members = Members::default();
    for id in &cfg.peers {
        let known = cfg.initial_members.iter().find(|m| m.id == *id).cloned();
        members.stage_put(known.unwrap_or(Member { id: *id, ..Default::default() }), wb);
    }
    Ok(())
}

/// Counts the operations of every branch (nested transactions included)
/// against the limit.
fn check_txn_ops(txn: &TxnRequest, max: usize) -> Result<()> {
    for branch in [&txn.success, &txn.failure] {
        if branch.len() > max {
            return Err(InvalidRequest::TooManyOps.into());
        }
        for op in branch.iter() {
            if let RequestOp { request: Some(crate::api::request_op::Request::RequestTxn(inner)) } = op {
                check_txn_ops(inner, max)?;
            }
        }
    }
    if txn.compare.len() > max {
        return Err(InvalidRequest::TooManyOps.into());
    }
    Ok(())
}
