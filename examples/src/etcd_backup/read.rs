//! [`read_snapshot`]: loads an etcd 3.5 snapshot file (or a raft-kv one,
//! the same format) into an [`Importer`], checking what it reads: the
//! SHA-256 trailer, the bbolt structure (see [`crate::bbolt::Reader`]), and
//! every revision key, `KeyValue`, lease and auth record.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use prost::Message as _;
use raft_kv::pb::authpb::{Role, User};
use raft_kv::pb::mvccpb::KeyValue;
use raft_kv::{Engine, Importer, Version};
use sha2::Digest;

use super::*;
use crate::bbolt::{Bucket, Reader};

/// What a snapshot held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restored {
    /// The newest revision among its versions.
    pub revision: i64,
    /// Its finished compaction's revision (0 for none).
    pub compact_revision: i64,
    /// Key versions loaded.
    pub versions: u64,
    /// Leases loaded.
    pub leases: u64,
}

/// Checks the SHA-256 trailer of snapshot file `path` as etcdutl does, and
/// returns the length of the database before it. A file of whole 512-byte
/// blocks plus 32 bytes has a trailer, which must match; one without needs
/// `skip_hash_check` (a database copied out of a data directory).
pub fn verify_hash(path: &Path, skip_hash_check: bool) -> Result<u64> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    let has_hash = size % 512 == 32;
    if !has_hash {
        if skip_hash_check {
            return Ok(size);
        }
        return Err(Error::Snapshot("snapshot missing hash but --skip-hash-check=false".into()));
    }
    let db_len = size - 32;
    let mut hasher = sha2::Sha256::new();
    let mut left = db_len;
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let n = buf.len().min(left as usize);
        file.read_exact(&mut buf[..n])?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    let mut want = [0u8; 32];
    file.read_exact(&mut want)?;
    let got: [u8; 32] = hasher.finalize().into();
    if !skip_hash_check && got != want {
        return Err(Error::Snapshot(format!("expected sha256 {want:?}, got {got:?}")));
    }
    Ok(db_len)
}

/// Loads the `key`, `lease` and auth buckets of the database that makes up the
/// first `len` bytes of `path` into `imp`, and returns what it held; the
/// caller finishes the import (it chooses the revision and the members).
pub fn read_snapshot<E: Engine>(path: &Path, len: u64, imp: &mut Importer<E>) -> Result<Restored> {
    let db = Reader::open_len(path, len)?;
    let bucket = |name: &str| -> Result<Bucket> {
        db.bucket(name.as_bytes())?
            .ok_or_else(|| Error::Snapshot(format!("not an etcd snapshot: it has no {name:?} bucket")))
    };
    walk(&db, &bucket("key")?, |k, v, nested| {
        let Some(RevKey { main, sub, tombstone }) = parse_rev_key(k).filter(|_| !nested) else {
            return Err(Error::Snapshot(format!("bad revision key {k:02x?} in the key bucket")));
        };
        let kv = KeyValue::decode(v).map_err(|e| Error::Snapshot(format!("revision {main}: bad KeyValue: {e}")))?;
        let version = if tombstone {
            Version {
                key: kv.key.to_vec(),
                mod_revision: main,
                sub_revision: sub,
                tombstone: true,
                ..Default::default()
            }
        } else {
            Version {
                key: kv.key.to_vec(),
                mod_revision: main,
                sub_revision: sub,
                tombstone: false,
                create_revision: kv.create_revision,
                version: kv.version,
                lease: kv.lease,
                value: kv.value.to_vec(),
            }
        };
        Ok(imp.version(&version)?)
    })?;
    walk(&db, &bucket("lease")?, |k, v, _| {
        let lease = Lease::decode(v).map_err(|e| Error::Snapshot(format!("lease {k:02x?}: {e}")))?;
        if <[u8; 8]>::try_from(k).ok().map(i64::from_be_bytes) != Some(lease.id) {
            return Err(Error::Snapshot(format!("lease key {k:02x?} does not match its record")));
        }
        Ok(imp.lease(lease.id, lease.ttl)?)
    })?;
    read_auth(&db, imp)?;
    let mut compact_revision = 0;
    walk(&db, &bucket("meta")?, |k, v, _| {
        if k == b"finishedCompactRev" {
            match parse_rev_key(v) {
                Some(RevKey { main, tombstone: false, .. }) => compact_revision = main,
                _ => return Err(Error::Snapshot(format!("bad finishedCompactRev {v:02x?}"))),
            }
        }
        Ok(())
    })?;
    let (versions, leases) = imp.counts();
    Ok(Restored { revision: imp.newest_revision(), compact_revision, versions, leases })
}

/// Loads the `auth`, `authUsers` and `authRoles` buckets (any of them may
/// be missing: no users, no roles, auth off at revision 1).
fn read_auth<E: Engine>(db: &Reader, imp: &mut Importer<E>) -> Result<()> {
    let (mut enabled, mut revision) = (false, 1);
    if let Some(b) = db.bucket(b"auth")? {
        walk(db, &b, |k, v, _| {
            match k {
                AUTH_ENABLED => enabled = v == [1],
                AUTH_REVISION => {
                    let rev = <[u8; 8]>::try_from(v).map(u64::from_be_bytes);
                    revision = rev.map_err(|_| Error::Snapshot(format!("bad authRevision {v:02x?}")))?;
                }
                _ => {}
            }
            Ok(())
        })?;
    }
    imp.auth(enabled, revision)?;
    named_records(db, b"authUsers", "user", |u: &User| &u.name, |u| Ok(imp.user(u)?))?;
    named_records(db, b"authRoles", "role", |r: &Role| &r.name, |r| Ok(imp.role(r)?))
}

/// Decodes every record of `bucket` (if there is one), each under its own
/// name as `name` reads it, and hands it to `add`.
fn named_records<M: prost::Message + Default>(
    db: &Reader,
    bucket: &[u8],
    what: &str,
    name: impl Fn(&M) -> &[u8],
    mut add: impl FnMut(M) -> Result<()>,
) -> Result<()> {
    let Some(b) = db.bucket(bucket)? else { return Ok(()) };
    walk(db, &b, |k, v, _| {
        let record = M::decode(v).map_err(|e| Error::Snapshot(format!("{what} {k:02x?}: bad record: {e}")))?;
        if name(&record) != k {
            return Err(Error::Snapshot(format!("{what} key {k:02x?} does not match its record")));
        }
        add(record)
    })
}

/// [`Reader::walk`] with a visitor that fails with this module's errors.
fn walk(db: &Reader, bucket: &Bucket, mut visit: impl FnMut(&[u8], &[u8], bool) -> Result<()>) -> Result<()> {
    let mut failure = None;
    db.walk(bucket, &mut |k, v, nested| match visit(k, v, nested) {
        Ok(()) => Ok(true),
        Err(e) => {
            failure = Some(e);
            Ok(false)
        }
    })?;
    failure.map_or(Ok(()), Err)
}
