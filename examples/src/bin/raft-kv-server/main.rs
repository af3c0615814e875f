//! `raft-kv-server`: a raft-kv member that speaks etcd's v3 API.
//!
//! Flags are named and behave like etcd's, so an etcd command line ports
//! over by changing the program name; each flag can also be given as an
//! environment variable with the `RAFT_KV_` prefix (`--initial-cluster` →
//! `RAFT_KV_INITIAL_CLUSTER`) or, as in etcd, the `ETCD_` prefix
//! (`ETCD_INITIAL_CLUSTER`). etcd flags raft-kv does not implement are
//! refused or, where they change nothing here, accepted with a warning
//! (etcd_flags.rs; docs/etcd-flags.md).
//!
//! ```text
//! raft-kv-server --name n1 --data-dir /var/lib/n1 \
//!   --listen-client-urls http://0.0.0.0:2379 --advertise-client-urls http://n1:2379 \
//!   --listen-peer-urls http://0.0.0.0:2380 --initial-advertise-peer-urls http://n1:2380 \
//!   --initial-cluster n1=http://n1:2380,n2=http://n2:2380,n3=http://n3:2380 \
//!   --initial-cluster-token my-cluster --initial-cluster-state new
//! ```
//!
//! Each client URL serves the gRPC services (KV, Watch, Lease, Cluster,
//! Maintenance) and, on the same port over HTTP/1.1, the JSON gateway
//! (`/v3/kv/range`, ...), `/health`, `/version` and `/metrics`. Member ids are
//! derived from the peer URLs and the cluster token (see [`etcd::member_id`]).
//! `https://` client and peer URLs serve TLS with etcd's flags (see [`tls`]).
//!
//! `raft-kv-server snapshot restore FILE` lays out a member's data directory
//! from an etcd 3.5 snapshot file, with etcdutl's flags (see
//! [`snapshot_restore`]).

// tonic's handlers return `Result<_, tonic::Status>` by design; the helpers
// that feed them do the same.
#![allow(clippy::result_large_err)]

mod authn;
mod authority;
mod autocompact;
mod coalesce;
mod dispatch;
mod etcd;
mod etcd_flags;
mod gateway;
mod grpc;
mod grpc_metrics;
mod identity;
mod metrics;
mod peer_rtt;
mod require_leader;
mod snapshot_restore;
mod tls;

/// mimalloc: glibc malloc cost ~17% of the write path's instructions
/// (callgrind, issue 7).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use futures_util::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use raft_kv::{AsyncNode, Config, Member, Node, RocksEngine};
use transport_tcp::{TcpConfig, TcpTransport};

/// Whether the member founds a new cluster or joins an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ClusterState {
    /// Bootstrap a new cluster from `--initial-cluster`.
    New,
    /// Join a cluster that has already added this member (`member add`).
    Existing,
}

/// Command-line flags, named like etcd's.
#[derive(Debug, Parser)]
#[command(name = "raft-kv-server", about = "A raft-kv member serving etcd's v3 API")]
struct Flags {
    /// Human-readable name of this member.
    #[arg(long, env = "RAFT_KV_NAME", default_value = "default")]
    name: String,
    /// Where the member keeps its data (default: `<name>.raft-kv`).
    #[arg(long, env = "RAFT_KV_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// URLs to serve clients on (comma-separated): gRPC and HTTP.
    #[arg(long, env = "RAFT_KV_LISTEN_CLIENT_URLS", default_value = "http://localhost:2379", value_delimiter = ',')]
    listen_client_urls: Vec<String>,
    /// Client URLs published to the cluster (what `member list` shows).
    #[arg(long, env = "RAFT_KV_ADVERTISE_CLIENT_URLS", default_value = "http://localhost:2379", value_delimiter = ',')]
    advertise_client_urls: Vec<String>,
    /// URL to listen on for other members (the first one is used).
    #[arg(long, env = "RAFT_KV_LISTEN_PEER_URLS", default_value = "http://localhost:2380", value_delimiter = ',')]
    listen_peer_urls: Vec<String>,
    /// This member's peer URLs as the other members reach them.
    #[arg(
        long,
        env = "RAFT_KV_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380",
        value_delimiter = ','
    )]
    initial_advertise_peer_urls: Vec<String>,
    /// The initial members: `name=peer-url,name=peer-url,...`.
    #[arg(long, env = "RAFT_KV_INITIAL_CLUSTER", default_value = "default=http://localhost:2380")]
    initial_cluster: String,
    /// `new` to bootstrap, `existing` to join a cluster that added this member.
    #[arg(long, env = "RAFT_KV_INITIAL_CLUSTER_STATE", value_enum, default_value = "new")]
    initial_cluster_state: ClusterState,
    /// Distinguishes clusters; part of every member id and the cluster id.
    #[arg(long, env = "RAFT_KV_INITIAL_CLUSTER_TOKEN", default_value = "etcd-cluster")]
    initial_cluster_token: String,
    /// Largest client request accepted, in bytes (etcd's default: 1.5 MiB).
    #[arg(long, env = "RAFT_KV_MAX_REQUEST_BYTES", default_value_t = 1_572_864)]
    max_request_bytes: usize,
    /// Largest range response, in key and value bytes (a raft-kv flag; the
    /// default is etcd's gRPC send limit, 2 GiB − 1). A range that would
    /// return more fails with ResourceExhausted, and stops reading there.
    #[arg(long, env = "RAFT_KV_MAX_RESPONSE_BYTES", default_value_t = 2_147_483_647)]
    max_response_bytes: usize,
    /// Most operations in one transaction branch.
    #[arg(long, env = "RAFT_KV_MAX_TXN_OPS", default_value_t = 128)]
    max_txn_ops: usize,
    /// Raft heartbeat interval in milliseconds (one raft tick).
    #[arg(long, env = "RAFT_KV_HEARTBEAT_INTERVAL", default_value_t = 100)]
    heartbeat_interval: u64,
    /// Raft election timeout in milliseconds.
    #[arg(long, env = "RAFT_KV_ELECTION_TIMEOUT", default_value_t = 1000)]
    election_timeout: u64,
    /// Applied entries between raft log compactions.
    #[arg(long, env = "RAFT_KV_SNAPSHOT_COUNT", default_value_t = 10_000)]
    snapshot_count: u64,
    /// Quiet time after which watches that asked for progress notifications
    /// get one (`10m`, `30s`, `500ms`, `1h`).
    #[arg(
        long,
        env = "RAFT_KV_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL",
        default_value = "10m",
        value_parser = parse_duration
    )]
    experimental_watch_progress_notify_interval: Duration,
    /// Most concurrent HTTP/2 streams per client connection (etcd's flag;
    /// etcd leaves it unbounded by default, raft-kv does not).
    #[arg(long, env = "RAFT_KV_MAX_CONCURRENT_STREAMS", default_value_t = 1000)]
    max_concurrent_streams: u32,
    /// Most client connections served at once per client URL; further
    /// connections wait in the listen backlog.
    #[arg(long, env = "RAFT_KV_MAX_CLIENT_CONNECTIONS", default_value_t = 4096)]
    max_client_connections: usize,
    /// Largest decoded HTTP/2 header list of a client request, in bytes
    /// (name + value + 32 per field, as HTTP/2 counts them). Advertised as
    /// SETTINGS_MAX_HEADER_LIST_SIZE; a larger list is refused. etcd (grpc-go)
    /// allows 16 MiB.
    #[arg(long, env = "RAFT_KV_MAX_HEADER_LIST_BYTES", default_value_t = authority::DEFAULT_MAX_HEADER_LIST,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_header_list_bytes: u32,
    /// How long an HTTP/1.1 client may take to send its request headers
    /// (`10s`, `500ms`); past it the connection is closed. A new connection
    /// must also show its protocol (HTTP/1.1's first bytes, or HTTP/2's
    /// preface and first frame) within it. etcd has no such bound.
    #[arg(long, env = "RAFT_KV_HTTP1_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    http1_header_read_timeout: Duration,
    /// Auth tokens: `simple`, or
    /// `jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256|ES256|...,ttl=5m`.
    #[arg(long, env = "RAFT_KV_AUTH_TOKEN", default_value = "simple")]
    auth_token: String,
    /// Idle lifetime of a simple token, in seconds.
    #[arg(long, env = "RAFT_KV_AUTH_TOKEN_TTL", default_value_t = 300)]
    auth_token_ttl: u64,
    /// bcrypt cost of password hashes (4..=31).
    #[arg(long, env = "RAFT_KV_BCRYPT_COST", default_value_t = 10)]
    bcrypt_cost: u32,
    /// Client and peer TLS (`--cert-file`, `--peer-cert-file`, ...).
    #[command(flatten)]
    tls: tls::TlsFlags,
    /// The 3.6 name of `--experimental-watch-progress-notify-interval`
    /// (wins when both are given).
    #[arg(long, env = "RAFT_KV_WATCH_PROGRESS_NOTIFY_INTERVAL", value_parser = parse_duration)]
    watch_progress_notify_interval: Option<Duration>,
    /// Extra URLs serving only `/metrics` and the health routes
    /// (comma-separated), as etcd's.
    #[arg(long, env = "RAFT_KV_LISTEN_METRICS_URLS", value_delimiter = ',')]
    listen_metrics_urls: Vec<String>,
    // Operations (issue 15 item 4).
    /// Database size in bytes past which writes that take space raise the
    /// NOSPACE alarm and are refused (0: etcd's default, 2 GiB; negative:
    /// no quota).
    #[arg(long, env = "RAFT_KV_QUOTA_BACKEND_BYTES", default_value_t = 0, allow_hyphen_values = true)]
    quota_backend_bytes: i64,
    /// `periodic` (keep a window of time) or `revision` (keep N revisions).
    #[arg(long, env = "RAFT_KV_AUTO_COMPACTION_MODE", value_enum, default_value = "periodic")]
    auto_compaction_mode: autocompact::Mode,
    /// What auto-compaction keeps: periodic, a duration (`1h`, `30m`) or a
    /// bare number of hours; revision, a number of revisions. 0: off.
    #[arg(long, env = "RAFT_KV_AUTO_COMPACTION_RETENTION", default_value = "0")]
    auto_compaction_retention: String,
    /// How often the revision mode checks (a raft-kv flag; etcd's fixed
    /// five minutes by default).
    #[arg(long, env = "RAFT_KV_AUTO_COMPACTION_REVISION_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    auto_compaction_revision_interval: Duration,
    /// Restart this member, from its existing data directory, as a
    /// one-member cluster that keeps its data (recovery after losing the
    /// quorum). Add the other members back with `member add`.
    #[arg(long, env = "RAFT_KV_FORCE_NEW_CLUSTER")]
    force_new_cluster: bool,
    /// Log level (etcd's `debug`, `info`, `warn`, `error`, `panic`, `fatal`)
    /// or a tracing-subscriber filter such as `raft_kv=debug`.
    #[arg(long, env = "RAFT_KV_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// etcd's logger choice: only `zap` (the one etcd 3.5 has); raft-kv logs
    /// through tracing either way.
    #[arg(long, env = "RAFT_KV_LOGGER", default_value = "zap", value_parser = parse_logger)]
    logger: String,
    /// Where logs go (comma-separated): `default` or `stderr`, `stdout`,
    /// `journal` (stderr, which systemd's journal captures), or a file path
    /// (appended to). `default` cannot be combined, as in etcd.
    #[arg(long, env = "RAFT_KV_LOG_OUTPUTS", default_value = "default", value_delimiter = ',')]
    log_outputs: Vec<String>,
    /// Threads serving the client port (gRPC, the JSON gateway, TLS). 0:
    /// half the machine's cores, at least one: the member's raft, log-writer,
    /// reader and transport threads run beside them (see ARCHITECTURE.md,
    /// "Performance").
    #[arg(long, env = "RAFT_KV_CLIENT_THREADS", default_value_t = 0)]
    client_threads: usize,
}

/// The client port's worker threads for `--client-threads` (0: half the
/// cores, at least one).
fn client_threads(flag: usize) -> usize {
    if flag > 0 {
        return flag;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / 2).max(1)
}

/// One entry of `--initial-cluster`.
#[derive(Debug, Clone)]
struct InitialMember {
    name: String,
    peer_urls: Vec<String>,
}

/// Parses `name=url,name=url`; a name may appear with several URLs.
fn parse_initial_cluster(s: &str) -> Result<Vec<InitialMember>> {
    let mut out: Vec<InitialMember> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, url)) = part.split_once('=') else {
            bail!("--initial-cluster entry {part:?} is not name=url");
        };
        if name.is_empty() || url.is_empty() {
            bail!("--initial-cluster entry {part:?} has an empty name or url");
        }
        match out.iter_mut().find(|m| m.name == name) {
            Some(m) => m.peer_urls.push(url.to_string()),
            None => out.push(InitialMember { name: name.to_string(), peer_urls: vec![url.to_string()] }),
        }
    }
    if out.is_empty() {
        bail!("--initial-cluster is empty");
    }
    Ok(out)
}

/// This member's id and the members of `--initial-cluster`, checked
/// against `--name` and `--initial-advertise-peer-urls` as etcd does.
fn cluster_members(token: &str, initial_cluster: &str, name: &str, peer_urls: &[String]) -> Result<(u64, Vec<Member>)> {
    let my_id = etcd::member_id(token, peer_urls);
    let members: Vec<Member> = parse_initial_cluster(initial_cluster)?
        .into_iter()
        .map(|m| Member { name: m.name, ..Member::new(etcd::member_id(token, &m.peer_urls), m.peer_urls) })
        .collect();
    match members.iter().find(|m| m.id == my_id) {
        Some(me) if me.name != name => {
            bail!("--initial-cluster names this member's peer URLs {:?}, not {:?}", me.name, name)
        }
        Some(_) => Ok((my_id, members)),
        None => bail!("--initial-advertise-peer-urls {peer_urls:?} do not match any member of --initial-cluster"),
    }
}

/// A duration like Go's flags take them: a number and a unit (`ms`, `s`,
/// `m`, `h`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?}: expected a number followed by ms, s, m or h"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n.saturating_mul(1_000),
        "m" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    if ms == 0 {
        return Err(format!("{s:?}: must be positive"));
    }
    Ok(Duration::from_millis(ms))
}

/// etcd's default backend quota (2 GiB), and the largest it recommends.
const DEFAULT_QUOTA_BYTES: u64 = 2 << 30;
const MAX_QUOTA_BYTES: u64 = 8 << 30;

/// `--quota-backend-bytes` as etcd reads it: 0 is the default, a negative
/// value turns the quota off (the library's 0), above 8 GiB is a warning.
fn quota_bytes(flag: i64) -> u64 {
    match flag {
        0 => DEFAULT_QUOTA_BYTES,
        n if n < 0 => {
            tracing::warn!("--quota-backend-bytes is negative: the backend quota is disabled");
            0
        }
        n => {
            let n = n as u64;
            if n > MAX_QUOTA_BYTES {
                tracing::warn!(
                    quota = n,
                    max = MAX_QUOTA_BYTES,
                    "--quota-backend-bytes exceeds the maximum etcd recommends"
                );
            }
            n
        }
    }
}

/// True when `data_dir` holds a member's database (what
/// `--force-new-cluster` recovers from).
fn holds_member_data(data_dir: &std::path::Path) -> bool {
    std::fs::read_dir(data_dir.join("member")).is_ok_and(|mut d| d.next().is_some())
}

/// The socket address of an `http://host:port` or `https://host:port` URL.
fn url_addr(url: &str) -> Result<SocketAddr> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .with_context(|| format!("{url:?}: only http:// and https:// URLs are supported"))?;
    let hostport = rest.trim_end_matches('/');
    hostport
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {url:?}"))?
        .next()
        .with_context(|| format!("{url:?} resolves to no address"))
}

/// etcd's log levels as tracing filters; a tracing filter (a directive
/// with `=`, such as `raft_kv=debug`) as itself; any other word is refused
/// with etcd's message (a bare word would be a tracing target, silencing
/// every log line).
fn log_filter(level: &str) -> Result<&str> {
    match level {
        "debug" | "info" | "warn" | "error" => Ok(level),
        "panic" | "fatal" | "dpanic" => Ok("error"),
        filter if filter.contains('=') => Ok(filter),
        other => bail!("unrecognized level: {other:?}"),
    }
}

/// `--logger`: etcd 3.5's messages for what it refuses.
fn parse_logger(s: &str) -> std::result::Result<String, String> {
    match s {
        "zap" => Ok(s.to_string()),
        "capnslog" => Err("--logger=capnslog is removed in v3.5".into()),
        other => Err(format!("unknown logger option {other:?}")),
    }
}

/// `--log-outputs` as one writer: stderr, stdout and files, together.
fn log_writer(outputs: &[String]) -> Result<(tracing_subscriber::fmt::writer::BoxMakeWriter, bool)> {
    use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};
    if outputs.len() > 1 && outputs.iter().any(|o| o == "default") {
        bail!("multi logoutput for \"default\" is not supported yet");
    }
    let mut writer: Option<BoxMakeWriter> = None;
    let mut ansi = true;
    for o in outputs {
        let next = match o.as_str() {
            "default" | "stderr" | "journal" => {
                ansi &= std::io::IsTerminal::is_terminal(&std::io::stderr());
                BoxMakeWriter::new(std::io::stderr)
            }
            "stdout" => {
                ansi &= std::io::IsTerminal::is_terminal(&std::io::stdout());
                BoxMakeWriter::new(std::io::stdout)
            }
            path => {
                ansi = false;
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("couldn't open sink {path:?}"))?;
                BoxMakeWriter::new(Arc::new(f))
            }
        };
        writer = Some(match writer {
            None => next,
            Some(w) => BoxMakeWriter::new(w.and(next)),
        });
    }
    Ok((writer.unwrap_or_else(|| BoxMakeWriter::new(std::io::stderr)), ansi))
}

fn main() -> Result<()> {
    if std::env::args_os().nth(1).is_some_and(|a| a == "snapshot") {
        return snapshot_restore::main();
    }
    if std::env::args_os().skip(1).any(|a| a == "--version" || a == "-version") {
        print!("{}", etcd::version_text());
        return Ok(());
    }
    let env: Vec<(String, String)> =
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
    let cmd = Flags::command();
    let prepared = etcd_flags::prepare(&cmd, std::env::args_os(), &env)?;
    let flags = Flags::from_arg_matches(&cmd.get_matches_from(prepared.args)).unwrap_or_else(|e| e.exit());
    let (writer, ansi) = log_writer(&flags.log_outputs)?;
    let level = log_filter(&flags.log_level)?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
                .context("bad --log-level")?,
        )
        .with_writer(writer)
        .with_ansi(ansi)
        .init();
    for w in &prepared.warnings {
        tracing::warn!("{w}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads(flags.client_threads))
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(run(flags))
}

async fn run(flags: Flags) -> Result<()> {
    let token = flags.initial_cluster_token.clone();
    let (my_id, mut members) =
        cluster_members(&token, &flags.initial_cluster, &flags.name, &flags.initial_advertise_peer_urls)?;
    let cluster_id = etcd::cluster_id(&token);
    if let Some(me) = members.iter_mut().find(|m| m.id == my_id) {
        me.client_ur_ls = flags.advertise_client_urls.clone();
    }

    let retention = autocompact::parse_retention(flags.auto_compaction_mode, &flags.auto_compaction_retention)
        .map_err(anyhow::Error::msg)?;
    let quota = quota_bytes(flags.quota_backend_bytes);
    let data_dir = flags.data_dir.clone().unwrap_or_else(|| PathBuf::from(format!("{}.raft-kv", flags.name)));
    if flags.force_new_cluster && !holds_member_data(&data_dir) {
        bail!(
            "--force-new-cluster needs this member's existing data, but {} is missing or empty",
            data_dir.join("member").display()
        );
    }
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let engine =
        RocksEngine::open(data_dir.join("member")).with_context(|| format!("cannot open {}", data_dir.display()))?;
    if flags.force_new_cluster {
        raft_kv::force_new_cluster(&engine, my_id).context("--force-new-cluster")?;
    }

    let tick = Duration::from_millis(flags.heartbeat_interval.max(1));
    let mut cfg = Config::new(my_id).tick_interval(tick);
    cfg.election_ticks = (flags.election_timeout / flags.heartbeat_interval.max(1)).max(3) as usize;
    let cfg_election_ticks = cfg.election_ticks;
    cfg.max_request_bytes = flags.max_request_bytes;
    cfg.max_response_bytes = flags.max_response_bytes;
    cfg.max_txn_ops = flags.max_txn_ops;
    cfg.snapshot_entries = flags.snapshot_count.max(1);
    cfg.log_keep_entries = cfg.log_keep_entries.min(cfg.snapshot_entries);
    cfg.quota_backend_bytes = quota;
    if flags.initial_cluster_state == ClusterState::New && !flags.force_new_cluster {
        cfg.peers = members.iter().map(|m| m.id).collect();
        cfg.initial_members = members.clone();
    }

    let peer_listen = url_addr(flags.listen_peer_urls.first().context("--listen-peer-urls is empty")?)?;
    let mut tcfg = TcpConfig::new(my_id, cluster_id, peer_listen);
    let rtt = Arc::new(peer_rtt::PeerRtt::default());
    let observed = Arc::clone(&rtt);
    tcfg.on_round_trip = Some(transport_tcp::RoundTripHook::new(move |peer, took| observed.observe(peer, took)));
    if let Some(peer_tls) =
        tls::peer(&flags.tls, &data_dir, &flags.listen_peer_urls, &flags.initial_advertise_peer_urls)?
    {
        tcfg = tcfg.tls(peer_tls);
    }
    let client_tls = tls::client(&flags.tls, &data_dir, &flags.listen_client_urls, &flags.advertise_client_urls)?;
    for m in &members {
        if let Some(url) = m.peer_ur_ls.first() {
            tcfg = tcfg.peer(m.id, url.clone());
        }
    }
    let builder = Node::builder(cfg).engine(engine);
    let transport = TcpTransport::start(tcfg, builder.mailbox()).context("cannot start the peer transport")?;
    let transport_handle = transport.handle();
    let node: Node = builder.transport(transport).start().context("cannot start the member")?;
    tracing::info!(
        name = %flags.name,
        id = format_args!("{my_id:x}"),
        cluster = format_args!("{cluster_id:x}"),
        data_dir = %data_dir.display(),
        "member started"
    );

    let node = node.to_async();
    let ctx: etcd::Shared = Arc::new(etcd::Ctx {
        node: node.clone(),
        cluster_id,
        member_id: my_id,
        token,
        max_request_bytes: flags.max_request_bytes,
        watch_progress_interval: flags
            .watch_progress_notify_interval
            .unwrap_or(flags.experimental_watch_progress_notify_interval),
        election_timeout: tick * cfg_election_ticks as u32,
        metrics: metrics::Metrics::with_rtt(rtt),
        transport: transport_handle,
        auth: authn::Authn::new(&flags.auth_token, flags.auth_token_ttl, flags.bcrypt_cost)?,
        data_dir: data_dir.clone(),
    });
    let fatal = tokio::spawn(watch_member(ctx.clone()));
    tokio::spawn(publish(node.clone(), flags.name.clone(), flags.advertise_client_urls.clone()));
    tokio::spawn(peer_rtt::prune(ctx.clone()));
    tokio::spawn(autocompact::run(node.clone(), retention, flags.auto_compaction_revision_interval));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    for url in &flags.listen_client_urls {
        let addr = url_addr(url)?;
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {url}"))?;
        tracing::info!(%url, "serving clients (gRPC and HTTP)");
        let limits = Limits {
            max_concurrent_streams: flags.max_concurrent_streams.max(1),
            max_connections: flags.max_client_connections.max(1),
            max_header_list: flags.max_header_list_bytes,
            header_read_timeout: flags.http1_header_read_timeout,
        };
        let tls = if url.starts_with("https://") { client_tls.clone() } else { None };
        let app = dispatch::Dispatch::client(ctx.clone());
        servers.push(tokio::spawn(serve(listener, app, tls, limits, stop_rx.clone())));
    }

    for url in &flags.listen_metrics_urls {
        let addr = url_addr(url)?;
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {url}"))?;
        tracing::info!(%url, "serving metrics");
        let limits = Limits {
            max_concurrent_streams: 100,
            max_connections: 64,
            max_header_list: flags.max_header_list_bytes,
            header_read_timeout: flags.http1_header_read_timeout,
        };
        // An https:// metrics URL uses the client TLS settings, as etcd's.
        let tls = if url.starts_with("https://") { client_tls.clone() } else { None };
        let app = dispatch::Dispatch::metrics(ctx.clone());
        servers.push(tokio::spawn(serve(listener, app, tls, limits, stop_rx.clone())));
    }

    let failed = tokio::select! {
        _ = shutdown_signal() => None,
        f = fatal => f.ok().flatten(),
    };
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for s in servers {
        let _ = s.await;
    }
    let _ = tokio::task::spawn_blocking(move || node.shutdown()).await;
    if let Some(e) = failed {
        // Exit non-zero so a supervisor (Docker's restart policy, systemd)
        // restarts the member.
        bail!("the member stopped on a fatal error: {e}");
    }
    Ok(())
}

/// Bounds of one client listener.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// HTTP/2 streams open at once per connection.
    max_concurrent_streams: u32,
    /// Connections served at once.
    max_connections: usize,
    /// Largest decoded header list of a request (HTTP/2 sizes).
    max_header_list: u32,
    /// Time an HTTP/1.1 client has to send its request headers.
    header_read_timeout: Duration,
}

/// The largest HTTP/2 frame payload a client may send: HTTP/2's default
/// SETTINGS_MAX_FRAME_SIZE, which etcd 3.5 (grpc-go) advertises too. Set
/// explicitly so the bound is stated; the `:authority` fix-up refuses
/// larger frames before buffering them.
const MAX_FRAME_SIZE: u32 = authority::MAX_FRAME as u32;

/// Serves one client listener: every connection gets HTTP/1.1 or HTTP/2
/// (prior knowledge) from hyper, behind the `:authority` fix-up (etcdctl's
/// per-endpoint calls send a URL there; see authority.rs). hyper's limits
/// are set, not left open: concurrent streams, frame size, the decoded
/// header list (the same bound the fix-up applies), HTTP/1.1 header read
/// time, and the number of connections (past it, new ones wait in the
/// backlog). A failed
/// accept (EMFILE, ...) backs off instead of spinning. With `tls`, each
/// connection's TLS handshake runs first, in its task and its connection
/// slot. On `stop`, connections are closed gracefully, waiting at most 2 s
/// for streams (watches) to end.
async fn serve(
    listener: tokio::net::TcpListener,
    app: dispatch::Dispatch,
    tls: Option<tls::ClientTls>,
    limits: Limits,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_header_list_size(limits.max_header_list);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut backoff = Duration::from_millis(5);
    loop {
        let slot = tokio::select! {
            s = Arc::clone(&slots).acquire_owned() => match s { Ok(s) => s, Err(_) => break },
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
        };
        tokio::select! {
            conn = listener.accept() => {
                let stream = match conn {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, pause = ?backoff, "accepting a client connection failed");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        continue;
                    }
                };
                backoff = Duration::from_millis(5);
                let _ = stream.set_nodelay(true);
                let (builder, watcher, app, tls) = (builder.clone(), graceful.watcher(), app.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => serve_conn(&builder, watcher, stream, app, None, limits).await,
                        Some(tls) => match tls.accept(stream).await {
                            Ok((stream, cn)) => serve_conn(&builder, watcher, stream, app, cn, limits).await,
                            Err(e) => tracing::debug!(error = %e, "client TLS handshake failed"),
                        },
                    }
                    drop(slot);
                });
            }
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), graceful.shutdown()).await;
}

/// Serves one client connection (cleartext or TLS) behind the `:authority`
/// fix-up (which applies `limits`' header-list bound, and its header read
/// timeout to the connection's first bytes, before hyper knows the
/// protocol); `cn` (a verified client certificate's CN) goes into every
/// request's extensions.
async fn serve_conn<I>(
    builder: &hyper_util::server::conn::auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    io: I,
    app: dispatch::Dispatch,
    cn: Option<identity::ClientCertCn>,
    limits: Limits,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let app = app.with_cn(cn);
    let fix = authority::AuthorityFix::new(io, limits.max_header_list as usize, limits.header_read_timeout);
    // Responses finished together leave in one write (coalesce.rs).
    let io = TokioIo::new(coalesce::Coalesce::new(fix));
    let conn = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(app));
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(error = %e, "client connection ended with an error");
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Follows the member's state changes (no polling): counts leader changes
/// for the metrics, and returns the fatal error if the member stops on one.
async fn watch_member(ctx: etcd::Shared) -> Option<raft_kv::Error> {
    let mut changes = ctx.node.state_changes();
    while let Some(st) = changes.next().await {
        ctx.metrics.observe_state(&st);
        if st.stopped {
            return ctx.node.fatal_error();
        }
    }
    ctx.node.fatal_error()
}

/// Publishes this member's name and client URLs to the cluster once a
/// leader is known (through raft, so every member lists them), retrying
/// until one publication has applied. Each member knows only its own client
/// URLs at bootstrap, so this runs on every start.
async fn publish(node: AsyncNode, name: String, client_urls: Vec<String>) {
    let mut pause = Duration::from_millis(100);
    loop {
        if node.wait_leader().await.is_err() {
            return; // the member stopped
        }
        match node.member_publish(name.clone(), client_urls.clone()).await {
            Ok(_) => {
                tracing::info!(%name, ?client_urls, "member published");
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "publishing member attributes failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_cluster_parses() {
        let c = parse_initial_cluster("a=http://x:1,b=http://y:2,a=http://z:3").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].peer_urls, vec!["http://x:1", "http://z:3"]);
        assert!(parse_initial_cluster("nope").is_err());
        assert!(parse_initial_cluster("").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "10", "s", "0s", "1d", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_resolve() {
        assert_eq!(url_addr("http://127.0.0.1:2379").unwrap().port(), 2379);
        assert_eq!(url_addr("https://127.0.0.1:2379").unwrap().port(), 2379);
        assert!(url_addr("unix://x:1").is_err());
        assert!(url_addr("http://127.0.0.1").is_err());
    }
}
