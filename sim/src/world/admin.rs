//! Membership changes: one [`Change`] at a time, held in [`Admin`] and
//! retried until done (add a learner, promote it, remove a voter).

use raft_kv::{Error, MemberPromoteRequest, MemberRemoveRequest, Response};

use super::{member_config, Member, OpId, World, ADMIN_RECORD};
use crate::checker::ViolationKind;
use crate::config::TICK;
use crate::history::NEVER;

/// Attempts of one membership change before it is abandoned.
const ADMIN_MAX_ATTEMPTS: u32 = 60;

/// Voters a membership change never goes below.
const MIN_VOTERS: usize = 3;

/// Members (voters and learners) beyond the initial ones a run may add.
const EXTRA_MEMBERS: usize = 2;

/// A membership change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// Add a fresh learner with this (new) id.
    AddLearner(u64),
    /// Promote this learner.
    Promote(u64),
    /// Remove this member.
    Remove(u64),
    /// Give this member new peer URLs (the `n`th update of the run).
    UpdateUrls(u64, u64),
}

impl Change {
    /// The member the change concerns.
    fn member(self) -> u64 {
        match self {
            Change::AddLearner(id) | Change::Promote(id) | Change::Remove(id) | Change::UpdateUrls(id, _) => id,
        }
    }
}

/// The peer URLs of the `n`th URL update of member `id`.
fn updated_urls(id: u64, n: u64) -> Vec<String> {
    vec![format!("http://m{id}-{n}.sim:2380")]
}

/// What the clients know of one member's peer URLs: the last update
/// acknowledged, and every update proposed since (each may have applied).
#[derive(Debug, Clone, Default)]
pub(super) struct UrlFacts {
    acked: Option<Vec<String>>,
    pending: Vec<Vec<String>>,
}

/// The one membership change in flight, retried until done.
#[derive(Debug, Default)]
pub(super) struct Admin {
    pub(super) change: Option<Change>,
    pub(super) attempts: u32,
    /// Sequence number of the current attempt (its token's `attempt`).
    pub(super) seq: u32,
    /// The member holding the current attempt.
    pub(super) in_flight: Option<u64>,
    /// Time of the next attempt.
    pub(super) next_at: u64,
    /// Member to propose on next (the leader, as last told).
    pub(super) hint: Option<u64>,
    /// The change removes the member that was leader when it started.
    pub(super) of_leader: bool,
    /// The change removes a member that lost its data directory: a fresh
    /// member joins after it.
    pub(super) rejoin: bool,
}

impl World {
    /// Picks and starts a membership change, unless one is in flight.
    pub(super) fn start_change(&mut self) {
        if self.admin.change.is_some() {
            return;
        }
        let Some(l) = self.leader_index() else { return };
        let Some(peer) = self.members[l].peer.as_ref() else { return };
        let status = peer.status();
        let leader = status.state.id;
        // A removal abandoned with its outcome unknown may have applied
        // since: a fully applied leader's configuration says.
        if status.state.applied_index == status.state.commit_index {
            for id in self.removal_targets.clone() {
                let gone = !status.voters.contains(&id) && !status.learners.contains(&id);
                if let Some(i) = self.index_of(id).filter(|&i| gone && !self.members[i].removed) {
                    self.trace.event(self.now, format_args!("m{id} was removed after all"));
                    self.mark_removed(i);
                }
            }
        }
        // A learner the cluster knows but we never started (its add timed
        // out and was abandoned): start it now.
        for &id in &status.learners {
            if self.index_of(id).is_none() {
                self.add_member(id);
            }
        }
        let change = if let Some(&learner) = status.learners.first() {
            Change::Promote(learner)
        } else if self.rng_fault.chance(0.25) {
            let members: Vec<u64> = status.voters.iter().chain(&status.learners).copied().collect();
            let target = *self.rng_fault.pick(&members).unwrap_or(&leader);
            self.url_updates += 1;
            Change::UpdateUrls(target, self.url_updates)
        } else {
            let started = self.members.iter().filter(|m| !m.removed && !m.retired).count();
            let can_add = started < self.initial_members + EXTRA_MEMBERS;
            let can_remove = status.voters.len() > MIN_VOTERS;
            if can_remove && (!can_add || self.rng_fault.chance(0.7)) {
                let target = if self.rng_fault.chance(0.4) {
                    leader
                } else {
                    *self.rng_fault.pick(&status.voters).unwrap_or(&leader)
                };
                self.removal_targets.push(target);
                Change::Remove(target)
            } else if can_add {
                let id = self.next_member_id;
                self.next_member_id += 1;
                Change::AddLearner(id)
            } else {
                return;
            }
        };
        let removed: Vec<u64> = self.members.iter().filter(|m| m.removed).map(|m| m.id).collect();
        let note = match (change, removed.last()) {
            (Change::AddLearner(_), Some(old)) => format!(" (re-adds removed m{old} under a new id)"),
            _ => String::new(),
        };
        self.trace.event(self.now, format_args!("fault membership {change:?}{note}"));
        self.begin_change(change, Some(leader), false);
    }

    /// Makes `change` the one in flight and makes its first attempt.
    fn begin_change(&mut self, change: Change, leader: Option<u64>, rejoin: bool) {
        self.admin = Admin {
            change: Some(change),
            seq: self.admin.seq,
            hint: leader,
            next_at: NEVER,
            of_leader: leader.is_some_and(|l| change == Change::Remove(l)),
            rejoin,
            ..Admin::default()
        };
        self.admin_attempt();
    }

    /// [`crate::config::FaultKind::DirLoss`]: a follower (no membership
    /// change in flight) stops and its directory is wiped; it is never
    /// restarted under its id but removed, and a fresh member is added once
    /// the removal is done.
    pub(super) fn lose_dir(&mut self) {
        if self.admin.change.is_some() {
            return;
        }
        let Some(l) = self.leader_index() else { return };
        let Some(status) = self.members[l].peer.as_ref().map(|p| p.status()) else { return };
        let leader = status.state.id;
        // Only with at least three voters, every one up: the cluster keeps
        // a quorum without the lost one. (With three voters this once
        // stalled for good, found here: a removal went through a joint
        // configuration that still counted the removed member; raft-kv now
        // changes membership one member at a time, as etcd does.)
        let all_up = status.voters.iter().all(|&v| self.index_of(v).is_some_and(|i| self.members[i].peer.is_some()));
        if status.voters.len() < MIN_VOTERS || !all_up {
            return;
        }
        let candidates: Vec<u64> = status.voters.iter().copied().filter(|&v| v != leader).collect();
        let Some(&id) = self.rng_fault.pick(&candidates) else { return };
        let Some(i) = self.index_of(id) else { return };
        self.crash(i);
        let m = &mut self.members[i];
        m.retired = true;
        m.restart_at = NEVER;
        m.engine = raft_kv::MemEngine::new();
        self.stats.dir_losses += 1;
        self.removal_targets.push(id);
        self.trace.event(self.now, format_args!("fault m{id} loses its data directory; it is removed to rejoin"));
        self.begin_change(Change::Remove(id), Some(leader), true);
    }

    /// True when `change` shows in `members` (an applied view: never ahead
    /// of the truth).
    fn change_applied(change: Change, members: &[raft_kv::Member]) -> bool {
        let find = |id: u64| members.iter().find(|m| m.id == id);
        match change {
            Change::AddLearner(id) => find(id).is_some(),
            Change::Promote(id) => find(id).is_some_and(|m| !m.is_learner),
            Change::Remove(id) => find(id).is_none(),
            Change::UpdateUrls(id, n) => find(id).is_some_and(|m| m.peer_ur_ls == updated_urls(id, n)),
        }
    }

    pub(super) fn admin_attempt(&mut self) {
        let Some(change) = self.admin.change else { return };
        self.admin.attempts += 1;
        self.admin.in_flight = None;
        if self.admin.attempts > ADMIN_MAX_ATTEMPTS {
            self.trace.event(self.now, format_args!("membership {change:?} abandoned"));
            self.admin_done(None);
            return;
        }
        if let Some(l) = self.leader_index() {
            let applied = self.members[l].peer.as_ref().is_some_and(|p| Self::change_applied(change, &p.members()));
            if applied {
                self.admin_done(Some(change));
                return;
            }
        }
        let target = match self.admin.hint.and_then(|h| self.index_of(h)) {
            Some(i) if self.members[i].peer.is_some() && !self.members[i].retired => Some(i),
            _ => self.leader_index(),
        };
        let Some(i) = target else {
            self.admin_backoff(None);
            return;
        };
        self.admin.seq += 1;
        let token = OpId { record: ADMIN_RECORD, attempt: self.admin.seq };
        let op = match change {
            Change::AddLearner(id) => raft_kv::Op::MemberAdd(raft_kv::Member {
                id,
                name: format!("m{id}"),
                is_learner: true,
                ..Default::default()
            }),
            Change::Promote(id) => raft_kv::Op::MemberPromote(MemberPromoteRequest { id }),
            Change::Remove(id) => raft_kv::Op::MemberRemove(MemberRemoveRequest { id }),
            Change::UpdateUrls(id, n) => {
                let urls = updated_urls(id, n);
                self.peer_urls.entry(id).or_default().pending.push(urls.clone());
                raft_kv::Op::MemberUpdate(raft_kv::MemberUpdate::peer_urls(id, urls))
            }
        };
        self.admin.in_flight = Some(self.members[i].id);
        if let Some(peer) = self.members[i].peer.as_mut() {
            peer.propose(op, token);
        }
    }

    fn admin_backoff(&mut self, hint: Option<u64>) {
        self.admin.in_flight = None;
        self.admin.hint = hint;
        self.admin.next_at = self.now + 1 + self.rng_fault.below(3 * TICK);
    }

    pub(super) fn admin_completion(&mut self, token: OpId, result: raft_kv::Result<Response>) {
        let Some(change) = self.admin.change else { return };
        if token.attempt != self.admin.seq || self.admin.in_flight.is_none() {
            return;
        }
        let id = change.member();
        match result {
            Ok(Response::Members(_)) => self.admin_done(Some(change)),
            Ok(other) => {
                self.violate(ViolationKind::BadResponse, format!("membership {change:?} answered {other:?}"));
                self.admin_done(None);
            }
            Err(Error::NotLeader { leader }) => self.admin_backoff(Some(leader)),
            Err(Error::NoLeader) => self.admin_backoff(None),
            // The outcome of an earlier attempt shows up as these refusals;
            // the next attempt checks the leader's members first.
            Err(Error::MemberExists | Error::MemberNotFound | Error::MemberNotLearner | Error::Invalid(_)) => {
                self.trace.event(self.now, format_args!("membership {change:?} refused: m{id} already changed?"));
                self.admin_backoff(None);
            }
            Err(_) => {
                let hint = self.admin.hint;
                self.admin_backoff(hint);
            }
        }
    }

    fn admin_done(&mut self, change: Option<Change>) {
        self.admin.change = None;
        self.admin.in_flight = None;
        self.admin.next_at = NEVER;
        let Some(change) = change else { return };
        self.trace.event(self.now, format_args!("membership {change:?} done"));
        match change {
            Change::AddLearner(id) => {
                self.stats.learners_added += 1;
                self.add_member(id);
            }
            Change::Promote(_) => self.stats.promotions += 1,
            Change::UpdateUrls(id, n) => {
                self.stats.member_updates += 1;
                let facts = self.peer_urls.entry(id).or_default();
                facts.acked = Some(updated_urls(id, n));
                facts.pending.clear();
            }
            Change::Remove(id) => {
                self.stats.removals += 1;
                self.stats.leader_removals += u64::from(self.admin.of_leader);
                if let Some(i) = self.index_of(id) {
                    self.mark_removed(i);
                }
                if self.admin.rejoin {
                    let new = self.next_member_id;
                    self.next_member_id += 1;
                    self.trace.event(self.now, format_args!("m{id}'s machine rejoins as m{new}"));
                    self.begin_change(Change::AddLearner(new), None, false);
                }
            }
        }
    }

    /// Leaves member `i` out of the checks from now on and stops it a
    /// little later.
    fn mark_removed(&mut self, i: usize) {
        let m = &mut self.members[i];
        m.removed = true;
        m.retire_at = self.now + TICK * (10 + self.rng_fault.below(40));
    }

    /// Starts a fresh member `id` (empty engine, no initial peers: it
    /// catches up by snapshot).
    fn add_member(&mut self, id: u64) {
        if self.index_of(id).is_some() {
            return;
        }
        let cfg = member_config(&self.cfg, id, Vec::new());
        self.members.push(Member::new(id, cfg, NEVER));
        let i = self.members.len() - 1;
        self.trace.event(self.now, format_args!("m{id} starts as a learner"));
        self.start_member(i);
    }
}

impl World {
    /// Members whose peer URLs (on member `i`) are neither the last update
    /// acknowledged nor one proposed since.
    pub(super) fn peer_url_differences(&self, i: usize) -> Vec<String> {
        let mut out = Vec::new();
        let Some(peer) = &self.members[i].peer else { return out };
        for record in peer.members() {
            let Some(facts) = self.peer_urls.get(&record.id) else { continue };
            let Some(acked) = &facts.acked else { continue };
            if record.peer_ur_ls != *acked && !facts.pending.contains(&record.peer_ur_ls) {
                out.push(format!(
                    "m{}: m{} has peer URLs {:?}, but {acked:?} was acknowledged (and {:?} proposed since)",
                    self.members[i].id, record.id, record.peer_ur_ls, facts.pending
                ));
            }
        }
        out
    }
}
