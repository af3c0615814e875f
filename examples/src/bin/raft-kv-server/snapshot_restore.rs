//! `raft-kv-server snapshot restore FILE`: a member's data directory from
//! an etcd 3.5 snapshot file (or raft-kv's own, the same format), with
//! etcdutl's flags.
//!
//! Keys with their whole kept history (values, create and mod revisions,
//! versions, leases), the leases and the compact revision are loaded; the
//! cluster is the one `--initial-cluster` describes, bootstrapped exactly as
//! a new member would bootstrap it, so every member restored from the same
//! file with the same flags, then started with them, forms one cluster.
//!
//! Nothing half-written is ever left at `--data-dir`: the directory is
//! built beside it under a temporary name and renamed into place once the
//! import is synced. An existing non-empty `--data-dir` is refused.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use examples::etcd_backup::{read_snapshot, verify_hash};
use raft_kv::{Config, Importer, RocksEngine};

/// `raft-kv-server snapshot ...`.
#[derive(Debug, Parser)]
#[command(name = "raft-kv-server snapshot", about = "Manages etcd snapshot files")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Lays out a member's data directory from an etcd snapshot file.
    Restore(Restore),
}

/// etcdutl's `snapshot restore` flags.
#[derive(Debug, Args)]
struct Restore {
    /// The snapshot file (`etcdctl snapshot save` output).
    file: PathBuf,
    /// Path to the output data directory (default: `<name>.raft-kv`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Human-readable name for this member.
    #[arg(long, default_value = "default")]
    name: String,
    /// Initial cluster configuration for restore bootstrap.
    #[arg(long, default_value = "default=http://localhost:2380")]
    initial_cluster: String,
    /// Initial cluster token for the cluster during restore bootstrap.
    #[arg(long, default_value = "etcd-cluster")]
    initial_cluster_token: String,
    /// This member's peer URLs to advertise to the rest of the cluster.
    #[arg(long, default_value = "http://localhost:2380", value_delimiter = ',')]
    initial_advertise_peer_urls: Vec<String>,
    /// Ignore the snapshot's integrity hash (needed for a database copied
    /// out of a data directory).
    #[arg(long)]
    skip_hash_check: bool,
    /// How much to increase the latest revision after restore.
    #[arg(long, default_value_t = 0)]
    bump_revision: u64,
    /// Mark the latest revision after restore as compacted (required with
    /// --bump-revision > 0, refused otherwise).
    #[arg(long)]
    mark_compacted: bool,
}

/// Runs `raft-kv-server snapshot ...` (arguments from the process).
pub fn main() -> Result<()> {
    let cli = Cli::parse_from(std::env::args_os().skip(1));
    match cli.cmd {
        Cmd::Restore(r) => restore(&r),
    }
}

fn restore(r: &Restore) -> Result<()> {
    if r.bump_revision > 0 && !r.mark_compacted {
        bail!("--mark-compacted required if --bump-revision > 0");
    }
    if r.mark_compacted && r.bump_revision == 0 {
        bail!("--mark-compacted is only valid with --bump-revision > 0");
    }
    let bump = i64::try_from(r.bump_revision).context("--bump-revision is too large")?;
    let (_, members) =
        crate::cluster_members(&r.initial_cluster_token, &r.initial_cluster, &r.name, &r.initial_advertise_peer_urls)?;
    let data_dir = r.data_dir.clone().unwrap_or_else(|| PathBuf::from(format!("{}.raft-kv", r.name)));
    if !is_empty_or_missing(&data_dir)? {
        bail!("data-dir {:?} exists", data_dir.display().to_string());
    }
    let db_len = verify_hash(&r.file, r.skip_hash_check).with_context(|| format!("{}", r.file.display()))?;

    let parent = match data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".raft-kv-restore-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create a directory in {}", parent.display()))?;
    let engine = RocksEngine::open(tmp.path().join("member")).context("cannot open the new store")?;
    let mut imp = Importer::new(engine)?;
    let got =
        read_snapshot(&r.file, db_len, &mut imp).with_context(|| format!("cannot restore {}", r.file.display()))?;
    let revision = got.revision.max(got.compact_revision).max(1).checked_add(bump).context("revision overflow")?;
    let compact = if r.mark_compacted { revision } else { got.compact_revision };
    let cfg = Config { peers: members.iter().map(|m| m.id).collect(), initial_members: members, ..Config::new(1) };
    imp.finish(&cfg, revision, compact)?;
    // `finish` took the importer and its store: it is closed before it moves.

    if data_dir.exists() {
        std::fs::remove_dir(&data_dir).with_context(|| format!("cannot replace {}", data_dir.display()))?;
    }
    let built = tmp.keep();
    if let Err(e) = std::fs::rename(&built, &data_dir) {
        let _ = std::fs::remove_dir_all(&built);
        return Err(e).with_context(|| format!("cannot move the restored store to {}", data_dir.display()));
    }
    std::fs::File::open(&parent).and_then(|d| d.sync_all()).context("cannot sync the data directory's parent")?;
    eprintln!(
        "restored snapshot {} into {}: revision {revision}, compact revision {compact}, {} key versions, {} leases",
        r.file.display(),
        data_dir.display(),
        got.versions,
        got.leases
    );
    Ok(())
}

fn is_empty_or_missing(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(_) => Ok(false), // a file, or unreadable: not ours to replace
    }
}
