//! etcd's authentication and RBAC end to end: etcdctl 3.4 and 3.5.1's
//! `user`, `role` and `auth` commands with `--user`, Python `etcd3` with a
//! user and password, the JSON gateway with the token in `Authorization`,
//! a full cluster restart, a member restored by a raft snapshot, JWT
//! tokens, and bad input (wrong password, forged or expired JWT).

mod common;

use std::collections::BTreeSet;
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Cheap hashes: the tests sign in many times.
const FAST: &[&str] = &["--bcrypt-cost", "4"];

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn ok34(ep: &str, args: &[&str]) -> String {
    etcdctl(ep, args)
}

fn ok35(ep: &str, args: &[&str]) -> String {
    let o = etcdctl35_raw(ep, args, None);
    assert!(o.status.success(), "etcdctl 3.5 {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Runs etcdctl 3.4 expecting failure with `message`.
fn fails34(ep: &str, args: &[&str], message: &str) {
    let o = etcdctl_raw(ep, args, None);
    assert!(
        !o.status.success() && text(&o).contains(message),
        "etcdctl {args:?}: wanted {message:?}, got {}",
        text(&o)
    );
}

fn fails35(ep: &str, args: &[&str], message: &str) {
    let o = etcdctl35_raw(ep, args, None);
    assert!(
        !o.status.success() && text(&o).contains(message),
        "etcdctl 3.5 {args:?}: wanted {message:?}, got {}",
        text(&o)
    );
}

/// Users `root` (pw `rootpw`) and `alice` (pw `alicepw`, role `app`:
/// readwrite on `/app/`, read on `/ro/`), auth enabled, set up with
/// etcdctl 3.4.
fn set_up(ep: &str) {
    ok34(ep, &["user", "add", "root:rootpw"]);
    ok34(ep, &["role", "add", "app"]);
    ok34(ep, &["role", "grant-permission", "app", "readwrite", "/app/", "--prefix=true"]);
    ok34(ep, &["role", "grant-permission", "app", "read", "/ro/", "--prefix=true"]);
    ok34(ep, &["user", "add", "alice:alicepw"]);
    ok34(ep, &["user", "grant-role", "alice", "app"]);
    ok34(ep, &["put", "/ro/k", "seed"]);
    // etcdctl grants root the root role itself when enabling needs it.
    assert!(ok34(ep, &["auth", "enable"]).contains("Authentication Enabled"));
}

/// What alice may and may not do, through etcdctl 3.4 and 3.5.1 on `ep`.
fn check_enforced(ep: &str) {
    let alice = ["--user", "alice:alicepw"];
    let with = |args: &[&'static str]| [&alice[..], args].concat();
    assert_eq!(ok35(ep, &with(&["put", "/app/x", "1"])).trim(), "OK");
    assert!(ok34(ep, &with(&["get", "/app/x"])).contains('1'));
    assert!(ok34(ep, &with(&["get", "/ro/k"])).contains("seed"));
    fails35(ep, &with(&["put", "/ro/k", "2"]), "etcdserver: permission denied");
    fails34(ep, &with(&["put", "/other", "2"]), "etcdserver: permission denied");
    fails34(ep, &with(&["get", "/other"]), "etcdserver: permission denied");
    fails35(ep, &with(&["get", "/", "--prefix"]), "etcdserver: permission denied");
    fails35(ep, &with(&["user", "list"]), "etcdserver: permission denied");
    fails35(ep, &["get", "/app/x"], "etcdserver: user name is empty");
    fails34(
        ep,
        &["--user", "alice:wrong", "get", "/app/x"],
        "etcdserver: authentication failed, invalid user ID or password",
    );
    fails35(
        ep,
        &["--user", "mallory:pw", "get", "/app/x"],
        "etcdserver: authentication failed, invalid user ID or password",
    );
    // Root bypasses every check.
    let root = ["--user", "root:rootpw"];
    assert!(ok35(ep, &[&root[..], &["get", "", "--prefix", "--keys-only"]].concat()).contains("/ro/k"));
}

#[test]
fn etcdctl_user_role_and_auth_commands_end_to_end_and_after_a_full_restart() {
    let mut c = Cluster::start_with(3, FAST);
    let ep = c.members[0].client_addr();
    fails34(&ep, &["auth", "enable"], "etcdserver: root user does not exist");
    set_up(&ep);
    // Every member enforces what was applied through raft.
    for m in &c.members {
        check_enforced(&m.client_addr());
    }
    let root = ["--user", "root:rootpw"];
    let r = |args: &[&'static str]| [&root[..], args].concat();
    let ep2 = c.members[1].client_addr();
    assert!(ok35(&ep2, &r(&["auth", "status"])).contains("Authentication Status: true"));
    assert!(ok35(&ep2, &r(&["user", "get", "alice"])).contains("Roles: app"));
    let role = ok34(&ep2, &r(&["role", "get", "app"]));
    assert!(role.contains("[/app/, /app0) (prefix /app/)") && role.contains("KV Read:"), "{role}");
    assert_eq!(ok34(&ep2, &r(&["user", "list"])).split_whitespace().collect::<Vec<_>>(), ["alice", "root"]);
    assert_eq!(ok35(&ep2, &r(&["role", "list"])).split_whitespace().collect::<Vec<_>>(), ["app", "root"]);
    // Admin calls need root.
    let alice = ["--user", "alice:alicepw"];
    fails35(
        &ep2,
        &[&alice[..], &["member", "add", "x", "--peer-urls=http://127.0.0.1:1"]].concat(),
        "permission denied",
    );
    fails34(&ep2, &[&alice[..], &["endpoint", "hashkv"]].concat(), "permission denied");
    let snap = c.tmp.path().join("alice.db");
    fails34(&ep2, &[&alice[..], &["snapshot", "save", &snap.to_string_lossy()]].concat(), "permission denied");
    assert!(ok34(&ep2, &r(&["endpoint", "hashkv"])).contains(&ep2));
    // etcd's rules about root.
    fails35(&ep2, &r(&["user", "revoke-role", "root", "root"]), "etcdserver: invalid auth management");
    fails35(&ep2, &r(&["user", "delete", "root"]), "etcdserver: invalid auth management");
    fails34(&ep2, &r(&["user", "add", "alice:x"]), "etcdserver: user name already exists");
    fails34(&ep2, &r(&["user", "grant-role", "alice", "nope"]), "etcdserver: role name not found");
    fails35(&ep2, &r(&["user", "get", "nobody"]), "etcdserver: user name not found");
    // A watch alice may not make is cancelled, one she may make sees events.
    let o = etcdctl_raw(&ep2, &[&alice[..], &["watch", "/other"]].concat(), None);
    assert!(text(&o).contains("permission denied"), "{}", text(&o));
    // Revoking takes effect at once, on every member.
    ok35(&ep2, &r(&["role", "revoke-permission", "app", "/app/", "--prefix"]));
    fails34(&c.members[2].client_addr(), &[&alice[..], &["put", "/app/y", "1"]].concat(), "permission denied");
    ok35(&ep2, &r(&["role", "grant-permission", "app", "readwrite", "/app/", "--prefix"]));
    // A password change: the old one stops working.
    let _ = etcdctl_in(&ep2, &r(&["user", "passwd", "alice", "--interactive=false"]), Some("alicepw2\n"));
    fails34(&ep2, &[&alice[..], &["get", "/app/x"]].concat(), "authentication failed");
    let _ = etcdctl_in(&ep2, &r(&["user", "passwd", "alice", "--interactive=false"]), Some("alicepw\n"));

    // A full restart: auth stays on, users and roles stay.
    for i in 0..3 {
        c.kill(i);
    }
    for i in 0..3 {
        c.restart(i);
    }
    for m in &c.members {
        c.wait_healthy(m, Duration::from_secs(30));
    }
    for m in &c.members {
        check_enforced(&m.client_addr());
    }
    // No password or token in any log.
    for m in &c.members {
        let log = std::fs::read_to_string(m.dir.with_extension("log")).unwrap_or_default();
        assert!(!log.contains("alicepw") && !log.contains("rootpw") && !log.contains("$2b$"), "{log}");
    }
    for m in &c.members {
        let metrics = run(10, "curl", &["-s", &format!("{}/metrics", m.client_url)], &[], None);
        let metrics = String::from_utf8_lossy(&metrics.stdout);
        assert!(metrics.contains("etcd_server_id"), "no metrics from {}", m.name);
        for secret in ["alicepw", "rootpw", "$2b$", "$2a$", "$2y$"] {
            assert!(!metrics.contains(secret), "{secret:?} in {}'s /metrics", m.name);
        }
    }

    ok34(&ep, &r(&["auth", "disable"]));
    assert!(ok34(&ep, &["get", "/app/x"]).contains('1'), "auth disabled: anyone reads");
}

/// Python etcd3 signs in with a user and password; its token (a simple
/// token, registered through raft) is valid on another member too.
#[test]
fn python_etcd3_with_user_and_password() {
    let c = Cluster::start_with(3, FAST);
    set_up(&c.members[0].client_addr());
    let script = r#"
import sys
import etcd3
a_port, b_port = int(sys.argv[1]), int(sys.argv[2])
a = etcd3.client(host='127.0.0.1', port=a_port, user='alice', password='alicepw')
# grpcio sends call credentials over TLS only; on this cleartext port the
# token travels as the metadata etcd3 sets beside them.
a.call_credentials = None
a.put('/app/py', 'from python')
print('got', a.get('/app/py')[0].decode())
try:
    a.put('/other', 'x')
    print('put /other allowed')
except Exception as e:
    print('denied', type(e).__name__, str(e))
b = etcd3.client(host='127.0.0.1', port=b_port)
b.metadata = a.metadata
print('other member', b.get('/app/py')[0].decode())
try:
    etcd3.client(host='127.0.0.1', port=a_port, user='alice', password='wrong')
    print('wrong password accepted')
except Exception as e:
    print('wrong password refused', 'authentication failed' in str(e))
"#;
    let py = python_with_etcd3();
    let ports = [c.members[0].port().to_string(), c.members[1].port().to_string()];
    let o = run(120, &py.to_string_lossy(), &["-c", script, &ports[0], &ports[1]], &[], None);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    for want in ["got from python", "denied ", "other member from python", "wrong password refused True"] {
        assert!(out.contains(want), "wanted {want:?} in {out}");
    }
}

/// curl on the gateway with the token in `Authorization`.
fn gw(g: &mut Gateway, m: usize, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
    let header = token.map(|t| format!("Authorization: {t}"));
    let extra: Vec<&str> = header.as_deref().map(|h| vec!["-H", h]).unwrap_or_default();
    let (code, text) = g.curl(m, path, &body.to_string(), &extra);
    (code, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {text:?}: {e}")))
}

/// The gateway applies the same rules: routes for users, roles and
/// permissions, sign-in, and checks with the token in `Authorization`
/// (a token issued by one member works on another).
#[test]
fn gateway_auth_routes_and_checks() {
    let c = Cluster::start_with(3, FAST);
    let mut g = Gateway::new(&c);
    let ok = |g: &mut Gateway, path: &str, body: Value, token: Option<&str>| {
        let (code, v) = gw(g, 0, path, &body, token);
        assert_eq!(code, 200, "{path} {body}: {v}");
        v
    };
    let (code, v) = gw(&mut g, 0, "/v3/auth/enable", &json!({}), None);
    assert_eq!((code, &v["message"]), (400, &json!("etcdserver: root user does not exist")));
    ok(&mut g, "/v3/auth/user/add", json!({"name": "root", "password": "rootpw"}), None);
    ok(&mut g, "/v3/auth/user/grant", json!({"user": "root", "role": "root"}), None);
    ok(&mut g, "/v3/auth/role/add", json!({"name": "r"}), None);
    let perm =
        |k: &str, e: &str| json!({"name": "r", "perm": {"permType": "READWRITE", "key": b64(k), "range_end": b64(e)}});
    ok(&mut g, "/v3/auth/role/grant", perm("a", "c"), None);
    ok(&mut g, "/v3/auth/role/grant", perm("x", ""), None);
    ok(&mut g, "/v3/auth/role/revoke", json!({"role": "r", "key": b64("x")}), None);
    ok(&mut g, "/v3/auth/user/add", json!({"name": "u", "password": "first"}), None);
    ok(&mut g, "/v3/auth/user/changepw", json!({"name": "u", "password": "upw"}), None);
    ok(&mut g, "/v3/auth/user/grant", json!({"user": "u", "role": "r"}), None);
    assert_eq!(ok(&mut g, "/v3/auth/user/get", json!({"name": "u"}), None)["roles"], json!(["r"]));
    assert_eq!(ok(&mut g, "/v3/auth/role/get", json!({"role": "r"}), None)["perm"].as_array().map(Vec::len), Some(1));
    assert_eq!(ok(&mut g, "/v3/auth/user/list", json!({}), None)["users"], json!(["root", "u"]));
    assert_eq!(ok(&mut g, "/v3/auth/role/list", json!({}), None)["roles"], json!(["r"]));
    ok(&mut g, "/v3/auth/enable", json!({}), None);
    // As in etcd 3.5, the status is root's to read once auth is enabled.
    let (code, v) = gw(&mut g, 0, "/v3/auth/status", &json!({}), None);
    assert_eq!((code, &v["code"], &v["message"]), (400, &json!(3), &json!("etcdserver: user name is empty")));

    let (code, v) = gw(&mut g, 0, "/v3/kv/range", &json!({"key": b64("a")}), None);
    assert_eq!((code, &v["code"], &v["message"]), (400, &json!(3), &json!("etcdserver: user name is empty")));
    let (code, v) = gw(&mut g, 0, "/v3/auth/authenticate", &json!({"name": "u", "password": "nope"}), None);
    assert_eq!((code, &v["message"]), (400, &json!("etcdserver: authentication failed, invalid user ID or password")));
    let token = ok(&mut g, "/v3/auth/authenticate", json!({"name": "u", "password": "upw"}), None)["token"]
        .as_str()
        .expect("token")
        .to_owned();
    // Issued by member 0, used on member 1.
    let (code, v) = gw(&mut g, 1, "/v3/kv/put", &json!({"key": b64("b"), "value": b64("1")}), Some(&token));
    assert_eq!(code, 200, "{v}");
    let (code, v) = gw(&mut g, 1, "/v3/kv/put", &json!({"key": b64("x"), "value": b64("1")}), Some(&token));
    assert_eq!((code, &v["code"], &v["message"]), (403, &json!(7), &json!("etcdserver: permission denied")));
    let (code, v) = gw(&mut g, 2, "/v3/kv/range", &json!({"key": b64("b")}), Some("forged.1"));
    assert_eq!((code, &v["code"], &v["message"]), (401, &json!(16), &json!("etcdserver: invalid auth token")));
    let (code, _) = gw(&mut g, 1, "/v3/auth/user/list", &json!({}), Some(&token));
    assert_eq!(code, 403);
    let root = ok(&mut g, "/v3/auth/authenticate", json!({"name": "root", "password": "rootpw"}), None)["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let (code, v) = gw(&mut g, 0, "/v3/kv/range", &json!({"key": b64("b")}), Some(&root));
    assert_eq!((code, v["kvs"][0]["value"].clone()), (200, json!(b64("1"))));
    assert_eq!(ok(&mut g, "/v3/auth/status", json!({}), Some(&root))["enabled"], json!(true));
    let (code, v) = gw(&mut g, 1, "/v3/auth/status", &json!({}), Some(&token));
    assert_eq!((code, &v["message"]), (403, &json!("etcdserver: permission denied")), "u is not root");
    ok(&mut g, "/v3/auth/user/revoke", json!({"name": "u", "role": "r"}), Some(&root));
    ok(&mut g, "/v3/auth/user/delete", json!({"name": "u"}), Some(&root));
    let (code, _) = gw(&mut g, 1, "/v3/kv/range", &json!({"key": b64("b")}), Some(&token));
    assert_eq!(code, 401, "a deleted user's token dies with it");
    ok(&mut g, "/v3/auth/role/delete", json!({"role": "r"}), Some(&root));
    ok(&mut g, "/v3/auth/disable", json!({}), Some(&root));
    assert!(ok(&mut g, "/v3/auth/status", json!({}), None)["enabled"].is_null());
}

/// A member that was down while auth changed, and catches up through a raft
/// snapshot (`--snapshot-count` small), enforces the new state.
#[test]
fn a_member_restored_by_snapshot_enforces_auth() {
    let flags = [FAST, &["--snapshot-count", "5"]].concat();
    let mut c = Cluster::start_with(3, &flags);
    let down = c.follower();
    let ep = c.members[(down + 1) % 3].client_addr();
    c.kill(down);
    set_up(&ep);
    let root = ["--user", "root:rootpw"];
    for i in 0..30 {
        ok34(&ep, &[&root[..], &["put", &format!("/fill/{i}"), "v"]].concat());
    }
    c.restart(down);
    let m = &c.members[down];
    c.wait_healthy(m, Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(m.dir.with_extension("log")).unwrap_or_default();
        if log.contains("snapshot installed") {
            break;
        }
        assert!(Instant::now() < deadline, "the restarted member did not install a snapshot:\n{}", c.log_tail(m));
        std::thread::sleep(Duration::from_millis(100));
    }
    // Serializable reads are served by the restarted member itself, from what the
    // snapshot restored.
    let ep3 = m.client_addr();
    let alice = ["--user", "alice:alicepw", "--consistency=s"];
    assert!(ok34(&ep3, &[&alice[..], &["get", "/ro/k"]].concat()).contains("seed"));
    fails34(&ep3, &[&alice[..], &["get", "/fill/1"]].concat(), "permission denied");
    fails34(&ep3, &["get", "/ro/k", "--consistency=s"], "user name is empty");
}

/// `--auth-token jwt`: tokens any member verifies with the public key; a
/// forged signature and an expired token are refused with etcd's error and
/// the member keeps serving.
#[test]
fn jwt_tokens_and_bad_tokens() {
    let keys = tempfile::tempdir().expect("tempdir");
    let spec = jwt_spec(keys.path(), "8s");
    let c = Cluster::start_with(3, &["--bcrypt-cost", "4", "--auth-token", &spec]);
    set_up(&c.members[0].client_addr());
    // etcdctl through JWTs.
    check_enforced(&c.members[1].client_addr());
    let mut g = Gateway::new(&c);
    let (code, v) = gw(&mut g, 0, "/v3/auth/authenticate", &json!({"name": "alice", "password": "alicepw"}), None);
    assert_eq!(code, 200, "{v}");
    let token = v["token"].as_str().expect("token").to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let read = json!({"key": b64("/ro/k")});
    let (code, v) = gw(&mut g, 2, "/v3/kv/range", &read, Some(&token));
    assert_eq!(code, 200, "another member verifies it: {v}");
    // The same claims under a forged signature.
    let (head, _) = token.rsplit_once('.').expect("signature");
    let forged = format!("{head}.{}", "A".repeat(342));
    let (code, v) = gw(&mut g, 1, "/v3/kv/range", &read, Some(&forged));
    assert_eq!((code, &v["message"]), (401, &json!("etcdserver: invalid auth token")));
    let (code, _) = gw(&mut g, 1, "/v3/kv/range", &read, Some("not-a-jwt"));
    assert_eq!(code, 401);
    // Past its 8 s TTL the token is refused.
    std::thread::sleep(Duration::from_secs(10));
    let (code, v) = gw(&mut g, 2, "/v3/kv/range", &read, Some(&token));
    assert_eq!((code, &v["message"]), (401, &json!("etcdserver: invalid auth token")));
    // Still serving, and the token never reached a log.
    for m in &c.members {
        c.wait_healthy(m, Duration::from_secs(5));
        let log = std::fs::read_to_string(m.dir.with_extension("log")).unwrap_or_default();
        assert!(!log.contains(&token) && !log.contains("alicepw"), "{log}");
    }
}

/// The gateway's refusal as the user sees it: HTTP status, code, message.
fn gw_outcome(g: &mut Gateway, path: &str, body: &Value, token: Option<&str>) -> String {
    let (code, v) = gw(g, 0, path, body, token);
    if code == 200 {
        return "ok".into();
    }
    format!("{code} {} {}", v["code"], v["message"])
}

/// A fixed script of auth refusals (and a few successes around them), run
/// against one server with etcdctl 3.5.1 and the gateway: one line per
/// step, `name: outcome`.
fn auth_error_script(ep: &str, scratch: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut ctl = |name: &str, args: &[&str], stdin: Option<&str>| {
        let o = etcdctl35_raw(ep, args, stdin);
        out.push(format!("{name}: {}", outcome(&o)));
    };
    let root = ["--user", "root:rootpw"];
    let alice = ["--user", "alice:alicepw"];
    fn as_user<'a>(user: &[&'a str], args: &[&'a str]) -> Vec<&'a str> {
        [user, args].concat()
    }
    ctl("enable without root", &["auth", "enable"], None);
    ctl("user add root", &["user", "add", "root:rootpw"], None);
    ctl("user add alice", &["user", "add", "alice:alicepw"], None);
    ctl("user add again", &["user", "add", "alice:x"], None);
    ctl("role add app", &["role", "add", "app"], None);
    ctl("role add again", &["role", "add", "app"], None);
    ctl("grant rw", &["role", "grant-permission", "app", "readwrite", "/app/", "--prefix"], None);
    ctl("grant ro", &["role", "grant-permission", "app", "read", "/ro/", "--prefix"], None);
    ctl("grant-role alice", &["user", "grant-role", "alice", "app"], None);
    ctl("grant-role missing role", &["user", "grant-role", "alice", "nope"], None);
    ctl("grant-role missing user", &["user", "grant-role", "nobody", "app"], None);
    ctl("revoke-role not granted", &["user", "revoke-role", "alice", "root"], None);
    ctl("revoke-permission not granted", &["role", "revoke-permission", "app", "/nothing"], None);
    ctl("user get missing", &["user", "get", "nobody"], None);
    ctl("role get missing", &["role", "get", "nope"], None);
    ctl("user delete missing", &["user", "delete", "nobody"], None);
    ctl("role delete missing", &["role", "delete", "nope"], None);
    ctl("passwd missing", &["user", "passwd", "nobody", "--interactive=false"], Some("pw\n"));
    ctl("put seed", &["put", "/ro/k", "seed"], None);
    let mut g =
        Gateway { bases: vec![format!("http://{}", ep.trim_start_matches("http://"))], called: BTreeSet::new() };
    out.push(format!("enable without root role: {}", gw_outcome(&mut g, "/v3/auth/enable", &json!({}), None)));
    let mut ctl = |name: &str, args: &[&str], stdin: Option<&str>| {
        let o = etcdctl35_raw(ep, args, stdin);
        out.push(format!("{name}: {}", outcome(&o).replace(ep, "<endpoint>")));
    };
    ctl("enable", &["auth", "enable"], None);
    ctl("no user get", &["get", "/ro/k"], None);
    ctl("no user put", &["put", "/app/x", "1"], None);
    ctl("wrong password", &["--user", "alice:wrong", "get", "/ro/k"], None);
    ctl("unknown user", &["--user", "mallory:pw", "get", "/ro/k"], None);
    ctl("alice put", &as_user(&alice, &["put", "/app/x", "1"]), None);
    ctl("alice get", &as_user(&alice, &["get", "/ro/k"]), None);
    ctl("denied get", &as_user(&alice, &["get", "/other"]), None);
    ctl("denied get prefix", &as_user(&alice, &["get", "/", "--prefix"]), None);
    ctl("denied put", &as_user(&alice, &["put", "/ro/k", "2"]), None);
    ctl("denied del", &as_user(&alice, &["del", "/ro/k"]), None);
    ctl("denied txn", &as_user(&alice, &["txn"]), Some("value(\"/app/x\") = \"1\"\n\nput /other 1\n\n\n"));
    ctl("denied watch", &as_user(&alice, &["watch", "/other"]), None);
    ctl("alice lease grant", &as_user(&alice, &["lease", "grant", "60"]), None);
    ctl("denied member add", &as_user(&alice, &["member", "add", "x", "--peer-urls=http://127.0.0.1:1"]), None);
    ctl("denied member remove", &as_user(&alice, &["member", "remove", "1234"]), None);
    let snap = scratch.join(format!("alice-{}.db", free_port()));
    ctl("denied snapshot", &as_user(&alice, &["snapshot", "save", &snap.to_string_lossy()]), None);
    ctl("denied defrag", &as_user(&alice, &["defrag"]), None);
    ctl("no user hashkv", &["endpoint", "hashkv"], None);
    ctl("alice status", &as_user(&alice, &["endpoint", "status"]), None);
    ctl("alice alarm list", &as_user(&alice, &["alarm", "list"]), None);
    ctl("alice member list", &as_user(&alice, &["member", "list"]), None);
    ctl("denied hashkv", &as_user(&alice, &["endpoint", "hashkv"]), None);
    ctl("denied user list", &as_user(&alice, &["user", "list"]), None);
    ctl("denied role add", &as_user(&alice, &["role", "add", "x"]), None);
    ctl("denied auth disable", &as_user(&alice, &["auth", "disable"]), None);
    ctl("compaction", &as_user(&alice, &["compaction", "1"]), None);
    ctl("delete root", &as_user(&root, &["user", "delete", "root"]), None);
    ctl("revoke root role", &as_user(&root, &["user", "revoke-role", "root", "root"]), None);
    ctl("delete root role", &as_user(&root, &["role", "delete", "root"]), None);
    // A lease with a key alice may not write: revoking it writes the key.
    let lease = etcdctl35_raw(ep, &as_user(&root, &["lease", "grant", "100"]), None);
    let id = String::from_utf8_lossy(&lease.stdout).split_whitespace().nth(1).unwrap_or_default().to_string();
    ctl("put leased", &as_user(&root, &["put", "/secret", "x", &format!("--lease={id}")]), None);
    ctl("denied lease revoke", &as_user(&alice, &["lease", "revoke", &id]), None);
    // The gateway: bad tokens, and a JWT issued before the auth store
    // changed (refused on key ranges only).
    let (_, v) = gw(&mut g, 0, "/v3/auth/authenticate", &json!({"name": "alice", "password": "alicepw"}), None);
    let token = v["token"].as_str().unwrap_or_default().to_string();
    let read = json!({"key": b64("/ro/k")});
    out.push(format!("gw bad token: {}", gw_outcome(&mut g, "/v3/kv/range", &read, Some("forged.1"))));
    out.push(format!("gw no token: {}", gw_outcome(&mut g, "/v3/kv/range", &read, None)));
    out.push(format!("gw fresh jwt: {}", gw_outcome(&mut g, "/v3/kv/range", &read, Some(&token))));
    let o = etcdctl35_raw(ep, &as_user(&root, &["role", "grant-permission", "app", "read", "/more"]), None);
    out.push(format!("role change: {}", outcome(&o)));
    let put = json!({"key": b64("/app/y"), "value": b64("1")});
    for (name, path, body) in [
        ("range", "/v3/kv/range", &read),
        ("put", "/v3/kv/put", &put),
        ("lease grant", "/v3/lease/grant", &json!({"TTL": 60})),
        ("member list", "/v3/cluster/member/list", &json!({})),
        ("user list", "/v3/auth/user/list", &json!({})),
    ] {
        out.push(format!("gw old jwt {name}: {}", gw_outcome(&mut g, path, body, Some(&token))));
    }
    out
}

/// The same etcdctl 3.5.1 commands and gateway calls against real etcd
/// 3.5.1 and raft-kv (one member each, the same JWT keys) print the same
/// errors: wrong password, no user, permission denied on every kind of
/// call, bad and old tokens, missing users and roles, etcd's rules on root.
#[test]
fn auth_errors_match_etcd_3_5_1() {
    let keys = tempfile::tempdir().expect("tempdir");
    let spec = jwt_spec(keys.path(), "5m");
    let etcd = RealEtcd::start_temp(&["--auth-token", &spec]);
    let c = Cluster::start_with(1, &["--bcrypt-cost", "4", "--auth-token", &spec]);
    let (want, got) = std::thread::scope(|s| {
        let want = s.spawn(|| auth_error_script(&etcd.client_url, keys.path()));
        let got = auth_error_script(&c.members[0].client_url, keys.path());
        (want.join().expect("etcd's script"), got)
    });
    let diff: Vec<String> =
        want.iter().zip(&got).filter(|(w, g)| w != g).map(|(w, g)| format!("etcd:    {w}\nraft-kv: {g}")).collect();
    assert!(diff.is_empty() && want.len() == got.len(), "{}\n\nall of etcd's:\n{}", diff.join("\n"), want.join("\n"));

    // Where raft-kv is stricter than 3.5.1: the names of a lease's keys
    // need read permission on them (etcd 3.5.9's fix of CVE-2023-32082),
    // and moving the leader needs root (3.5.1 lets anyone).
    let ep = c.members[0].client_url.as_str();
    let root = ["--user", "root:rootpw"];
    let lease = ok35(ep, &[&root[..], &["lease", "grant", "100"]].concat());
    let id = lease.split_whitespace().nth(1).expect("lease id").to_string();
    ok35(ep, &[&root[..], &["put", "/app/leased", "x", &format!("--lease={id}")]].concat());
    let alice = ["--user", "alice:alicepw"];
    let ttl = |args: &[&str]| ok35(ep, &[&alice[..], &["lease", "timetolive", &id], args].concat());
    assert!(ttl(&["--keys"]).contains("/app/leased"), "alice may read /app/leased");
    ok35(ep, &[&root[..], &["put", "/secret/leased", "x", &format!("--lease={id}")]].concat());
    fails35(ep, &[&alice[..], &["lease", "timetolive", &id, "--keys"]].concat(), "etcdserver: permission denied");
    assert!(ttl(&[]).contains("remaining"), "without --keys the lease's TTL is anyone's");
    let me = ok35(ep, &[&root[..], &["endpoint", "status", "-w", "fields"]].concat());
    let id = me.lines().find_map(|l| l.strip_prefix("\"MemberID\" : ")).expect("member id");
    let id = format!("{:x}", id.trim().parse::<u64>().expect("id"));
    fails35(ep, &[&alice[..], &["move-leader", &id]].concat(), "auth: permission denied");
}
