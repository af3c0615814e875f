//! etcd's authentication store: users, roles, key-range permissions, the
//! enabled flag and the auth revision, as replicated state.
//!
//! Every member applies the same [`AuthChange`]s in log order, so every
//! member holds the same [`AuthState`]; its records live in [`Cf::Meta`]
//! (`auth/…`) beside the applied index, so they are written in the apply
//! batch, carried by raft snapshots with the rest of `meta` and reloaded
//! on open and after an install ([`AuthStore::load`]).
//!
//! Checks follow etcd: with auth enabled every command that carries an
//! [`AuthInfo`] is checked when it *applies* (writes) — under the state of
//! that moment, so a permission revoked after the proposer's check cannot
//! be bypassed — and a key-range command checked at an older auth revision
//! is refused with [`AuthError::OldRevision`] (the proposer checks and
//! proposes it again, unless the revision came with a JWT). Reads are checked by whoever serves them, against the published
//! state ([`AuthShared::state`]).
//!
//! Passwords arrive hashed (bcrypt, by the proposer, off the node thread);
//! checking one is also the caller's business, against the published hash.

pub mod perm;
pub mod tokens;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use prost::Message as _;

use crate::api::{request_op::Request, RequestOp};
use crate::command::{AuthChange, AuthInfo, Op};
use crate::engine::{Cf, ReadView, WriteBatch};
use crate::error::AuthError;
use crate::pb::authpb::{Permission, Role, User};
use crate::{keys, Error, Result};

pub use perm::Access;
pub use tokens::SimpleTokens;

/// The name of the superuser and of the role that makes a user one.
pub const ROOT: &str = "root";

/// The auth store as of some applied index: cheap to share (`Arc`), copied
/// on change.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthState {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
}

impl Default for AuthState {
    fn default() -> Self {
        // etcd's store starts at revision 1.
        AuthState { enabled: false, revision: 1, users: BTreeMap::new(), roles: BTreeMap::new() }
    }
}

impl AuthState {
    /// True when authentication is enabled.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The auth revision: raised by every change.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// User `name`.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// Every user name, sorted.
    pub fn user_names(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    /// Role `name`.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    /// Every role name, sorted.
    pub fn role_names(&self) -> Vec<String> {
        self.roles.keys().cloned().collect()
    }

    /// True if `user` exists and has the `root` role.
    pub fn is_root(&self, user: &str) -> bool {
        self.users.get(user).is_some_and(|u| u.roles.iter().any(|r| r == ROOT))
    }

    /// True if `user` may access `[key, range_end)` (etcd's reading): auth
    /// disabled, a root user, or the user's roles' permissions cover it.
    pub fn permitted(&self, user: &str, access: Access, key: &[u8], range_end: &[u8]) -> bool {
        if !self.enabled || self.is_root(user) {
            return true;
        }
        let Some(u) = self.users.get(user) else { return false };
        let perms = u.roles.iter().filter_map(|r| self.roles.get(r)).flat_map(|r| r.key_permission.iter());
        perm::covered(perms, access, key, range_end)
    }

    /// The first refusal for `user` accessing the given key ranges.
    pub fn check_access(&self, user: &str, wants: &[(Access, &[u8], &[u8])]) -> Result<()> {
        self.check_user(user)?;
        if wants.iter().all(|(a, k, e)| self.permitted(user, *a, k, e)) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied.into())
        }
    }

    /// [`AuthState::check_access`] for a caller whose credentials date from
    /// auth `revision` (a JWT carries the one it was issued at), in etcd's
    /// order: no user, then a revision older than the store's
    /// ([`AuthError::OldRevision`]), then an unknown user and the
    /// permissions. etcd makes this check on key ranges only: reads, writes,
    /// watches and the keys of a revoked lease.
    pub fn check_access_at(&self, user: &str, revision: u64, wants: &[(Access, &[u8], &[u8])]) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        if user.is_empty() {
            return Err(AuthError::UserEmpty.into());
        }
        if revision < self.revision {
            return Err(AuthError::OldRevision.into());
        }
        self.check_access(user, wants)
    }

    /// With auth enabled, refuses an empty or unknown user.
    pub fn check_user(&self, user: &str) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        if user.is_empty() {
            return Err(AuthError::UserEmpty.into());
        }
        if !self.users.contains_key(user) {
            return Err(AuthError::PermissionDenied.into());
        }
        Ok(())
    }

    /// With auth enabled, refuses anyone but a root user (admin calls), in
    /// etcd's words: no user ([`AuthError::UserEmpty`]), a user that does
    /// not exist (a client certificate's CN may name anyone:
    /// [`AuthError::UserNotFound`]), a user without the root role
    /// ([`AuthError::PermissionDenied`]).
    pub fn check_admin(&self, user: &str) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        if user.is_empty() {
            return Err(AuthError::UserEmpty.into());
        }
        if !self.users.contains_key(user) {
            return Err(AuthError::UserNotFound.into());
        }
        if !self.is_root(user) {
            return Err(AuthError::PermissionDenied.into());
        }
        Ok(())
    }

    /// Checks an operation run as `info`, as it applies: the user, then
    /// (for key ranges, with the revision: see
    /// [`AuthState::check_access_at`]) what it reads and writes.
    /// `lease_keys` gives the keys attached to a lease (revoking one writes
    /// them).
    pub fn check_op(&self, info: &AuthInfo, op: &Op, lease_keys: &dyn Fn(i64) -> Vec<Bytes>) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let user = info.user.as_str();
        match op {
            Op::Auth(a) if matches!(a.change, Some(AuthChange::Authenticate(_))) => Ok(()),
            Op::Auth(_) | Op::MemberAdd(_) | Op::MemberRemove(_) | Op::MemberPromote(_) | Op::MemberUpdate(_) => {
                self.check_admin(user)
            }
            Op::LeaseRevoke(r) => {
                self.check_user(user)?;
                let keys = lease_keys(r.id);
                let wants: Vec<_> = keys.iter().map(|k| (Access::Write, k.as_ref(), &[][..])).collect();
                if wants.is_empty() {
                    return Ok(());
                }
                self.check_access_at(user, info.revision, &wants)
            }
            Op::Compact(_) | Op::LeaseGrant(_) | Op::LeaseKeepAlive(_) => self.check_user(user),
            // etcd 3.5 checks no permission on Alarm (its auth maintenance
            // server passes it through).
            Op::Alarm(_) => Ok(()),
            Op::Put(_) | Op::DeleteRange(_) | Op::Txn(_) => {
                let mut wants = Vec::new();
                kv_access(op, &mut wants);
                let wants: Vec<_> = wants.iter().map(|(a, k, e)| (*a, k.as_ref(), e.as_ref())).collect();
                self.check_access_at(user, info.revision, &wants)
            }
        }
    }
}

/// The key ranges a key-value operation reads and writes.
fn kv_access(op: &Op, out: &mut Vec<(Access, Bytes, Bytes)>) {
    fn request(r: &Request, out: &mut Vec<(Access, Bytes, Bytes)>) {
        match r {
            Request::RequestRange(g) => out.push((Access::Read, g.key.clone(), g.range_end.clone())),
            Request::RequestPut(p) => {
                out.push((Access::Write, p.key.clone(), Bytes::new()));
                if p.prev_kv {
                    out.push((Access::Read, p.key.clone(), Bytes::new()));
                }
            }
            Request::RequestDeleteRange(d) => {
                out.push((Access::Write, d.key.clone(), d.range_end.clone()));
                if d.prev_kv {
                    out.push((Access::Read, d.key.clone(), d.range_end.clone()));
                }
            }
            Request::RequestTxn(t) => txn(t, out),
        }
    }
    fn txn(t: &crate::api::TxnRequest, out: &mut Vec<(Access, Bytes, Bytes)>) {
        for c in &t.compare {
            out.push((Access::Read, c.key.clone(), c.range_end.clone()));
        }
        // Both branches, whichever runs (etcd's rule): the outcome of the
        // compare must not decide whether the check happens.
        for RequestOp { request: op } in t.success.iter().chain(t.failure.iter()) {
            if let Some(r) = op {
                request(r, out);
            }
        }
    }
    match op {
        Op::Put(p) => request(&Request::RequestPut(p.clone()), out),
        Op::DeleteRange(d) => request(&Request::RequestDeleteRange(d.clone()), out),
        Op::Txn(t) => txn(t, out),
        _ => {}
    }
}

/// What the node thread shares with the handles: the published state and
/// the simple tokens.
#[derive(Debug, Default)]
pub struct AuthShared {
    state: RwLock<Arc<AuthState>>,
    tokens: SimpleTokens,
}

impl AuthShared {
    /// The auth state as of the member's last applied auth change.
    pub fn state(&self) -> Arc<AuthState> {
        Arc::clone(&self.state.read())
    }

    /// The member's simple tokens.
    pub fn tokens(&self) -> &SimpleTokens {
        &self.tokens
    }
}

/// The auth store of one member: the state, its records and the tokens.
#[derive(Debug)]
pub struct AuthStore {
    state: Arc<AuthState>,
    shared: Arc<AuthShared>,
    ticks_per_second: u64,
}

fn user_key(name: &str) -> Vec<u8> {
    [keys::AUTH_USER_PREFIX, name.as_bytes()].concat()
}

fn role_key(name: &str) -> Vec<u8> {
    [keys::AUTH_ROLE_PREFIX, name.as_bytes()].concat()
}

fn scan<M: prost::Message + Default>(view: &impl ReadView, prefix: &[u8]) -> Result<BTreeMap<String, M>> {
    let mut out = BTreeMap::new();
    let end = crate::engine::prefix_end(prefix);
    view.try_scan(Cf::Meta, prefix, end.as_deref(), &mut |k, v| {
        let name = std::str::from_utf8(&k[prefix.len()..])
            .map_err(|_| Error::Corruption(format!("auth record {k:02x?}")))?
            .to_owned();
        out.insert(name, M::decode(v)?);
        Ok(true)
    })?;
    Ok(out)
}

impl AuthState {
    /// The auth records in `view`.
    pub(crate) fn load(view: &impl ReadView) -> Result<Self> {
        let enabled = view.get(Cf::Meta, keys::AUTH_ENABLED)?.is_some_and(|v| v.first() == Some(&1));
        let revision = view.get(Cf::Meta, keys::AUTH_REVISION)?.map(|v| keys::decode_u64(&v)).transpose()?;
        Ok(AuthState {
            enabled,
            revision: revision.unwrap_or(1),
            users: scan(view, keys::AUTH_USER_PREFIX)?,
            roles: scan(view, keys::AUTH_ROLE_PREFIX)?,
        })
    }

    /// Sets the enabled flag and the revision (for an import).
    pub(crate) fn set_flags(&mut self, enabled: bool, revision: u64) {
        self.enabled = enabled;
        self.revision = revision;
    }

    /// Adds or replaces user `u` (for an import).
    pub(crate) fn put_user(&mut self, name: String, u: User) {
        self.users.insert(name, u);
    }

    /// Adds or replaces role `r` (for an import).
    pub(crate) fn put_role(&mut self, name: String, r: Role) {
        self.roles.insert(name, r);
    }

    /// Stages every record of this state in `wb` (into a store without any).
    pub(crate) fn stage_all(&self, wb: &mut WriteBatch) {
        stage_diff(&AuthState::default(), self, wb);
    }
}

impl AuthStore {
    /// Loads the auth records in `view`, publishing them through `shared`
    /// (a reload after a snapshot install keeps the same `shared`).
    pub fn load(view: &impl ReadView, shared: Arc<AuthShared>, tick: std::time::Duration) -> Result<Self> {
        let state = Arc::new(AuthState::load(view)?);
        *shared.state.write() = Arc::clone(&state);
        let ticks_per_second = (1000 / tick.as_millis().max(1)).max(1) as u64;
        Ok(AuthStore { state, shared, ticks_per_second })
    }

    /// The current state.
    pub fn state(&self) -> &AuthState {
        &self.state
    }

    /// What the handles see.
    pub fn shared(&self) -> &Arc<AuthShared> {
        &self.shared
    }

    /// Tells the token table the time.
    pub fn tick(&self, now: u64) {
        self.shared.tokens.tick(now);
    }

    /// Applies a change, staging its records in `wb`; returns the auth
    /// revision after it.
    pub fn apply(&mut self, change: &AuthChange, wb: &mut WriteBatch) -> Result<u64> {
        let mut next = (*self.state).clone();
        let changed = change_state(&mut next, change, &self.shared.tokens, self.ticks_per_second)?;
        if changed {
            next.revision += 1;
            stage_diff(&self.state, &next, wb);
            self.state = Arc::new(next);
            *self.shared.state.write() = Arc::clone(&self.state);
        }
        if matches!(change, AuthChange::Disable(_)) {
            self.shared.tokens.clear();
        }
        Ok(self.state.revision)
    }
}

/// Writes what differs between `old` and `new`.
fn stage_diff(old: &AuthState, new: &AuthState, wb: &mut WriteBatch) {
    wb.put(Cf::Meta, keys::AUTH_ENABLED.to_vec(), vec![u8::from(new.enabled)]);
    wb.put(Cf::Meta, keys::AUTH_REVISION.to_vec(), new.revision.to_be_bytes().to_vec());
    for (name, u) in &new.users {
        if old.users.get(name) != Some(u) {
            wb.put(Cf::Meta, user_key(name), u.encode_to_vec());
        }
    }
    for name in old.users.keys().filter(|n| !new.users.contains_key(*n)) {
        wb.delete(Cf::Meta, user_key(name));
    }
    for (name, r) in &new.roles {
        if old.roles.get(name) != Some(r) {
            wb.put(Cf::Meta, role_key(name), r.encode_to_vec());
        }
    }
    for name in old.roles.keys().filter(|n| !new.roles.contains_key(*n)) {
        wb.delete(Cf::Meta, role_key(name));
    }
}

/// etcd's rules for each change. Returns whether the state changed (a
/// no-op keeps the revision, as etcd's does).
fn change_state(s: &mut AuthState, change: &AuthChange, tokens: &SimpleTokens, tps: u64) -> Result<bool> {
    let err = |e: AuthError| Err(Error::Auth(e));
    match change {
        AuthChange::Enable(_) => {
            if s.enabled {
                return Ok(false);
            }
            let Some(root) = s.users.get(ROOT) else { return err(AuthError::RootUserMissing) };
            if !root.roles.iter().any(|r| r == ROOT) {
                return err(AuthError::RootRoleMissing);
            }
            s.enabled = true;
        }
        AuthChange::Disable(_) => {
            if !s.enabled {
                return Ok(false);
            }
            s.enabled = false;
        }
        AuthChange::Authenticate(t) => {
            if !s.enabled {
                return err(AuthError::NotEnabled);
            }
            if !s.users.contains_key(&t.user) {
                return err(AuthError::AuthFailed);
            }
            tokens.insert(t.token.clone(), t.user.clone(), t.ttl_seconds.saturating_mul(tps));
            return Ok(false);
        }
        AuthChange::UserAdd(r) => {
            if r.name.is_empty() {
                return err(AuthError::UserEmpty);
            }
            if s.users.contains_key(&r.name) {
                return err(AuthError::UserExists);
            }
            let user = User {
                name: Bytes::from(r.name.clone().into_bytes()),
                password: Bytes::from(r.hashed_password.clone().into_bytes()),
                roles: Vec::new(),
                options: r.options,
            };
            s.users.insert(r.name.clone(), user);
        }
        AuthChange::UserDelete(r) => {
            if s.enabled && r.name == ROOT {
                return err(AuthError::InvalidAuthMgmt);
            }
            if s.users.remove(&r.name).is_none() {
                return err(AuthError::UserNotFound);
            }
            tokens.invalidate_user(&r.name);
        }
        AuthChange::UserChangePassword(r) => {
            let Some(u) = s.users.get_mut(&r.name) else { return err(AuthError::UserNotFound) };
            u.password = Bytes::from(r.hashed_password.clone().into_bytes());
            tokens.invalidate_user(&r.name);
        }
        AuthChange::UserGrantRole(r) => {
            if r.role != ROOT && !s.roles.contains_key(&r.role) {
                return err(AuthError::RoleNotFound);
            }
            let Some(u) = s.users.get_mut(&r.user) else { return err(AuthError::UserNotFound) };
            match u.roles.binary_search(&r.role) {
                Ok(_) => return Ok(false),
                Err(at) => u.roles.insert(at, r.role.clone()),
            }
        }
        AuthChange::UserRevokeRole(r) => {
            if s.enabled && r.name == ROOT && r.role == ROOT {
                return err(AuthError::InvalidAuthMgmt);
            }
            let Some(u) = s.users.get_mut(&r.name) else { return err(AuthError::UserNotFound) };
            match u.roles.binary_search(&r.role) {
                Ok(at) => {
                    u.roles.remove(at);
                }
                Err(_) => return err(AuthError::RoleNotGranted),
            }
        }
        AuthChange::RoleAdd(r) => {
            if r.name.is_empty() {
                return err(AuthError::RoleEmpty);
            }
            if s.roles.contains_key(&r.name) {
                return err(AuthError::RoleExists);
            }
            s.roles.insert(
                r.name.clone(),
                Role { name: Bytes::from(r.name.clone().into_bytes()), key_permission: vec![] },
            );
        }
        AuthChange::RoleDelete(r) => {
            if s.enabled && r.role == ROOT {
                return err(AuthError::InvalidAuthMgmt);
            }
            if s.roles.remove(&r.role).is_none() {
                return err(AuthError::RoleNotFound);
            }
            for u in s.users.values_mut() {
                u.roles.retain(|x| *x != r.role);
            }
        }
        AuthChange::RoleGrantPermission(r) => {
            let Some(p) = r.perm.as_ref() else { return err(AuthError::PermissionNotGiven) };
            let Some(role) = s.roles.get_mut(&r.name) else { return err(AuthError::RoleNotFound) };
            grant(role, p.clone());
        }
        AuthChange::RoleRevokePermission(r) => {
            let Some(role) = s.roles.get_mut(&r.role) else { return err(AuthError::RoleNotFound) };
            let before = role.key_permission.len();
            role.key_permission.retain(|p| !(p.key == r.key && p.range_end == r.range_end));
            if role.key_permission.len() == before {
                return err(AuthError::PermissionNotGranted);
            }
        }
    }
    Ok(true)
}

/// Adds `p` to `role`, sorted by key; a permission on the same keys changes
/// type instead of appearing twice (etcd's rule).
fn grant(role: &mut Role, p: Permission) {
    match role.key_permission.iter_mut().find(|q| q.key == p.key && q.range_end == p.range_end) {
        Some(q) => q.perm_type = p.perm_type,
        None => {
            let at = role.key_permission.partition_point(|q| (&q.key, &q.range_end) < (&p.key, &p.range_end));
            role.key_permission.insert(at, p);
        }
    }
}

#[cfg(test)]
mod tests;
