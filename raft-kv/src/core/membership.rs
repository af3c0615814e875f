//! Cluster membership: who the members are, beside raft's own view.
//!
//! Raft knows member ids and roles (its conf state); [`Members`] adds what
//! people and transports need — names and URLs — and keeps it in the state
//! machine ([`Cf::Meta`], `member/<id>`), changed only by applied entries so
//! every member agrees. Adding, removing and promoting travel as raft
//! `ConfChangeV2` entries whose context is the [`Command`] describing the
//! member; URL updates are ordinary entries.
//!
//! [`Command`]: crate::command::Command

use std::collections::{BTreeMap, BTreeSet};

use prost::Message as _;
use raft::eraftpb::{ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2};

use crate::api::Member;
use crate::command::MemberUpdate;
use crate::command::Op;
use crate::engine::{Cf, ReadView, WriteBatch};
use crate::{keys, Error, Result};

/// The members of the cluster as of the applied index.
#[derive(Debug, Clone, Default)]
pub struct Members {
    members: BTreeMap<u64, Member>,
    /// Ids removed from the cluster (never reused: an id is a hash of the
    /// token and peer URLs, or picked fresh).
    removed: BTreeSet<u64>,
}

impl Members {
    /// Loads the member records stored in `view`.
    pub fn load(view: &impl ReadView) -> Result<Self> {
        let mut members = BTreeMap::new();
        let end = crate::engine::prefix_end(keys::MEMBER_PREFIX);
        view.try_scan(Cf::Meta, keys::MEMBER_PREFIX, end.as_deref(), &mut |_, v| {
            let m = Member::decode(v)?;
            members.insert(m.id, m);
            Ok(true)
        })?;
        let mut removed = BTreeSet::new();
        let end = crate::engine::prefix_end(keys::REMOVED_PREFIX);
        view.try_scan(Cf::Meta, keys::REMOVED_PREFIX, end.as_deref(), &mut |k, _| {
            let id = k.get(keys::REMOVED_PREFIX.len()..).and_then(|b| <[u8; 8]>::try_from(b).ok());
            let id = id.ok_or_else(|| Error::Corruption(format!("removed member record {k:02x?}")))?;
            removed.insert(u64::from_be_bytes(id));
            Ok(true)
        })?;
        Ok(Members { members, removed })
    }

    /// True if member `id` was removed from the cluster.
    pub fn is_removed(&self, id: u64) -> bool {
        self.removed.contains(&id)
    }

    /// Stages a member record.
    pub fn stage_put(&mut self, m: Member, wb: &mut WriteBatch) {
        wb.put(Cf::Meta, keys::member_key(m.id), m.encode_to_vec());
        self.members.insert(m.id, m);
    }

    /// Every member, by id.
    pub fn list(&self) -> Vec<Member> {
        self.members.values().cloned().collect()
    }

    /// Every removed member's id, in order.
    pub fn removed(&self) -> Vec<u64> {
        self.removed.iter().copied().collect()
    }

    /// Member `id`, if present.
    pub fn get(&self, id: u64) -> Option<&Member> {
        self.members.get(&id)
    }

    /// Checks a membership operation against the current members before it
    /// is proposed.
    pub fn check(&self, op: &Op) -> Result<()> {
        match op {
            Op::MemberAdd(m) => {
                // A library cluster on an in-process transport needs no URLs;
                // those given must be distinct.
                if !m.peer_ur_ls.is_empty() {
                    check_peer_urls(&m.peer_ur_ls)?;
                }
                let dup_url = m.peer_ur_ls.iter().any(|u| self.members.values().any(|o| o.peer_ur_ls.contains(u)));
                if self.members.contains_key(&m.id) || dup_url {
                    return Err(Error::MemberExists);
                }
                Ok(())
            }
            Op::MemberRemove(r) => self.get(r.id).map(|_| ()).ok_or(Error::MemberNotFound),
            Op::MemberPromote(r) => match self.get(r.id) {
                None => Err(Error::MemberNotFound),
                Some(m) if !m.is_learner => Err(Error::MemberNotLearner),
                Some(_) => Ok(()),
            },
            Op::MemberUpdate(u) => {
                self.get(u.id).ok_or(Error::MemberNotFound)?;
                // Peer URLs another member already uses (etcd: "Peer URLs
                // already exists").
                let taken = |url: &String| self.members.values().any(|o| o.id != u.id && o.peer_ur_ls.contains(url));
                if !u.publish {
                    check_peer_urls(&u.peer_urls)?;
                }
                if !u.publish && u.peer_urls.iter().any(taken) {
                    return Err(Error::MemberExists);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Stages the effect of an applied membership operation; returns the
    /// member it concerned.
    pub fn apply(&mut self, op: &Op, wb: &mut WriteBatch) -> Result<Option<Member>> {
        match op {
            Op::MemberAdd(m) => {
                self.stage_put(m.clone(), wb);
                Ok(Some(m.clone()))
            }
            Op::MemberRemove(r) if crate::mutation::active("removal-keeps-record") => {
                wb.put(Cf::Meta, keys::removed_key(r.id), Vec::new());
                self.removed.insert(r.id);
                Ok(self.members.get(&r.id).cloned())
            }
            Op::MemberRemove(r) => {
                wb.delete(Cf::Meta, keys::member_key(r.id));
                wb.put(Cf::Meta, keys::removed_key(r.id), Vec::new());
                self.removed.insert(r.id);
                Ok(self.members.remove(&r.id))
            }
            Op::MemberPromote(r) => {
                let mut m = self.get(r.id).cloned().unwrap_or(Member { id: r.id, ..Default::default() });
                m.is_learner = false;
                self.stage_put(m.clone(), wb);
                Ok(Some(m))
            }
            Op::MemberUpdate(u) => {
                let mut m = self.get(u.id).cloned().ok_or(Error::MemberNotFound)?;
                if !crate::mutation::active("member-update-ignored") {
                    update(&mut m, u);
                }
                self.stage_put(m.clone(), wb);
                Ok(Some(m))
            }
            _ => Ok(None),
        }
    }
}

/// A member's peer URLs: at least one, none twice.
fn check_peer_urls(urls: &[String]) -> Result<()> {
    if urls.is_empty() || urls.iter().any(|u| u.trim().is_empty()) {
        return Err(crate::error::InvalidRequest::NoPeerUrls.into());
    }
    let mut seen = std::collections::BTreeSet::new();
    if !urls.iter().all(|u| seen.insert(u.trim_end_matches('/'))) {
        return Err(Error::invalid("duplicate peer URLs"));
    }
    Ok(())
}

fn update(m: &mut Member, u: &MemberUpdate) {
    if u.publish {
        m.name = u.name.clone();
        m.client_ur_ls = u.client_urls.clone();
    } else {
        m.peer_ur_ls = u.peer_urls.clone();
    }
}

/// The raft conf change that carries a membership operation.
pub fn conf_change(op: &Op) -> Option<ConfChangeV2> {
    let (change_type, node_id) = match op {
        Op::MemberAdd(m) if m.is_learner => (ConfChangeType::AddLearnerNode, m.id),
        Op::MemberAdd(m) => (ConfChangeType::AddNode, m.id),
        Op::MemberRemove(r) => (ConfChangeType::RemoveNode, r.id),
        Op::MemberPromote(r) => (ConfChangeType::AddNode, r.id),
        _ => return None,
    };
    let change = ConfChangeSingle { change_type, node_id, ..Default::default() };
    // One change at a time, without a joint configuration, as etcd 3.5
    // does (a single change with the automatic transition is raft's simple
    // protocol). Through a joint configuration a removed member would still
    // count in the outgoing majority until the leave-joint entry commits,
    // while its removal is already applied: its messages are dropped and it
    // may be shut down, so one more failure in that window stalls the
    // cluster for good (found by the simulator: data-directory loss on a
    // three-voter cluster, `--long`).
    let mut cc = ConfChangeV2 { changes: vec![change].into(), ..Default::default() };
    cc.set_transition(ConfChangeTransition::Auto);
    Some(cc)
}
