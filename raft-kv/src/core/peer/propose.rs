//! Requests in: proposals (validated, numbered, appended), linearizable reads
//! (batched into ReadIndex rounds, served once applied) and their timeouts.

use std::sync::Arc;

use raft::eraftpb::{Message, MessageType};
use raft::INVALID_ID;

use crate::api::{AlarmAction, AlarmRequest, AlarmType, LeaseKeepAliveResponse, RangeRequest};
use crate::command::{AuthInfo, Command, Op, Response};
use crate::core::mvcc::{Mvcc, MvccView};
use crate::core::reads::RangeJob;
use crate::core::{alarm, membership};
use crate::engine::Engine;
use crate::error::InvalidRequest;
use crate::{Error, Result};

use super::{check_txn_ops, Peer, Pending, ReadBatch, MAX_FORWARDED_READS, MAX_LEASE_TTL, READ_INDEX_RETRY_TICKS};

impl<E: Engine, T> Peer<E, T> {
    pub(super) fn validate(&self, op: &Op) -> Result<()> {
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
        self.propose_as(op, None, token)
    }

    /// Proposes a write on behalf of a client authenticated as `auth` (see
    /// [`Command::auth`]): with auth enabled it is checked as it applies.
    pub fn propose_as(&mut self, op: Op, auth: Option<AuthInfo>, token: T) {
        if let Op::LeaseKeepAlive(k) = &op {
            // The leader renews in place: expiry is clocked by the leader
            // alone, and a new leader gives every lease its full TTL, so a
            // keep-alive needs no log entry (and no fsync) — etcd's rule.
            // A lease whose revoke is already proposed, or one not applied
            // here yet, goes through the log, in order with the revoke. So
            // does every keep-alive until this leader has applied all that
            // is committed, its own term's entry included (etcd 3.5 waits
            // for the applied index likewise): a new leader may still hold
            // a lease an earlier leader's committed revoke removed.
            let caught_up =
                self.raw.raft.commit_to_current_term() && self.applied_index >= self.raw.raft.raft_log.committed;
            if self.is_leader() && caught_up {
                if let Some(ttl) = self.lessor.renew_in_place(k.id, self.now) {
                    let resp = LeaseKeepAliveResponse { id: k.id, ttl, header: None };
                    self.completions.push((token, Ok(Response::LeaseKeepAlive(resp))));
                    return;
                }
            }
        }
        self.propose_keyed(op, auth, None, token);
    }

    /// Proposes `op` again under the request id of an earlier proposal of
    /// this member ([`Peer::last_request_id`]; a boot earlier is fine): a
    /// client retrying a write whose outcome it never learned. The dedup
    /// window applies it at most once however many copies commit; `token`
    /// completes with the result of whichever copy applies, or times out.
    pub fn propose_retry(&mut self, op: Op, request_id: u64, token: T) {
        let keep = !crate::mutation::active("retry-gets-new-id");
        self.propose_keyed(op, None, Some(request_id).filter(|_| keep), token);
    }

    /// The request id of the last proposal this member accepted (the one
    /// [`Peer::propose_retry`] takes).
    pub fn last_request_id(&self) -> Option<u64> {
        self.last_request
    }

    /// Admits a client write (pending limit, quota) and proposes it under
    /// `request_id` (`None`: a fresh one).
    fn propose_keyed(&mut self, op: Op, auth: Option<AuthInfo>, request_id: Option<u64>, token: T) {
        if self.proposals.len() >= self.cfg.max_pending_proposals {
            self.completions.push((token, Err(Error::TooManyRequests)));
            return;
        }
        if let Err(e) = self.check_quota(&op) {
            self.completions.push((token, Err(e)));
            return;
        }
        match self.try_propose_as(op, auth, request_id) {
            Ok(id) => {
                self.last_request = Some(id);
                self.proposals.insert(id, Pending { token, deadline: self.now + self.cfg.request_timeout_ticks });
            }
            Err(e) => self.completions.push((token, Err(e))),
        }
    }

    /// etcd's quota check before a write that takes space: when this
    /// member's database (as of the last tick) plus the request would pass
    /// the quota, the write is refused with `NoSpace` and this member raises
    /// its NOSPACE alarm through the log (once per tick at most), which then
    /// refuses such writes on every member until it is disarmed.
    pub(super) fn check_quota(&mut self, op: &Op) -> Result<()> {
        let quota = self.cfg.quota_backend_bytes;
        if quota == 0 || !alarm::takes_space(op) {
            return Ok(());
        }
        let cost = op.encoded_len() as u64;
        if self.db_size.total.saturating_add(cost) <= quota {
            return Ok(());
        }
        if !self.alarms.has(self.cfg.id, AlarmType::Nospace) && self.nospace_proposed != Some(self.now) {
            self.nospace_proposed = Some(self.now);
            tracing::warn!(
                id = self.cfg.id,
                db_size = self.db_size.total,
                quota,
                "database space exceeded; raising the NOSPACE alarm"
            );
            let raise = AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: self.cfg.id,
                alarm: AlarmType::Nospace as i32,
            };
            self.propose_internal(Op::Alarm(raise));
        }
        Err(Error::NoSpace)
    }

    /// Proposes an operation of the member's own (lease expiry); nobody
    /// waits for it.
    pub(super) fn propose_internal(&mut self, op: Op) {
        if let Err(e) = self.try_propose(op, None) {
            tracing::debug!(id = self.cfg.id, error = %e, "internal proposal failed");
        }
    }

    /// Proposes `op`, returning its request id.
    pub(super) fn try_propose(&mut self, op: Op, auth: Option<AuthInfo>) -> Result<u64> {
        self.try_propose_as(op, auth, None)
    }

    /// Proposes `op` under `request_id` (`None`: a fresh one), returning it.
    fn try_propose_as(&mut self, op: Op, auth: Option<AuthInfo>, request_id: Option<u64>) -> Result<u64> {
        self.validate(&op)?;
        if self.raw.raft.leader_id == INVALID_ID {
            return Err(Error::NoLeader);
        }
        let id = match request_id {
            Some(id) => id,
            None => {
                self.next_request = (self.next_request + 1) & 0xffff_ffff;
                self.request_prefix | self.next_request
            }
        };
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
        let mut cmd = Command::new(self.cfg.id, id, op);
        cmd.auth = auth;
        let data = cmd.encode_to_vec();
        if data.len() > self.cfg.max_request_bytes {
            return Err(InvalidRequest::TooLarge.into());
        }
        // raft-rs reads its log's last term from storage here.
        self.integrity.guard(|| match conf_change {
            Some(cc) => self.raw.propose_conf_change(data, cc),
            None => self.raw.propose(Vec::new(), data),
        })??;
        if self.is_leader() {
            self.by_index.insert(self.raw.raft.raft_log.last_index(), id);
        }
        Ok(id)
    }

    /// Refuses to promote a learner that is far behind the leader (it would
    /// weaken the quorum until it catches up). Only the leader can tell.
    pub(super) fn check_learner_ready(&self, id: u64) -> Result<()> {
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

    /// Reads a range. A serializable request is served at once from local
    /// state; otherwise the read joins the next ReadIndex round and is served
    /// once this member has applied up to the read index (linearizable).
    /// Either way the read itself is a [`RangeJob`] over an engine snapshot
    /// taken then, handed out in the next [`Ready`](crate::core::ready::Ready)
    /// to run off this thread. Call between steps (the applied state is
    /// then all in the engine).
    pub fn read(&mut self, req: RangeRequest, token: T) {
        if let Err(e) = Mvcc::<E>::validate_range(&req) {
            self.completions.push((token, Err(e)));
        } else if req.serializable || self.cfg.unsafe_local_reads || crate::mutation::active("local-linearizable-reads")
        {
            self.range_jobs.push(RangeJob { token, req, view: Arc::new(self.mvcc.view()) });
        } else {
            self.queued_reads.push((Some(req), token));
        }
    }

    /// A linearizable read's barrier, without the read: joins the next
    /// ReadIndex round like [`Peer::read`] and completes with
    /// [`Response::ReadIndex`] (this member's applied index, at or past the
    /// read index) once this member has applied up to the read index. The
    /// caller then reads any view of the applied state at that index or
    /// later, on its own thread: a linearizable point read without a
    /// hand-off to a reader. Fails as a linearizable read would (no leader,
    /// timeout).
    pub fn read_barrier(&mut self, token: T) {
        if self.cfg.unsafe_local_reads || crate::mutation::active("local-linearizable-reads") {
            self.completions.push((token, Ok(Response::ReadIndex(self.applied_index))));
        } else {
            self.queued_reads.push((None, token));
        }
    }

    /// A follower's ReadIndex request reaching this leader (the caller
    /// checked the role): held for the leader's next round of its own and
    /// answered with that round's read index, instead of raft-rs starting a
    /// heartbeat round for each request as it arrives. The round starts
    /// after the request arrived and confirms leadership after it, as
    /// raft-rs's own round would; every member's reads then share one
    /// confirmation round at a time (issue 17: one round per member per
    /// period was ~0.75 raft messages per linearizable read).
    pub(super) fn hold_forwarded_read(&mut self, msg: Message) -> Result<()> {
        if self.queued_forwarded.len() >= MAX_FORWARDED_READS {
            return Err(Error::BadPeerMessage(format!(
                "more than {MAX_FORWARDED_READS} ReadIndex requests wait for a round"
            )));
        }
        self.queued_forwarded.push(msg);
        Ok(())
    }

    /// Whether queued reads may start a ReadIndex round now.
    pub(super) fn reads_flushable(&self) -> bool {
        (!self.queued_reads.is_empty() || !self.queued_forwarded.is_empty())
            && self.inflight_reads.values().all(|b| b.issued + READ_INDEX_RETRY_TICKS <= self.now)
    }

    /// Whether a read batch's read index is applied.
    pub(super) fn reads_servable(&self) -> bool {
        self.ready_reads.front().is_some_and(|(idx, _)| *idx <= self.applied_index)
    }

    pub(super) fn flush_reads(&mut self) {
        if !self.reads_flushable() {
            return;
        }
        // Followers' requests are answered only by the leader that held
        // them; one that is no longer leader drops them (the follower's
        // read times out, as when raft-rs drops a request).
        let mut forwarded = std::mem::take(&mut self.queued_forwarded);
        if !self.is_leader() {
            forwarded.clear();
        }
        if self.queued_reads.is_empty() && forwarded.is_empty() {
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
            forwarded,
            term: self.raw.raft.term,
        };
        self.inflight_reads.insert(ctx, batch);
        let mut context = self.cfg.id.to_be_bytes().to_vec();
        context.extend_from_slice(&ctx.to_be_bytes());
        let _ = self.integrity.guard(|| self.raw.read_index(context));
    }

    /// Moves read batches whose ReadIndex came back to the ready queue, and
    /// answers the followers' requests they carried (into `messages`) with
    /// the read index, as raft-rs's leader answers one: a
    /// `MsgReadIndexResp` holding the request's context, in this term.
    pub(super) fn take_read_states(&mut self, rd: &mut raft::Ready, messages: &mut Vec<Message>) {
        for rs in rd.take_read_states() {
            let ours = rs.request_ctx.get(..8) == Some(&self.cfg.id.to_be_bytes()[..]);
            let ctx = rs.request_ctx.get(8..).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
            if let Some(mut batch) = ctx.filter(|_| ours).and_then(|ctx| self.inflight_reads.remove(&ctx)) {
                let term = self.raw.raft.term;
                if self.is_leader() && batch.term == term {
                    for mut req in batch.forwarded.drain(..) {
                        let mut resp = Message::default();
                        resp.set_msg_type(MessageType::MsgReadIndexResp);
                        resp.to = req.from;
                        resp.from = self.cfg.id;
                        resp.term = term;
                        resp.index = rs.index;
                        resp.set_entries(req.take_entries());
                        messages.push(resp);
                    }
                }
                self.ready_reads.push_back((rs.index, batch));
            }
        }
    }

    /// Hands out the read batches whose read index is applied, every read
    /// over `view` (taken here if `None`: one engine snapshot for the step),
    /// and completes their barriers.
    pub(super) fn serve_reads(&mut self, view: &mut Option<Arc<MvccView<E::Snapshot>>>) {
        while self.ready_reads.front().is_some_and(|(idx, _)| *idx <= self.applied_index) {
            let Some((_, batch)) = self.ready_reads.pop_front() else { break };
            for (req, token) in batch.reads {
                match req {
                    Some(req) => {
                        let view = view.get_or_insert_with(|| Arc::new(self.mvcc.view()));
                        self.range_jobs.push(RangeJob { token, req, view: Arc::clone(view) });
                    }
                    None => self.completions.push((token, Ok(Response::ReadIndex(self.applied_index)))),
                }
            }
        }
    }

    pub(super) fn expire_requests(&mut self) {
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
}
