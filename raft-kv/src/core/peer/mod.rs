//! [`Peer`]: the sans-IO consensus member.
//!
//! A `Peer` owns the raft-rs [`RawNode`], the raft log ([`RaftLog`]) and the
//! state machine ([`Mvcc`]) over one [`Engine`]. It has no threads, clock or
//! sockets: a driver calls [`Peer::tick`] on its own schedule, feeds inbound
//! raft messages to [`Peer::step`], submits requests with [`Peer::propose`] and
//! [`Peer::read`], and takes each step's work as one value, [`Peer::ready`]
//! returning a [`Ready`](crate::core::ready::Ready) (messages, the apply batch, the log write and the
//! messages waiting for it, completions, compaction jobs), which the driver
//! carries out in the order the `Ready` contract gives and answers with
//! [`Peer::persisted`] once a log write is durable. The production node
//! and the simulator run the same driver over it (`Driver`, in the driver
//! module).
//!
//! Requests carry a caller-chosen token `T` (a callback, a client id...) that
//! comes back with the result.

mod apply;
mod propose;
mod ready;
mod step;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use protobuf::Message as _;
use raft::eraftpb::Message;
use raft::{RawNode, StateRole, INVALID_ID};

use crate::api::Member;
use crate::api::{AlarmMember, AlarmType, Event, LeaseTimeToLiveResponse, RangeRequest, RequestOp, TxnRequest};
use crate::command::Op;
use crate::core::alarm::Alarms;
use crate::core::auth::{AuthShared, AuthStore};
use crate::core::dedup::{AppliedIds, DEDUP_WINDOW};
use crate::core::integrity::Integrity;
use crate::core::lease::Lessor;
use crate::core::membership::Members;
use crate::core::mvcc::{Compaction, Mvcc};
use crate::core::raftlog::RaftLog;
use crate::core::reads::{HistoryRead, RangeJob};
use crate::core::ready::Completion;
use crate::core::snapshot;
use crate::core::status::{MemberState, Status};
use crate::core::watch::{WatchHub, WatchRequest, Watcher};
use crate::engine::{Cf, DbSize, Engine, WriteBatch};
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
    /// Each read, or `None` for a barrier ([`Peer::read_barrier`]).
    reads: Vec<(Option<RangeRequest>, T)>,
    /// Followers' ReadIndex requests this leader answers with the round's
    /// read index ([`Peer::hold_forwarded_read`]), and the term it issued
    /// the round in: they are answered only while that term lasts.
    forwarded: Vec<Message>,
    term: u64,
}

/// Followers' ReadIndex requests a leader holds for its next round at most:
/// each follower has one round in flight at a time, so more are forged or a
/// flood, and are refused (the follower's read times out, as when raft-rs
/// drops a request).
const MAX_FORWARDED_READS: usize = 256;

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

/// The most bytes of proposals a leader holds uncommitted (raft-rs's
/// `max_uncommitted_size`): room for 16 384 requests of 8 KiB.
const MAX_UNCOMMITTED_BYTES: u64 = 128 << 20;

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
    /// The request id of the last accepted client proposal.
    last_request: Option<u64>,
    /// Proposals waiting to apply, by request id.
    proposals: BTreeMap<u64, Pending<T>>,
    /// Log index → request id of proposals this member appended as leader,
    /// to detect ones overwritten by a later leader.
    by_index: BTreeMap<u64, u64>,
    /// Reads (and barriers: `None`) not yet sent for a ReadIndex.
    queued_reads: Vec<(Option<RangeRequest>, T)>,
    /// Read batches waiting for their ReadIndex, by context.
    inflight_reads: BTreeMap<u64, ReadBatch<T>>,
    /// Read batches with a read index, waiting for apply to reach it.
    ready_reads: VecDeque<(u64, ReadBatch<T>)>,
    /// Followers' ReadIndex requests held for this leader's next round.
    queued_forwarded: Vec<Message>,
    next_read_ctx: u64,
    /// Ranges served, to read off this thread (the next Ready's `ranges`).
    range_jobs: Vec<RangeJob<E::Snapshot, T>>,
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
    /// The term in which this member last took over the lease clock as
    /// leader (see `lead_leases`).
    leases_led_in: u64,
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
    /// Users, roles, permissions and the enabled flag (etcd's auth store).
    auth: AuthStore,
    /// The active alarms (replicated state).
    alarms: Alarms,
    /// The engine's size as of the last tick (measured only under a quota).
    db_size: DbSize,
    /// The tick this member last proposed its NOSPACE alarm: at most one
    /// such proposal per tick, however many writes are refused.
    nospace_proposed: Option<u64>,
    /// The first corrupt read met by this peer, its raft log or a view it
    /// handed out: every later Ready fails with it (the member stops).
    integrity: Integrity,
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

        let integrity = Integrity::new();
        let mut log = RaftLog::open(engine.clone(), cfg.log_cache_entries)?;
        log.share_integrity(&integrity);
        let mut mvcc = Mvcc::open(engine.clone())?;
        mvcc.set_max_response_bytes(cfg.max_response_bytes);
        mvcc.share_integrity(&integrity);
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
            // Bounds the leader's log of proposals not yet committed (a
            // leader cut off from its quorum would otherwise grow it
            // without limit); past it proposals are dropped.
            max_uncommitted_size: MAX_UNCOMMITTED_BYTES,
            // Not raft-rs's `batch_append`: it merges entries into an empty
            // append without comparing log positions (the simulator's seed
            // 3: "to_commit 65 is out of range [last_index 64]"). The peer
            // merges a step's appends itself (`core::batching`).
            ..Default::default()
        };
        let compacted_at = log.first() - 1;
        let lessor = Lessor::open(&engine, mvcc.leased_keys(), 0, cfg.tick_interval)?;
        let watches = WatchHub::new(cfg.watch_buffer);
        let members = Members::load(&engine)?;
        let applied_ids = AppliedIds::load(&engine, DEDUP_WINDOW)?;
        let auth = AuthStore::load(&engine, Arc::new(AuthShared::default()), cfg.tick_interval)?;
        let alarms = Alarms::load(&engine)?;
        let db_size = if cfg.quota_backend_bytes > 0 { engine.db_size() } else { DbSize::default() };
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
            last_request: None,
            proposals: BTreeMap::new(),
            by_index: BTreeMap::new(),
            queued_reads: Vec::new(),
            inflight_reads: BTreeMap::new(),
            ready_reads: VecDeque::new(),
            queued_forwarded: Vec::new(),
            next_read_ctx: 0,
            range_jobs: Vec::new(),
            applied_index,
            applied_term,
            compacted_at,
            completions: Vec::new(),
            leader_changes: 0,
            last_leader: INVALID_ID,
            handover: None,
            lessor,
            leases_led_in: 0,
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
            auth,
            alarms,
            db_size,
            nospace_proposed: None,
            integrity,
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

    /// The index of the last entry applied to the state machine.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
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
        let size = self.engine.db_size();
        Status {
            state: self.member_state(),
            first_index: self.raw.store().first(),
            last_index: self.raw.raft.raft_log.last_index(),
            db_size: size.total,
            db_size_in_use: size.in_use,
            voters: cs.voters.clone(),
            learners: cs.learners.clone(),
            alarms: self.alarms.list(AlarmType::None),
        }
    }

    /// The active alarms of type `kind` (all of them for `NONE`), as of the
    /// applied index.
    pub fn alarms(&self, kind: AlarmType) -> Vec<AlarmMember> {
        self.alarms.list(kind)
    }

    /// A job that defragments this member's engine, to run off the
    /// member's thread (it may take long).
    pub fn defragment_job(&self) -> impl FnOnce() -> Result<()> + Send + 'static {
        let engine = self.engine.clone();
        move || engine.defragment()
    }

    /// Advances the peer's clock by one tick: elections, heartbeats and
    /// request timeouts.
    pub fn tick(&mut self) {
        self.now += 1;
        if self.cfg.quota_backend_bytes > 0 {
            self.db_size = self.engine.db_size();
        }
        // A failure is recorded in `integrity`; the next Ready reports it.
        let _ = self.integrity.guard(|| self.raw.tick());
        self.auth.tick(self.now);
        self.lead_leases();
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

    /// Gives every lease its full TTL when this member has just become
    /// leader: the expiry clock changed hands, so no lease may expire early
    /// by the clock this member kept as a follower. Called after every raft
    /// input that can elect it (a tick, a message, a campaign), before the
    /// lessor is consulted as leader.
    fn lead_leases(&mut self) {
        let term = self.raw.raft.term;
        if self.is_leader() && self.leases_led_in != term {
            self.lessor.extend_all(self.now);
            self.leases_led_in = term;
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

    /// A window of watch history read off this thread (a Ready's
    /// `histories`) came back: delivers it to its watcher, which may then
    /// join the live events. Call between steps.
    pub fn history_read(&mut self, read: HistoryRead) {
        self.watches.history_read(read, self.mvcc.revision());
    }

    /// The revision through which watch `id` has been given every event
    /// (see `WatchHub::delivered_through`); `None` if it is gone.
    pub fn watch_delivered(&self, id: u64) -> Option<i64> {
        self.watches.delivered_through(id, self.mvcc.revision())
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
        self.integrity.guard(|| self.raw.campaign())??;
        self.lead_leases();
        Ok(())
    }

    /// Asks the leader to hand leadership to `to`.
    pub fn transfer_leader(&mut self, to: u64) {
        let _ = self.integrity.guard(|| self.raw.transfer_leader(to));
    }

    /// The state machine as of the applied index, to be read record by
    /// record (the engine view is taken now; reading it is the caller's,
    /// on any thread).
    pub fn export(&self) -> crate::core::export::Export {
        crate::core::export::Export::new(self.engine.snapshot())
    }

    /// The auth store's published state and simple tokens, shared with
    /// whoever checks client requests (kept across snapshot installs).
    pub fn auth_shared(&self) -> Arc<AuthShared> {
        Arc::clone(self.auth.shared())
    }

    /// Every member, as of the applied index.
    pub fn members(&self) -> Vec<Member> {
        self.members.list()
    }

    /// The current raft term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// Fails every pending request with [`Error::Stopped`] (on shutdown).
    pub fn fail_all(&mut self) -> Vec<Completion<T>> {
        let mut out = std::mem::take(&mut self.completions);
        out.extend(std::mem::take(&mut self.proposals).into_values().map(|p| (p.token, Err(Error::Stopped))));
        out.extend(self.queued_reads.drain(..).map(|(_, t)| (t, Err(Error::Stopped))));
        out.extend(self.range_jobs.drain(..).map(|j| (j.token, Err(Error::Stopped))));
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
pub(crate) fn bootstrap(cfg: &Config, wb: &mut WriteBatch) -> Result<()> {
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
