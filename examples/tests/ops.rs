//! Operations as an etcd operator runs them, against real processes with
//! etcdctl 3.4 and 3.5.1: defragmentation and the size estimates, the
//! backend quota and its replicated NOSPACE alarm, auto-compaction in both
//! modes, and `--force-new-cluster` recovery.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const NOSPACE: &str = "etcdserver: mvcc: database space exceeded";
const COMPACTED: &str = "required revision has been compacted";

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// etcdctl 3.5.1, which must succeed.
fn etcdctl35(endpoints: &str, args: &[&str]) -> String {
    let out = etcdctl35_raw(endpoints, args, None);
    assert!(out.status.success(), "etcdctl 3.5 {args:?} failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `endpoint status -w json` of one member (etcdctl 3.5.1): its Status.
fn status(endpoint: &str) -> Value {
    let v: Value = serde_json::from_str(&etcdctl35(endpoint, &["endpoint", "status", "-w", "json"])).expect("json");
    v[0]["Status"].clone()
}

fn db_size(endpoint: &str) -> (i64, i64) {
    let s = status(endpoint);
    (s["dbSize"].as_i64().expect("dbSize"), s["dbSizeInUse"].as_i64().expect("dbSizeInUse"))
}

/// A put through the gateway; the error message when refused.
fn try_put(addr: &str, key: &str, value: &str) -> Result<i64, String> {
    let body = serde_json::json!({ "key": b64(key), "value": b64(value) }).to_string();
    match http(addr, "POST", "/v3/kv/put", &body) {
        Ok((200, t)) => Ok(num(&serde_json::from_str::<Value>(&t).expect("json")["header"]["revision"])),
        Ok((_, t)) => Err(t),
        Err(e) => Err(e.to_string()),
    }
}

/// The backend size gauges on `/metrics`: (total, in use).
fn db_size_metrics(addr: &str) -> (f64, f64) {
    let (_, text) = http(addr, "GET", "/metrics", "").expect("metrics");
    let gauge = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    (gauge("etcd_mvcc_db_total_size_in_bytes"), gauge("etcd_mvcc_db_total_size_in_use_in_bytes"))
}

fn revision(addr: &str) -> i64 {
    let v = post_ok(addr, "/v3/kv/range", &serde_json::json!({ "key": b64("none") }).to_string());
    num(&v["header"]["revision"])
}

#[test]
fn defragment_gives_back_the_space_of_deleted_and_compacted_keys() {
    // A short raft log, so the log does not keep the deleted values alive.
    let c = Cluster::start_with(1, &["--snapshot-count", "50"]);
    let (ep, addr) = (c.members[0].client_url.clone(), c.members[0].client_addr());
    let value = "v".repeat(10_000);
    for i in 0..300 {
        put(&addr, &format!("/big/{i:04}"), &value);
    }
    let (full, full_in_use) = db_size(&ep);
    assert!(full > 2_000_000 && full_in_use <= full, "300 values of 10 kB: {full} / {full_in_use}");
    let (full_gauge, full_in_use_gauge) = db_size_metrics(&addr);
    assert!(full_in_use_gauge > 2e6 && full_in_use_gauge <= full_gauge, "{full_in_use_gauge} of {full_gauge}");
    for i in 0..300 {
        post_ok(&addr, "/v3/kv/deleterange", &serde_json::json!({ "key": b64(&format!("/big/{i:04}")) }).to_string());
    }
    let rev = revision(&addr);
    etcdctl(&ep, &["compact", &rev.to_string(), "--physical"]);
    // etcdctl 3.4 and 3.5.1 both answer once the member is done.
    assert!(etcdctl(&ep, &["defrag"]).contains("Finished defragmenting etcd member"));
    assert!(etcdctl35(&ep, &["defrag"]).contains("Finished defragmenting etcd member"));
    let (after, after_in_use) = db_size(&ep);
    assert!(after < full / 4, "defragment shrank {full} only to {after}");
    assert!(after_in_use <= after, "{after_in_use} in use of {after}");
    // The in-use figures (Status and the gauge) follow the live data down.
    assert!(after_in_use < full_in_use / 4, "in use: {full_in_use} before, {after_in_use} after");
    let (after_gauge, after_in_use_gauge) = db_size_metrics(&addr);
    assert!(after_in_use_gauge <= after_gauge, "{after_in_use_gauge} of {after_gauge}");
    assert!(
        after_in_use_gauge < full_in_use_gauge / 4.0,
        "gauge: {full_in_use_gauge} before, {after_in_use_gauge} after"
    );
    // The member still serves and writes after the rewrite.
    put(&addr, "/after", "1");
    assert!(etcdctl(&ep, &["get", "/after", "--print-value-only"]).contains('1'));
}

#[test]
fn quota_raises_a_replicated_nospace_alarm_until_disarmed() {
    let flags = ["--quota-backend-bytes", "1500000", "--snapshot-count", "50"];
    let mut c = Cluster::start_with(3, &flags);
    let eps = c.endpoints();
    let addr = c.members[0].client_addr();
    let value = "q".repeat(20_000);
    let mut refused = None;
    for i in 0..500 {
        if let Err(e) = try_put(&addr, &format!("/q/{i:04}"), &value) {
            refused = Some(e);
            break;
        }
    }
    let refused = refused.expect("puts past the quota are refused");
    assert!(refused.contains(NOSPACE) && refused.contains("\"code\":8"), "{refused}");

    // Every member lists the alarm (it is replicated), with either etcdctl.
    let deadline = Instant::now() + Duration::from_secs(10);
    for m in &c.members {
        loop {
            let out = etcdctl(&m.client_url, &["alarm", "list"]);
            if out.contains("alarm:NOSPACE") {
                assert!(out.starts_with("memberID:"), "{out}");
                break;
            }
            assert!(Instant::now() < deadline, "{} lists no alarm: {out:?}", m.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(etcdctl35(&eps, &["alarm", "list"]).contains("alarm:NOSPACE"));
    assert!(etcdctl35(&c.members[1].client_url, &["endpoint", "status"]).contains("alarm:NOSPACE"));

    // Puts, txns that put and lease grants fail with etcd's message (3.4
    // and 3.5.1); reads, deletes and compaction go on.
    for out in [etcdctl_raw(&eps, &["put", "/q/more", "x"], None), etcdctl35_raw(&eps, &["put", "/q/more", "x"], None)]
    {
        assert!(!out.status.success() && text(&out).contains(NOSPACE), "{}", text(&out));
    }
    let txn = etcdctl_raw(&eps, &["txn"], Some("\nput /q/txn x\n\n\n"));
    assert!(text(&txn).contains(NOSPACE), "{}", text(&txn));
    let grant = etcdctl_raw(&eps, &["lease", "grant", "60"], None);
    assert!(!grant.status.success() && text(&grant).contains(NOSPACE), "{}", text(&grant));
    assert_eq!(etcdctl(&eps, &["get", "/q/0000", "--print-value-only"]).trim(), value);
    assert!(etcdctl(&eps, &["del", "/q/0000"]).trim() == "1");

    // The alarm survives a restart.
    let down = c.follower();
    c.kill(down);
    c.restart_with(down, &flags);
    c.wait_healthy(&c.members[down], Duration::from_secs(30));
    assert!(etcdctl(&c.members[down].client_url, &["alarm", "list"]).contains("alarm:NOSPACE"));

    // Disarmed while still over the quota, the next put raises it again.
    let disarmed = etcdctl(&eps, &["alarm", "disarm"]);
    assert!(disarmed.contains("alarm:NOSPACE"), "{disarmed}");
    // Through a member that was not restarted: a restart replays the WAL
    // into SST files, which can leave the restarted member under the quota.
    let up = &c.members[(down + 1) % 3];
    let again = try_put(&up.client_addr(), "/q/again", &value);
    assert!(again.as_ref().is_err_and(|e| e.contains(NOSPACE)), "{again:?} {:?}", db_size(&up.client_url));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !etcdctl(&eps, &["alarm", "list"]).contains("alarm:NOSPACE") {
        assert!(Instant::now() < deadline, "the alarm was not raised again");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Making room: delete, compact, defragment every member, disarm.
    etcdctl(&eps, &["del", "/q/", "--prefix"]);
    for i in 0..60 {
        etcdctl_raw(&eps, &["del", &format!("/q/pad{i}")], None);
    }
    let rev = revision(&addr);
    etcdctl(&eps, &["compact", &rev.to_string(), "--physical"]);
    etcdctl35(&eps, &["defrag", "--cluster"]);
    etcdctl35(&eps, &["alarm", "disarm"]);
    assert_eq!(etcdctl(&eps, &["alarm", "list"]).trim(), "");
    let deadline = Instant::now() + Duration::from_secs(10);
    while try_put(&addr, "/q/after", "small").is_err() {
        assert!(
            Instant::now() < deadline,
            "puts still refused after making room: {:?}",
            db_size(&c.members[0].client_url)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(etcdctl(&eps, &["get", "/q/after", "--print-value-only"]).trim(), "small");
}

/// Waits until reading `key` at `rev` fails as compacted (etcdctl 3.4 and
/// 3.5.1 both print etcd's message).
fn wait_compacted(ep: &str, key: &str, rev: i64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let out = etcdctl_raw(ep, &["get", key, &format!("--rev={rev}")], None);
        if !out.status.success() && text(&out).contains(COMPACTED) {
            let out35 = etcdctl35_raw(ep, &["get", key, &format!("--rev={rev}")], None);
            assert!(text(&out35).contains(COMPACTED), "{}", text(&out35));
            return;
        }
        assert!(Instant::now() < deadline, "revision {rev} was not auto-compacted within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Revision-mode auto-compaction keeping 5 revisions, checked every second.
const KEEP_5_EVERY_SECOND: [&str; 6] = [
    "--auto-compaction-mode",
    "revision",
    "--auto-compaction-retention",
    "5",
    "--auto-compaction-revision-interval",
    "1s",
];

#[test]
fn auto_compaction_periodic_and_revision() {
    let periodic = Cluster::start_with(1, &["--auto-compaction-mode", "periodic", "--auto-compaction-retention", "2s"]);
    let revision_mode = Cluster::start_with(3, &KEEP_5_EVERY_SECOND);

    let (ep, addr) = (periodic.members[0].client_url.clone(), periodic.members[0].client_addr());
    let first = put(&addr, "/p", "0");
    for i in 1..5 {
        put(&addr, "/p", &i.to_string());
    }
    wait_compacted(&ep, "/p", first, Duration::from_secs(20));
    let latest = put(&addr, "/p", "new");
    assert!(etcdctl(&ep, &["get", "/p", &format!("--rev={latest}"), "--print-value-only"]).contains("new"));

    let (ep, addr) = (revision_mode.endpoints(), revision_mode.members[0].client_addr());
    let mut last = 0;
    for i in 0..20 {
        last = put(&addr, "/r", &i.to_string());
    }
    // Compacted to `last - 5` by the leader, through raft: every member
    // refuses older revisions, and the kept ones are still there.
    wait_compacted(&ep, "/r", last - 6, Duration::from_secs(20));
    for m in &revision_mode.members {
        wait_compacted(&m.client_url, "/r", last - 6, Duration::from_secs(10));
        let kept = etcdctl(&m.client_url, &["get", "/r", &format!("--rev={}", last - 5), "--print-value-only"]);
        assert_eq!(kept.trim(), "14");
    }
}

/// The compact revision member `addr` reports: a watch from revision 1 is
/// cancelled with it (0 when the watch is not cancelled: nothing is
/// compacted).
fn compact_revision(addr: &str) -> i64 {
    let mut w = HttpStream::open(addr, "/v3/watch");
    w.send(&serde_json::json!({ "create_request": { "key": b64("/r"), "start_revision": 1 } }).to_string());
    let mut deadline = Instant::now() + Duration::from_secs(10);
    let mut created = false;
    while let Some(v) = w.next(deadline) {
        let r = &v["result"];
        if r["canceled"] == true {
            return num(&r["compact_revision"]);
        }
        if r["created"] == true && !created {
            // A cancel comes right after the creation, if at all.
            created = true;
            deadline = Instant::now() + Duration::from_millis(500);
        }
    }
    assert!(created, "no watch response from {addr}");
    0
}

/// Waits until every running member of `c` reports compact revision `want`.
fn wait_compact_revision(c: &Cluster, want: i64, within: Duration) {
    for m in c.members.iter().filter(|m| m.child.is_some()) {
        let deadline = Instant::now() + within;
        loop {
            let got = compact_revision(&m.client_addr());
            if got == want {
                break;
            }
            assert!(Instant::now() < deadline, "{}: compact revision {got}, want {want}", m.name);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The revisions member `m`'s auto-compactor proposed, from its log.
fn auto_compactions(c: &Cluster, m: &Member) -> Vec<i64> {
    let log = std::fs::read_to_string(m.dir.with_extension("log")).expect("log");
    log.lines()
        .filter(|l| l.contains("starting auto-compaction"))
        .map(|l| {
            let rev = l.split("revision=").nth(1).and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next());
            rev.and_then(|r| r.parse().ok())
                .unwrap_or_else(|| panic!("{}: no revision in {l:?}\n{}", m.name, c.log_tail(m)))
        })
        .collect()
}

#[test]
fn auto_compaction_is_proposed_by_the_leader_only() {
    // etcd pauses its compactor on every member but the leader; raft-kv's
    // runs only while the member leads. Checked every second here.
    let mut c = Cluster::start_with(3, &KEEP_5_EVERY_SECOND);
    let leader = c.leader();
    let addr = c.members[leader].client_addr();
    let mut last = 0;
    for i in 0..20 {
        last = put(&addr, "/r", &i.to_string());
    }
    wait_compact_revision(&c, last - 5, Duration::from_secs(20));
    // Three more periods without writes: nothing more to compact.
    std::thread::sleep(Duration::from_secs(3));
    wait_compact_revision(&c, last - 5, Duration::from_secs(1));
    assert_eq!(c.leader(), leader, "the leader changed; the counts below assume it did not");
    let proposed = auto_compactions(&c, &c.members[leader]);
    // One compaction a period at most, each to a newer revision, the last
    // to `last - 5`: never the same revision twice.
    assert!(proposed.windows(2).all(|w| w[0] < w[1]), "{proposed:?}");
    assert_eq!(proposed.last(), Some(&(last - 5)), "{proposed:?}");
    for (i, m) in c.members.iter().enumerate().filter(|&(i, _)| i != leader) {
        assert_eq!(auto_compactions(&c, m), Vec::<i64>::new(), "follower {} (#{i}) proposed", m.name);
    }

    // A restarted follower compacts nothing by itself: its compactor starts
    // afresh, but it does not lead.
    let f = c.follower();
    c.kill(f);
    c.restart_with(f, &KEEP_5_EVERY_SECOND);
    c.wait_healthy(&c.members[f], Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    wait_compact_revision(&c, last - 5, Duration::from_secs(1));
    assert_eq!(auto_compactions(&c, &c.members[f]), Vec::<i64>::new(), "the restarted follower proposed");

    // New writes: the leader compacts again, and every member (the
    // restarted one too) follows its one compaction.
    for i in 0..10 {
        last = put(&addr, "/r", &format!("more{i}"));
    }
    wait_compact_revision(&c, last - 5, Duration::from_secs(20));
    assert_eq!(c.leader(), leader, "the leader changed; the counts below assume it did not");
    for (i, m) in c.members.iter().enumerate() {
        let proposed = auto_compactions(&c, m);
        if i == leader {
            assert_eq!(proposed.last(), Some(&(last - 5)), "{proposed:?}");
        } else {
            assert_eq!(proposed, Vec::<i64>::new(), "follower {} proposed", m.name);
        }
    }
}

#[test]
fn force_new_cluster_recovers_a_survivor_and_takes_members_back() {
    let mut c = Cluster::start(3);
    let addr = c.members[0].client_addr();
    for i in 0..20 {
        put(&addr, &format!("/fnc/{i:02}"), &i.to_string());
    }
    let rev = revision(&addr);
    let survivor_rev = {
        // Wait until member 0 has applied everything before the loss.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = num(&post_ok(&addr, "/v3/kv/range", r#"{"key":"eA==","serializable":true}"#)["header"]["revision"]);
            if r >= rev {
                break r;
            }
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // Two members are lost for good; the survivor is restarted alone.
    c.kill(1);
    c.kill(2);
    c.kill(0);
    let ic = initial_cluster(&c.members);
    c.members[0].child = Some(spawn(&c.members[0], &ic, "new", &["--force-new-cluster"]));
    c.wait_healthy(&c.members[0], Duration::from_secs(30));
    let ep0 = c.members[0].client_url.clone();
    let list = etcdctl(&ep0, &["member", "list"]);
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.contains("m1"), "{list}");
    assert_eq!(etcdctl(&ep0, &["get", "/fnc/", "--prefix", "--keys-only"]).split_whitespace().count(), 20);
    assert!(revision(&addr) >= survivor_rev);
    put(&addr, "/fnc/alone", "yes");

    // Both lost members come back, one after the other, each on an empty
    // data directory after `member add`, joining with state `existing`.
    for i in 1..3 {
        let (name, peer_url) = (c.members[i].name.clone(), c.members[i].peer_url.clone());
        std::fs::remove_dir_all(&c.members[i].dir).expect("wipe the lost member");
        etcdctl35(&ep0, &["member", "add", &name, &format!("--peer-urls={peer_url}")]);
        let ic = initial_cluster(&c.members[..=i]);
        c.members[i].child = Some(spawn(&c.members[i], &ic, "existing", &[]));
        c.wait_healthy(&c.members[i], Duration::from_secs(30));
        let ep = c.members[i].client_url.clone();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = etcdctl(&ep, &["get", "/fnc/alone", "--consistency=s", "--print-value-only"]);
            if got.trim() == "yes" {
                break;
            }
            assert!(Instant::now() < deadline, "re-added {name} did not catch up");
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(etcdctl(&ep, &["member", "list"]).lines().count(), i + 1);
        // A write through the newest member is read on the survivor.
        let key = format!("/fnc/back{i}");
        put(&c.members[i].client_addr(), &key, &i.to_string());
        assert_eq!(etcdctl(&ep0, &["get", &key, "--print-value-only"]).trim(), i.to_string());
    }

    // All three hold every key, and agree on the values and the revision
    // (each read locally, serializable, once it has applied everything).
    let want = etcdctl(&ep0, &["get", "/fnc/", "--prefix", "-w", "json"]);
    let want: Value = serde_json::from_str(&want).expect("json");
    let want_rev = want["header"]["revision"].as_i64().expect("revision");
    assert_eq!(want["kvs"].as_array().map(Vec::len), Some(23), "{want}");
    for m in &c.members {
        let lists: Value =
            serde_json::from_str(&etcdctl(&m.client_url, &["member", "list", "-w", "json"])).expect("json");
        assert_eq!(lists["members"].as_array().map(Vec::len), Some(3), "{}: {lists}", m.name);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = etcdctl(&m.client_url, &["get", "/fnc/", "--prefix", "--consistency=s", "-w", "json"]);
            let got: Value = serde_json::from_str(&got).expect("json");
            if got["header"]["revision"].as_i64() == Some(want_rev) {
                assert_eq!(got["kvs"], want["kvs"], "{}", m.name);
                break;
            }
            assert!(Instant::now() < deadline, "{} stays at {} (want {want_rev})", m.name, got["header"]["revision"]);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn force_new_cluster_refuses_a_missing_or_empty_data_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(empty.join("member")).expect("mkdir");
    for dir in [tmp.path().join("missing"), empty] {
        let (client, peer) = (free_port(), free_port());
        let out = Command::new("timeout")
            .args(["-s", "KILL", "20", env!("CARGO_BIN_EXE_raft-kv-server"), "--name", "m1", "--force-new-cluster"])
            .arg("--data-dir")
            .arg(&dir)
            .args(["--listen-client-urls", &format!("http://127.0.0.1:{client}")])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args(["--initial-cluster", &format!("m1=http://127.0.0.1:{peer}")])
            .stdin(Stdio::null())
            .output()
            .expect("run raft-kv-server");
        assert!(!out.status.success(), "started on {}", dir.display());
        assert_ne!(out.status.code(), None, "killed by the timeout instead of refusing");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--force-new-cluster") && err.contains("missing or empty"), "{err}");
        assert!(!dir.join("member").join("CURRENT").exists(), "no database created in {}", dir.display());
    }
}
