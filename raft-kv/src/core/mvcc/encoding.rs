//! On-disk encoding of the MVCC history in [`Cf::Kv`](crate::engine::Cf::Kv).
//!
//! Every version of every key is one engine entry:
//!
//! * **key**: `escaped(user_key) ‖ 0x00 0x01 ‖ BE(u64::MAX - revision)`.
//!   Escaping maps each `0x00` byte of the user key to `0x00 0xFF`, and the
//!   terminator `0x00 0x01` ends it, so the encoding preserves the order of
//!   user keys (`"a" < "a\0" < "b"`) and keeps all versions of one key
//!   contiguous. The inverted revision puts the newest version first.
//! * **value**: a [`Record`]: format byte, flags, create revision, version and
//!   lease (fixed-width big-endian), then — only with the sub-revision flag —
//!   the sub-revision (big-endian `i64`), then the value bytes. The
//!   version's mod revision is the revision in its key; its sub-revision is
//!   its place among the writes of that revision (etcd's `sub`: 0 for the
//!   first write of a transaction, 1 for the next, ...). A record without
//!   the flag has sub-revision 0: every record written before the flag
//!   existed still decodes, and the first write of a revision (every put or
//!   delete outside a transaction) is stored exactly as before.

use crate::{Error, Result};

/// The terminator that ends an escaped user key.
const TERMINATOR: [u8; 2] = [0x00, 0x01];
/// The escape for a `0x00` byte inside a user key.
const ESCAPED_ZERO: [u8; 2] = [0x00, 0xFF];
/// Length of the encoded revision suffix.
const REVISION_LEN: usize = 8;

/// The record format this release writes.
pub const RECORD_FORMAT: u8 = 1;
/// Record flag: the version is a deletion marker.
const FLAG_TOMBSTONE: u8 = 0x01;
/// Record flag: a sub-revision (8 bytes) follows the fixed header.
const FLAG_SUB_REVISION: u8 = 0x02;
/// Every record flag this release knows.
const KNOWN_FLAGS: u8 = FLAG_TOMBSTONE | FLAG_SUB_REVISION;
/// Length of the optional sub-revision field.
const SUB_REVISION_LEN: usize = 8;
/// Length of a record's fixed header: format, flags, three `i64`.
const RECORD_HEADER_LEN: usize = 2 + 3 * 8;

/// The encoded prefix shared by every version of `user_key`: the escaped key
/// and its terminator.
///
/// For user keys `a < b`, every encoded version of `a` sorts before
/// `key_prefix(b)`, so a user-key range `[start, end)` is the encoded range
/// `[key_prefix(start), key_prefix(end))`.
pub fn key_prefix(user_key: &[u8]) -> Vec<u8> {
    let zeros = user_key.iter().filter(|&&b| b == 0).count();
    let mut out = Vec::with_capacity(user_key.len() + zeros + TERMINATOR.len() + REVISION_LEN);
    for &b in user_key {
        if b == 0 {
            out.extend_from_slice(&ESCAPED_ZERO);
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(&TERMINATOR);
    out
}

/// The version group of an engine key: the [`key_prefix`] that every
/// version of its user key shares (the key without its revision suffix),
/// or `None` for a key not shaped `escaped key ‖ terminator ‖ revision`.
///
/// The RocksDB engine files `Cf::Kv` keys under their group in its prefix
/// filters, so a scan confined to one group (a point read) skips every
/// file that holds no version of that key.
pub fn version_group(key: &[u8]) -> Option<&[u8]> {
    let group = &key[..key.len().checked_sub(REVISION_LEN)?];
    // An escaped key never holds `0x00 0x01`, so the terminator can only
    // be where a version key has it.
    group.ends_with(&TERMINATOR).then_some(group)
}

/// The smallest engine key above every version of `user_key`: the scan
/// `[encode_key(user_key, rev), group_end(user_key))` stays inside the key's
/// [`version_group`].
pub fn group_end(user_key: &[u8]) -> Vec<u8> {
    let prefix = key_prefix(user_key);
    // The prefix ends with the terminator's 0x01, so it has an end.
    crate::engine::prefix_end(&prefix).unwrap_or(prefix)
}

/// Encodes the engine key of `user_key`'s version at revision `rev`
/// (`rev >= 0`).
pub fn encode_key(user_key: &[u8], rev: i64) -> Vec<u8> {
    let mut out = key_prefix(user_key);
    out.extend_from_slice(&invert(rev).to_be_bytes());
    out
}

/// Decodes an engine key into the user key and the revision.
pub fn decode_key(key: &[u8]) -> Result<(Vec<u8>, i64)> {
    let corrupt = |what: &str| Error::Corruption(format!("mvcc key {key:02x?}: {what}"));
    let mut user = Vec::with_capacity(key.len().saturating_sub(TERMINATOR.len() + REVISION_LEN));
    let mut i = 0;
    loop {
        match key.get(i) {
            None => return Err(corrupt("missing terminator")),
            Some(0) => match key.get(i + 1) {
                Some(0xFF) => user.push(0),
                Some(0x01) => break,
                _ => return Err(corrupt("bad escape")),
            },
            Some(&b) => {
                user.push(b);
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    let suffix: [u8; REVISION_LEN] =
        key[i + TERMINATOR.len()..].try_into().map_err(|_| corrupt("bad revision length"))?;
    let rev = u64::MAX - u64::from_be_bytes(suffix);
    let rev = i64::try_from(rev).map_err(|_| corrupt("revision out of range"))?;
    Ok((user, rev))
}

/// `u64::MAX - rev`, so that newer revisions sort first.
fn invert(rev: i64) -> u64 {
    // Revisions are never negative; clamp rather than wrap if one is.
    u64::MAX - rev.max(0).unsigned_abs()
}

/// One version of a key, as stored in the engine value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// True for a deletion marker (all other fields are zero/empty).
    pub tombstone: bool,
    /// Revision of the write that created the key.
    pub create_revision: i64,
    /// Number of writes since creation (1 after creation).
    pub version: i64,
    /// Attached lease, 0 for none.
    pub lease: i64,
    /// The write's place among the writes of its revision (0 for the
    /// first; etcd's sub-revision).
    pub sub_revision: i64,
    /// The value.
    pub value: Vec<u8>,
}

impl Record {
    /// The deletion marker of the write `sub_revision` of its revision.
    pub fn tombstone(sub_revision: i64) -> Self {
        Record { tombstone: true, sub_revision, ..Default::default() }
    }

    /// Encodes the record as an engine value (the sub-revision only when
    /// it is not 0).
    pub fn encode(&self) -> Vec<u8> {
        let with_sub = self.sub_revision != 0;
        let mut out = Vec::with_capacity(RECORD_HEADER_LEN + SUB_REVISION_LEN + self.value.len());
        out.push(RECORD_FORMAT);
        let mut flags = if self.tombstone { FLAG_TOMBSTONE } else { 0 };
        if with_sub {
            flags |= FLAG_SUB_REVISION;
        }
        out.push(flags);
        out.extend_from_slice(&self.create_revision.to_be_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.lease.to_be_bytes());
        if with_sub {
            out.extend_from_slice(&self.sub_revision.to_be_bytes());
        }
        out.extend_from_slice(&self.value);
        out
    }

    /// Decodes an engine value.
    pub fn decode(data: &[u8]) -> Result<Self> {
        let corrupt = |what: &str| Error::Corruption(format!("mvcc record: {what}"));
        if data.len() < RECORD_HEADER_LEN {
            return Err(corrupt("too short"));
        }
        if data[0] != RECORD_FORMAT {
            return Err(corrupt(&format!("unknown format {}", data[0])));
        }
        let flags = data[1];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(corrupt(&format!("unknown flags {flags:#x}")));
        }
        let int_at = |at: usize| -> Result<i64> {
            let bytes: [u8; 8] =
                data.get(at..at + 8).and_then(|b| b.try_into().ok()).ok_or_else(|| corrupt("truncated"))?;
            Ok(i64::from_be_bytes(bytes))
        };
        let (sub_revision, value_at) = if flags & FLAG_SUB_REVISION != 0 {
            (int_at(RECORD_HEADER_LEN)?, RECORD_HEADER_LEN + SUB_REVISION_LEN)
        } else {
            (0, RECORD_HEADER_LEN)
        };
        Ok(Record {
            tombstone: flags & FLAG_TOMBSTONE != 0,
            create_revision: int_at(2)?,
            version: int_at(10)?,
            lease: int_at(18)?,
            sub_revision,
            value: data[value_at..].to_vec(),
        })
    }

    /// True when `data` is an encoded tombstone (without decoding the rest).
    pub fn is_tombstone(data: &[u8]) -> Result<bool> {
        match data.get(1) {
            Some(flags) if data.len() >= RECORD_HEADER_LEN => Ok(flags & FLAG_TOMBSTONE != 0),
            _ => Err(Error::Corruption("mvcc record: too short".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_version_key_is_in_its_group_and_no_prefix_is_a_version_key() {
        let keys = [&b""[..], b"a", b"\0", b"\0\0", b"a\0b", b"\xff", b"\0\x01", b"\x01\0\x01", b"0123456789"];
        for key in keys {
            let group = key_prefix(key);
            // A range start or end (a bare prefix) belongs to no group.
            assert_eq!(version_group(&group), None, "{key:?}");
            let end = group_end(key);
            for rev in [0, 1, 256, i64::MAX] {
                let k = encode_key(key, rev);
                assert_eq!(version_group(&k), Some(&group[..]), "{key:?}@{rev}");
                assert!(k < end, "{key:?}@{rev}");
            }
            // Every other key's versions sort outside the group's scan.
            for other in keys.iter().filter(|o| **o != key) {
                let k = encode_key(other, 7);
                assert!(k < encode_key(key, i64::MAX) || k >= end, "{other:?} inside {key:?}");
            }
        }
    }

    #[test]
    fn key_round_trips() {
        for key in [&b"a"[..], b"\0", b"\0\0", b"a\0b", b"\xff", b"\xff\0\xff", b"\0\x01", b"plain key"] {
            for rev in [0, 1, 2, 255, 256, i64::MAX] {
                assert_eq!(decode_key(&encode_key(key, rev)).unwrap(), (key.to_vec(), rev));
            }
        }
    }

    #[test]
    fn encoding_preserves_user_key_order() {
        let mut keys: Vec<&[u8]> = vec![
            b"a",
            b"a\0",
            b"a\0\0",
            b"a\0\x01",
            b"a\x01",
            b"a\xff",
            b"ab",
            b"b",
            b"\0",
            b"\0\xff",
            b"\x01",
            b"\xff",
            b"\xff\0",
            b"\xff\xff",
            b"a\0b",
            b"a\xff\0",
        ];
        keys.sort();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                // Any version of a smaller key sorts before any version of a larger one.
                for (ra, rb) in [(1, 1), (1, 1000), (1000, 1), (i64::MAX, 0)] {
                    assert!(encode_key(a, ra) < encode_key(b, rb), "{a:?}@{ra} vs {b:?}@{rb}");
                }
                assert!(encode_key(a, 1) < key_prefix(b));
            }
        }
    }

    #[test]
    fn versions_are_contiguous_and_newest_first() {
        let prefix = key_prefix(b"k");
        let v1 = encode_key(b"k", 1);
        let v2 = encode_key(b"k", 2);
        let v300 = encode_key(b"k", 300);
        assert!(v300 < v2 && v2 < v1);
        assert!(v300.starts_with(&prefix) && v1.starts_with(&prefix));
        // A key that extends "k" sorts after every version of "k".
        assert!(v1 < encode_key(b"k\0", i64::MAX));
        assert!(v1 < key_prefix(b"k\0"));
        // Nothing else shares the prefix.
        assert!(!encode_key(b"k\0", 1).starts_with(&prefix));
    }

    #[test]
    fn decode_key_rejects_garbage() {
        for bad in [&b""[..], b"abc", b"a\0", b"a\0\x02\0\0\0\0\0\0\0\0", b"a\0\x01\0\0", b"a\0\x01\0\0\0\0\0\0\0\0\0"]
        {
            assert!(matches!(decode_key(bad), Err(Error::Corruption(_))), "{bad:?}");
        }
        // A revision above i64::MAX.
        let mut k = key_prefix(b"a");
        k.extend_from_slice(&[0; 8]);
        assert!(matches!(decode_key(&k), Err(Error::Corruption(_))));
    }

    #[test]
    fn record_round_trips_and_rejects_garbage() {
        let r = Record { create_revision: 3, version: 7, lease: -1, value: b"v\0\xff".to_vec(), ..Default::default() };
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        assert!(!Record::is_tombstone(&r.encode()).unwrap());
        let t = Record::tombstone(0);
        assert_eq!(Record::decode(&t.encode()).unwrap(), t);
        assert!(Record::is_tombstone(&t.encode()).unwrap());
        for sub in [1, 2, i64::MAX] {
            let with_sub = Record { sub_revision: sub, ..r.clone() };
            assert_eq!(Record::decode(&with_sub.encode()).unwrap(), with_sub);
            let t = Record::tombstone(sub);
            assert_eq!(Record::decode(&t.encode()).unwrap(), t);
            assert!(Record::is_tombstone(&t.encode()).unwrap());
        }
        // Sub-revision flag set but the field cut short.
        let mut short_sub = r.encode()[..RECORD_HEADER_LEN + 2].to_vec();
        short_sub[1] |= FLAG_SUB_REVISION;
        assert!(matches!(Record::decode(&short_sub), Err(Error::Corruption(_))));
        let mut bad_format = r.encode();
        bad_format[0] = 2;
        let mut bad_flags = r.encode();
        bad_flags[1] = 0x80;
        for bad in [&b""[..], &r.encode()[..RECORD_HEADER_LEN - 1], &bad_format, &bad_flags] {
            assert!(matches!(Record::decode(bad), Err(Error::Corruption(_))));
        }
        assert!(Record::is_tombstone(b"\x01").is_err());
    }

    #[test]
    fn records_without_a_sub_revision_decode_as_before() {
        // A record as releases before the sub-revision flag wrote it: the
        // fixed header, then the value.
        let mut old = vec![RECORD_FORMAT, 0];
        for n in [4i64, 2, 9] {
            old.extend_from_slice(&n.to_be_bytes());
        }
        old.extend_from_slice(b"value");
        let want = Record { create_revision: 4, version: 2, lease: 9, value: b"value".to_vec(), ..Default::default() };
        assert_eq!(Record::decode(&old).unwrap(), want);
        // Sub-revision 0 is still written that way.
        assert_eq!(want.encode(), old);
    }
}
