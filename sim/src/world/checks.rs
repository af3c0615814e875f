//! End-of-run checks: lease checks, convergence, the final reads and
//! lost-write check, and the status summary of a stuck run.

use std::collections::BTreeMap;

use raft_kv::{RangeRequest, Role};

use super::clients::ClientState;
use super::watch_driver::WatchOwner;
use super::{member_config, RunReport, World};
use crate::checker::{check_history, ViolationKind};
use crate::config::TICK;
use crate::history::{key_bytes, parse_key, parse_value, Key, KvObs, Observed, Op, Outcome, Record, NEVER};
use crate::leases::{check_leases, check_probes, Clocks, LeaseFacts, Probe, Removal};

impl World {
    /// The lease checks (see [`crate::leases`]): leased keys' deletions as
    /// every member's observer saw them, against the clients' grants,
    /// keep-alives and revokes.
    fn check_leases(&mut self) {
        let tick_ms = self.tick_ms();
        let ttl_ticks = |ttl: i64| (ttl.max(0) as u64 * 1000).div_ceil(tick_ms);
        let mut facts = LeaseFacts::default();
        for rec in &self.history {
            match (&rec.op, &rec.outcome) {
                (Op::LeaseGrant { .. }, Outcome::Ok(Observed::LeaseGranted { id, ttl })) => {
                    facts.grant(*id, rec.invoke, ttl_ticks(*ttl))
                }
                (Op::LeaseKeepAlive { lease }, Outcome::Ok(_)) => facts.keep_alive(*lease, rec.invoke),
                (Op::LeaseRevoke { lease }, Outcome::Ok(_) | Outcome::Unknown) => facts.revoke(*lease, rec.invoke),
                _ => {}
            }
        }
        let mut removals = Vec::new();
        for slot in self.watches.iter().filter(|s| s.owner == WatchOwner::Observer) {
            let mut attached: BTreeMap<&[u8], (i64, i64)> = BTreeMap::new();
            for ((revision, events), at) in slot.log.received.iter().zip(&slot.log.received_at) {
                for ev in events {
                    let Some(kv) = ev.kv.as_ref().filter(|kv| kv.key.starts_with(b"l")) else { continue };
                    if !ev.is_delete() {
                        attached.insert(&kv.key, (kv.lease, *revision));
                    } else if let Some((lease, put_revision)) = attached.remove(&kv.key[..]) {
                        removals.push(Removal {
                            member: slot.member,
                            lease,
                            key: kv.key.to_vec(),
                            put_revision,
                            revision: *revision,
                            at: *at,
                        });
                    }
                }
            }
        }
        let mut gone: Vec<i64> = removals.iter().map(|r| r.lease).collect();
        gone.dedup();
        gone.sort_unstable();
        gone.dedup();
        for lease in gone {
            if facts.revokes.contains_key(&lease) {
                self.stats.lease_revokes += 1;
            } else {
                self.stats.lease_expiries += 1;
            }
        }
        let clocks: Clocks = self.members.iter().map(|m| (m.id, m.clock.clone())).collect();
        let mut found = check_leases(&facts, &removals, &clocks, self.cfg.strict_keep_alive);
        found.extend(check_probes(&facts, &self.lease_probes, &clocks, self.tick_ms()));
        for detail in found {
            self.violate(ViolationKind::Lease, detail);
        }
    }

    /// Milliseconds of one member tick.
    fn tick_ms(&self) -> u64 {
        member_config(&self.cfg, 1, Vec::new()).tick_interval.as_millis().max(1) as u64
    }

    /// Asks member `i` for lease `lease`'s time to live, with its keys, and
    /// records the answer and the keys the member stores under the lease
    /// (for [`check_probes`]). Returns the remaining TTL (-1: none there).
    pub(super) fn probe_lease(&mut self, i: usize, lease: i64) -> i64 {
        let m = &self.members[i];
        let Some(p) = &m.peer else { return -1 };
        let r = p.lease_time_to_live(lease, true);
        // A failed read of the store is judged where the member serves it.
        let Ok(stored) = p.mvcc().range(&RangeRequest::prefix("l")) else { return r.ttl };
        let mut keys: Vec<Vec<u8>> = r.keys.iter().map(|k| k.to_vec()).collect();
        keys.sort();
        let stored_keys = stored.kvs.iter().filter(|kv| kv.lease == lease).map(|kv| kv.key.to_vec()).collect();
        self.lease_probes.push(Probe {
            member: m.id,
            lease,
            at: self.now,
            ttl: r.ttl,
            granted_ttl: r.granted_ttl,
            keys,
            stored_keys,
        });
        r.ttl
    }

    /// Leases expire, unrenewed, once a leader is stable: after convergence
    /// the run goes on idle until the leader has counted the longest TTL,
    /// an election timeout and slack on its own clock since then; then no
    /// current member may still hold any lease.
    fn check_leases_expire(&mut self, current: &[usize]) {
        let tick_ms = self.tick_ms();
        let mut leases: BTreeMap<i64, u64> = BTreeMap::new();
        for rec in &self.history {
            if let (Op::LeaseGrant { .. }, Outcome::Ok(Observed::LeaseGranted { id, ttl })) = (&rec.op, &rec.outcome) {
                leases.insert(*id, ((*ttl).max(0) as u64 * 1000).div_ceil(tick_ms));
            }
        }
        let Some(&longest) = leases.values().max() else { return };
        let election = member_config(&self.cfg, 1, Vec::new()).election_ticks as u64;
        let need = longest + election + 5;
        let converged = self.now;
        // No more convergence checks; bounded: a leader that keeps changing
        // is a verdict, not a hang.
        self.next_check = NEVER;
        let limit = converged + 4 * need * TICK;
        let mut counted = 0;
        while !self.stopped {
            if let Some(l) = self.leader_index() {
                let m = &self.members[l];
                let since = m.clock.leading.last().map_or(converged, |s| s.0.max(converged));
                counted = m.clock.ticks_between(since, self.now);
                if counted >= need {
                    break;
                }
            }
            let next = self.next_event().max(self.now + 1);
            if self.now >= limit || next == NEVER {
                self.violate(
                    ViolationKind::Lease,
                    format!("no leader counted {need} ticks in {} units after convergence", self.now - converged),
                );
                return;
            }
            self.now = next;
            self.step();
        }
        let mut held = Vec::new();
        for &i in current {
            for &lease in leases.keys() {
                let left = self.probe_lease(i, lease);
                if left != -1 {
                    held.push(format!("m{} holds lease {lease} ({left} s left)", self.members[i].id));
                }
            }
        }
        if !held.is_empty() {
            held.truncate(5);
            self.violate(
                ViolationKind::Lease,
                format!(
                    "leases not expired {counted} leader ticks after convergence (longest TTL {longest} ticks): {}",
                    held.join(", ")
                ),
            );
        }
    }

    pub(super) fn status_summary(&self) -> String {
        let mut out = String::new();
        for m in &self.members {
            match &m.peer {
                Some(p) => {
                    let s = p.status();
                    out.push_str(&format!(
                        "  m{}{} {:?} term {} leader {} commit {} applied {} last {} first {} revision {} voters {:?} learners {:?}\n",
                        m.id,
                        if m.removed { " (removed)" } else { "" },
                        s.state.role,
                        s.state.term,
                        s.state.leader,
                        s.state.commit_index,
                        s.state.applied_index,
                        s.last_index,
                        s.first_index,
                        s.state.revision,
                        s.voters,
                        s.learners
                    ));
                }
                None if m.retired => out.push_str(&format!("  m{} retired\n", m.id)),
                None => out.push_str(&format!("  m{} down\n", m.id)),
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            if c.state != ClientState::Idle {
                out.push_str(&format!("  c{i} {:?}\n", c.state));
            }
        }
        out
    }

    /// True when the run may end: every client idle, every member up and
    /// applied to the leader's last index. Records a violation (and ends
    /// the run) if such members disagree on revision or hash.
    pub(super) fn check_converged(&mut self) -> bool {
        if self.clients.iter().any(|c| c.state != ClientState::Idle) || self.admin.change.is_some() {
            return false;
        }
        // The current members: the leader's configuration. Removed members
        // may lag forever and are left out.
        let Some(l) = self.leader_index() else { return false };
        let Some(conf) = self.members[l].peer.as_ref().map(|p| p.status()) else { return false };
        let current: Vec<usize> = (0..self.members.len())
            .filter(|&i| {
                let m = &self.members[i];
                !m.removed && !m.retired && (conf.voters.contains(&m.id) || conf.learners.contains(&m.id))
            })
            .collect();
        let mut statuses = Vec::new();
        for &i in &current {
            let Some(p) = &self.members[i].peer else { return false };
            statuses.push(p.status());
        }
        let leaders: Vec<_> = statuses.iter().filter(|s| s.state.role == Role::Leader).collect();
        let [leader] = leaders.as_slice() else { return false };
        let (last, term) = (leader.last_index, leader.state.term);
        if !statuses
            .iter()
            .all(|s| s.state.applied_index == last && s.state.commit_index == last && s.state.term == term)
        {
            return false;
        }
        let mut digests = Vec::new();
        for &i in &current {
            let m = &self.members[i];
            let Some(p) = &m.peer else { return false };
            let mvcc = p.mvcc();
            match mvcc.hash(0) {
                Ok(h) => digests.push((m.id, mvcc.revision(), mvcc.compact_revision(), h)),
                Err(e) => {
                    self.violate(ViolationKind::CoreError, format!("m{} hash: {e}", m.id));
                    return true;
                }
            }
        }
        let first = digests[0];
        if digests.iter().any(|d| (d.1, d.3) != (first.1, first.3)) {
            self.violate(
                ViolationKind::Convergence,
                format!("members applied index {last} but differ (id, revision, compact revision, hash): {digests:?}"),
            );
        }
        for detail in self.replicated_state_differences(&current) {
            self.violate(ViolationKind::Convergence, detail);
        }
        self.trace.event(self.now, format_args!("converged at index {last}: {digests:?}"));
        self.converged = current;
        true
    }

    /// Every check runs on every seed, whatever failed before: a verdict
    /// hidden behind an earlier one is a verdict lost. Only the checks that
    /// need converged members wait for convergence; the watch checks judge
    /// what was delivered either way, against the converged members'
    /// history or, on a run that did not converge, every running member's.
    pub(super) fn finish(mut self) -> RunReport {
        let current = std::mem::take(&mut self.converged);
        if !current.is_empty() {
            self.final_checks(&current);
            self.check_watches(&current, true);
            self.check_leases_expire(&current);
        } else {
            let running: Vec<usize> = (0..self.members.len()).filter(|&i| self.members[i].peer.is_some()).collect();
            self.check_watches(&running, false);
        }
        self.check_leases();
        let found = check_history(&self.history);
        for v in found {
            self.violate(v.kind, v.detail);
        }
        RunReport {
            seed: self.seed,
            members: self.initial_members,
            trace_hash: self.trace.hash(),
            sim_time: self.now,
            stats: self.stats,
            violations: self.violations,
            history: self.history,
        }
    }

    /// Final reads (added to the history) and the lost-write check.
    fn final_checks(&mut self, current: &[usize]) {
        let keys: Vec<Key> = (0..self.cfg.keys.max(1)).collect();
        let mut finals = Vec::new();
        let mut problems = Vec::new();
        for m in current.iter().map(|&i| &self.members[i]) {
            let Some(p) = &m.peer else { continue };
            let mvcc = p.mvcc();
            match mvcc.range(&RangeRequest::prefix("k")) {
                Ok(r) => finals.push((m.id, r)),
                Err(e) => problems.push((ViolationKind::CoreError, format!("m{} final range: {e}", m.id))),
            }
            // No acknowledged write lost: each is in the member's history at
            // its revision (unless compacted away).
            let compact = mvcc.compact_revision();
            for rec in &self.history {
                let (key, value, revision) = match (&rec.op, &rec.outcome) {
                    (Op::Put { key, value }, Outcome::Ok(Observed::Put { revision })) => (*key, *value, *revision),
                    (Op::Cas { key, value, .. }, Outcome::Ok(Observed::Cas { revision, succeeded: true, .. })) => {
                        (*key, *value, *revision)
                    }
                    _ => continue,
                };
                if revision < compact {
                    continue;
                }
                let got = mvcc.range(&RangeRequest::key(key_bytes(key)).at_revision(revision));
                let ok = matches!(&got, Ok(r) if r.kvs.len() == 1
                    && parse_value(&r.kvs[0].value) == Some(value)
                    && r.kvs[0].mod_revision == revision);
                if !ok {
                    problems.push((
                        ViolationKind::LostWrite,
                        format!("m{}: acknowledged write missing at revision {revision}: {rec}; read {got:?}", m.id),
                    ));
                }
            }
        }
        for (kind, detail) in problems.into_iter().take(5) {
            self.violate(kind, detail);
        }
        let Some((_, resp)) = finals.first() else { return };
        let mut kvs = BTreeMap::new();
        for kv in &resp.kvs {
            match (parse_key(&kv.key), parse_value(&kv.value)) {
                (Some(k), Some(value)) => {
                    kvs.insert(
                        k,
                        KvObs {
                            value,
                            version: kv.version,
                            mod_revision: kv.mod_revision,
                            create_revision: kv.create_revision,
                        },
                    );
                }
                _ => self.violate(ViolationKind::BadResponse, format!("final state holds unknown {kv:?}")),
            }
        }
        self.history.push(Record {
            client: usize::MAX,
            op: Op::Read { keys, linearizable: true },
            invoke: self.now,
            complete: self.now,
            outcome: Outcome::Ok(Observed::Read { revision: resp.revision(), kvs }),
            member: finals[0].0,
            incarnation: 0,
            attempts: 1,
        });
    }
}
