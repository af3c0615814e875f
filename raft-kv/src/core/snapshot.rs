//! Raft snapshots of the state machine, streamed in chunks.
//!
//! A snapshot is the state-machine column families ([`Cf::STATE_MACHINE`])
//! read from one point-in-time engine view, so data, applied index and conf
//! state agree. It never travels as one message and never has to be built in
//! memory:
//!
//! 1. The leader's raft log answers raft-rs's request for a snapshot with a
//!    small **descriptor** (raft metadata plus an id) and keeps the engine
//!    view ([`crate::core::raftlog::RaftLog`] holds it).
//! 2. When raft sends that descriptor to a follower, the peer replaces the
//!    message by an [`Outgoing`] stream that reads the view in **chunks** of
//!    about `snapshot_chunk_bytes`, handed out as the transport has room.
//! 3. The follower stages each chunk in [`Cf::Staging`] as it arrives
//!    ([`receive_chunk`]); chunks must come in order from one stream, and a
//!    gap abandons the stream (the leader sends a new snapshot when the
//!    follower keeps rejecting appends).
//! 4. Only when the last chunk is staged does raft see the snapshot message;
//!    when raft asks for it to be installed, [`stage_restore`] replaces the
//!    state machine from the staged chunks in one atomic, synced batch.
//!
//! So an interrupted transfer or a crash before the install leaves the
//! previous state intact, and the install itself is atomic.

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Message, MessageType, Snapshot, SnapshotMetadata};

use crate::engine::{Cf, ReadView, WriteBatch};
use crate::keys::decode_u64;
use crate::{keys, Error, Result};

/// Snapshot payload format this release writes.
pub const FORMAT_VERSION: u32 = 2;

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

/// Names a snapshot whose data travels (or was staged) in chunks.
#[derive(Clone, PartialEq, prost::Message)]
struct Descriptor {
    #[prost(uint64, tag = "1")]
    id: u64,
    /// Number of chunks (known once all were staged; 0 on the leader).
    #[prost(uint64, tag = "2")]
    chunks: u64,
}

/// A piece of a snapshot's data.
#[derive(Clone, PartialEq, prost::Message)]
struct Chunk {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(uint64, tag = "2")]
    seq: u64,
    #[prost(bool, tag = "3")]
    last: bool,
    #[prost(message, repeated, tag = "4")]
    records: Vec<Record>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Kind {
    #[prost(message, tag = "2")]
    Descriptor(Descriptor),
    #[prost(message, tag = "3")]
    Chunk(Chunk),
}

/// What a raft snapshot's `data` holds.
#[derive(Clone, PartialEq, prost::Message)]
struct Payload {
    #[prost(uint32, tag = "1")]
    format: u32,
    #[prost(oneof = "Kind", tags = "2, 3")]
    kind: Option<Kind>,
}

impl Payload {
    fn encode(kind: Kind) -> Vec<u8> {
        prost::Message::encode_to_vec(&Payload { format: FORMAT_VERSION, kind: Some(kind) })
    }

    fn decode(data: &[u8]) -> Result<Kind> {
        let p: Payload = prost::Message::decode(data)?;
        if p.format > FORMAT_VERSION {
            return Err(Error::Corruption(format!("snapshot format {} is newer than {FORMAT_VERSION}", p.format)));
        }
        p.kind.ok_or_else(|| Error::Corruption("empty snapshot payload".into()))
    }
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

fn metadata(view: &impl ReadView) -> Result<SnapshotMetadata> {
    let (index, term) = applied(view)?;
    let conf_state = match view.get(Cf::Meta, keys::CONF_STATE)? {
        Some(v) => ConfState::parse_from_bytes(&v)?,
        None => ConfState::default(),
    };
    let mut meta = SnapshotMetadata { index, term, ..Default::default() };
    meta.set_conf_state(conf_state);
    Ok(meta)
}

/// A raft snapshot whose data is a descriptor for chunked transfer of
/// `view`, registered under `id`.
pub fn descriptor(view: &impl ReadView, id: u64) -> Result<Snapshot> {
    let mut snap =
        Snapshot { data: Payload::encode(Kind::Descriptor(Descriptor { id, chunks: 0 })).into(), ..Default::default() };
    snap.set_metadata(metadata(view)?);
    Ok(snap)
}

/// The whole state machine of `view` as one self-contained raft snapshot
/// (one chunk), held in memory: for tests of the restore path (backups are
/// etcd snapshot files, written record by record from an `Export`).
#[cfg(test)]
pub fn build(view: &impl ReadView) -> Result<Snapshot> {
    let mut records = Vec::new();
    for cf in Cf::STATE_MACHINE {
        view.scan(cf, b"", None, &mut |k, v| {
            records.push(Record { cf: cf as u32, key: k.to_vec(), value: v.to_vec() });
            true
        })?;
    }
    let chunk = Chunk { id: 0, seq: 0, last: true, records };
    let mut snap = Snapshot { data: Payload::encode(Kind::Chunk(chunk)).into(), ..Default::default() };
    snap.set_metadata(metadata(view)?);
    Ok(snap)
}

/// The id of the chunked snapshot a raft snapshot message describes.
pub fn descriptor_id(snap: &Snapshot) -> Option<u64> {
    match Payload::decode(&snap.data) {
        Ok(Kind::Descriptor(d)) => Some(d.id),
        _ => None,
    }
}

/// A snapshot being streamed to one follower, chunk by chunk, from an engine
/// view.
pub struct Outgoing<S> {
    /// Destination member.
    pub to: u64,
    id: u64,
    template: Message,
    view: S,
    /// Next column family (index into `Cf::STATE_MACHINE`) and the key to
    /// start after (`None`: from the beginning).
    cursor: (usize, Option<Vec<u8>>),
    seq: u64,
    done: bool,
}

impl<S: ReadView> Outgoing<S> {
    /// A stream of the snapshot described by `msg` (a `MsgSnapshot` whose
    /// data is a descriptor), reading `view`.
    pub fn new(msg: Message, id: u64, view: S) -> Self {
        Outgoing { to: msg.to, id, template: msg, view, cursor: (0, None), seq: 0, done: false }
    }

    /// True once the last chunk was produced.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The next chunk as a `MsgSnapshot`, holding about `max_bytes` of
    /// records (at least one record).
    pub fn next_chunk(&mut self, max_bytes: usize) -> Result<Option<Message>> {
        if self.done {
            return Ok(None);
        }
        let mut records = Vec::new();
        let mut bytes = 0usize;
        while self.cursor.0 < Cf::STATE_MACHINE.len() && bytes < max_bytes {
            let cf = Cf::STATE_MACHINE[self.cursor.0];
            let start = match &self.cursor.1 {
                Some(last) => {
                    let mut s = last.clone();
                    s.push(0); // the smallest key after `last`
                    s
                }
                None => Vec::new(),
            };
            let mut last = None;
            self.view.scan(cf, &start, None, &mut |k, v| {
                bytes += k.len() + v.len() + 8;
                records.push(Record { cf: cf as u32, key: k.to_vec(), value: v.to_vec() });
                last = Some(k.to_vec());
                bytes < max_bytes
            })?;
            if bytes < max_bytes {
                // This column family is exhausted.
                self.cursor = (self.cursor.0 + 1, None);
            } else {
                self.cursor.1 = last;
            }
        }
        let last = self.cursor.0 >= Cf::STATE_MACHINE.len();
        let chunk = Chunk { id: self.id, seq: self.seq, last, records };
        self.seq += 1;
        self.done = last;
        let mut msg = self.template.clone();
        msg.mut_snapshot().data = Payload::encode(Kind::Chunk(chunk)).into();
        Ok(Some(msg))
    }
}

/// A chunked snapshot being received.
#[derive(Debug, Clone)]
pub struct Incoming {
    from: u64,
    id: u64,
    next_seq: u64,
    index: u64,
    /// This member's own id for the stream: its chunks are staged under it,
    /// so streams (from different leaders, or repeated) never mix.
    local: u64,
}

fn staging_key(id: u64, seq: u64) -> Vec<u8> {
    let mut k = id.to_be_bytes().to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Stages deletion of every staged chunk of streams up to local id `upto`
/// (all of them with `None`).
pub fn clear_staging(view: &impl ReadView, upto: Option<u64>, wb: &mut WriteBatch) -> Result<()> {
    let end = upto.map(|id| staging_key(id + 1, 0));
    let mut doomed = Vec::new();
    view.scan(Cf::Staging, b"", end.as_deref(), &mut |k, _| {
        doomed.push(k.to_vec());
        true
    })?;
    for k in doomed {
        wb.delete(Cf::Staging, k);
    }
    Ok(())
}

/// Takes one received snapshot chunk, staging it (writes added to `wb`);
/// when it completes its stream, returns the message to hand to raft (the
/// snapshot described as staged under its local stream id). A chunk 0 starts
/// a new stream with local id `next_local + 1`; a chunk out of order
/// abandons the current stream. Staged chunks of other streams are left
/// alone (an install clears older ones).
pub fn receive_chunk(
    incoming: &mut Option<Incoming>,
    next_local: &mut u64,
    mut msg: Message,
    wb: &mut WriteBatch,
) -> Result<Option<Message>> {
    let chunk = match Payload::decode(&msg.get_snapshot().data)? {
        Kind::Chunk(c) => c,
        Kind::Descriptor(_) => return Err(Error::Corruption("snapshot descriptor without its chunks".into())),
    };
    let index = msg.get_snapshot().get_metadata().index;
    if chunk.seq == 0 {
        *next_local += 1;
        *incoming = Some(Incoming { from: msg.from, id: chunk.id, next_seq: 0, index, local: *next_local });
    }
    let expected = incoming
        .as_ref()
        .is_some_and(|i| i.from == msg.from && i.id == chunk.id && i.next_seq == chunk.seq && i.index == index);
    if !expected {
        tracing::debug!(from = msg.from, seq = chunk.seq, "out-of-order snapshot chunk; abandoning the stream");
        *incoming = None;
        return Ok(None);
    }
    for r in &chunk.records {
        cf_from_u32(r.cf)?;
    }
    let (seq, last) = (chunk.seq, chunk.last);
    let Some(stream) = incoming.as_mut() else { return Ok(None) };
    let local = stream.local;
    wb.put(Cf::Staging, staging_key(local, seq), prost::Message::encode_to_vec(&chunk));
    stream.next_seq += 1;
    if !last {
        return Ok(None);
    }
    *incoming = None;
    msg.mut_snapshot().data = Payload::encode(Kind::Descriptor(Descriptor { id: local, chunks: seq + 1 })).into();
    Ok(Some(msg))
}

/// True when `msg` is a snapshot chunk (to be staged, not stepped).
pub fn is_chunk(msg: &Message) -> bool {
    msg.get_msg_type() == MessageType::MsgSnapshot
        && matches!(Payload::decode(&msg.get_snapshot().data), Ok(Kind::Chunk(_)))
}

/// Stages replacing the state machine in `view`'s engine with `snap`'s
/// contents — read from the staged chunks it describes, or from its own data
/// for a one-chunk snapshot — and clears the staging area. Everything is
/// decoded and checked before anything is staged.
pub fn stage_restore(view: &impl ReadView, snap: &Snapshot, wb: &mut WriteBatch) -> Result<()> {
    let mut staged = None;
    let chunks: Vec<Chunk> = match Payload::decode(&snap.data)? {
        Kind::Chunk(c) => vec![c],
        Kind::Descriptor(d) => {
            let mut chunks: Vec<Chunk> = Vec::new();
            let mut err = None;
            let start = staging_key(d.id, 0);
            let end = staging_key(d.id + 1, 0);
            view.scan(Cf::Staging, &start, Some(&end), &mut |_, v| match prost::Message::decode(v) {
                Ok(c) => {
                    chunks.push(c);
                    true
                }
                Err(e) => {
                    err = Some(Error::from(e));
                    false
                }
            })?;
            if let Some(e) = err {
                return Err(e);
            }
            if chunks.len() as u64 != d.chunks || chunks.iter().enumerate().any(|(i, c)| c.seq != i as u64) {
                return Err(Error::Corruption(format!(
                    "snapshot {} has {} of {} chunks staged",
                    d.id,
                    chunks.len(),
                    d.chunks
                )));
            }
            staged = Some(d.id);
            chunks
        }
    };
    let mut records = Vec::new();
    for c in chunks {
        for r in c.records {
            records.push((cf_from_u32(r.cf)?, r.key, r.value));
        }
    }
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
    for (cf, k, v) in records {
        if cf == Cf::Lease && crate::mutation::active("snapshot-drops-leases") {
            continue;
        }
        wb.put(cf, k, v);
    }
    if let Some(local) = staged {
        // This stream's chunks and any older, abandoned ones.
        clear_staging(view, Some(local), wb)?;
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

    fn source() -> MemEngine {
        let src = MemEngine::new();
        let mut wb = WriteBatch::new();
        for i in 0..100u32 {
            wb.put(Cf::Kv, format!("k{i:03}").into_bytes(), vec![b'v'; 100]);
        }
        wb.put(Cf::Lease, 7i64.to_be_bytes().to_vec(), 10i64.to_be_bytes().to_vec());
        wb.put(Cf::Meta, keys::APPLIED_INDEX.to_vec(), 7u64.to_be_bytes().to_vec());
        wb.put(Cf::Meta, keys::APPLIED_TERM.to_vec(), 3u64.to_be_bytes().to_vec());
        wb.put(Cf::Raft, b"not-in-snapshot".to_vec(), b"x".to_vec());
        src.write(wb, true).unwrap();
        src
    }

    fn dump(e: &MemEngine, cf: Cf) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        e.scan(cf, b"", None, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            true
        })
        .unwrap();
        out
    }

    fn stream(src: &MemEngine, chunk: usize) -> Vec<Message> {
        let snap = descriptor(&src.snapshot(), 9).unwrap();
        let mut msg = Message { to: 2, from: 1, ..Default::default() };
        msg.set_msg_type(MessageType::MsgSnapshot);
        msg.set_snapshot(snap);
        let mut out = Outgoing::new(msg, 9, src.snapshot());
        let mut msgs = Vec::new();
        while let Some(m) = out.next_chunk(chunk).unwrap() {
            msgs.push(m);
        }
        assert!(out.is_done());
        msgs
    }

    #[test]
    fn chunked_stream_stages_then_installs_the_same_state() {
        let src = source();
        let msgs = stream(&src, 1000);
        assert!(msgs.len() > 5, "{} chunks", msgs.len());
        let dst = MemEngine::new();
        let mut wb = WriteBatch::new();
        wb.put(Cf::Kv, b"stale".to_vec(), b"x".to_vec());
        dst.write(wb, true).unwrap();
        let (mut incoming, mut local) = (None, 0);
        let mut done = None;
        let last = msgs.last().cloned().unwrap();
        for m in msgs {
            let mut wb = WriteBatch::new();
            let out = receive_chunk(&mut incoming, &mut local, m, &mut wb).unwrap();
            dst.write(wb, false).unwrap();
            if out.is_some() {
                done = out;
            }
        }
        let msg = done.expect("stream completed");
        assert_eq!(dump(&dst, Cf::Kv).len(), 1, "nothing installed before raft asks");
        // A stray duplicate of the last chunk, and a new stream starting, do
        // not disturb the staged stream.
        for stray in [last, stream(&src, 1000).remove(0)] {
            let mut wb = WriteBatch::new();
            assert!(receive_chunk(&mut incoming, &mut local, stray, &mut wb).unwrap().is_none());
            dst.write(wb, false).unwrap();
        }
        let mut wb = WriteBatch::new();
        stage_restore(&dst, msg.get_snapshot(), &mut wb).unwrap();
        dst.write(wb, true).unwrap();
        for cf in Cf::STATE_MACHINE {
            // The restore also records the snapshot's conf state.
            let got: Vec<_> = dump(&dst, cf).into_iter().filter(|(k, _)| k != keys::CONF_STATE).collect();
            assert_eq!(got, dump(&src, cf), "{cf:?}");
        }
        assert_eq!(dump(&dst, Cf::Staging).len(), 1, "only the newer stream's chunk stays staged");
        assert_eq!(applied(&dst).unwrap(), (7, 3));
    }

    #[test]
    fn a_gap_abandons_the_stream_and_an_interrupted_one_changes_nothing() {
        let src = source();
        let mut msgs = stream(&src, 1000);
        let dst = MemEngine::new();
        let mut wb = WriteBatch::new();
        wb.put(Cf::Kv, b"old".to_vec(), b"state".to_vec());
        dst.write(wb, true).unwrap();
        msgs.remove(2);
        let (mut incoming, mut local) = (None, 0);
        for m in msgs {
            let mut wb = WriteBatch::new();
            assert!(receive_chunk(&mut incoming, &mut local, m, &mut wb).unwrap().is_none(), "never completes");
            dst.write(wb, false).unwrap();
        }
        dst.crash();
        assert_eq!(dump(&dst, Cf::Kv), vec![(b"old".to_vec(), b"state".to_vec())]);
    }

    #[test]
    fn backup_is_one_self_contained_chunk_and_garbage_stages_nothing() {
        let src = source();
        let snap = build(&src.snapshot()).unwrap();
        let dst = MemEngine::new();
        let mut wb = WriteBatch::new();
        stage_restore(&dst, &snap, &mut wb).unwrap();
        dst.write(wb, true).unwrap();
        assert_eq!(dump(&dst, Cf::Kv), dump(&src, Cf::Kv));
        let bad = Snapshot { data: vec![0xff, 0xff, 0xff].into(), ..Default::default() };
        let mut wb = WriteBatch::new();
        assert!(stage_restore(&dst, &bad, &mut wb).is_err());
        assert!(wb.is_empty());
    }
}
