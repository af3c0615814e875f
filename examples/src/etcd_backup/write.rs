//! [`write_snapshot`]: a member's state machine as an etcd 3.5 backend
//! database, built on disk with bounded memory.
//!
//! raft-kv keeps versions in key order; etcd's `key` bucket is in revision
//! order. So the (revision, key) pairs are first sorted through a scratch
//! RocksDB in a temporary directory (big-endian revision, then the user
//! key: unique, since a key has one version per revision; no values), then
//! walked in revision order, each version read back from the member's view
//! and handed to the bbolt writer, which holds one page per tree level.
//! Memory is the scratch store's write buffer (keys only) plus one version
//! and a few pages, whatever the store's size; disk is the file plus the
//! keys. (A counting pass that lays out pages without a sort would need the
//! revision order too; an external sort is the simplest bounded one.)

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom};
use std::path::Path;

use prost::Message as _;
use raft_kv::engine::{Cf, ReadView, WriteBatch};
use raft_kv::pb::mvccpb::KeyValue;
use raft_kv::{Engine, Export, RocksEngine};

use super::*;
use crate::bbolt::{Writer, PAGE_SIZE};

/// Bytes staged in the scratch store before a batch is written.
const BATCH_BYTES: usize = 4 << 20;

/// Writes `ex` as an etcd snapshot database into an unnamed temporary
/// file in `dir` (gone once closed), and returns it, rewound, with its
/// length. The SHA-256 trailer is the streamer's to add.
pub fn write_snapshot(ex: &Export, dir: &Path) -> Result<(File, u64)> {
    let scratch = tempfile::Builder::new().prefix(".snapshot-sort-").tempdir_in(dir)?;
    let sorted = sort_by_revision(ex, scratch.path())?;
    let file = tempfile::tempfile_in(dir)?;
    let mut w = Writer::new(BufWriter::new(file), PAGE_SIZE)?;
    w.bucket(b"alarm")?.finish()?;
    write_auth(&mut w, &ex.auth()?)?;
    one(&mut w, b"cluster", b"clusterVersion", CLUSTER_VERSION.as_bytes())?;
    write_keys(&mut w, ex, &sorted)?;
    drop(sorted);
    drop(scratch);
    let mut leases = w.bucket(b"lease")?;
    for (id, ttl) in ex.leases()? {
        leases.put(&id.to_be_bytes(), &Lease { id, ttl, remaining_ttl: 0 }.encode_to_vec())?;
    }
    leases.finish()?;
    let mut members: Vec<_> = ex.members()?.into_iter().map(|m| (member_key(m.id), member_json(&m))).collect();
    members.sort();
    let mut bucket = w.bucket(b"members")?;
    for (key, json) in &members {
        bucket.put(key.as_bytes(), json.as_bytes())?;
    }
    bucket.finish()?;
    let mut removed: Vec<_> = ex.removed_members()?.into_iter().map(member_key).collect();
    removed.sort();
    let mut bucket = w.bucket(b"members_removed")?;
    for key in &removed {
        bucket.put(key.as_bytes(), REMOVED_MARK)?;
    }
    bucket.finish()?;
    let (index, term) = ex.applied()?;
    let (voters, learners) = ex.conf_state()?;
    let mut conf = serde_json::json!({ "voters": voters, "auto_leave": false });
    if !learners.is_empty() {
        conf["learners"] = serde_json::json!(learners);
    }
    let mut meta = w.bucket(b"meta")?;
    meta.put(b"confState", conf.to_string().as_bytes())?;
    meta.put(b"consistent_index", &index.to_be_bytes())?;
    let compact = ex.compact_revision()?;
    if compact > 0 {
        meta.put(b"finishedCompactRev", &rev_key(compact, 0, false))?;
        meta.put(b"scheduledCompactRev", &rev_key(compact, 0, false))?;
    }
    meta.put(b"term", &term.to_be_bytes())?;
    meta.finish()?;
    let (out, len) = w.finish()?;
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_data()?;
    file.seek(SeekFrom::Start(0))?;
    Ok((file, len))
}

/// A bucket with one key.
fn one(w: &mut Writer<BufWriter<File>>, bucket: &[u8], key: &[u8], value: &[u8]) -> Result<()> {
    let mut b = w.bucket(bucket)?;
    b.put(key, value)?;
    b.finish()?;
    Ok(())
}

/// The `auth` bucket (`authEnabled`, one byte, and `authRevision`, a
/// big-endian u64) and the `authRoles` / `authUsers` buckets (an
/// `authpb.Role` / `authpb.User` under its name), as etcd 3.5 keeps them.
fn write_auth(w: &mut Writer<BufWriter<File>>, auth: &raft_kv::AuthState) -> Result<()> {
    let mut b = w.bucket(b"auth")?;
    b.put(AUTH_ENABLED, &[u8::from(auth.enabled())])?;
    b.put(AUTH_REVISION, &auth.revision().to_be_bytes())?;
    b.finish()?;
    let mut b = w.bucket(b"authRoles")?;
    for name in auth.role_names() {
        let role = auth.role(&name).ok_or_else(|| Error::Snapshot(format!("role {name:?} vanished")))?;
        b.put(name.as_bytes(), &role.encode_to_vec())?;
    }
    b.finish()?;
    let mut b = w.bucket(b"authUsers")?;
    for name in auth.user_names() {
        let user = auth.user(&name).ok_or_else(|| Error::Snapshot(format!("user {name:?} vanished")))?;
        b.put(name.as_bytes(), &user.encode_to_vec())?;
    }
    b.finish()?;
    Ok(())
}

/// A member as etcd stores it: its JSON with etcd's field names.
fn member_json(m: &raft_kv::Member) -> String {
    let mut j = serde_json::json!({ "id": m.id, "peerURLs": m.peer_ur_ls, "name": m.name });
    if !m.client_ur_ls.is_empty() {
        j["clientURLs"] = serde_json::json!(m.client_ur_ls);
    }
    if m.is_learner {
        j["isLearner"] = serde_json::json!(true);
    }
    j.to_string()
}

/// Length of a scratch record's revisions: main and sub, 8 bytes each.
const SCRATCH_REVS_LEN: usize = 16;

/// Copies the revisions (main, sub) and key of every version into a
/// scratch store, revisions first (values stay in the member's view: the
/// scratch store holds only keys, so its size and memory do not grow with
/// the values).
fn sort_by_revision(ex: &Export, dir: &Path) -> Result<RocksEngine> {
    let scratch = RocksEngine::open(dir.join("sort"))?;
    let mut wb = WriteBatch::new();
    let mut staged = 0usize;
    ex.versions(|v| -> Result<()> {
        let mut key = Vec::with_capacity(SCRATCH_REVS_LEN + v.key.len());
        key.extend_from_slice(&v.mod_revision.to_be_bytes());
        key.extend_from_slice(&v.sub_revision.to_be_bytes());
        key.extend_from_slice(&v.key);
        staged += key.len();
        wb.put(Cf::Kv, key, Vec::new());
        if staged >= BATCH_BYTES {
            scratch.write(std::mem::take(&mut wb), false)?;
            staged = 0;
        }
        Ok(())
    })?;
    scratch.write(wb, false)?;
    Ok(scratch)
}

/// The `key` bucket in revision order, (main, sub) as the member stored
/// them (revisions from the scratch store, each version read back from the
/// view).
fn write_keys(w: &mut Writer<BufWriter<File>>, ex: &Export, sorted: &RocksEngine) -> Result<()> {
    let mut bucket = w.bucket(b"key")?;
    let mut failure = None;
    sorted.scan(Cf::Kv, b"", None, &mut |k, _| {
        let mut step = || -> Result<()> {
            let bad = || Error::Snapshot("bad scratch record".into());
            let (Some(main), Some(sub), Some(key)) =
                (k.get(..8), k.get(8..SCRATCH_REVS_LEN), k.get(SCRATCH_REVS_LEN..))
            else {
                return Err(bad());
            };
            let main = i64::from_be_bytes(main.try_into().map_err(|_| bad())?);
            let sub = i64::from_be_bytes(sub.try_into().map_err(|_| bad())?);
            let v = ex.version(key, main)?.ok_or_else(|| Error::Snapshot("a version vanished from the view".into()))?;
            bucket.put(&rev_key(main, sub, v.tombstone), &key_value(v).encode_to_vec())?;
            Ok(())
        };
        match step() {
            Ok(()) => true,
            Err(e) => {
                failure = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    bucket.finish()?;
    Ok(())
}

/// A version as etcd stores it: a deletion keeps only the key.
fn key_value(v: raft_kv::Version) -> KeyValue {
    if v.tombstone {
        return KeyValue { key: v.key.into(), ..Default::default() };
    }
    KeyValue {
        key: v.key.into(),
        create_revision: v.create_revision,
        mod_revision: v.mod_revision,
        version: v.version,
        value: v.value.into(),
        lease: v.lease,
    }
}
