//! [`Importer`]: lays out a new member's state from records brought in from
//! elsewhere (an etcd snapshot file): key versions, leases, the auth store
//! (users, roles, the enabled flag and revision), the revision and compact
//! revision, and the same bootstrap a new cluster writes, so
//! every member restored from the same records with the same configuration
//! starts as one cluster.
//!
//! Records are written in batches of about [`BATCH_BYTES`], so an import of
//! any size holds bounded memory; only the last batch is synced, which
//! makes every earlier one durable too (one write-ahead log). An importer
//! only writes into an empty engine: a caller that wants all-or-nothing
//! imports into a fresh directory and moves it into place when
//! [`Importer::finish`] returns.

use super::auth::{AuthState, ROOT};
use super::export::Version;
use super::lease::{lease_key, lease_value};
use super::mvcc::encoding::{encode_key, Record};
use super::peer::bootstrap;
use crate::engine::{Cf, Engine, WriteBatch};
use crate::pb::authpb::{Role, User};
use crate::{keys, Config, Error, Result};

/// Bytes staged before a batch is written.
pub const BATCH_BYTES: usize = 4 << 20;

/// Writes imported records into an empty engine (see the module docs).
pub struct Importer<E: Engine> {
    engine: E,
    wb: WriteBatch,
    staged: usize,
    newest: i64,
    versions: u64,
    leases: u64,
    auth: AuthState,
}

impl<E: Engine> std::fmt::Debug for Importer<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer").field("versions", &self.versions).field("leases", &self.leases).finish()
    }
}

impl<E: Engine> Importer<E> {
    /// An importer into `engine`, which must hold no member state.
    pub fn new(engine: E) -> Result<Self> {
        let mut used =
            engine.get(Cf::Meta, keys::CONF_STATE)?.is_some() || engine.get(Cf::Raft, keys::HARD_STATE)?.is_some();
        for cf in [Cf::Kv, Cf::Lease] {
            engine.scan(cf, b"", None, &mut |_, _| {
                used = true;
                false
            })?;
        }
        if used {
            return Err(Error::invalid("cannot import into a store that already holds a member"));
        }
        Ok(Importer {
            engine,
            wb: WriteBatch::new(),
            staged: 0,
            newest: 0,
            versions: 0,
            leases: 0,
            auth: AuthState::default(),
        })
    }

    /// Adds one version of a key. A version must have a positive revision
    /// and a sub revision that is not negative; a live one was created at
    /// or before it, with a positive version count and a lease id that is
    /// not negative.
    pub fn version(&mut self, v: &Version) -> Result<()> {
        let bad = |why: &str| {
            Err(Error::invalid(format!(
                "key {:?} at revision {}: {why}",
                String::from_utf8_lossy(&v.key),
                v.mod_revision
            )))
        };
        if v.mod_revision < 1 {
            return bad("the revision must be positive");
        }
        if v.key.is_empty() {
            return bad("the key is empty");
        }
        if v.sub_revision < 0 {
            return bad("the sub revision is negative");
        }
        let record = if v.tombstone {
            Record::tombstone(v.sub_revision)
        } else {
            if !(1..=v.mod_revision).contains(&v.create_revision) {
                return bad("the create revision is not between 1 and the revision");
            }
            if v.version < 1 || v.lease < 0 {
                return bad("the version must be positive and the lease not negative");
            }
            Record {
                tombstone: false,
                create_revision: v.create_revision,
                version: v.version,
                lease: v.lease,
                sub_revision: v.sub_revision,
                value: v.value.clone(),
            }
        };
        let (key, value) = (encode_key(&v.key, v.mod_revision), record.encode());
        self.staged += key.len() + value.len();
        self.wb.put(Cf::Kv, key, value);
        self.newest = self.newest.max(v.mod_revision);
        self.versions += 1;
        self.flush_if_full()
    }

    /// Adds lease `id` (positive) with its granted TTL in seconds (positive).
    pub fn lease(&mut self, id: i64, ttl: i64) -> Result<()> {
        if id <= 0 || ttl <= 0 {
            return Err(Error::invalid(format!("lease {id} with TTL {ttl}: both must be positive")));
        }
        self.wb.put(Cf::Lease, lease_key(id).to_vec(), lease_value(ttl, 0));
        self.staged += 24;
        self.leases += 1;
        self.flush_if_full()
    }

    /// Adds auth user `u` (its name UTF-8 and not empty, as etcd's are).
    pub fn user(&mut self, u: User) -> Result<()> {
        let name = auth_name("user", &u.name)?;
        self.auth.put_user(name, u);
        Ok(())
    }

    /// Adds auth role `r` (its name UTF-8 and not empty).
    pub fn role(&mut self, r: Role) -> Result<()> {
        let name = auth_name("role", &r.name)?;
        self.auth.put_role(name, r);
        Ok(())
    }

    /// Sets whether auth is enabled and the auth revision (positive; 1,
    /// etcd's first, unless set). Checked in [`Importer::finish`]: auth can
    /// only be on with a root user that has the root role, as in etcd.
    pub fn auth(&mut self, enabled: bool, revision: u64) -> Result<()> {
        if revision == 0 {
            return Err(Error::invalid("the auth revision must be positive"));
        }
        self.auth.set_flags(enabled, revision);
        Ok(())
    }

    /// The newest revision among the versions added so far (0 for none).
    pub fn newest_revision(&self) -> i64 {
        self.newest
    }

    /// Versions and leases added so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.versions, self.leases)
    }

    fn flush_if_full(&mut self) -> Result<()> {
        if self.staged >= BATCH_BYTES {
            self.engine.write(std::mem::take(&mut self.wb), false)?;
            self.staged = 0;
        }
        Ok(())
    }

    /// Writes the revision (at least the newest added, and at least 1), the
    /// compact revision (at most the revision) and the bootstrap of the
    /// cluster `cfg.peers` / `cfg.initial_members`, and syncs everything.
    pub fn finish(mut self, cfg: &Config, revision: i64, compact_revision: i64) -> Result<()> {
        let revision = revision.max(self.newest).max(1);
        if !(0..=revision).contains(&compact_revision) {
            return Err(Error::invalid(format!(
                "compact revision {compact_revision} is not between 0 and the revision {revision}"
            )));
        }
        if cfg.peers.is_empty() {
            return Err(Error::invalid("an import needs the cluster's members"));
        }
        if self.auth.enabled() && !self.auth.is_root(ROOT) {
            return Err(Error::invalid("auth is enabled but there is no root user with the root role"));
        }
        self.auth.stage_all(&mut self.wb);
        self.wb.put(Cf::Meta, keys::REVISION.to_vec(), revision.to_be_bytes().to_vec());
        self.wb.put(Cf::Meta, keys::COMPACT_REVISION.to_vec(), compact_revision.to_be_bytes().to_vec());
        bootstrap(cfg, &mut self.wb)?;
        self.engine.write(self.wb, true)
    }
}

/// An auth user's or role's name as a string.
fn auth_name(what: &str, name: &[u8]) -> Result<String> {
    match std::str::from_utf8(name) {
        Ok(n) if !n.is_empty() => Ok(n.to_owned()),
        _ => Err(Error::invalid(format!("auth {what} {name:02x?}: the name must be UTF-8 and not empty"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::export::Export;
    use crate::engine::MemEngine;

    fn v(key: &str, rev: i64, create: i64, version: i64, lease: i64) -> Version {
        let value = format!("{key}@{rev}").into_bytes();
        Version {
            key: key.into(),
            mod_revision: rev,
            create_revision: create,
            version,
            lease,
            value,
            ..Default::default()
        }
    }

    #[test]
    fn import_then_export_gives_back_the_records() {
        let engine = MemEngine::new();
        let mut imp = Importer::new(engine.clone()).expect("empty");
        let tomb = Version { key: b"b".to_vec(), mod_revision: 4, tombstone: true, ..Default::default() };
        // "c" then "a" at revision 5, as a txn writes them.
        let c5 = Version { sub_revision: 0, ..v("c", 5, 5, 1, 0) };
        let a5 = Version { sub_revision: 1, ..v("a", 5, 2, 2, 0) };
        let input = [v("a", 2, 2, 1, 0), v("b", 3, 3, 1, 7), tomb.clone(), a5, c5];
        for x in &input {
            imp.version(x).expect("version");
        }
        imp.lease(7, 60).expect("lease");
        let root = User {
            name: ROOT.into(),
            password: b"$2a$10$hash".to_vec().into(),
            roles: vec![ROOT.into()],
            ..Default::default()
        };
        let reader = Role { name: b"reader".to_vec().into(), ..Default::default() };
        imp.user(root.clone()).expect("user");
        imp.role(reader.clone()).expect("role");
        imp.auth(true, 9).expect("auth");
        let cfg = Config { peers: vec![1, 2], ..Config::new(1) };
        imp.finish(&cfg, 0, 3).expect("finish");
        let ex = Export::new(engine.snapshot());
        let auth = ex.auth().expect("auth");
        assert!(auth.enabled() && auth.revision() == 9, "{auth:?}");
        assert_eq!((auth.user(ROOT), auth.role("reader")), (Some(&root), Some(&reader)));
        assert_eq!(ex.revision().expect("rev"), 5);
        assert_eq!(ex.compact_revision().expect("compact"), 3);
        assert_eq!(ex.leases().expect("leases"), vec![(7, 60)]);
        assert_eq!(ex.conf_state().expect("cs").0, vec![1, 2]);
        let mut got = Vec::new();
        ex.versions(|x| {
            got.push(x);
            Ok::<_, Error>(())
        })
        .expect("versions");
        assert_eq!(got, vec![input[3].clone(), input[0].clone(), tomb, input[1].clone(), input[4].clone()]);
        assert!(Importer::new(engine).is_err(), "a used store is refused");
    }

    #[test]
    fn bad_records_are_refused() {
        let mut imp = Importer::new(MemEngine::new()).expect("empty");
        let negative_sub = Version { sub_revision: -1, ..v("a", 2, 2, 1, 0) };
        for bad in [
            v("a", 0, 0, 1, 0),
            v("a", 2, 3, 1, 0),
            v("a", 2, 2, 0, 0),
            v("a", 2, 2, 1, -1),
            v("", 2, 2, 1, 0),
            negative_sub,
        ] {
            assert!(imp.version(&bad).is_err(), "{bad:?}");
        }
        assert!(imp.lease(0, 5).is_err() && imp.lease(5, 0).is_err());
        assert!(
            imp.user(User::default()).is_err()
                && imp.role(Role { name: vec![0xFF].into(), ..Default::default() }).is_err()
        );
        assert!(imp.auth(true, 0).is_err());
        let cfg = Config { peers: vec![1], ..Config::new(1) };
        assert!(imp.finish(&cfg, 3, 4).is_err());
        let mut no_root = Importer::new(MemEngine::new()).expect("empty");
        no_root.auth(true, 2).expect("flags");
        assert!(no_root.finish(&cfg, 1, 0).is_err(), "auth on without a root user");
    }
}
