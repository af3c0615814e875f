//! Raft snapshots of the state machine.
//!
//! A snapshot is the state-machine column families ([`Cf::STATE_MACHINE`]) read
//! from one point-in-time engine view, so it is consistent with the applied
//! index stored beside the data. Its raft metadata (index, term, conf state)
//! comes from that same view.
//!
//! Installing one replaces the state machine wholesale in one atomic write
//! batch: a crash mid-install leaves the previous state intact.

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Snapshot};

use crate::engine::{Cf, ReadView, WriteBatch};
use crate::raftlog::decode_u64;
use crate::{keys, Error, Result};

/// Snapshot data format this release writes.
pub const FORMAT_VERSION: u32 = 1;

/// One key-value pair of a state-machine column family.
#[derive(Clone, PartialEq, prost::Message)]
struct Record {
    #[prost(uint32, tag = "1")]
    cf: u32,
    #[prost(bytes = "vec", tag = "2")]
    key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    value: Vec<u8>,
}

/// The payload of a raft snapshot.
#[derive(Clone, PartialEq, prost::Message)]
struct SnapshotData {
    #[prost(uint32, tag = "1")]
    format: u32,
    #[prost(message, repeated, tag = "2")]
    records: Vec<Record>,
}

fn cf_from_u32(v: u32) -> Result<Cf> {
    Cf::STATE_MACHINE
        .iter()
        .copied()
        .find(|cf| *cf as u32 == v)
        .ok_or_else(|| Error::Corruption(format!("snapshot names unknown column family {v}")))
}

/// Reads the applied index and term stored with the state machine.
pub fn applied(view: &impl ReadView) -> Result<(u64, u64)> {
    let index = view.get(Cf::Meta, keys::APPLIED_INDEX)?.map(|v| decode_u64(&v)).transpose()?.unwrap_or(0);
    let term = view.get(Cf::Meta, keys::APPLIED_TERM)?.map(|v| decode_u64(&v)).transpose()?.unwrap_or(0);
    Ok((index, term))
}

/// Builds a raft snapshot of the state machine in `view`.
pub fn build(view: &impl ReadView) -> Result<Snapshot> {
    let (index, term) = applied(view)?;
    let conf_state = match view.get(Cf::Meta, keys::CONF_STATE)? {
        Some(v) => ConfState::parse_from_bytes(&v)?,
        None => ConfState::default(),
    };
    let mut data = SnapshotData { format: FORMAT_VERSION, records: Vec::new() };
    for cf in Cf::STATE_MACHINE {
        view.scan(cf, b"", None, &mut |k, v| {
            data.records.push(Record { cf: cf as u32, key: k.to_vec(), value: v.to_vec() });
            true
        })?;
    }
    let mut snap = Snapshot { data: prost::Message::encode_to_vec(&data).into(), ..Default::default() };
    let meta = snap.mut_metadata();
    meta.index = index;
    meta.term = term;
    meta.set_conf_state(conf_state);
    Ok(snap)
}

/// Stages replacing the state machine in `view`'s engine with `snap`'s
/// contents: deletes of every current state-machine key, then the snapshot's
/// records. The snapshot is fully decoded and checked before anything is
/// staged, so a corrupt snapshot stages nothing.
pub fn stage_restore(view: &impl ReadView, snap: &Snapshot, wb: &mut WriteBatch) -> Result<()> {
    let data: SnapshotData = prost::Message::decode(&snap.data[..])?;
    if data.format > FORMAT_VERSION {
        return Err(Error::Corruption(format!("snapshot format {} is newer than {}", data.format, FORMAT_VERSION)));
    }
    let records: Vec<(Cf, Record)> =
        data.records.into_iter().map(|r| Ok((cf_from_u32(r.cf)?, r))).collect::<Result<_>>()?;
    for cf in Cf::STATE_MACHINE {
        let mut doomed = Vec::new();
        view.scan(cf, b"", None, &mut |k, _| {
            doomed.push(k.to_vec());
            true
        })?;
        for k in doomed {
            wb.delete(cf, k);
        }
    }
    for (cf, r) in records {
        wb.put(cf, r.key, r.value);
    }
    // The snapshot's own position wins over whatever the records say.
    let meta = snap.get_metadata();
    wb.put(Cf::Meta, keys::APPLIED_INDEX.to_vec(), meta.index.to_be_bytes().to_vec());
    wb.put(Cf::Meta, keys::APPLIED_TERM.to_vec(), meta.term.to_be_bytes().to_vec());
    wb.put(Cf::Meta, keys::CONF_STATE.to_vec(), meta.get_conf_state().write_to_bytes()?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, MemEngine};

    #[test]
    fn build_then_restore_reproduces_the_state_machine() {
        let src = MemEngine::new();
        let mut wb = WriteBatch::new();
        wb.put(Cf::Kv, b"k1".to_vec(), b"v1".to_vec());
        wb.put(Cf::Kv, b"k2".to_vec(), b"v2".to_vec());
        wb.put(Cf::Meta, keys::APPLIED_INDEX.to_vec(), 7u64.to_be_bytes().to_vec());
        wb.put(Cf::Meta, keys::APPLIED_TERM.to_vec(), 3u64.to_be_bytes().to_vec());
        wb.put(Cf::Raft, b"not-in-snapshot".to_vec(), b"x".to_vec());
        src.write(wb, true).unwrap();
        let snap = build(&src.snapshot()).unwrap();
        assert_eq!((snap.get_metadata().index, snap.get_metadata().term), (7, 3));

        let dst = MemEngine::new();
        let mut wb = WriteBatch::new();
        wb.put(Cf::Kv, b"stale".to_vec(), b"x".to_vec());
        dst.write(wb, true).unwrap();
        let mut wb = WriteBatch::new();
        stage_restore(&dst, &snap, &mut wb).unwrap();
        dst.write(wb, true).unwrap();
        assert_eq!(dst.get(Cf::Kv, b"stale").unwrap(), None);
        assert_eq!(dst.get(Cf::Kv, b"k2").unwrap(), Some(b"v2".to_vec()));
        assert_eq!(applied(&dst).unwrap(), (7, 3));
        assert_eq!(dst.get(Cf::Raft, b"not-in-snapshot").unwrap(), None);
    }

    #[test]
    fn corrupt_snapshot_stages_nothing() {
        let dst = MemEngine::new();
        let snap = Snapshot { data: vec![0xff, 0xff, 0xff].into(), ..Default::default() };
        let mut wb = WriteBatch::new();
        assert!(stage_restore(&dst, &snap, &mut wb).is_err());
        assert!(wb.is_empty());
    }
}
