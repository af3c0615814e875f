//! [`LiveKeys`]: the in-memory index of live keys, packed.
//!
//! Every live key of the store has one entry here, so its size per key is
//! most of a member's memory beyond RocksDB's: a `BTreeMap<Bytes, KeyMeta>`
//! took about 140 bytes per 8-byte key (a 32-byte `Bytes`, 32 bytes of
//! metadata, the key's own allocation and the tree's spare slots). Here an
//! entry is one allocation holding the metadata as varints followed by the
//! key, behind a 16-byte pointer: about 68 bytes per 8-byte key.
//!
//! Layout of an entry: `[n: u8][n bytes: create, mod, version, lease as
//! protobuf varints of their two's-complement u64][key]`. Entries order by
//! their key alone, so the set can be searched with a plain `&[u8]`.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::ops::Bound;

use prost::encoding::{decode_varint, encode_varint};

use super::KeyMeta;

/// The live keys at the current revision with their metadata, in key order.
#[derive(Default)]
pub(super) struct LiveKeys {
    set: BTreeSet<Entry>,
}

impl PartialEq for LiveKeys {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for LiveKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl LiveKeys {
    /// Number of live keys.
    pub(super) fn len(&self) -> usize {
        self.set.len()
    }

    /// The metadata of `key`, if it is live.
    pub(super) fn get(&self, key: &[u8]) -> Option<KeyMeta> {
        self.set.get(key).map(Entry::meta)
    }

    /// Makes `key` live with `meta`; returns its previous metadata.
    pub(super) fn insert(&mut self, key: &[u8], meta: KeyMeta) -> Option<KeyMeta> {
        self.set.replace(Entry::new(key, meta)).map(|old| old.meta())
    }

    /// Removes `key`; returns its metadata if it was live.
    pub(super) fn remove(&mut self, key: &[u8]) -> Option<KeyMeta> {
        self.set.take(key).map(|old| old.meta())
    }

    /// The live keys within `bounds`, in key order.
    pub(super) fn range<'a>(
        &'a self,
        bounds: (Bound<&[u8]>, Bound<&[u8]>),
    ) -> impl DoubleEndedIterator<Item = (&'a [u8], KeyMeta)> + 'a {
        self.set.range::<[u8], _>(bounds).map(|e| (e.key(), e.meta()))
    }

    /// Every live key, in key order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&[u8], KeyMeta)> + '_ {
        self.set.iter().map(|e| (e.key(), e.meta()))
    }
}

/// One packed entry (layout in the module docs). Equality and order are
/// its key's alone, as `BTreeSet` and `Borrow<[u8]>` require.
struct Entry(Box<[u8]>);

impl Entry {
    fn new(key: &[u8], meta: KeyMeta) -> Self {
        let mut packed = Vec::with_capacity(1 + 4 * 10 + key.len());
        packed.push(0);
        for field in [meta.create_revision, meta.mod_revision, meta.version, meta.lease] {
            encode_varint(field as u64, &mut packed);
        }
        // At most 4 varints of 10 bytes: the length fits in the first byte.
        packed[0] = (packed.len() - 1) as u8;
        packed.extend_from_slice(key);
        Entry(packed.into_boxed_slice())
    }

    fn key(&self) -> &[u8] {
        &self.0[1 + self.0[0] as usize..]
    }

    fn meta(&self) -> KeyMeta {
        let mut rest = &self.0[1..1 + self.0[0] as usize];
        let mut next = || decode_varint(&mut rest).expect("entries are packed by Entry::new") as i64;
        KeyMeta { create_revision: next(), mod_revision: next(), version: next(), lease: next() }
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Entry {}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(other.key())
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

// `Entry`'s order is its key's, so searching by `&[u8]` is consistent.
impl Borrow<[u8]> for Entry {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(create_revision: i64, mod_revision: i64, version: i64, lease: i64) -> KeyMeta {
        KeyMeta { create_revision, mod_revision, version, lease }
    }

    #[test]
    fn metadata_round_trips_at_the_extremes() {
        let mut keys = LiveKeys::default();
        for (i, m) in [meta(1, 1, 1, 0), meta(i64::MAX, i64::MAX, i64::MAX, i64::MIN), meta(0, -1, 127, 128)]
            .into_iter()
            .enumerate()
        {
            let key = vec![i as u8; i * 300];
            assert_eq!(keys.insert(&key, m), None);
            assert_eq!(keys.get(&key), Some(m));
        }
        assert_eq!(keys.len(), 3);
    }

    #[test]
    fn entries_order_by_key_and_replace_in_place() {
        let mut keys = LiveKeys::default();
        // Metadata that would sort the other way if it took part in the order.
        keys.insert(b"b", meta(1, 1, 1, 0));
        keys.insert(b"a", meta(9, 9, 9, 9));
        keys.insert(b"ab", meta(5, 5, 1, 0));
        assert_eq!(keys.insert(b"b", meta(1, 2, 2, 0)), Some(meta(1, 1, 1, 0)));
        let all: Vec<_> = keys.iter().map(|(k, m)| (k.to_vec(), m.mod_revision)).collect();
        assert_eq!(all, vec![(b"a".to_vec(), 9), (b"ab".to_vec(), 5), (b"b".to_vec(), 2)]);
        let within: Vec<_> = keys
            .range((Bound::Included(&b"a"[..]), Bound::Excluded(&b"b"[..])))
            .rev()
            .map(|(k, _)| k.to_vec())
            .collect();
        assert_eq!(within, vec![b"ab".to_vec(), b"a".to_vec()]);
        assert_eq!(keys.remove(b"ab"), Some(meta(5, 5, 1, 0)));
        assert_eq!((keys.remove(b"ab"), keys.get(b"ab"), keys.len()), (None, None, 2));
    }
}
