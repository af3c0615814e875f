//! The convergence check of everything replicated beyond the KV hash: the
//! state-machine column families byte for byte (applied index, conf state,
//! member records, removed ids, the dedup window, leases — and auth state
//! once it exists, in `Meta` or a family of its own in
//! `Cf::STATE_MACHINE`), the member list against the conf state, and every
//! lease's time to live on every member against the leader's.

use std::collections::BTreeSet;

use raft_kv::engine::{Cf, ReadView};

use super::World;
use crate::history::{Op, Outcome};

/// The state-machine families compared byte for byte: all of
/// [`Cf::STATE_MACHINE`] (what a snapshot carries, so a family added for
/// auth state joins it) but the MVCC key space, whose physical compaction
/// runs at each member's own pace and which is compared by hash.
fn compared() -> impl Iterator<Item = Cf> {
    Cf::STATE_MACHINE.into_iter().filter(|cf| *cf != Cf::Kv)
}

/// `Meta`'s key of the conf state (raft protobuf).
const CONF_STATE: &[u8] = b"conf_state";
/// `Meta`'s prefix of the dedup window's records (`req/` ‖ index); `req0`
/// is the first key after them.
const APPLIED_REQUEST_PREFIX: &[u8] = b"req/";

/// A family's contents as one list of pairs. The conf state is re-encoded
/// with its id lists sorted: raft-rs builds them from hash sets, so equal
/// configurations may list ids in different orders.
fn contents(view: &impl ReadView, cf: Cf) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let _ = view.scan(cf, b"", None, &mut |k, v| {
        let v = match (cf, k) {
            (Cf::Meta, CONF_STATE) => normalized_conf_state(v).unwrap_or_else(|| v.to_vec()),
            _ => v.to_vec(),
        };
        out.push((k.to_vec(), v));
        true
    });
    out
}

fn normalized_conf_state(bytes: &[u8]) -> Option<Vec<u8>> {
    use protobuf::Message;
    let mut cs = raft::eraftpb::ConfState::parse_from_bytes(bytes).ok()?;
    cs.voters.sort_unstable();
    cs.learners.sort_unstable();
    cs.voters_outgoing.sort_unstable();
    cs.learners_next.sort_unstable();
    cs.write_to_bytes().ok()
}

/// Describes the first pair two lists differ in.
fn first_difference(a: &[(Vec<u8>, Vec<u8>)], b: &[(Vec<u8>, Vec<u8>)]) -> String {
    let show = |kv: Option<&(Vec<u8>, Vec<u8>)>| match kv {
        Some((k, v)) => format!("{} = {v:02x?}", String::from_utf8_lossy(k)),
        None => "(end)".to_string(),
    };
    let i = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    format!("{} vs {}", show(a.get(i)), show(b.get(i)))
}

impl World {
    /// What differs between the converged members `current` (empty: all
    /// equal and consistent).
    pub(super) fn replicated_state_differences(&self, current: &[usize]) -> Vec<String> {
        let mut out = Vec::new();
        let Some(&first) = current.first() else { return out };
        let reference = &self.members[first];
        for cf in compared() {
            let want = contents(&reference.engine, cf);
            for &i in &current[1..] {
                let got = contents(&self.members[i].engine, cf);
                if got != want {
                    out.push(format!(
                        "m{} and m{} differ in column family {}: {}",
                        reference.id,
                        self.members[i].id,
                        cf.name(),
                        first_difference(&want, &got)
                    ));
                }
            }
        }
        // The dedup window holds a record for every command that applied
        // (it is far from full in a run): at least one per acknowledged
        // client write. Fewer means it was not persisted (or lost), and a
        // duplicate arriving after a restart would apply twice.
        let acked = self
            .history
            .iter()
            .filter(|r| {
                matches!(r.outcome, Outcome::Ok(_))
                    && matches!(
                        r.op,
                        Op::Put { .. }
                            | Op::Delete { .. }
                            | Op::Cas { .. }
                            | Op::LeaseGrant { .. }
                            | Op::LeasePut { .. }
                    )
            })
            .count();
        for &i in current {
            let m = &self.members[i];
            let mut records = 0usize;
            let _ = m.engine.scan(Cf::Meta, APPLIED_REQUEST_PREFIX, Some(b"req0"), &mut |_, _| {
                records += 1;
                true
            });
            if records < acked {
                out.push(format!(
                    "m{}: the dedup window holds {records} records but {acked} client writes were acknowledged",
                    m.id
                ));
            }
        }
        // Member records match raft's conf state (the persisted one is
        // compared byte for byte above): one record per voter and
        // learner, learners marked, and none for anyone else.
        for &i in current {
            let m = &self.members[i];
            let Some(p) = &m.peer else { continue };
            let conf = p.status();
            let want: BTreeSet<(u64, bool)> =
                conf.voters.iter().map(|&id| (id, false)).chain(conf.learners.iter().map(|&id| (id, true))).collect();
            let have: BTreeSet<(u64, bool)> = p.members().iter().map(|r| (r.id, r.is_learner)).collect();
            if have != want {
                out.push(format!("m{}: member records {have:?} but conf state {want:?} (id, learner)", m.id));
            }
        }
        // Peer URLs: as the clients last updated them.
        for &i in current {
            out.extend(self.peer_url_differences(i));
        }
        // Leases: the same set with the same granted TTL everywhere, and no
        // member's remaining TTL above its granted TTL (followers restart
        // the clock at each grant and keep-alive, so they may be above the
        // leader's, never above the grant).
        let leases = |i: usize| self.members[i].peer.as_ref().map(|p| p.leases()).unwrap_or_default();
        let ids = leases(first);
        for &i in current {
            let m = &self.members[i];
            let Some(p) = &m.peer else { continue };
            if leases(i) != ids {
                out.push(format!("m{}: leases {:?} but m{} has {:?}", m.id, leases(i), reference.id, ids));
                continue;
            }
            for &id in &ids {
                let ttl = p.lease_time_to_live(id, false);
                let reference_ttl = reference.peer.as_ref().map(|r| r.lease_time_to_live(id, false));
                if reference_ttl.as_ref().is_some_and(|r| r.granted_ttl != ttl.granted_ttl) {
                    out.push(format!(
                        "m{}: lease {id} granted TTL {} differs from m{}'s",
                        m.id, ttl.granted_ttl, reference.id
                    ));
                }
                if ttl.ttl > ttl.granted_ttl || ttl.ttl < 0 {
                    out.push(format!("m{}: lease {id} has {}s left of a {}s grant", m.id, ttl.ttl, ttl.granted_ttl));
                }
            }
        }
        out
    }
}
