//! [`Export`]: the state machine as of one applied index, read record by
//! record, for writing it out in another format (an etcd snapshot file);
//! [`Version`], one version of one key, is also what
//! [`Importer`](super::import::Importer) takes back in.
//!
//! An export reads a point-in-time engine view, so it never holds more than
//! one record at a time and never blocks the member: the node thread takes
//! the view, the member's background thread does the reading.

use raft::eraftpb::ConfState;

use super::auth::AuthState;
use super::lease::decode_lease;
use super::membership::Members;
use super::mvcc::encoding::{decode_key, encode_key, Record};
use super::snapshot;
use crate::api::Member;
use crate::engine::{Cf, ReadView};
use crate::{keys, Error, Result};

/// One version of a key: what a put or a delete left at a revision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Version {
    /// The user key.
    pub key: Vec<u8>,
    /// The revision of the write (etcd's mod revision).
    pub mod_revision: i64,
    /// The write's place among the writes of its revision, in the order
    /// they applied (etcd's sub revision; 0 for the first).
    pub sub_revision: i64,
    /// True for a deletion; the other fields are then 0 and empty.
    pub tombstone: bool,
    /// The revision that created the key.
    pub create_revision: i64,
    /// Writes since the key's creation (1 for the first).
    pub version: i64,
    /// The attached lease, 0 for none.
    pub lease: i64,
    /// The value.
    pub value: Vec<u8>,
}

/// A point-in-time view of a member's state machine (see the module docs).
pub struct Export {
    view: Box<dyn ReadView + Send>,
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export").finish_non_exhaustive()
    }
}

fn read_i64(view: &dyn ReadView, key: &[u8]) -> Result<Option<i64>> {
    view.get(Cf::Meta, key)?
        .map(|v| {
            <[u8; 8]>::try_from(v.as_slice())
                .map(i64::from_be_bytes)
                .map_err(|_| Error::Corruption(format!("meta key {:?} is not 8 bytes", String::from_utf8_lossy(key))))
        })
        .transpose()
}

impl Export {
    /// An export of `view`.
    pub(crate) fn new(view: impl ReadView + Send + 'static) -> Self {
        Export { view: Box::new(view) }
    }

    /// The current revision.
    pub fn revision(&self) -> Result<i64> {
        Ok(read_i64(&*self.view, keys::REVISION)?.unwrap_or(1))
    }

    /// The compact revision (0 before the first compaction).
    pub fn compact_revision(&self) -> Result<i64> {
        Ok(read_i64(&*self.view, keys::COMPACT_REVISION)?.unwrap_or(0))
    }

    /// The raft index and term the state machine has applied.
    pub fn applied(&self) -> Result<(u64, u64)> {
        snapshot::applied(&BoxedView(&*self.view))
    }

    /// Voters and learners, as of the applied index.
    pub fn conf_state(&self) -> Result<(Vec<u64>, Vec<u64>)> {
        use protobuf::Message as _;
        let cs = match self.view.get(Cf::Meta, keys::CONF_STATE)? {
            Some(v) => ConfState::parse_from_bytes(&v)?,
            None => ConfState::default(),
        };
        Ok((cs.voters, cs.learners))
    }

    /// The members, as of the applied index.
    pub fn members(&self) -> Result<Vec<Member>> {
        Ok(Members::load(&BoxedView(&*self.view))?.list())
    }

    /// The ids of the members removed from the cluster, in order.
    pub fn removed_members(&self) -> Result<Vec<u64>> {
        Ok(Members::load(&BoxedView(&*self.view))?.removed())
    }

    /// The auth store: users, roles, the enabled flag and the revision.
    pub fn auth(&self) -> Result<AuthState> {
        AuthState::load(&BoxedView(&*self.view))
    }

    /// Visits every stored version of every key, in key order and, for one
    /// key, newest first. The first error (the visitor's or a record that
    /// does not decode) stops the walk and is returned.
    pub fn versions<X: From<Error>>(
        &self,
        mut visit: impl FnMut(Version) -> std::result::Result<(), X>,
    ) -> std::result::Result<(), X> {
        let mut failure = None;
        self.view.scan(Cf::Kv, b"", None, &mut |k, v| {
            let decoded = decode_key(k).and_then(|(key, rev)| Ok((key, rev, Record::decode(v)?)));
            let result = match decoded {
                Ok((key, mod_revision, r)) => visit(version_of(key, mod_revision, r)),
                Err(e) => Err(e.into()),
            };
            match result {
                Ok(()) => true,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        })?;
        failure.map_or(Ok(()), Err)
    }

    /// The version of `key` written at revision `rev`, if the view holds it.
    pub fn version(&self, key: &[u8], rev: i64) -> Result<Option<Version>> {
        let Some(v) = self.view.get(Cf::Kv, &encode_key(key, rev))? else {
            return Ok(None);
        };
        Ok(Some(version_of(key.to_vec(), rev, Record::decode(&v)?)))
    }

    /// Every lease: id and granted TTL in seconds, by id.
    pub fn leases(&self) -> Result<Vec<(i64, i64)>> {
        let mut out = Vec::new();
        self.view.try_scan(Cf::Lease, b"", None, &mut |k, v| {
            let (id, ttl, _) = decode_lease(k, v)?;
            out.push((id, ttl));
            Ok(true)
        })?;
        Ok(out)
    }
}

fn version_of(key: Vec<u8>, mod_revision: i64, r: Record) -> Version {
    Version {
        key,
        mod_revision,
        sub_revision: r.sub_revision,
        tombstone: r.tombstone,
        create_revision: r.create_revision,
        version: r.version,
        lease: r.lease,
        value: r.value,
    }
}

/// Lets a `&dyn ReadView` stand where an `impl ReadView` is taken.
struct BoxedView<'a>(&'a dyn ReadView);

impl ReadView for BoxedView<'_> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.0.get(cf, key)
    }
    fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        self.0.scan(cf, start, end, visit)
    }
}
