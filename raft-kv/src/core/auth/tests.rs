//! The auth state machine: etcd's rules for each change, persistence of the
//! records, and the checks commands get as they apply.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::command::SimpleToken;
use crate::engine::{Engine, MemEngine};
use crate::pb::authpb::permission::Type;
use crate::pb::etcdserverpb as pb;

fn store(engine: &MemEngine) -> AuthStore {
    AuthStore::load(engine, Arc::new(AuthShared::default()), Duration::from_millis(100)).unwrap()
}

fn apply(s: &mut AuthStore, e: &MemEngine, c: AuthChange) -> Result<u64> {
    let mut wb = WriteBatch::new();
    let r = s.apply(&c, &mut wb);
    e.write(wb, false).unwrap();
    r
}

fn user_add(name: &str) -> AuthChange {
    AuthChange::UserAdd(pb::AuthUserAddRequest {
        name: name.into(),
        hashed_password: format!("hash-of-{name}"),
        ..Default::default()
    })
}

fn grant_role(user: &str, role: &str) -> AuthChange {
    AuthChange::UserGrantRole(pb::AuthUserGrantRoleRequest { user: user.into(), role: role.into() })
}

fn grant_perm(role: &str, t: Type, key: &str, end: &str) -> AuthChange {
    AuthChange::RoleGrantPermission(pb::AuthRoleGrantPermissionRequest {
        name: role.into(),
        perm: Some(Permission {
            perm_type: t as i32,
            key: key.as_bytes().to_vec().into(),
            range_end: end.as_bytes().to_vec().into(),
        }),
    })
}

fn auth_err(r: Result<u64>) -> AuthError {
    match r {
        Err(Error::Auth(e)) => e,
        other => panic!("expected an auth error, got {other:?}"),
    }
}

#[test]
fn enabling_needs_root_with_the_root_role() {
    let e = MemEngine::new();
    let mut s = store(&e);
    assert_eq!(s.state().revision(), 1);
    assert_eq!(auth_err(apply(&mut s, &e, AuthChange::Enable(Default::default()))), AuthError::RootUserMissing);
    apply(&mut s, &e, user_add("root")).unwrap();
    assert_eq!(auth_err(apply(&mut s, &e, AuthChange::Enable(Default::default()))), AuthError::RootRoleMissing);
    assert_eq!(auth_err(apply(&mut s, &e, grant_role("root", "nope"))), AuthError::RoleNotFound);
    apply(&mut s, &e, grant_role("root", ROOT)).unwrap();
    let rev = apply(&mut s, &e, AuthChange::Enable(Default::default())).unwrap();
    assert!(s.state().enabled());
    assert_eq!(rev, 4, "user add, grant, enable each raise the revision");
    // Root cannot lose root, nor be deleted, while auth is on.
    let revoke = AuthChange::UserRevokeRole(pb::AuthUserRevokeRoleRequest { name: "root".into(), role: "root".into() });
    assert_eq!(auth_err(apply(&mut s, &e, revoke.clone())), AuthError::InvalidAuthMgmt);
    let del = AuthChange::UserDelete(pb::AuthUserDeleteRequest { name: "root".into() });
    assert_eq!(auth_err(apply(&mut s, &e, del)), AuthError::InvalidAuthMgmt);
    let del_role = AuthChange::RoleDelete(pb::AuthRoleDeleteRequest { role: "root".into() });
    assert_eq!(auth_err(apply(&mut s, &e, del_role)), AuthError::InvalidAuthMgmt);
    // Enabling twice is a no-op at the same revision.
    assert_eq!(apply(&mut s, &e, AuthChange::Enable(Default::default())).unwrap(), 4);
    apply(&mut s, &e, AuthChange::Disable(Default::default())).unwrap();
    apply(&mut s, &e, revoke).unwrap();
    assert!(!s.state().is_root("root"));
}

#[test]
fn users_and_roles_follow_etcds_rules() {
    let e = MemEngine::new();
    let mut s = store(&e);
    apply(&mut s, &e, user_add("alice")).unwrap();
    assert_eq!(auth_err(apply(&mut s, &e, user_add("alice"))), AuthError::UserExists);
    assert_eq!(auth_err(apply(&mut s, &e, user_add(""))), AuthError::UserEmpty);
    let role = |n: &str| AuthChange::RoleAdd(pb::AuthRoleAddRequest { name: n.into() });
    apply(&mut s, &e, role("app")).unwrap();
    assert_eq!(auth_err(apply(&mut s, &e, role("app"))), AuthError::RoleExists);
    assert_eq!(auth_err(apply(&mut s, &e, role(""))), AuthError::RoleEmpty);
    assert_eq!(auth_err(apply(&mut s, &e, grant_role("bob", "app"))), AuthError::UserNotFound);
    let rev = apply(&mut s, &e, grant_role("alice", "app")).unwrap();
    assert_eq!(apply(&mut s, &e, grant_role("alice", "app")).unwrap(), rev, "granting twice changes nothing");
    apply(&mut s, &e, grant_perm("app", Type::Read, "a", "")).unwrap();
    apply(&mut s, &e, grant_perm("app", Type::Readwrite, "a", "")).unwrap();
    assert_eq!(s.state().role("app").unwrap().key_permission.len(), 1, "same keys: the type changes");
    assert_eq!(auth_err(apply(&mut s, &e, grant_perm("nope", Type::Read, "a", ""))), AuthError::RoleNotFound);
    let revoke_perm = |k: &str| {
        AuthChange::RoleRevokePermission(pb::AuthRoleRevokePermissionRequest {
            role: "app".into(),
            key: k.as_bytes().to_vec().into(),
            range_end: Default::default(),
        })
    };
    assert_eq!(auth_err(apply(&mut s, &e, revoke_perm("b"))), AuthError::PermissionNotGranted);
    apply(&mut s, &e, revoke_perm("a")).unwrap();
    let revoke_role =
        AuthChange::UserRevokeRole(pb::AuthUserRevokeRoleRequest { name: "alice".into(), role: "other".into() });
    assert_eq!(auth_err(apply(&mut s, &e, revoke_role)), AuthError::RoleNotGranted);
    apply(&mut s, &e, AuthChange::RoleDelete(pb::AuthRoleDeleteRequest { role: "app".into() })).unwrap();
    assert!(s.state().user("alice").unwrap().roles.is_empty(), "deleting a role takes it from its users");
    let change = AuthChange::UserChangePassword(pb::AuthUserChangePasswordRequest {
        name: "carol".into(),
        ..Default::default()
    });
    assert_eq!(auth_err(apply(&mut s, &e, change)), AuthError::UserNotFound);
}

#[test]
fn state_survives_reload_from_the_engine() {
    let e = MemEngine::new();
    let mut s = store(&e);
    for c in [user_add("root"), grant_role("root", ROOT), user_add("alice")] {
        apply(&mut s, &e, c).unwrap();
    }
    apply(&mut s, &e, AuthChange::RoleAdd(pb::AuthRoleAddRequest { name: "app".into() })).unwrap();
    apply(&mut s, &e, grant_perm("app", Type::Write, "/app/", "/app0")).unwrap();
    apply(&mut s, &e, AuthChange::Enable(Default::default())).unwrap();
    apply(&mut s, &e, AuthChange::UserDelete(pb::AuthUserDeleteRequest { name: "alice".into() })).unwrap();
    let reloaded = store(&e);
    assert_eq!(reloaded.state(), s.state());
    assert!(reloaded.state().user("alice").is_none());
}

#[test]
fn simple_tokens_register_on_apply_and_die_with_their_user() {
    let e = MemEngine::new();
    let mut s = store(&e);
    let token = |user: &str| {
        AuthChange::Authenticate(SimpleToken { user: user.into(), token: format!("t-{user}"), ttl_seconds: 300 })
    };
    assert_eq!(auth_err(apply(&mut s, &e, token("root"))), AuthError::NotEnabled);
    for c in [user_add("root"), grant_role("root", ROOT), user_add("alice"), AuthChange::Enable(Default::default())] {
        apply(&mut s, &e, c).unwrap();
    }
    assert_eq!(auth_err(apply(&mut s, &e, token("bob"))), AuthError::AuthFailed);
    let rev = s.state().revision();
    assert_eq!(apply(&mut s, &e, token("alice")).unwrap(), rev, "sign-ins keep the revision");
    assert_eq!(s.shared().tokens().validate("t-alice").as_deref(), Some("alice"));
    let change = AuthChange::UserChangePassword(pb::AuthUserChangePasswordRequest {
        name: "alice".into(),
        hashed_password: "new".into(),
        ..Default::default()
    });
    apply(&mut s, &e, change).unwrap();
    assert_eq!(s.shared().tokens().validate("t-alice"), None);
}

#[test]
fn commands_are_checked_as_they_apply() {
    let e = MemEngine::new();
    let mut s = store(&e);
    for c in [
        user_add("root"),
        grant_role("root", ROOT),
        user_add("alice"),
        AuthChange::RoleAdd(pb::AuthRoleAddRequest { name: "app".into() }),
        grant_perm("app", Type::Readwrite, "/app/", "/app0"),
        grant_perm("app", Type::Read, "/ro/", "/ro0"),
        grant_role("alice", "app"),
        AuthChange::Enable(Default::default()),
    ] {
        apply(&mut s, &e, c).unwrap();
    }
    let st = s.state().clone();
    let me = AuthInfo { user: "alice".into(), revision: st.revision() };
    let no_leases = |_| Vec::new();
    let check = |info: &AuthInfo, op: Op| st.check_op(info, &op, &no_leases);
    let put = |k: &str| Op::Put(crate::api::PutRequest::new(k.to_owned(), "v"));
    assert!(check(&me, put("/app/x")).is_ok());
    assert_eq!(check(&me, put("/ro/x")), Err(AuthError::PermissionDenied.into()));
    let nobody = AuthInfo { user: String::new(), revision: st.revision() };
    assert_eq!(check(&nobody, put("/app/x")), Err(AuthError::UserEmpty.into()));
    let old = AuthInfo { user: "alice".into(), revision: st.revision() - 1 };
    assert_eq!(check(&old, put("/app/x")), Err(AuthError::OldRevision.into()));
    // etcd checks the revision on key ranges only: not on admin calls or
    // leases without keys.
    let old_root = AuthInfo { user: "root".into(), revision: st.revision() - 1 };
    assert!(check(&old_root, user_add("eve").into()).is_ok());
    assert!(check(&old, Op::LeaseRevoke(crate::command::LeaseRevoke::new(7))).is_ok());
    let root = AuthInfo { user: "root".into(), revision: st.revision() };
    assert!(check(&root, put("/anything")).is_ok());
    // A txn is checked on its compares and both branches.
    let txn = crate::api::TxnRequest::new()
        .when(crate::api::Compare::value("/ro/k", crate::api::CompareResult::Equal, "x"))
        .and_then(crate::api::PutRequest::new("/app/a", "1"))
        .or_else(crate::api::PutRequest::new("/ro/b", "1"));
    assert_eq!(check(&me, Op::Txn(txn)), Err(AuthError::PermissionDenied.into()));
    // Admin changes need root.
    assert_eq!(check(&me, user_add("eve").into()), Err(AuthError::PermissionDenied.into()));
    assert!(check(&root, user_add("eve").into()).is_ok());
    // Revoking a lease writes its keys.
    let leased = |_| vec![Bytes::from_static(b"/ro/leased")];
    let revoke = Op::LeaseRevoke(crate::command::LeaseRevoke::new(7));
    assert_eq!(st.check_op(&me, &revoke, &leased), Err(AuthError::PermissionDenied.into()));
    assert!(st.permitted("alice", Access::Read, b"/ro/", b"/ro0"));
    assert!(!st.permitted("alice", Access::Write, b"/ro/", b"/ro0"));
}

/// The admin check in etcd's words: no user, a user that does not exist
/// (a client certificate's CN can name anyone), a user without root.
#[test]
fn admin_refusals_say_why() {
    let e = MemEngine::new();
    let mut s = store(&e);
    let admin_err = |s: &AuthStore, user: &str| match s.state().check_admin(user) {
        Err(Error::Auth(e)) => Some(e),
        _ => None,
    };
    assert_eq!(admin_err(&s, "mallory"), None, "auth disabled: anyone");
    for c in [user_add("root"), grant_role("root", ROOT), user_add("alice"), AuthChange::Enable(Default::default())] {
        apply(&mut s, &e, c).unwrap();
    }
    assert_eq!(admin_err(&s, ""), Some(AuthError::UserEmpty));
    assert_eq!(admin_err(&s, "mallory"), Some(AuthError::UserNotFound));
    assert_eq!(admin_err(&s, "alice"), Some(AuthError::PermissionDenied));
    assert_eq!(admin_err(&s, "root"), None);
    // Key ranges and other user checks still say permission denied.
    assert!(matches!(s.state().check_user("mallory"), Err(Error::Auth(AuthError::PermissionDenied))));
}
