//! Migration between etcd 3.5.1 and raft-kv through etcd's snapshot file,
//! both ways, with the real etcd, etcdctl and etcdutl 3.5.1 (and Debian's
//! etcdctl 3.4): keys, values, create/mod revisions, versions, leases and
//! the compact revision must all survive; bad files are refused and leave
//! no data directory behind; a backup streams in bounded memory.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// The root user [`write_history`] creates; every call signs in as it
/// (etcdctl ignores the user while auth is off).
const ROOT_USER: &str = "--user=root:rootpw";

fn ctl(ep: &str, args: &[&str]) -> Output {
    etcdctl35_raw(ep, &[&[ROOT_USER], args].concat(), None)
}

fn ok(ep: &str, args: &[&str]) -> String {
    let out = ctl(ep, args);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "etcdctl {args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

fn etcdutl(args: &[&str]) -> Output {
    run(120, &etcd35("etcdutl").to_string_lossy(), args, &[], None)
}

/// The same history on any etcd: overwrites, a deletion, a lease with a
/// key, a transaction, values past a page, a compaction. Returns the lease
/// id (hex) and the revision the compaction kept.
fn write_history(ep: &str) -> (String, i64) {
    ok(ep, &["put", "a", "1"]);
    ok(ep, &["put", "b", "2"]);
    ok(ep, &["put", "a", "3"]);
    ok(ep, &["del", "b"]);
    let grant = ok(ep, &["lease", "grant", "600"]);
    let lease = grant.split_whitespace().nth(1).expect("lease id").to_string();
    ok(ep, &["put", "--lease", &lease, "leased", "v"]);
    ok_in(ep, &["txn"], "\nput x 1\nput y 2\n\n\n");
    for i in 0..300 {
        ok(ep, &["put", &format!("bulk/{i:04}"), &"v".repeat(i * 7)]);
    }
    put_large(ep, "big", &"B".repeat(200_000));
    ok(ep, &["put", "a", "4"]);
    ok(ep, &["compact", "5"]);
    write_auth(ep);
    (lease, 5)
}

/// Users, roles with permissions, and auth on (last: every later call
/// signs in as root).
fn write_auth(ep: &str) {
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["user", "grant-role", "root", "root"],
        &["role", "add", "reader"],
        &["role", "grant-permission", "reader", "read", "a"],
        &["role", "grant-permission", "reader", "readwrite", "bulk/", "--prefix"],
        &["user", "add", "alice:alicepw"],
        &["user", "grant-role", "alice", "reader"],
        &["auth", "enable"],
    ] {
        ok(ep, args);
    }
}

/// The auth store as a client sees it, and what alice's password and
/// permissions let her do.
fn auth_view(ep: &str) -> Value {
    let alice = |args: &[&str]| {
        let out = etcdctl35_raw(ep, &[&["--user=alice:alicepw"], args].concat(), None);
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let v = serde_json::json!({
        "status": ok(ep, &["auth", "status"]),
        "users": ok(ep, &["user", "list"]),
        "roles": ok(ep, &["role", "list"]),
        "reader": ok(ep, &["role", "get", "reader"]),
        "alice": ok(ep, &["user", "get", "alice"]),
        "alice_reads": alice(&["get", "a", "--print-value-only"]),
        "alice_denied": alice(&["put", "a", "5"]).contains("permission denied"),
        "wrong_password": etcdctl35_raw(ep, &["--user=alice:nope", "get", "a"], None).status.success(),
    });
    let on = v["status"].as_str().is_some_and(|s| s.contains("Authentication Status: true"));
    assert!(on && v["alice_reads"] == "4\n" && v["alice_denied"] == true && v["wrong_password"] == false, "{v}");
    v
}

/// The `members_removed` bucket of snapshot file `file`: (key, value).
fn removed_members(file: &Path) -> Vec<(String, String)> {
    let len = std::fs::metadata(file).expect("file").len() - 32;
    let db = examples::bbolt::Reader::open_len(file, len).expect("bbolt");
    let bucket = db.bucket(b"members_removed").expect("read").expect("a members_removed bucket");
    let mut out = Vec::new();
    db.walk(&bucket, &mut |k, v, _| {
        out.push((String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()));
        Ok(true)
    })
    .expect("walk");
    out
}

/// What `snapshot status` computes over snapshot file `file`, worked out
/// here from the file through raft-kv's own bbolt reader: the CRC-32C
/// (Castagnoli) of every bucket's name followed by its keys and values, in
/// order, and the number of keys in all buckets.
fn status_hash(file: &Path) -> (u32, u64) {
    let len = std::fs::metadata(file).expect("file").len() - 32;
    let db = examples::bbolt::Reader::open_len(file, len).expect("bbolt");
    let mut crc = !0u32;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
            }
        }
    };
    let mut keys = 0;
    for name in db.bucket_names().expect("buckets") {
        feed(&name);
        let bucket = db.bucket(&name).expect("read").expect("bucket");
        db.walk(&bucket, &mut |k, v, _| {
            feed(k);
            feed(v);
            keys += 1;
            Ok(true)
        })
        .expect("walk");
    }
    (!crc, keys)
}

/// A put through the JSON gateway (a value past the 128 KiB argument
/// limit of a command line).
fn put_large(ep: &str, key: &str, value: &str) {
    put(ep.trim_start_matches("http://"), key, value);
}

fn ok_in(ep: &str, args: &[&str], stdin: &str) {
    let out = etcdctl35_raw(ep, args, Some(stdin));
    assert!(out.status.success(), "{out:?}");
}

/// What a client can see: every key with its revisions, version, lease and
/// value; a read at an old revision; the compacted floor; the leases.
fn view(ep: &str, lease: &str, compact: i64) -> Value {
    let all: Value = serde_json::from_str(&ok(ep, &["get", "--prefix", "", "-w", "json"])).expect("json");
    let old: Value =
        serde_json::from_str(&ok(ep, &["get", "a", "--rev", &compact.to_string(), "-w", "json"])).expect("json");
    let below = ctl(ep, &["get", "a", "--rev", &(compact - 1).to_string()]);
    let ttl: Value = serde_json::from_str(&ok(ep, &["lease", "timetolive", lease, "-w", "json"])).expect("json");
    serde_json::json!({
        "kvs": all["kvs"],
        "count": all["count"],
        "revision": all["header"]["revision"],
        "old": old["kvs"],
        "below_compacted": String::from_utf8_lossy(&below.stderr).contains("required revision has been compacted"),
        "leases": ok(ep, &["lease", "list"]),
        "granted_ttl": ttl["grantedTTL"],
        "auth": auth_view(ep),
    })
}

fn save(ep: &str, file: &Path) {
    let bin = etcd35("etcdctl");
    let args = ["--endpoints", ep, ROOT_USER, "--command-timeout=600s", "snapshot", "save", &file.to_string_lossy()];
    let out = run(600, &bin.to_string_lossy(), &args, &[("ETCDCTL_API", "3")], None);
    assert!(out.status.success(), "snapshot save: {out:?}");
}

#[test]
fn raft_kv_snapshot_restores_into_real_etcd() {
    let c = Cluster::start(3);
    let ep = c.members[0].client_url.clone();
    // A removed member is recorded as etcd records one (the format read
    // from a real etcd 3.5.1's snapshot, below).
    let list: Value = serde_json::from_str(&ok(&ep, &["member", "list", "-w", "json"])).expect("json");
    // A follower: removing the leader would make the next writes race an
    // election.
    let leader = c.leader();
    let follower = c.members[(1..3).find(|&i| i != leader).expect("a follower")].name.clone();
    let named = |m: &&Value| m["name"] == follower.as_str();
    let gone = list["members"].as_array().and_then(|ms| ms.iter().find(named)).expect("member")["ID"].as_u64();
    let gone = gone.expect("member id");
    ok(&ep, &["member", "remove", &format!("{gone:x}")]);
    let (lease, compact) = write_history(&ep);
    let before = view(&ep, &lease, compact);
    let file = c.tmp.path().join("raft-kv.db");
    save(&ep, &file);
    assert_eq!(removed_members(&file), vec![(format!("{gone:x}"), "removed".to_string())]);

    // etcdctl 3.5.1, etcdutl 3.5.1 and Debian's etcdctl 3.4 read it, and
    // report what the file holds: the revision the cluster was at, etcd's
    // hash and key count over every bucket, the database's size.
    let (hash, total_key) = status_hash(&file);
    assert!(total_key > 300, "{total_key} keys");
    let size = std::fs::metadata(&file).expect("file").len() - 32;
    let want = serde_json::json!({
        "hash": hash, "revision": before["revision"], "totalKey": total_key, "totalSize": size,
    });
    let (etcdctl351, etcdutl351) = (etcd35("etcdctl"), etcd35("etcdutl"));
    for (tool, bin) in
        [("etcdctl 3.5.1", etcdctl351.as_path()), ("etcdutl 3.5.1", &etcdutl351), ("etcdctl 3.4", Path::new("etcdctl"))]
    {
        let status = |format: &str| {
            let args = ["snapshot", "status", "-w", format, &file.to_string_lossy()];
            let out = run(30, &bin.to_string_lossy(), &args, &[("ETCDCTL_API", "3")], None);
            assert!(out.status.success(), "{tool} snapshot status: {out:?}");
            out.stdout
        };
        let json: Value = serde_json::from_slice(&status("json")).expect("status json");
        assert_eq!(json, want, "{tool}");
        // The default output: hash (hex), revision, total keys, size.
        let simple = String::from_utf8_lossy(&status("simple")).trim().to_string();
        let want = format!("{hash:x}, {}, {total_key}, ", before["revision"]);
        assert!(simple.starts_with(&want), "{tool}: {simple:?}, want {want:?}...");
    }
    let file34 = c.tmp.path().join("raft-kv-34.db");
    let save34 = run(
        60,
        "etcdctl",
        &["--endpoints", &ep, ROOT_USER, "snapshot", "save", &file34.to_string_lossy()],
        &[("ETCDCTL_API", "3")],
        None,
    );
    assert!(save34.status.success(), "{save34:?}");

    // etcdutl restores it, and a real etcd serves the same data from it.
    let dir = c.tmp.path().join("etcd-restored");
    let peer = format!("http://127.0.0.1:{}", free_port());
    let r = etcdutl(&[
        "snapshot",
        "restore",
        &file.to_string_lossy(),
        "--data-dir",
        &dir.to_string_lossy(),
        "--name",
        "e1",
        "--initial-cluster",
        &format!("e1={peer}"),
        "--initial-advertise-peer-urls",
        &peer,
    ]);
    assert!(r.status.success(), "{r:?}");
    let etcd = RealEtcd::start(&dir, "e1", &peer, &[]);
    assert_eq!(view(&etcd.client_url, &lease, compact), before);
}

/// Restores `file` for every member of a new `n`-member cluster with
/// raft-kv's `snapshot restore`, then starts them with the same flags.
fn restore_cluster(file: &Path, n: usize, extra: &[&str]) -> Cluster {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut members = members_in(tmp.path(), n);
    let ic = initial_cluster(&members);
    for m in &members {
        let mut args = vec!["snapshot".to_string(), "restore".into(), file.to_string_lossy().into()];
        for (flag, value) in [
            ("--data-dir", m.dir.to_string_lossy().to_string()),
            ("--name", m.name.clone()),
            ("--initial-cluster", ic.clone()),
            ("--initial-cluster-token", TOKEN.to_string()),
            ("--initial-advertise-peer-urls", m.peer_url.clone()),
        ] {
            args.push(format!("{flag}={value}"));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = restore(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "restore {}: {}", m.name, String::from_utf8_lossy(&out.stderr));
    }
    for m in &mut members {
        m.child = Some(spawn(m, &ic, "new", &[]));
    }
    let c = Cluster { members, tmp };
    for m in &c.members {
        c.wait_healthy(m, Duration::from_secs(30));
    }
    c
}

fn restore(args: &[&str]) -> Output {
    run(120, env!("CARGO_BIN_EXE_raft-kv-server"), args, &[("RUST_BACKTRACE", "0")], None)
}

#[test]
fn real_etcd_snapshot_restores_into_a_raft_kv_cluster() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let peer = format!("http://127.0.0.1:{}", free_port());
    let etcd = RealEtcd::start(&tmp.path().join("etcd"), "e1", &peer, &[]);
    let added = ok(&etcd.client_url, &["member", "add", "gone", "--learner", "--peer-urls", "http://127.0.0.1:1"]);
    let gone = added.split_whitespace().nth(1).expect("member id").to_string();
    ok(&etcd.client_url, &["member", "remove", &gone]);
    let (lease, compact) = write_history(&etcd.client_url);
    let before = view(&etcd.client_url, &lease, compact);
    let file = tmp.path().join("etcd.db");
    save(&etcd.client_url, &file);
    drop(etcd);
    assert_eq!(removed_members(&file), vec![(gone, "removed".to_string())], "etcd 3.5.1's format");

    let c = restore_cluster(&file, 3, &[]);
    for m in &c.members {
        assert_eq!(view(&m.client_url, &lease, compact), before, "{}", m.name);
    }
    // One cluster: one leader, and a write on one member is read on another.
    let st: Value = serde_json::from_str(&ok(&c.endpoints(), &["endpoint", "status", "-w", "json"])).expect("json");
    let leaders: Vec<_> = st.as_array().expect("array").iter().map(|s| s["Status"]["leader"].clone()).collect();
    assert!(leaders.iter().all(|l| *l == leaders[0] && l.as_u64() > Some(0)), "{leaders:?}");
    ok(&c.members[1].client_url, &["put", "after", "restore"]);
    let got: Value =
        serde_json::from_str(&ok(&c.members[2].client_url, &["get", "after", "-w", "json"])).expect("json");
    let rev = before["revision"].as_i64().expect("revision");
    assert_eq!(got["kvs"][0]["mod_revision"].as_i64(), Some(rev + 1), "{got}");

    // A raft-kv snapshot of the restored cluster restores again, bumped
    // and marked compacted.
    let again = c.tmp.path().join("again.db");
    save(&c.members[0].client_url, &again);
    let c2 = restore_cluster(&again, 3, &["--bump-revision=1000", "--mark-compacted"]);
    let ep = &c2.members[0].client_url;
    let st: Value = serde_json::from_str(&ok(ep, &["get", "a", "-w", "json"])).expect("json");
    assert_eq!(st["header"]["revision"].as_i64(), Some(rev + 1 + 1000), "{st}");
    assert_eq!(st["kvs"][0], before["kvs"][0]);
    let below = ctl(ep, &["get", "a", "--rev", &(rev + 1000).to_string()]);
    assert!(String::from_utf8_lossy(&below.stderr).contains("compacted"), "{below:?}");
}

/// A real etcd 3.5.1 with [`write_history`] written, then stopped: its
/// client view, its lease and compact revision, a snapshot saved from it
/// (`saved`, with the sha256 trailer), and its database copied out of
/// `member/snap/db` once it stopped (`copied`, no trailer).
struct RealFiles {
    tmp: tempfile::TempDir,
    before: Value,
    lease: String,
    compact: i64,
    saved: PathBuf,
    copied: PathBuf,
}

fn real_etcd_files() -> RealFiles {
    let tmp = tempfile::tempdir().expect("tempdir");
    let peer = format!("http://127.0.0.1:{}", free_port());
    let dir = tmp.path().join("etcd");
    let etcd = RealEtcd::start(&dir, "e1", &peer, &[]);
    let (lease, compact) = write_history(&etcd.client_url);
    let before = view(&etcd.client_url, &lease, compact);
    let saved = tmp.path().join("saved.db");
    save(&etcd.client_url, &saved);
    etcd.stop();
    let copied = tmp.path().join("copied.db");
    std::fs::copy(dir.join("member/snap/db"), &copied).expect("copy member/snap/db");
    assert_ne!(std::fs::metadata(&copied).expect("copied").len() % 512, 32, "a bbolt file has no trailer");
    RealFiles { tmp, before, lease, compact, saved, copied }
}

/// etcdutl 3.5.1's `snapshot restore` of `file` into `dir` (one member),
/// with `extra` flags.
fn etcdutl_restore(file: &Path, dir: &Path, peer: &str, extra: &[&str]) -> Output {
    let (file, dir) = (file.to_string_lossy(), dir.to_string_lossy());
    let ic = format!("e1={peer}");
    let args = ["snapshot", "restore", &file, "--data-dir", &dir, "--name", "e1", "--initial-cluster", &ic];
    etcdutl(&[&args[..], &["--initial-advertise-peer-urls", peer], extra].concat())
}

#[test]
fn a_database_copied_out_of_etcd_restores_with_skip_hash_check_as_with_etcdutl() {
    let f = real_etcd_files();
    let (view_of, before) = (|ep: &str| view(ep, &f.lease, f.compact), &f.before);
    // The copied database is the same data as the saved snapshot.
    let status = |file: &Path| {
        let out = etcdutl(&["snapshot", "status", "-w", "json", &file.to_string_lossy()]);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<Value>(&out.stdout).expect("status json")
    };
    assert_eq!(status(&f.copied)["revision"], before["revision"]);

    // Without --skip-hash-check, etcdutl 3.5.1 and raft-kv refuse it with
    // the same message (raft-kv leaves no directory behind; etcdutl 3.5.1
    // leaves a partial `member/snap/db`).
    const MISSING: &str = "snapshot missing hash but --skip-hash-check=false";
    let peer = format!("http://127.0.0.1:{}", free_port());
    let out = etcdutl_restore(&f.copied, &f.tmp.path().join("etcdutl-refused"), &peer, &[]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains(MISSING), "{out:?}");
    let raft_kv = f.tmp.path().join("out");
    std::fs::create_dir(&raft_kv).expect("out dir");
    refused(&f.copied, &raft_kv.join("data"), &[], MISSING);

    // With it, both restore it, and etcd 3.5.1 and raft-kv serve the same
    // data as the etcd it was copied from.
    let dir = f.tmp.path().join("etcdutl-restored");
    let out = etcdutl_restore(&f.copied, &dir, &peer, &["--skip-hash-check"]);
    assert!(out.status.success(), "{out:?}");
    let etcd = RealEtcd::start(&dir, "e1", &peer, &[]);
    assert_eq!(&view_of(&etcd.client_url), before, "etcd 3.5.1 on etcdutl's restore");
    drop(etcd);
    let c = restore_cluster(&f.copied, 1, &["--skip-hash-check"]);
    assert_eq!(&view_of(&c.members[0].client_url), before, "raft-kv on its restore");
    drop(c);

    // A saved snapshot whose trailer no longer matches: both refuse it,
    // and both restore it with --skip-hash-check.
    let mut bytes = std::fs::read(&f.saved).expect("read");
    *bytes.last_mut().expect("trailer") ^= 0x01;
    let bad = f.tmp.path().join("bad-trailer.db");
    std::fs::write(&bad, &bytes).expect("write");
    let out = etcdutl_restore(&bad, &f.tmp.path().join("etcdutl-bad"), &peer, &[]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("expected sha256"), "{out:?}");
    refused(&bad, &raft_kv.join("data"), &[], "expected sha256");
    let out = etcdutl_restore(&bad, &f.tmp.path().join("etcdutl-bad-skipped"), &peer, &["--skip-hash-check"]);
    assert!(out.status.success(), "{out:?}");
    let c = restore_cluster(&bad, 1, &["--skip-hash-check"]);
    assert_eq!(&view_of(&c.members[0].client_url), before, "raft-kv on the skipped check");
}

#[test]
fn bump_revision_and_mark_compacted_on_a_real_etcd_snapshot() {
    let f = real_etcd_files();
    // etcdutl 3.5.1 gives the file's revision; it has no --bump-revision
    // or --mark-compacted (later 3.5 releases added them): raft-kv follows
    // their semantics, latest revision + bump, marked compacted there.
    let st = etcdutl(&["snapshot", "status", "-w", "json", &f.saved.to_string_lossy()]);
    assert!(st.status.success(), "{st:?}");
    let rev = serde_json::from_slice::<Value>(&st.stdout).expect("json")["revision"].as_i64().expect("revision");
    assert_eq!(Some(rev), f.before["revision"].as_i64());
    let peer = format!("http://127.0.0.1:{}", free_port());
    let flags = ["--bump-revision=1000", "--mark-compacted"];
    let out = etcdutl_restore(&f.saved, &f.tmp.path().join("etcdutl-bumped"), &peer, &flags);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("unknown flag: --bump-revision"), "{out:?}");

    let c = restore_cluster(&f.saved, 3, &flags);
    let bumped = rev + 1000;
    for m in &c.members {
        let ep = &m.client_url;
        let all: Value = serde_json::from_str(&ok(ep, &["get", "--prefix", "", "-w", "json"])).expect("json");
        assert_eq!(all["header"]["revision"].as_i64(), Some(bumped), "{}", m.name);
        // Every key keeps its own revisions and versions.
        assert_eq!(all["kvs"], f.before["kvs"], "{}", m.name);
        // Compacted at the bumped revision: nothing older can be read, the
        // bumped revision itself can.
        let below = ctl(ep, &["get", "a", "--rev", &(bumped - 1).to_string()]);
        let below = String::from_utf8_lossy(&below.stderr).to_string();
        assert!(below.contains("required revision has been compacted"), "{}: {below}", m.name);
        let at = ok(ep, &["get", "a", "--rev", &bumped.to_string(), "--print-value-only"]);
        assert_eq!(at.trim(), "4", "{}", m.name);
        let ttl: Value = serde_json::from_str(&ok(ep, &["lease", "timetolive", &f.lease, "-w", "json"])).expect("json");
        assert_eq!(ttl["grantedTTL"], f.before["granted_ttl"], "{}", m.name);
    }
    // The next write comes after the bumped revision.
    ok(&c.members[1].client_url, &["put", "after", "bump"]);
    let got: Value =
        serde_json::from_str(&ok(&c.members[2].client_url, &["get", "after", "-w", "json"])).expect("json");
    assert_eq!(got["kvs"][0]["mod_revision"].as_i64(), Some(bumped + 1), "{got}");
}

/// `snapshot restore` of `file` into `dir`: must fail with `want` in its
/// error and leave neither `dir` nor a temporary directory behind.
fn refused(file: &Path, dir: &Path, extra: &[&str], want: &str) {
    let mut args = vec!["snapshot", "restore"];
    let (f, d) = (file.to_string_lossy().to_string(), format!("--data-dir={}", dir.to_string_lossy()));
    args.extend([f.as_str(), d.as_str()]);
    args.extend_from_slice(extra);
    let out = restore(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(want), "{file:?}: want {want:?}, got {err}");
    assert!(!err.contains("panicked"), "{err}");
    let parent = dir.parent().expect("parent");
    let left: Vec<PathBuf> = std::fs::read_dir(parent)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".raft-kv-restore")))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn bad_snapshots_are_refused_and_leave_nothing_behind() {
    let c = Cluster::start(1);
    let ep = c.members[0].client_url.clone();
    for i in 0..200 {
        ok(&ep, &["put", &format!("k{i:03}"), &"x".repeat(100)]);
    }
    let good = c.tmp.path().join("good.db");
    save(&ep, &good);
    let bytes = std::fs::read(&good).expect("read");
    let out = c.tmp.path().join("out");
    std::fs::create_dir(&out).expect("out dir");
    let dir = out.join("data");
    let write = |name: &str, b: &[u8]| {
        let p = c.tmp.path().join(name);
        std::fs::write(&p, b).expect("write");
        p
    };
    let with_hash = |db: &[u8]| {
        use sha2::Digest;
        let mut f = db.to_vec();
        f.extend_from_slice(&sha2::Sha256::digest(db));
        f
    };
    let db = &bytes[..bytes.len() - 32];

    refused(&write("truncated.db", &bytes[..bytes.len() / 2]), &dir, &[], "snapshot missing hash");
    refused(&write("truncated-db.db", &with_hash(&db[..db.len() - 4096])), &dir, &[], "truncated");
    let mut flipped = bytes.clone();
    flipped[db.len() / 2] ^= 0x55;
    refused(&write("flipped.db", &flipped), &dir, &[], "expected sha256");
    refused(&write("text.db", &with_hash(&[b'x'; 512])), &dir, &[], "not a bbolt file");
    // Damaged pages behind a valid hash: each page's id, count and
    // overflow fields scrambled in turn.
    for page in (3..db.len() / 4096).step_by(2) {
        let mut bad = db.to_vec();
        for b in &mut bad[page * 4096 + 8..page * 4096 + 16] {
            *b ^= 0xA7;
        }
        let out = restore(&[
            "snapshot",
            "restore",
            &write("pages.db", &with_hash(&bad)).to_string_lossy(),
            &format!("--data-dir={}", dir.to_string_lossy()),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "page {page}: {err}");
        if out.status.success() {
            std::fs::remove_dir_all(&dir).expect("clean");
        } else {
            assert!(!dir.exists(), "page {page}: half-written data dir");
        }
    }
    refused(&good, &dir, &["--bump-revision=5"], "--mark-compacted required");

    // A good file restores, once: the directory is then in use.
    let ok_restore =
        restore(&["snapshot", "restore", &good.to_string_lossy(), &format!("--data-dir={}", dir.to_string_lossy())]);
    assert!(ok_restore.status.success(), "{ok_restore:?}");
    refused(&good, &dir, &[], "exists");
}

/// Peak RSS growth of process `pid` while `f` runs.
fn rss_growth(pid: u32, f: impl FnOnce()) -> u64 {
    let rss = move || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: 0 kB");
        line.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0) * 1024
    };
    let base = rss();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let peak = std::thread::spawn(move || {
        let mut peak = 0;
        while !s.load(std::sync::atomic::Ordering::Relaxed) {
            peak = peak.max(rss());
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    });
    f();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    peak.join().expect("sampler").saturating_sub(base)
}

#[test]
fn a_large_backup_streams_in_bounded_memory() {
    let c = Cluster::start(1);
    let ep = c.members[0].client_url.clone();
    // 128 MiB of values, 1 MiB each.
    let value = "m".repeat(1 << 20);
    let n = 128;
    for i in 0..n {
        put_large(&ep, &format!("big/{i:04}"), &value);
    }
    let file = c.tmp.path().join("large.db");
    let growth = rss_growth(c.members[0].pid(), || save(&ep, &file));
    let size = std::fs::metadata(&file).expect("file").len();
    assert!(size > n << 20, "snapshot of {size} bytes");
    // Design bound: a few 64 KiB chunks, one version, a few pages, and the
    // scratch sort's keys; the store itself never sits in memory.
    assert!(growth < size / 4, "RSS grew {growth} bytes while streaming a {size}-byte snapshot");
    eprintln!("RSS growth {} MiB while streaming {} MiB", growth >> 20, size >> 20);
}
