//! etcd's JSON gateway end to end: every route with curl, checked against
//! the server's route table.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

// ---- helpers ---------------------------------------------------------------

/// Every gateway route under `/v3`: the 43 routes etcd 3.5's grpc-gateway
/// serves, plus `/maintenance/hashkv`. [`routes_in_source`] reads the
/// server's route table, so a route added there fails this test until it is
/// listed (and exercised) here.
const ROUTES: [&str; 44] = [
    "/kv/range",
    "/kv/put",
    "/kv/deleterange",
    "/kv/txn",
    "/kv/compaction",
    "/watch",
    "/lease/grant",
    "/lease/revoke",
    "/kv/lease/revoke",
    "/lease/keepalive",
    "/lease/timetolive",
    "/kv/lease/timetolive",
    "/lease/leases",
    "/kv/lease/leases",
    "/cluster/member/add",
    "/cluster/member/remove",
    "/cluster/member/update",
    "/cluster/member/list",
    "/cluster/member/promote",
    "/maintenance/alarm",
    "/maintenance/status",
    "/maintenance/defragment",
    "/maintenance/hash",
    "/maintenance/hashkv",
    "/maintenance/snapshot",
    "/maintenance/transfer-leadership",
    "/maintenance/downgrade",
    "/auth/enable",
    "/auth/disable",
    "/auth/status",
    "/auth/authenticate",
    "/auth/user/add",
    "/auth/user/get",
    "/auth/user/list",
    "/auth/user/delete",
    "/auth/user/changepw",
    "/auth/user/grant",
    "/auth/user/revoke",
    "/auth/role/add",
    "/auth/role/get",
    "/auth/role/list",
    "/auth/role/delete",
    "/auth/role/grant",
    "/auth/role/revoke",
];

/// The routes `json_routes()` registers under each prefix, read from the
/// route table in the server's gateway.rs (one `("/path", handler)` per line).
fn routes_in_source() -> Vec<String> {
    let src = include_str!("../src/bin/raft-kv-server/gateway.rs");
    let table = src.split_once("fn json_routes").expect("json_routes() in gateway.rs").1;
    let table = table.split_once("];").expect("the end of the route table").0;
    table
        .lines()
        .filter_map(|l| l.trim().strip_prefix("(\""))
        .filter_map(|l| l.split_once('"'))
        .map(|(path, _)| format!("/{}", path.trim_start_matches('/')))
        .collect()
}

/// Member ids in a member list response.
fn member_ids(v: &Value) -> Vec<String> {
    v["members"].as_array().expect("members").iter().map(|m| m["ID"].as_str().expect("ID").to_string()).collect()
}

/// `n` characters that do not compress (a fixed pseudo-random sequence).
fn noise(n: usize) -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'!' + (x % 94) as u8)
        })
        .collect()
}

// ---- every route -----------------------------------------------------------

#[test]
fn every_gateway_route_answers_like_etcd() {
    // The route list here is the server's route table.
    let in_source = routes_in_source();
    let listed: BTreeSet<String> = ROUTES.iter().map(|r| r.to_string()).collect();
    assert_eq!(listed.len(), ROUTES.len(), "a route is listed twice");
    assert_eq!(in_source.len(), ROUTES.len(), "routes in gateway.rs: {in_source:?}");
    assert_eq!(in_source.into_iter().collect::<BTreeSet<_>>(), listed);

    let c = Cluster::start(3);
    let mut g = Gateway::new(&c);

    // ---- KV
    let rev =
        num(&g.ok("/v3/kv/put", &json!({"key": b64("foo"), "value": b64("bar")}).to_string())["header"]["revision"]);
    let got = g.ok("/v3/kv/range", &json!({"key": b64("foo")}).to_string());
    assert_eq!((&got["kvs"][0]["value"], &got["count"]), (&json!(b64("bar")), &json!("1")), "{got}");
    assert_eq!(num(&got["kvs"][0]["mod_revision"]), rev);
    let txn = json!({
        "compare": [{"target": "VALUE", "result": "EQUAL", "key": b64("foo"), "value": b64("bar")}],
        "success": [{"request_put": {"key": b64("foo"), "value": b64("baz")}}, {"request_range": {"key": b64("foo")}}],
        "failure": [{"request_range": {"key": b64("foo")}}],
    });
    let t = g.ok("/v3/kv/txn", &txn.to_string());
    assert_eq!(t["succeeded"], true, "{t}");
    assert_eq!(t["responses"][1]["response_range"]["kvs"][0]["value"], b64("baz"), "{t}");
    // The same compare fails now: the failure branch runs (`succeeded`
    // false is a default, left out).
    let t = g.ok("/v3/kv/txn", &txn.to_string());
    assert!(t["succeeded"].is_null(), "{t}");
    assert_eq!(t["responses"][0]["response_range"]["kvs"][0]["value"], b64("baz"), "{t}");
    let del = g.ok("/v3/kv/deleterange", &json!({"key": b64("foo"), "prev_kv": true}).to_string());
    assert_eq!((&del["deleted"], &del["prev_kvs"][0]["value"]), (&json!("1"), &json!(b64("baz"))), "{del}");

    // A watch from a past revision replays put, txn put and delete.
    let lines = g.stream(
        "/v3/watch",
        &json!({"create_request": {"key": b64("foo"), "start_revision": rev.to_string()}}).to_string(),
        3,
    );
    assert_eq!(lines[0]["result"]["created"], true, "{lines:?}");
    let events: Vec<&Value> = lines.iter().filter_map(|l| l["result"]["events"].as_array()).flatten().collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap_or("PUT")).collect();
    assert_eq!(kinds, ["PUT", "PUT", "DELETE"], "{lines:?}");
    let revs: Vec<i64> = events.iter().map(|e| num(&e["kv"]["mod_revision"])).collect();
    assert_eq!(revs, [rev, rev + 1, rev + 2], "{lines:?}");

    // ---- Lease (and the /v3/kv/lease/* aliases)
    let lease = g.ok("/v3/lease/grant", r#"{"TTL": 60}"#);
    let id = lease["ID"].as_str().expect("lease ID").to_string();
    assert_eq!(lease["TTL"], "60", "{lease}");
    let fixed = g.ok("/v3/lease/grant", r#"{"TTL": 60, "ID": "4242"}"#);
    assert_eq!(fixed["ID"], "4242", "{fixed}");
    g.refuses("/v3/lease/grant", r#"{"TTL": 60, "ID": "4242"}"#, 400, 9, "etcdserver: lease already exists");
    g.ok("/v3/kv/put", &json!({"key": b64("leased"), "value": b64("v"), "lease": id}).to_string());
    let ttl = g.ok("/v3/lease/timetolive", &json!({"ID": id, "keys": true}).to_string());
    assert_eq!((&ttl["ID"], &ttl["grantedTTL"], &ttl["keys"]), (&json!(id), &json!("60"), &json!([b64("leased")])));
    assert!((1..=60).contains(&num(&ttl["TTL"])), "{ttl}");
    let ttl = g.ok("/v3/kv/lease/timetolive", &json!({"ID": id}).to_string());
    assert_eq!(ttl["grantedTTL"], "60", "{ttl}");
    assert!(ttl["keys"].is_null(), "keys only when asked: {ttl}");
    let unknown = g.ok("/v3/lease/timetolive", r#"{"ID": "777"}"#);
    assert_eq!(unknown["TTL"], "-1", "etcd answers an unknown lease with TTL -1: {unknown}");
    for path in ["/v3/lease/leases", "/v3/kv/lease/leases"] {
        let leases = g.ok(path, "{}");
        let ids: BTreeSet<&str> =
            leases["leases"].as_array().expect("leases").iter().filter_map(|l| l["ID"].as_str()).collect();
        assert_eq!(ids, BTreeSet::from([id.as_str(), "4242"]), "{path}: {leases}");
    }
    let ka = g.stream("/v3/lease/keepalive", &json!({"ID": id}).to_string(), 10);
    assert_eq!(ka.len(), 1, "one renewal per request: {ka:?}");
    assert_eq!((&ka[0]["result"]["ID"], &ka[0]["result"]["TTL"]), (&json!(id), &json!("60")), "{ka:?}");
    g.ok("/v3/lease/revoke", &json!({"ID": id}).to_string());
    let gone = g.ok("/v3/kv/range", &json!({"key": b64("leased")}).to_string());
    assert!(gone["kvs"].is_null(), "revoking deletes the lease's keys: {gone}");
    g.ok("/v3/kv/lease/revoke", r#"{"ID": "4242"}"#);
    g.refuses("/v3/lease/revoke", r#"{"ID": "4242"}"#, 404, 5, "etcdserver: requested lease not found");
    assert!(g.ok("/v3/lease/leases", "{}")["leases"].is_null());

    // ---- Cluster
    let list = g.ok("/v3/cluster/member/list", "{}");
    let names: BTreeSet<&str> =
        list["members"].as_array().expect("members").iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(names, BTreeSet::from(["m1", "m2", "m3"]), "{list}");
    let voters = member_ids(&list);
    let learner_url = format!("http://127.0.0.1:{}", free_port());
    let added = g.ok("/v3/cluster/member/add", &json!({"peerURLs": [learner_url], "isLearner": true}).to_string());
    assert_eq!((&added["member"]["peerURLs"], &added["member"]["isLearner"]), (&json!([learner_url]), &json!(true)));
    let learner = added["member"]["ID"].as_str().expect("new member ID").to_string();
    assert_eq!(added["members"].as_array().map(Vec::len), Some(4), "{added}");
    g.refuses(
        "/v3/cluster/member/add",
        &json!({"peerURLs": [learner_url]}).to_string(),
        400,
        9,
        "etcdserver: Peer URLs already exists",
    );
    let moved_url = format!("http://127.0.0.1:{}", free_port());
    let updated = g.ok("/v3/cluster/member/update", &json!({"ID": learner, "peerURLs": [moved_url]}).to_string());
    let entry = updated["members"].as_array().expect("members").iter().find(|m| m["ID"] == learner.as_str()).cloned();
    assert_eq!(entry.map(|m| m["peerURLs"].clone()), Some(json!([moved_url])), "{updated}");
    // Another member's peer URL is refused, as on add.
    let taken = updated["members"].as_array().expect("members").iter().find(|m| m["ID"] != learner.as_str()).cloned();
    let taken_url = taken.expect("another member")["peerURLs"][0].clone();
    g.refuses(
        "/v3/cluster/member/update",
        &json!({"ID": learner, "peerURLs": [taken_url]}).to_string(),
        400,
        9,
        "etcdserver: Peer URLs already exists",
    );
    // The learner never started: it cannot be in sync.
    g.refuses(
        "/v3/cluster/member/promote",
        &json!({"ID": learner}).to_string(),
        400,
        9,
        "etcdserver: can only promote a learner member which is in sync with leader",
    );
    g.refuses(
        "/v3/cluster/member/promote",
        &json!({"ID": voters[0]}).to_string(),
        400,
        9,
        "etcdserver: can only promote a learner member",
    );
    let removed = g.ok("/v3/cluster/member/remove", &json!({"ID": learner}).to_string());
    assert_eq!(member_ids(&removed), voters, "{removed}");
    g.refuses("/v3/cluster/member/remove", &json!({"ID": learner}).to_string(), 404, 5, "etcdserver: member not found");

    // ---- Maintenance
    let alarms = g.ok("/v3/maintenance/alarm", r#"{"action": "GET"}"#);
    assert!(alarms["alarms"].is_null(), "no alarms: {alarms}");
    let st = g.ok("/v3/maintenance/status", "{}");
    assert_eq!(st["version"], "3.5.17", "{st}");
    assert!(voters.contains(&st["leader"].as_str().expect("leader").to_string()), "{st}");
    assert!(num(&st["raftIndex"]) > 0 && num(&st["raftTerm"]) > 0 && num(&st["dbSize"]) > 0, "{st}");
    g.ok("/v3/maintenance/defragment", "{}");
    // Every member hashes the same history the same (members may still be
    // applying the last writes: bounded retry).
    let at = num(&g.ok("/v3/kv/put", &json!({"key": b64("h"), "value": b64("1")}).to_string())["header"]["revision"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let hashes: Vec<(u16, Value)> = (0..3)
            .map(|m| g.post_on(m, "/v3/maintenance/hashkv", &json!({"revision": at.to_string()}).to_string()))
            .collect();
        let all_ok = hashes.iter().all(|(code, v)| *code == 200 && v["hash_revision"] == at.to_string().as_str());
        if all_ok && hashes.iter().all(|(_, v)| v["hash"] == hashes[0].1["hash"]) {
            assert!(hashes[0].1["hash"].is_u64(), "{:?}", hashes[0]);
            break;
        }
        assert!(Instant::now() < deadline, "members' hashes at {at} differ: {hashes:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // etcd 3.5's gateway binds Hash's path to HashKV (the last one wins).
    let h = g.ok("/v3/maintenance/hash", "{}");
    assert!(h["hash"].is_u64() && h["hash_revision"].is_string(), "{h}");
    g.refuses(
        "/v3/maintenance/downgrade",
        r#"{"action": "VALIDATE", "version": "three.five"}"#,
        400,
        3,
        "etcdserver: wrong downgrade target version format",
    );
    // As etcd 3.5: one minor version down validates, anything else does not.
    let v = g.ok("/v3/maintenance/downgrade", r#"{"action": "VALIDATE", "version": "3.4"}"#);
    assert_eq!(v["version"], "3.5.0", "{v}");
    g.refuses(
        "/v3/maintenance/downgrade",
        r#"{"action": "VALIDATE", "version": "3.3"}"#,
        400,
        3,
        "etcdserver: invalid downgrade target version",
    );
    g.refuses(
        "/v3/maintenance/downgrade",
        r#"{"action": "CANCEL", "version": "3.4"}"#,
        400,
        9,
        "etcdserver: no inflight downgrade job",
    );

    // Compaction: history before the compacted revision is gone.
    let now = num(&g.ok("/v3/kv/put", &json!({"key": b64("c"), "value": b64("2")}).to_string())["header"]["revision"]);
    g.ok("/v3/kv/compaction", &json!({"revision": now.to_string(), "physical": true}).to_string());
    let compacted = "etcdserver: mvcc: required revision has been compacted";
    g.refuses("/v3/kv/range", &json!({"key": b64("c"), "revision": "1"}).to_string(), 400, 11, compacted);
    g.refuses("/v3/kv/compaction", &json!({"revision": (now - 1).to_string()}).to_string(), 400, 11, compacted);

    // A snapshot streams etcd's file format: a bbolt file of whole pages
    // and a SHA-256; each chunk says how much is still to come. Some data that
    // does not compress first, so it takes several chunks.
    let big = noise(200 << 10);
    g.ok("/v3/kv/put", &json!({"key": b64("big"), "value": b64(&big)}).to_string());
    let chunks = g.stream("/v3/maintenance/snapshot", "{}", 30);
    let mut file = Vec::new();
    let mut remaining = Vec::new();
    for l in &chunks {
        let r = &l["result"];
        let blob = base64::engine::general_purpose::STANDARD.decode(r["blob"].as_str().expect("blob")).expect("base64");
        file.extend_from_slice(&blob);
        // 0 is the default, left out of the JSON.
        let left = r["remaining_bytes"].as_str().map_or(0, |s| s.parse::<usize>().expect("remaining_bytes"));
        remaining.push((file.len(), left));
        assert_eq!(r["version"], "3.5.17", "{r}");
    }
    assert!(chunks.len() > 1, "a snapshot of more than 200 KiB in one chunk");
    // As etcd counts: the database's bytes still to come, then the digest
    // alone in a last chunk with 0.
    let db_len = file.len() - 32;
    let (digest, data) = remaining.split_last().expect("chunks");
    assert!(data.iter().all(|(sent, left)| sent + left == db_len), "(sent, remaining_bytes): {remaining:?}");
    assert_eq!(*digest, (file.len(), 0), "{remaining:?}");
    assert!(file.len() > big.len() && file.len() % 512 == 32, "snapshot of {} bytes", file.len());

    // Move leadership to another voter (asked of any member).
    let leader = g.ok("/v3/maintenance/status", "{}")["leader"].as_str().expect("leader").to_string();
    let target = voters.iter().find(|v| **v != leader).expect("another voter").clone();
    g.refuses(
        "/v3/maintenance/transfer-leadership",
        r#"{"targetID": "12345"}"#,
        400,
        9,
        "etcdserver: bad leader transferee",
    );
    g.ok("/v3/maintenance/transfer-leadership", &json!({"targetID": target}).to_string());
    let deadline = Instant::now() + Duration::from_secs(20);
    while g.ok("/v3/maintenance/status", "{}")["leader"] != target.as_str() {
        assert!(Instant::now() < deadline, "leadership did not move to {target}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // ---- Auth (the rules are tested in auth.rs): every route answers
    // for real, and auth is off again afterwards.
    g.refuses("/v3/auth/enable", "{}", 400, 9, "etcdserver: root user does not exist");
    g.ok("/v3/auth/disable", "{}");
    let auth = g.ok("/v3/auth/status", "{}");
    assert!(auth["enabled"].is_null() || auth["enabled"] == false, "{auth}");
    g.refuses(
        "/v3/auth/authenticate",
        r#"{"name": "root", "password": "pw"}"#,
        400,
        9,
        "etcdserver: authentication is not enabled",
    );
    g.ok("/v3/auth/user/add", r#"{"name": "u", "password": "pw"}"#);
    g.refuses(
        "/v3/auth/user/add",
        r#"{"name": "u", "password": "pw"}"#,
        400,
        9,
        "etcdserver: user name already exists",
    );
    g.refuses("/v3/auth/user/get", r#"{"name": "v"}"#, 400, 9, "etcdserver: user name not found");
    assert_eq!(g.ok("/v3/auth/user/list", "{}")["users"], json!(["u"]));
    g.ok("/v3/auth/user/changepw", r#"{"name": "u", "password": "new"}"#);
    g.ok("/v3/auth/role/add", r#"{"name": "r"}"#);
    g.refuses("/v3/auth/user/grant", r#"{"user": "u", "role": "nope"}"#, 400, 9, "etcdserver: role name not found");
    g.ok("/v3/auth/user/grant", r#"{"user": "u", "role": "r"}"#);
    assert_eq!(g.ok("/v3/auth/user/get", r#"{"name": "u"}"#)["roles"], json!(["r"]));
    g.ok("/v3/auth/user/revoke", r#"{"name": "u", "role": "r"}"#);
    g.refuses("/v3/auth/role/get", r#"{"role": "q"}"#, 400, 9, "etcdserver: role name not found");
    assert_eq!(g.ok("/v3/auth/role/list", "{}")["roles"], json!(["r"]));
    let perm = json!({"name": "r", "perm": {"permType": "READWRITE", "key": b64("a"), "range_end": b64("b")}});
    g.ok("/v3/auth/role/grant", &perm.to_string());
    assert_eq!(g.ok("/v3/auth/role/get", r#"{"role": "r"}"#)["perm"][0]["permType"], "READWRITE");
    let revoke = json!({"role": "r", "key": b64("a"), "range_end": b64("b")}).to_string();
    g.ok("/v3/auth/role/revoke", &revoke);
    g.refuses("/v3/auth/role/revoke", &revoke, 400, 9, "etcdserver: permission is not granted to the role");
    g.ok("/v3/auth/role/delete", r#"{"role": "r"}"#);
    g.ok("/v3/auth/user/delete", r#"{"name": "u"}"#);

    // ---- The /v3beta and /v3alpha aliases.
    let alias_rev =
        num(&g.ok("/v3beta/kv/put", &json!({"key": b64("alias"), "value": b64("beta")}).to_string())["header"]
            ["revision"]);
    let got = g.ok("/v3alpha/kv/range", &json!({"key": b64("alias")}).to_string());
    assert_eq!(got["kvs"][0]["value"], b64("beta"), "{got}");
    assert_eq!(g.ok("/v3alpha/maintenance/status", "{}")["version"], "3.5.17");
    assert_eq!(member_ids(&g.ok("/v3beta/cluster/member/list", "{}")), voters);
    let l = g.ok("/v3alpha/lease/grant", r#"{"TTL": 30}"#);
    g.ok("/v3beta/kv/lease/revoke", &json!({"ID": l["ID"]}).to_string());
    let lines = g.stream(
        "/v3beta/watch",
        &json!({"create_request": {"key": b64("alias"), "start_revision": alias_rev.to_string()}}).to_string(),
        2,
    );
    assert_eq!(lines.iter().filter_map(|l| l["result"]["events"].as_array()).flatten().count(), 1, "{lines:?}");
    let (code, v) = g.post_on(0, "/v3alpha/kv/nothing", "{}");
    assert_eq!((code, &v["code"]), (404, &json!(5)), "{v}");

    // Every route was called, with an assertion on its answer.
    let missed: Vec<&str> = ROUTES.iter().copied().filter(|r| !g.called.contains(*r)).collect();
    assert!(missed.is_empty(), "routes not exercised: {missed:?}");
    assert_eq!(g.called.len(), ROUTES.len(), "{:?}", g.called);
}
