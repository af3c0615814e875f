//! [`force_new_cluster`]: a surviving member of a cluster that lost its
//! quorum restarts alone, keeping its data (etcd's `--force-new-cluster`).

use protobuf::Message as _;
use raft::eraftpb::ConfState;

use crate::core::membership::Members;
use crate::engine::{Cf, Engine, WriteBatch};
use crate::{keys, Error, Result};

/// Rewrites the configuration stored in `engine` to a one-voter cluster of
/// member `id`, before the member is opened: the conf state becomes just
/// `id`, and the records of every other member are dropped (not marked
/// removed, so the same peer URLs can be added back later with
/// `member add`). Keys, leases, revisions, alarms and the raft log are
/// kept. The rewrite is one synced batch: a crash leaves the old
/// configuration or the new one.
///
/// Fails, changing nothing, on an engine that holds no member state (a
/// missing or empty data directory): there is nothing to recover.
pub fn force_new_cluster<E: Engine>(engine: &E, id: u64) -> Result<()> {
    if id == 0 {
        return Err(Error::invalid("member id must not be 0"));
    }
    let Some(old) = engine.get(Cf::Meta, keys::CONF_STATE)? else {
        return Err(Error::invalid("force-new-cluster: the engine holds no member data to recover"));
    };
    let old = ConfState::parse_from_bytes(&old)?;
    let cs = ConfState { voters: vec![id], ..Default::default() };
    let mut wb = WriteBatch::new();
    wb.put(Cf::Meta, keys::CONF_STATE.to_vec(), cs.write_to_bytes()?);
    let members = Members::load(engine)?;
    let mut me = members.get(id).cloned().unwrap_or_default();
    me.id = id;
    me.is_learner = false;
    for m in members.list().iter().filter(|m| m.id != id) {
        wb.delete(Cf::Meta, keys::member_key(m.id));
    }
    wb.put(Cf::Meta, keys::member_key(id), prost::Message::encode_to_vec(&me));
    engine.write(wb, true)?;
    tracing::warn!(
        id = format_args!("{id:x}"),
        voters = ?old.voters,
        learners = ?old.learners,
        "force-new-cluster: the configuration is now this member alone"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Member;
    use crate::core::raftlog::RaftLog;
    use crate::engine::{MemEngine, ReadView};

    #[test]
    fn rewrites_a_three_member_configuration_to_one() {
        let engine = MemEngine::new();
        let mut wb = WriteBatch::new();
        let cs = ConfState { voters: vec![1, 2, 3], learners: vec![4], ..Default::default() };
        wb.put(Cf::Meta, keys::CONF_STATE.to_vec(), cs.write_to_bytes().unwrap());
        let mut members = Members::default();
        for id in [1, 2, 3, 4] {
            members.stage_put(Member { id, name: format!("m{id}"), ..Default::default() }, &mut wb);
        }
        wb.put(Cf::Kv, b"data".to_vec(), b"kept".to_vec());
        engine.write(wb, true).unwrap();

        force_new_cluster(&engine, 2).unwrap();
        let log = RaftLog::open(engine.clone(), 16).unwrap();
        assert_eq!(log.conf_state().voters, vec![2]);
        assert!(log.conf_state().learners.is_empty());
        let members = Members::load(&engine).unwrap();
        assert_eq!(members.list().iter().map(|m| (m.id, m.name.as_str())).collect::<Vec<_>>(), vec![(2, "m2")]);
        assert!(!members.is_removed(1), "the others may be added back");
        assert_eq!(engine.get(Cf::Kv, b"data").unwrap(), Some(b"kept".to_vec()));
    }

    #[test]
    fn refuses_an_empty_engine() {
        let engine = MemEngine::new();
        assert!(matches!(force_new_cluster(&engine, 1), Err(Error::Invalid(_))));
        assert_eq!(engine.get(Cf::Meta, keys::CONF_STATE).unwrap(), None, "nothing written");
    }
}
