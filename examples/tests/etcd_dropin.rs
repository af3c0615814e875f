//! raft-kv-server as a drop-in for etcd 3.5, against real processes:
//!
//! * etcd's command line and environment: the flag table in
//!   docs/etcd-flags.md is `etcd --help` of the real etcd 3.5.1; a member
//!   configured only through `ETCD_*` variables; no-op flags warn, refused
//!   ones exit naming the flag; `--listen-metrics-urls`;
//! * what Kubernetes looks for: the version, progress notifications on
//!   request and by interval (under both flag names), `WithRequireLeader`;
//! * ranges (`count_only`, `keys_only`, `limit` at a revision, negative
//!   revision and limit) and compaction errors, compared answer for answer
//!   with a real etcd 3.5.1.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use examples::services::kv_client::KvClient;
use examples::services::watch_client::WatchClient;
use futures_util::StreamExt;
use raft_kv::pb::etcdserverpb::{
    watch_request, CompactionRequest, PutRequest, RangeRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest,
    WatchResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use tonic::Streaming;

fn server() -> &'static str {
    env!("CARGO_BIN_EXE_raft-kv-server")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `GET addr path` answers 200; returns the body.
fn wait_get(addr: &str, path: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok((200, body)) = http(addr, "GET", path, "") {
            return body;
        }
        assert!(Instant::now() < deadline, "GET {addr}{path} not 200 within {secs}s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The rows of docs/etcd-flags.md's table are exactly the flags `etcd
/// --help` of etcd 3.5.1 lists (plus `--config-file`, in its usage lines).
#[test]
fn flag_table_is_etcds_help() {
    let out = run(30, &etcd35("etcd").to_string_lossy(), &["--help"], &[], None);
    let help = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let mut from_help: Vec<String> = help
        .lines()
        .filter_map(|l| l.strip_prefix("  --"))
        .map(|l| l.split([' ', '\'']).next().unwrap_or("").to_string())
        .collect();
    from_help.push("config-file".into());
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/etcd-flags.md")).expect("doc");
    let in_doc: Vec<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `--"))
        .map(|l| l.split('`').next().unwrap_or("").to_string())
        .collect();
    assert!(from_help.len() > 80, "{help}");
    assert_eq!(in_doc, from_help, "docs/etcd-flags.md lists other flags than etcd 3.5.1 --help");
}

/// A member configured only through `ETCD_*` variables (as etcd's charts
/// and Compose files do), with no-op flags on its command line and an
/// unknown `ETCD_*` variable: it serves, warns about each, and its
/// `--listen-metrics-urls` listener serves `/metrics` and `/health` only.
#[test]
fn etcd_environment_and_flags() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (client, peer, metrics) = (free_port(), free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let log = tmp.path().join("log");
    let env = [
        ("ETCD_NAME", "e1".to_string()),
        ("ETCD_DATA_DIR", tmp.path().join("d").to_string_lossy().to_string()),
        ("ETCD_LISTEN_CLIENT_URLS", client_url.clone()),
        ("ETCD_ADVERTISE_CLIENT_URLS", client_url.clone()),
        ("ETCD_LISTEN_PEER_URLS", peer_url.clone()),
        ("ETCD_INITIAL_ADVERTISE_PEER_URLS", peer_url.clone()),
        ("ETCD_INITIAL_CLUSTER", format!("e1={peer_url}")),
        ("ETCD_LISTEN_METRICS_URLS", format!("http://127.0.0.1:{metrics}")),
        ("ETCD_LOG_OUTPUTS", log.to_string_lossy().to_string()),
        ("ETCD_ENABLE_V2", "false".to_string()),
        ("ETCD_NOT_A_FLAG", "x".to_string()),
    ];
    let child = Command::new(server())
        .args(["--enable-pprof", "--logger=zap", "-max-wals", "5", "--metrics=basic"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let _p = Proc(child);
    let addr = format!("127.0.0.1:{client}");
    wait_get(&addr, "/health", 30);
    let version: serde_json::Value = serde_json::from_str(&wait_get(&addr, "/version", 5)).expect("json");
    assert_eq!(version, serde_json::json!({"etcdserver": "3.5.17", "etcdcluster": "3.5.0"}));
    put(&addr, "k", "v");
    let members = etcdctl(&addr, &["member", "list"]);
    assert!(members.contains(&format!("e1, {peer_url}, {client_url}")), "{members}");

    let maddr = format!("127.0.0.1:{metrics}");
    let text = wait_get(&maddr, "/metrics", 5);
    assert!(text.contains("etcd_server_has_leader 1"), "{text}");
    assert_eq!(http(&maddr, "GET", "/health", "").expect("health").0, 200);
    assert_eq!(http(&maddr, "POST", "/v3/kv/range", r#"{"key":"aw=="}"#).expect("range").0, 404);

    let log = std::fs::read_to_string(&log).expect("--log-outputs file");
    for w in [
        "--enable-pprof=true is an etcd flag that raft-kv accepts and ignores",
        "--max-wals=5 is an etcd flag that raft-kv accepts and ignores",
        "--metrics=basic is an etcd flag that raft-kv accepts and ignores",
        "ETCD_ENABLE_V2=false is an etcd flag that raft-kv accepts and ignores",
        "unrecognized environment variable ETCD_NOT_A_FLAG=x",
    ] {
        assert!(log.contains(w), "no warning {w:?} in:\n{log}");
    }
}

/// `--version` prints etcd 3.5.1's four lines with raft-kv's values: the
/// etcd version it reports, the build's commit (etcd's 9-digit form), no Go
/// (the Rust compiler instead) and the target in Go's names.
#[test]
fn version_lines_are_etcds() {
    let label = |line: &str| line.split(':').next().unwrap_or("").to_string();
    let theirs = run(10, &etcd35("etcd").to_string_lossy(), &["--version"], &[], None);
    let ours = run(10, server(), &["--version"], &[], None);
    assert!(theirs.status.success() && ours.status.success(), "{theirs:?} {ours:?}");
    let (theirs, ours) = (String::from_utf8_lossy(&theirs.stdout), String::from_utf8_lossy(&ours.stdout));
    assert_eq!(ours.lines().map(label).collect::<Vec<_>>(), theirs.lines().map(label).collect::<Vec<_>>(), "{ours}");
    let lines: Vec<&str> = ours.lines().collect();
    assert_eq!(lines[0], "etcd Version: 3.5.17");
    let sha = lines[1].strip_prefix("Git SHA: ").expect("sha");
    assert!(sha == "Not provided" || (sha.len() == 9 && sha.bytes().all(|b| b.is_ascii_hexdigit())), "{sha}");
    assert!(lines[2].starts_with("Go Version: none (raft-kv ") && lines[2].contains("rustc 1."), "{}", lines[2]);
    assert_eq!(lines[3], theirs.lines().nth(3).expect("os/arch"), "same machine, same Go OS/Arch");
}

/// `--log-level` (and `ETCD_LOG_LEVEL`) filter as etcd's levels do, into
/// the `--log-outputs` file: each level shows its own lines and hides the
/// ones below it (`--enable-pprof` makes a warning to show or hide).
/// Unknown levels, loggers and combined `default` outputs are refused with
/// etcd 3.5.1's messages.
#[test]
fn log_levels_and_outputs() {
    type Case =
        (&'static [&'static str], &'static [(&'static str, &'static str)], &'static str, &'static [&'static str]);
    let cases: [Case; 4] = [
        (&["--log-level=debug"], &[], " DEBUG ", &[]),
        (&["--log-level", "info"], &[], " INFO ", &[" DEBUG "]),
        (&[], &[("ETCD_LOG_LEVEL", "warn")], " WARN ", &[" INFO ", " DEBUG "]),
        (&["--log-level=error"], &[], "", &[" WARN ", " INFO ", " DEBUG "]),
    ];
    let tmp = tempfile::tempdir().expect("tmp");
    for (i, (args, env, shown, hidden)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(i.to_string());
        std::fs::create_dir(&dir).expect("dir");
        let m = members_in(&dir, 1).remove(0);
        let log = m.dir.with_extension("levels.log");
        let mut extra = vec!["--enable-pprof".to_string(), format!("--log-outputs={}", log.display())];
        extra.extend(args.iter().map(|a| a.to_string()));
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let mut cmd = command(&m, &initial_cluster(std::slice::from_ref(&m)), "new", &extra, env);
        let p = Proc(cmd.env_remove("RUST_LOG").spawn().expect("spawn"));
        wait_get(&m.client_addr(), "/health", 30);
        put(&m.client_addr(), "k", "v");
        drop(p);
        let text = std::fs::read_to_string(&log).expect("log file");
        assert!(text.contains(shown), "{args:?} {env:?}: no{shown}line in\n{text}");
        for h in hidden {
            assert!(!text.contains(h), "{args:?} {env:?}: a{h}line in\n{text}");
        }
    }
    let out = run(30, &etcd35("etcd").to_string_lossy(), &["--log-level=bogus"], &[], None);
    let etcd_says = String::from_utf8_lossy(&out.stderr).to_string();
    for (flag, want) in [
        ("--log-level=bogus", "unrecognized level: \"bogus\""),
        ("--logger=capnslog", "--logger=capnslog is removed in v3.5"),
        ("--logger=bogus", "unknown logger option \"bogus\""),
        ("--log-outputs=default,stdout", "multi logoutput for \"default\" is not supported yet"),
    ] {
        let out = run(20, server(), &[flag], &[("RUST_BACKTRACE", "0")], None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{flag}: {err}");
    }
    assert!(etcd_says.contains("unrecognized level: \"bogus\""), "etcd 3.5.1 says {etcd_says}");
}

/// A command line, an environment and the error they must give.
type Refused = (&'static [&'static str], &'static [(&'static str, &'static str)], &'static str);

/// Flags and variables raft-kv refuses: the process exits at once with an
/// error naming them, as etcd does for a flag it does not know.
#[test]
fn refused_flags_name_themselves() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cases: [Refused; 5] = [
        (&["--wal-dir=/x"], &[], "flag --wal-dir is an etcd flag raft-kv does not implement"),
        (&["--enable-v2"], &[], "--enable-v2=true is not supported by raft-kv"),
        (
            &[],
            &[("ETCD_DISCOVERY_SRV", "example.com")],
            "flag --discovery-srv is an etcd flag raft-kv does not implement",
        ),
        (&["--name=a"], &[("ETCD_NAME", "b")], "conflicting environment variable ETCD_NAME"),
        (&["--experimental-foo"], &[], "unexpected argument '--experimental-foo'"),
    ];
    for (args, env, want) in cases {
        let out = run(20, server(), args, env, None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} {env:?} started");
        assert!(err.contains(want), "{args:?} {env:?}: {err}");
    }
    drop(tmp);
}

/// Reads a watch stream until `pred` holds for a response.
async fn until(
    stream: &mut Streaming<WatchResponse>,
    what: &str,
    pred: impl Fn(&WatchResponse) -> bool,
) -> WatchResponse {
    within(Duration::from_secs(20), what, async {
        loop {
            let r = stream.next().await.unwrap_or_else(|| panic!("{what}: stream ended")).expect("watch response");
            if pred(&r) {
                return r;
            }
        }
    })
    .await
}

fn is_progress(r: &WatchResponse) -> bool {
    r.events.is_empty() && !r.created && !r.canceled && r.compact_revision == 0
}

/// What Kubernetes (≥ 1.27 against etcd ≥ 3.5.13) relies on: a progress
/// request answers with a notification at the current revision, and
/// watches that ask for them get notifications by interval, under etcd
/// 3.5's flag name and the 3.6 one.
#[test]
fn progress_notifications() {
    for flag in ["--experimental-watch-progress-notify-interval=300ms", "--watch-progress-notify-interval=300ms"] {
        let c = Cluster::start_with(1, &[flag]);
        let url = c.members[0].client_url.clone();
        rt().block_on(async {
            let ch = connect(&url).await;
            let mut kv = KvClient::new(ch.clone());
            let (tx, rx) = mpsc::channel(8);
            let mut stream = WatchClient::new(ch).watch(ReceiverStream::new(rx)).await.expect("watch").into_inner();
            let create = |key: &'static str, progress_notify| WatchRequest {
                request_union: Some(watch_request::RequestUnion::CreateRequest(WatchCreateRequest {
                    key: key.into(),
                    progress_notify,
                    ..Default::default()
                })),
            };
            tx.send(create("a", false)).await.expect("send");
            until(&mut stream, "created", |r| r.created).await;
            let mut rev = 0;
            for i in 0..3 {
                rev = kv
                    .put(PutRequest { key: format!("b{i}").into(), value: "v".into(), ..Default::default() })
                    .await
                    .expect("put")
                    .into_inner()
                    .header
                    .expect("header")
                    .revision;
            }
            tx.send(WatchRequest {
                request_union: Some(watch_request::RequestUnion::ProgressRequest(WatchProgressRequest {})),
            })
            .await
            .expect("send");
            let p = until(&mut stream, "progress on request", is_progress).await;
            assert_eq!(p.header.as_ref().map(|h| h.revision), Some(rev), "{flag}: {p:?}");

            tx.send(create("c", true)).await.expect("send");
            let created = until(&mut stream, "created", |r| r.created).await;
            let p =
                until(&mut stream, "progress by interval", |r| is_progress(r) && r.watch_id == created.watch_id).await;
            assert_eq!(p.header.as_ref().map(|h| h.revision), Some(rev), "{flag}: {p:?}");
        });
    }
}

fn with_leader<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("hasleader", "true".parse().expect("metadata"));
    r
}

/// `WithRequireLeader` (`hasleader: true` metadata): served while the
/// member has a leader; once the other two members are gone, a range and a
/// put fail with Unavailable "etcdserver: no leader" instead of waiting, and
/// a watch opened with it is ended with the same error, while a watch
/// without it stays open.
#[test]
fn require_leader() {
    let mut c = Cluster::start_with(3, &["--election-timeout=500"]);
    let url = c.members[0].client_url.clone();
    let rt = rt();
    let (mut kv, mut led, mut plain) = rt.block_on(async {
        let ch = connect(&url).await;
        let mut kv = KvClient::new(ch.clone());
        let r = kv.range(with_leader(RangeRequest { key: "k".into(), ..Default::default() })).await;
        assert!(r.is_ok(), "{r:?}");
        let open = |hasleader: bool| {
            let ch = ch.clone();
            async move {
                let (tx, rx) = mpsc::channel(8);
                tx.send(WatchRequest {
                    request_union: Some(watch_request::RequestUnion::CreateRequest(WatchCreateRequest {
                        key: "w".into(),
                        ..Default::default()
                    })),
                })
                .await
                .expect("send");
                let req = if hasleader {
                    with_leader(ReceiverStream::new(rx))
                } else {
                    tonic::Request::new(ReceiverStream::new(rx))
                };
                let mut s = WatchClient::new(ch).watch(req).await.expect("watch").into_inner();
                until(&mut s, "created", |r| r.created).await;
                (s, tx)
            }
        };
        (kv, open(true).await, open(false).await)
    });
    c.kill(1);
    c.kill(2);
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        // Until the member notices it has lost the leader, a range waits for
        // it (and times out); then it fails at once.
        let err = loop {
            let r = kv.range(with_leader(RangeRequest { key: "k".into(), ..Default::default() })).await;
            match r {
                Err(e) if e.message() == "etcdserver: no leader" => break e,
                _ => {
                    assert!(Instant::now() < deadline, "no \"no leader\" 30s after quorum loss: {r:?}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        assert_eq!((err.code(), err.message()), (tonic::Code::Unavailable, "etcdserver: no leader"));
        let err = within(
            Duration::from_secs(5),
            "put with hasleader",
            kv.put(with_leader(PutRequest { key: "k".into(), ..Default::default() })),
        )
        .await
        .expect_err("put without a leader");
        assert_eq!((err.code(), err.message()), (tonic::Code::Unavailable, "etcdserver: no leader"));
        let end = within(Duration::from_secs(20), "watch with hasleader ended", async {
            loop {
                match led.0.next().await {
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break Some(e),
                    None => break None,
                }
            }
        })
        .await
        .expect("the stream ended with an error");
        assert_eq!((end.code(), end.message()), (tonic::Code::Unavailable, "etcdserver: no leader"));
        let still = tokio::time::timeout(Duration::from_millis(500), plain.0.next()).await;
        assert!(still.is_err(), "a watch without hasleader was ended: {still:?}");
        drop(plain.1);
        drop(led.1);
    });
}

/// One line per request of a fixed script: ranges with `count_only`,
/// `keys_only` and `limit` at an old revision, negative revision and limit,
/// and the compaction errors, as the server answers them (revisions
/// relative to the script's first write, so two servers compare).
async fn range_script(url: &str) -> Vec<String> {
    let mut kv = KvClient::new(connect(url).await);
    let mut out = Vec::new();
    let mut first = 0;
    for i in 0..5 {
        let r = kv
            .put(PutRequest { key: format!("s/{i}").into(), value: format!("v{i}").into(), ..Default::default() })
            .await
            .expect("put");
        let rev = r.into_inner().header.expect("header").revision;
        if i == 0 {
            first = rev;
        }
    }
    kv.put(PutRequest { key: "s/0".into(), value: "again".into(), ..Default::default() }).await.expect("put");
    let base = RangeRequest { key: "s/".into(), range_end: "s0".into(), ..Default::default() };
    let cases: Vec<(&str, RangeRequest)> = vec![
        ("count_only", RangeRequest { count_only: true, ..base.clone() }),
        ("count_only at rev", RangeRequest { count_only: true, revision: first + 2, ..base.clone() }),
        ("keys_only limit 2 at rev", RangeRequest { keys_only: true, limit: 2, revision: first + 3, ..base.clone() }),
        ("limit 1 at first", RangeRequest { limit: 1, revision: first, ..base.clone() }),
        ("count_only keys_only limit", RangeRequest { count_only: true, keys_only: true, limit: 1, ..base.clone() }),
        ("negative revision", RangeRequest { revision: -1, ..base.clone() }),
        ("negative limit", RangeRequest { limit: -3, ..base.clone() }),
        ("future revision", RangeRequest { revision: first + 100, ..base.clone() }),
    ];
    let show = |r: Result<tonic::Response<raft_kv::pb::etcdserverpb::RangeResponse>, tonic::Status>| match r {
        Ok(r) => {
            let r = r.into_inner();
            let kvs: Vec<String> = r
                .kvs
                .iter()
                .map(|kv| {
                    format!(
                        "{}={} c{} m{} v{}",
                        String::from_utf8_lossy(&kv.key),
                        String::from_utf8_lossy(&kv.value),
                        kv.create_revision - first,
                        kv.mod_revision - first,
                        kv.version
                    )
                })
                .collect();
            format!("ok count={} more={} kvs={kvs:?}", r.count, r.more)
        }
        Err(e) => format!("{:?} {:?}", e.code(), e.message()),
    };
    for (what, req) in cases {
        out.push(format!("{what}: {}", show(kv.range(req).await)));
    }
    let compact = |revision| CompactionRequest { revision, physical: true };
    let c = kv
        .compact(compact(first + 2))
        .await
        .map(|_| "ok".to_string())
        .unwrap_or_else(|e| format!("{:?} {:?}", e.code(), e.message()));
    out.push(format!("compact: {c}"));
    let again = kv
        .compact(compact(first + 1))
        .await
        .map(|_| "ok".to_string())
        .unwrap_or_else(|e| format!("{:?} {:?}", e.code(), e.message()));
    out.push(format!("compact older: {again}"));
    let future = kv
        .compact(compact(first + 100))
        .await
        .map(|_| "ok".to_string())
        .unwrap_or_else(|e| format!("{:?} {:?}", e.code(), e.message()));
    out.push(format!("compact future: {future}"));
    out.push(format!(
        "range at compacted: {}",
        show(kv.range(RangeRequest { revision: first + 1, ..base.clone() }).await)
    ));
    out.push(format!(
        "range at compact rev: {}",
        show(kv.range(RangeRequest { revision: first + 2, count_only: true, ..base.clone() }).await)
    ));
    out
}

/// The script's answers from raft-kv are etcd 3.5.1's, line for line.
#[test]
fn ranges_and_compaction_match_etcd() {
    let etcd = RealEtcd::start_temp(&[]);
    let c = Cluster::start(1);
    let rt = rt();
    let want = rt.block_on(range_script(&etcd.client_url));
    let got = rt.block_on(range_script(&c.members[0].client_url));
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(g, w, "raft-kv (left) and etcd 3.5.1 (right) differ");
    }
    assert_eq!(got.len(), want.len());
}

/// `# TYPE` of `name` in an exposition, and the label names and `le`
/// bounds of its samples.
fn family(text: &str, name: &str) -> (Option<String>, Vec<String>, Vec<String>) {
    let kind = text.lines().find_map(|l| l.strip_prefix(&format!("# TYPE {name} "))).map(str::to_string);
    let mut labels = std::collections::BTreeSet::new();
    let mut les = Vec::new();
    for l in text.lines().filter(|l| l.starts_with(name) && !l.starts_with('#')) {
        let Some((_, rest)) = l.split_once('{') else { continue };
        let body = rest.split('}').next().unwrap_or("");
        for kv in body.split(',') {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            labels.insert(k.to_string());
            if k == "le" && l.starts_with(&format!("{name}_bucket")) && !les.contains(&v.to_string()) {
                les.push(v.to_string());
            }
        }
    }
    (kind, labels.into_iter().collect(), les)
}

/// The metrics etcd's Grafana dashboard and alert rules read have etcd
/// 3.5.1's type, label names and histogram buckets in raft-kv's `/metrics`,
/// and carry real values.
#[test]
fn metrics_match_etcd() {
    let etcd = RealEtcd::start_temp(&[]);
    let c = Cluster::start(3);
    let addr = c.members[0].client_addr();
    for i in 0..5 {
        put(&addr, &format!("m{i}"), "v");
        put(&etcd.client_addr(), &format!("m{i}"), "v");
    }
    etcdctl(&addr, &["get", "m0"]);
    etcdctl(&etcd.client_addr(), &["get", "m0"]);
    let (_, theirs) = http(&etcd.client_addr(), "GET", "/metrics", "").expect("etcd metrics");
    // Peer round trips are the leader's heartbeats, sampled once a second
    // per peer: wait for both peers' first samples.
    let leader = c.members[c.leader()].client_addr();
    let deadline = Instant::now() + Duration::from_secs(20);
    let leader_text = loop {
        let (_, t) = http(&leader, "GET", "/metrics", "").expect("metrics");
        let peers = t.lines().filter(|l| l.starts_with("etcd_network_peer_round_trip_time_seconds_count{")).count();
        if peers == 2 || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let (_, ours) = http(&addr, "GET", "/metrics", "").expect("metrics");
    // In both (a one-member etcd has no peer metrics).
    for name in [
        "etcd_server_has_leader",
        "etcd_server_leader_changes_seen_total",
        "etcd_server_proposals_failed_total",
        "etcd_server_proposals_pending",
        "etcd_server_proposals_committed_total",
        "etcd_server_proposals_applied_total",
        "etcd_disk_wal_fsync_duration_seconds",
        "etcd_disk_backend_commit_duration_seconds",
        "etcd_mvcc_db_total_size_in_bytes",
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "etcd_debugging_mvcc_keys_total",
        "etcd_server_version",
        "etcd_server_id",
        "grpc_server_started_total",
        "grpc_server_handled_total",
    ] {
        let (want, got) = (family(&theirs, name), family(&ours, name));
        assert!(want.0.is_some(), "etcd 3.5.1 has no {name}");
        assert_eq!(got, want, "{name}: raft-kv (left), etcd 3.5.1 (right)");
    }
    // etcd's types and labels, from its source (rafthttp/metrics.go).
    let rtt = family(&leader_text, "etcd_network_peer_round_trip_time_seconds");
    assert_eq!(rtt.0.as_deref(), Some("histogram"));
    assert_eq!(rtt.1, ["To", "le"]);
    assert_eq!(rtt.2.len(), 17, "16 bounds + Inf: {:?}", rtt.2);
    assert_eq!(family(&ours, "etcd_network_peer_sent_bytes_total").1, ["To"]);
    assert_eq!(family(&ours, "etcd_network_peer_received_bytes_total").1, ["From"]);
    // Real values.
    let value = |name: &str| -> f64 {
        ours.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{ours}"))
    };
    assert_eq!(value("etcd_server_has_leader"), 1.0);
    assert_eq!(value("etcd_debugging_mvcc_keys_total"), 5.0);
    for m in c.members.iter().filter(|m| m.client_addr() != leader) {
        let status = etcdctl(&m.client_addr(), &["endpoint", "status", "-w", "json"]);
        let id: serde_json::Value = serde_json::from_str(&status).expect("json");
        let to = format!("{:x}", id[0]["Status"]["header"]["member_id"].as_u64().expect("member id"));
        let line = format!("etcd_network_peer_round_trip_time_seconds_sum{{To=\"{to}\"}} ");
        let sum: f64 = leader_text.lines().find_map(|l| l.strip_prefix(&line)?.trim().parse().ok()).expect(&line);
        assert!(sum > 0.0, "{line}{sum}");
        let count_line = line.replace("_sum{", "_count{");
        let count: f64 =
            leader_text.lines().find_map(|l| l.strip_prefix(&count_line)?.trim().parse().ok()).unwrap_or(0.0);
        eprintln!("heartbeat round trip to {to}: {count} samples, mean {:.3} ms", sum / count.max(1.0) * 1e3);
    }
    assert!(value("etcd_server_proposals_committed_total") > 5.0);
    assert!(value("etcd_disk_wal_fsync_duration_seconds_count") > 0.0);
    assert!(ours.contains(
        "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 1"
    ), "{ours}");
    assert!(
        ours.lines().any(|l| l.starts_with("etcd_network_peer_sent_bytes_total{To=") && !l.ends_with(" 0")),
        "{ours}"
    );
}
