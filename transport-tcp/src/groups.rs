//! A check run on every peer frame before rust-protobuf parses it: the frame
//! must contain no protobuf *group* fields, in the message or in the nested
//! messages rust-protobuf descends into.
//!
//! raft-rs 0.7 decodes `eraftpb` with rust-protobuf 2.28, which skips an
//! unknown group by recursing once per nesting level without a bound
//! (RUSTSEC-2024-0437): a frame of a few KiB of nested start-group tags
//! overflows the reader thread's stack and aborts the process. `eraftpb`
//! has no group fields, so a frame that holds one is malformed anyway;
//! refusing it before parsing makes that recursion unreachable. Known
//! message fields recurse through rust-protobuf's own depth limit, and
//! unknown length-delimited fields are skipped by length, so neither needs
//! more than this walk.

/// Wire types.
/// The smallest encoded log entry a genuine member sends: one in an append
/// has an index and a term (2 bytes each at least); a forwarded proposal or
/// read carries its command or context. So a frame of `n` bytes decodes
/// into at most ~17 n bytes of entries.
const MIN_ENTRY_BYTES: usize = 4;

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

/// The `eraftpb` messages a frame nests, and which of their fields hold
/// another such message.
#[derive(Clone, Copy)]
enum Kind {
    Message,
    Entry,
    Snapshot,
    SnapshotMetadata,
    ConfState,
}

impl Kind {
    fn nested(self, field: u64) -> Option<Kind> {
        match (self, field) {
            (Kind::Message, 7) => Some(Kind::Entry),
            (Kind::Message, 9) => Some(Kind::Snapshot),
            (Kind::Snapshot, 2) => Some(Kind::SnapshotMetadata),
            (Kind::SnapshotMetadata, 1) => Some(Kind::ConfState),
            _ => None,
        }
    }
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, &'static str> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes")
}

fn walk(buf: &[u8], kind: Kind) -> Result<(), &'static str> {
    let mut pos = 0;
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let (field, wire) = (tag >> 3, tag & 7);
        match wire {
            VARINT => {
                varint(buf, &mut pos)?;
            }
            FIXED64 => pos = pos.checked_add(8).ok_or("overflow")?,
            FIXED32 => pos = pos.checked_add(4).ok_or("overflow")?,
            LEN => {
                let len = usize::try_from(varint(buf, &mut pos)?).map_err(|_| "length overflow")?;
                let end = pos.checked_add(len).filter(|e| *e <= buf.len()).ok_or("truncated field")?;
                if let Some(inner) = kind.nested(field) {
                    if matches!(inner, Kind::Entry) && len < MIN_ENTRY_BYTES {
                        // An entry decodes into ~100 bytes whatever its
                        // size; a frame of empty entries would multiply
                        // into 50 times its size in memory.
                        return Err("a log entry with neither index, term nor data");
                    }
                    walk(&buf[pos..end], inner)?;
                }
                pos = end;
            }
            _ => return Err("group or invalid wire type in a raft message"),
        }
        if pos > buf.len() {
            return Err("truncated field");
        }
    }
    Ok(())
}

/// Refuses a frame body holding a group (or a broken field) anywhere
/// rust-protobuf would parse it.
pub(crate) fn check(body: &[u8]) -> Result<(), &'static str> {
    walk(body, Kind::Message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protobuf::Message as _;
    use raft::eraftpb::{Entry, Message, Snapshot};

    #[test]
    fn real_messages_pass() {
        let mut m = Message { to: 2, commit: u64::MAX, ..Default::default() };
        m.entries.push(Entry { data: vec![3; 100].into(), context: vec![1].into(), ..Default::default() });
        let mut snap = Snapshot::default();
        snap.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        snap.data = vec![9; 10].into();
        m.set_snapshot(snap);
        let bytes = m.write_to_bytes().unwrap();
        assert_eq!(check(&bytes), Ok(()));
    }

    #[test]
    fn frames_of_empty_entries_are_refused() {
        // 1 000 empty entries: 2 bytes each on the wire, ~100 in memory.
        let body: Vec<u8> = std::iter::repeat_n([0x3a_u8, 0x00], 1_000).flatten().collect();
        assert!(check(&body).is_err());
        let mut m = Message::default();
        m.entries.push(Entry { index: 1, term: 1, ..Default::default() });
        assert_eq!(check(&m.write_to_bytes().unwrap()), Ok(()));
    }

    #[test]
    fn nested_groups_are_refused_at_any_level() {
        // 100 000 nested start-group tags of field 15: rust-protobuf would
        // recurse once per tag.
        let deep: Vec<u8> = std::iter::repeat_n(0x7b, 100_000).collect();
        assert!(check(&deep).is_err());
        // A group inside an entry.
        let entry = [0x0b_u8, 0x0c]; // field 1 start group, end group
        let mut m = vec![0x3a, entry.len() as u8]; // field 7 (entries), length
        m.extend_from_slice(&entry);
        assert!(check(&m).is_err());
        // Truncated and overlong fields.
        assert!(check(&[0x3a, 0x05, 0x00]).is_err());
        assert!(check(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
    }
}
