//! Committed entries into the state machine: commands (deduplicated, leases
//! checked), conf changes with their member records, and the completions of
//! this member's own proposals.

use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType};
use raft::INVALID_ID;
use raft_proto::ConfChangeI;

use crate::api::MembersResponse;
use crate::api::{
    DeleteRangeRequest, LeaseGrantResponse, LeaseKeepAliveResponse, LeaseRevokeResponse, RequestOp, TxnRequest,
};
use crate::command::{AuthInfo, Command, Op, Response};
use crate::core::lease::Lessor;
use crate::engine::{Cf, Engine, WriteBatch};
use crate::{keys, Error, Result};

use super::Peer;

impl<E: Engine, T> Peer<E, T> {
    /// Applies committed entries: one unsynced batch with the state-machine
    /// changes, the new applied index and `extra`.
    pub(super) fn apply(&mut self, entries: Vec<Entry>) -> Result<()> {
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
                EntryType::EntryNormal => self.apply_normal(&entry, &mut extra)?,
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

    /// Fails only when this member's own store failed it (see below).
    pub(super) fn apply_normal(&mut self, entry: &Entry, extra: &mut WriteBatch) -> Result<()> {
        // A proposal this member appended at this index as leader but that a
        // later leader replaced was never committed: fail it.
        let overwritten = self.by_index.remove(&entry.index);
        if entry.data.is_empty() {
            self.fail_overwritten(overwritten, None);
            return Ok(());
        }
        let cmd = match Command::decode(&entry.data) {
            Ok(cmd) => cmd,
            Err(e) => {
                // Every member sees the same bytes and skips them alike.
                tracing::error!(index = entry.index, error = %e, "skipping undecodable log entry");
                self.fail_overwritten(overwritten, None);
                return Ok(());
            }
        };
        // Only this member's own requests complete its callers.
        let mine = (cmd.member == self.cfg.id).then_some(cmd.id);
        self.fail_overwritten(overwritten, mine);
        if !self.applied_ids.record(cmd.request(), entry.index, extra) {
            tracing::debug!(id = self.cfg.id, request = cmd.id, "skipping a duplicated command");
            return Ok(());
        }
        let result = match &cmd.op {
            Some(op) => self.check_auth(cmd.auth.as_ref(), op).and_then(|()| self.apply_op(op, extra)),
            None => Err(Error::invalid("empty command")),
        };
        // A read of this member's own store that failed (wrong bytes, a
        // disk error) is no answer of the command: the other members
        // applied it. The member stops rather than diverge.
        if let Err(e @ (Error::Corruption(_) | Error::Storage(_))) = result {
            return Err(e);
        }
        if let Some(p) = mine.and_then(|id| self.proposals.remove(&id)) {
            self.completions.push((p.token, result));
        }
        Ok(())
    }

    /// Applies one operation; its events feed the lessor at once (a later
    /// entry of the same batch may revoke a lease the key was just put with).
    pub(super) fn apply_op(&mut self, op: &Op, extra: &mut WriteBatch) -> Result<Response> {
        // Active alarms refuse at apply time, so every member refuses the
        // same entries (etcd's capped and corrupt appliers).
        self.alarms.refuse(op)?;
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
            Op::Auth(a) => match &a.change {
                Some(change) => self.auth.apply(change, extra).map(Response::Auth),
                None => Err(Error::invalid("empty auth change")),
            },
            Op::MemberAdd(_) | Op::MemberRemove(_) | Op::MemberPromote(_) => {
                Err(Error::invalid("membership change outside a conf change entry"))
            }
            Op::Alarm(a) => Ok(Response::Alarm(self.alarms.apply(a, extra))),
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

    /// Checks a client's command against the auth state it applies under
    /// (commands without [`AuthInfo`] come from trusted callers).
    pub(super) fn check_auth(&self, info: Option<&AuthInfo>, op: &Op) -> Result<()> {
        let Some(info) = info else { return Ok(()) };
        let lessor = &self.lessor;
        self.auth.state().check_op(info, op, &|id| lessor.keys(id).unwrap_or_default())
    }

    /// Deletes a lease's keys (at one revision) and the lease — unless the
    /// revoke was for an expiry and a keep-alive applied since.
    pub(super) fn revoke(&mut self, r: &crate::command::LeaseRevoke, extra: &mut WriteBatch) -> Result<Response> {
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
    pub(super) fn check_leases(&self, op: &Op) -> Result<()> {
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
    pub(super) fn skip_undecodable(&mut self, entry: &Entry, e: &dyn std::fmt::Display) {
        tracing::error!(index = entry.index, error = %e, "skipping undecodable log entry");
        let overwritten = self.by_index.remove(&entry.index);
        self.fail_overwritten(overwritten, None);
    }

    pub(super) fn fail_overwritten(&mut self, expected: Option<u64>, applied: Option<u64>) {
        if let Some(id) = expected.filter(|id| Some(*id) != applied) {
            if let Some(p) = self.proposals.remove(&id) {
                self.completions.push((p.token, Err(Error::ProposalDropped)));
            }
        }
    }

    pub(super) fn apply_conf_change(&mut self, entry: &Entry, cc: ConfChangeV2, extra: &mut WriteBatch) -> Result<()> {
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
    pub(super) fn after_conf_change(&mut self) {
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
}
