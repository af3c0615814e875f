//! Who a request is: tokens, and the client certificate's CN under
//! `--client-cert-auth` (the extension the TLS acceptor inserts, inserted
//! here by hand).

use std::time::Duration;

use raft_kv::pb::authpb::permission::Type;
use raft_kv::pb::authpb::Permission;
use raft_kv::pb::etcdserverpb as pb;
use raft_kv::{AuthChange, Config, MemEngine, Node};
use tonic::Code;

use super::*;

fn node_with_alice() -> Node {
    let node = Node::builder(Config::new(1).peers(vec![1])).engine(MemEngine::new()).start().expect("start");
    node.wait_leader(Duration::from_secs(10)).expect("leader");
    let user = |name: &str| {
        AuthChange::UserAdd(pb::AuthUserAddRequest {
            name: name.into(),
            hashed_password: "x".into(),
            ..Default::default()
        })
    };
    let grant = |user: &str, role: &str| {
        AuthChange::UserGrantRole(pb::AuthUserGrantRoleRequest { user: user.into(), role: role.into() })
    };
    let perm = Permission { perm_type: Type::Read as i32, key: "/app/".into(), range_end: "/app0".into() };
    for change in [
        user("root"),
        grant("root", "root"),
        user("alice"),
        AuthChange::RoleAdd(pb::AuthRoleAddRequest { name: "app".into() }),
        AuthChange::RoleGrantPermission(pb::AuthRoleGrantPermissionRequest { name: "app".into(), perm: Some(perm) }),
        grant("alice", "app"),
        AuthChange::Enable(pb::AuthEnableRequest {}),
    ] {
        node.auth_change(change).expect("auth change");
    }
    node
}

#[test]
fn the_client_certificate_cn_is_the_user_when_there_is_no_token() {
    let node = node_with_alice();
    let node = node.to_async();
    let authn = Authn::new("simple", 300, 4).expect("authn");
    let mut req = tonic::Request::new(());
    req.extensions_mut().insert(ClientCertCn("alice".into()));
    let id = Identity::of(&req);
    assert_eq!(authn.user(&node, &id).expect("user"), "alice");
    assert!(authn.check_read(&node, &id, b"/app/a", b"").is_ok());
    let denied = authn.check_read(&node, &id, b"/other", b"").expect_err("denied");
    assert_eq!((denied.code(), denied.message()), (Code::PermissionDenied, "etcdserver: permission denied"));
    assert_eq!(authn.check_admin(&node, &id).expect_err("not root").code(), Code::PermissionDenied);
    // A token wins over the certificate; a bad one is refused.
    req.metadata_mut().insert("token", "bogus.1".parse().expect("metadata"));
    let bad = authn.user(&node, &Identity::of(&req)).expect_err("invalid token");
    assert_eq!((bad.code(), bad.message()), (Code::Unauthenticated, "etcdserver: invalid auth token"));
    // No token and no certificate: nobody.
    let nobody = authn.check_read(&node, &Identity::default(), b"/app/a", b"").expect_err("nobody");
    assert_eq!(nobody.message(), "etcdserver: user name is empty");
    node.shutdown();
}

#[test]
fn token_flags_parse_like_etcds() {
    assert!(matches!(TokenKind::parse("simple", Duration::from_secs(300)), Ok(TokenKind::Simple { .. })));
    assert!(TokenKind::parse("jwt,sign-method=RS256", Duration::from_secs(1)).is_err(), "no keys");
    assert!(TokenKind::parse("magic", Duration::from_secs(1)).is_err());
    assert!(Authn::new("simple", 300, 3).is_err(), "bcrypt cost below 4");
}
