//! etcd 3.5's command line and environment on top of clap: Go-style flags
//! (`-name`, `--flag=true` for booleans), `ETCD_<FLAG>` environment
//! variables for every flag, and etcd flags raft-kv does not implement —
//! accepted with a warning where they change nothing for raft-kv, refused
//! with an error naming them otherwise. docs/etcd-flags.md lists every flag
//! of etcd 3.5.1 and its status (a unit test keeps it current).
//!
//! Everything works from clap's [`Command`], so a flag added to `Flags`
//! with its `RAFT_KV_*` env name gets its `ETCD_*` name and Go-style
//! spellings without further code.

use std::collections::BTreeSet;
use std::ffi::OsString;

use anyhow::{bail, Result};
use clap::{ArgAction, Command};

/// Every flag `etcd --help` of etcd 3.5.1 lists, and whether it is a
/// boolean (a Go bool flag takes no separate value: `--x`, `--x=false`).
/// `config-file` is in the help's usage section rather than the flag list.
pub const ETCD_FLAGS: &[(&str, bool)] = &[
    ("name", false),
    ("data-dir", false),
    ("wal-dir", false),
    ("snapshot-count", false),
    ("heartbeat-interval", false),
    ("election-timeout", false),
    ("initial-election-tick-advance", true),
    ("listen-peer-urls", false),
    ("listen-client-urls", false),
    ("max-snapshots", false),
    ("max-wals", false),
    ("quota-backend-bytes", false),
    ("backend-bbolt-freelist-type", false),
    ("backend-batch-interval", false),
    ("backend-batch-limit", false),
    ("max-txn-ops", false),
    ("max-request-bytes", false),
    ("grpc-keepalive-min-time", false),
    ("grpc-keepalive-interval", false),
    ("grpc-keepalive-timeout", false),
    ("socket-reuse-port", true),
    ("socket-reuse-address", true),
    ("initial-advertise-peer-urls", false),
    ("initial-cluster", false),
    ("initial-cluster-state", false),
    ("initial-cluster-token", false),
    ("advertise-client-urls", false),
    ("discovery", false),
    ("discovery-fallback", false),
    ("discovery-proxy", false),
    ("discovery-srv", false),
    ("discovery-srv-name", false),
    ("strict-reconfig-check", true),
    ("pre-vote", true),
    ("auto-compaction-retention", false),
    ("auto-compaction-mode", false),
    ("enable-v2", true),
    ("v2-deprecation", false),
    ("cert-file", false),
    ("key-file", false),
    ("client-cert-auth", true),
    ("client-crl-file", false),
    ("client-cert-allowed-hostname", false),
    ("trusted-ca-file", false),
    ("auto-tls", true),
    ("peer-cert-file", false),
    ("peer-key-file", false),
    ("peer-client-cert-auth", true),
    ("peer-trusted-ca-file", false),
    ("peer-cert-allowed-cn", false),
    ("peer-cert-allowed-hostname", false),
    ("peer-auto-tls", true),
    ("self-signed-cert-validity", false),
    ("peer-crl-file", false),
    ("cipher-suites", false),
    ("cors", false),
    ("host-whitelist", false),
    ("auth-token", false),
    ("bcrypt-cost", false),
    ("auth-token-ttl", false),
    ("enable-pprof", true),
    ("metrics", false),
    ("listen-metrics-urls", false),
    ("logger", false),
    ("log-outputs", false),
    ("log-level", false),
    ("enable-log-rotation", true),
    ("log-rotation-config-json", false),
    ("experimental-enable-distributed-tracing", true),
    ("experimental-distributed-tracing-address", false),
    ("experimental-distributed-tracing-service-name", false),
    ("experimental-distributed-tracing-instance-id", false),
    ("proxy", false),
    ("proxy-failure-wait", false),
    ("proxy-refresh-interval", false),
    ("proxy-dial-timeout", false),
    ("proxy-write-timeout", false),
    ("proxy-read-timeout", false),
    ("experimental-initial-corrupt-check", true),
    ("experimental-corrupt-check-time", false),
    ("experimental-enable-v2v3", false),
    ("experimental-enable-lease-checkpoint", true),
    ("experimental-compaction-batch-limit", false),
    ("experimental-peer-skip-client-san-verification", true),
    ("experimental-watch-progress-notify-interval", false),
    ("experimental-warning-apply-duration", false),
    ("experimental-txn-mode-write-with-shared-buffer", true),
    ("experimental-bootstrap-defrag-threshold-megabytes", false),
    ("force-new-cluster", true),
    ("unsafe-no-fsync", true),
    ("config-file", false),
];

/// An etcd flag that changes nothing for raft-kv: accepted with a warning.
pub struct NoOp {
    /// The flag's long name.
    pub name: &'static str,
    /// Why it changes nothing (shown in the warning and the docs).
    pub why: &'static str,
    /// The only values accepted (any other changes behaviour raft-kv does
    /// not have, so it is refused); `None`: any value.
    pub only: Option<&'static [&'static str]>,
}

const BOOL_TRUE: &[&str] = &["true", "1", "t", "T", "TRUE", "True"];
const BOOL_FALSE: &[&str] = &["false", "0", "f", "F", "FALSE", "False"];

/// The etcd flags accepted as no-ops.
pub const NO_OPS: &[NoOp] = &[
    NoOp {
        name: "initial-election-tick-advance",
        why: "raft-kv members campaign after a full election timeout",
        only: None,
    },
    NoOp { name: "max-snapshots", why: "RocksDB keeps raft-kv's snapshots and log", only: None },
    NoOp { name: "max-wals", why: "RocksDB keeps raft-kv's snapshots and log", only: None },
    NoOp { name: "backend-bbolt-freelist-type", why: "the backend is RocksDB, not bbolt", only: None },
    NoOp { name: "backend-batch-interval", why: "the backend is RocksDB, not bbolt", only: None },
    NoOp { name: "backend-batch-limit", why: "the backend is RocksDB, not bbolt", only: None },
    NoOp { name: "grpc-keepalive-min-time", why: "raft-kv does not police client keep-alive pings", only: None },
    NoOp { name: "grpc-keepalive-interval", why: "raft-kv does not ping idle clients", only: None },
    NoOp { name: "grpc-keepalive-timeout", why: "raft-kv does not ping idle clients", only: None },
    NoOp {
        name: "socket-reuse-port",
        why: "raft-kv's listeners use the default socket options",
        only: Some(BOOL_FALSE),
    },
    NoOp { name: "socket-reuse-address", why: "raft-kv's listeners use the default socket options", only: None },
    NoOp {
        name: "strict-reconfig-check",
        why: "raft-kv always refuses a reconfiguration that loses quorum",
        only: None,
    },
    NoOp { name: "pre-vote", why: "raft-kv members always pre-vote", only: Some(BOOL_TRUE) },
    NoOp { name: "enable-v2", why: "raft-kv serves only the v3 API", only: Some(BOOL_FALSE) },
    NoOp { name: "v2-deprecation", why: "raft-kv serves only the v3 API", only: None },
    NoOp { name: "cors", why: "the JSON gateway sends no CORS headers", only: Some(&["*"]) },
    NoOp { name: "host-whitelist", why: "raft-kv serves every Host", only: Some(&["*"]) },
    NoOp { name: "enable-pprof", why: "raft-kv has no Go profiler", only: None },
    NoOp { name: "metrics", why: "raft-kv always exports the same metrics", only: Some(&["basic", "extensive"]) },
    NoOp { name: "enable-log-rotation", why: "raft-kv leaves log rotation to the supervisor", only: Some(BOOL_FALSE) },
    NoOp { name: "log-rotation-config-json", why: "raft-kv leaves log rotation to the supervisor", only: None },
    NoOp { name: "experimental-enable-distributed-tracing", why: "raft-kv exports no traces", only: Some(BOOL_FALSE) },
    NoOp { name: "experimental-distributed-tracing-address", why: "raft-kv exports no traces", only: None },
    NoOp { name: "experimental-distributed-tracing-service-name", why: "raft-kv exports no traces", only: None },
    NoOp { name: "experimental-distributed-tracing-instance-id", why: "raft-kv exports no traces", only: None },
    NoOp { name: "proxy", why: "raft-kv has no v2 proxy", only: Some(&["off"]) },
    NoOp { name: "experimental-initial-corrupt-check", why: "raft-kv has no corruption check", only: Some(BOOL_FALSE) },
    NoOp { name: "experimental-corrupt-check-time", why: "raft-kv has no corruption check", only: Some(&["0", "0s"]) },
    NoOp {
        name: "experimental-enable-lease-checkpoint",
        why: "raft-kv's lease clock moves with the leader",
        only: None,
    },
    NoOp { name: "experimental-compaction-batch-limit", why: "RocksDB compacts in the background", only: None },
    NoOp {
        name: "experimental-peer-skip-client-san-verification",
        why: "raft-kv never checks a dialing member's certificate SANs against its address",
        only: Some(BOOL_TRUE),
    },
    NoOp { name: "experimental-warning-apply-duration", why: "raft-kv logs no slow-apply warnings", only: None },
    NoOp {
        name: "experimental-txn-mode-write-with-shared-buffer",
        why: "the backend is RocksDB, not bbolt",
        only: None,
    },
    NoOp {
        name: "experimental-bootstrap-defrag-threshold-megabytes",
        why: "the backend is RocksDB, not bbolt",
        only: None,
    },
];

/// Why an etcd flag raft-kv does not implement is refused rather than
/// ignored: ignoring it would change what the operator asked for.
pub fn refused_why(name: &str) -> &'static str {
    match name {
        n if n.starts_with("discovery") => "bootstrap with --initial-cluster",
        n if n.starts_with("proxy") => "raft-kv has no v2 proxy",
        "wal-dir" => "the log is in --data-dir",
        "unsafe-no-fsync" => "raft-kv always syncs before acknowledging",
        "config-file" => "pass flags or ETCD_* variables",
        _ => "it changes behaviour raft-kv does not have",
    }
}

/// What raft-kv does with one etcd flag.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// A flag of raft-kv-server.
    Implemented,
    /// Accepted with a warning (some values only, see [`NoOp::only`]).
    NoOp,
    /// Refused with an error naming it.
    Refused,
}

/// The status of etcd flag `name` against raft-kv's command `cmd`.
#[cfg(test)]
pub fn status(cmd: &Command, name: &str) -> Status {
    if find_arg(cmd, name).is_some() {
        Status::Implemented
    } else if no_op(name).is_some() {
        Status::NoOp
    } else {
        Status::Refused
    }
}

fn no_op(name: &str) -> Option<&'static NoOp> {
    NO_OPS.iter().find(|n| n.name == name)
}

fn etcd_flag(name: &str) -> Option<bool> {
    ETCD_FLAGS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

fn find_arg<'a>(cmd: &'a Command, name: &str) -> Option<&'a clap::Arg> {
    cmd.get_arguments().find(|a| a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|v| v.contains(&name)))
}

fn is_bool_arg(a: &clap::Arg) -> bool {
    matches!(a.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
}

/// The `ETCD_*` variable of flag `name`.
#[cfg(test)]
pub fn etcd_env_name(name: &str) -> String {
    format!("ETCD_{}", name.to_ascii_uppercase().replace('-', "_"))
}

/// `value` of no-op flag `n`: `Ok` with the warning to log, or the error
/// for a value that would change behaviour.
fn check_no_op(n: &NoOp, value: Option<&str>, spelled: &str) -> Result<String> {
    let shown = value.unwrap_or("true");
    if let Some(only) = n.only {
        if !only.contains(&shown) {
            bail!("{spelled}={shown} is not supported by raft-kv ({}); accepted: {}", n.why, only.join(", "));
        }
    }
    Ok(format!("{spelled}={shown} is an etcd flag that raft-kv accepts and ignores: {}", n.why))
}

/// The command line after etcd's conventions are applied, and warnings to
/// log once logging is set up.
pub struct Prepared {
    /// The arguments for clap (`ETCD_*` variables appended as flags).
    pub args: Vec<OsString>,
    /// Warnings (no-op flags, unrecognized `ETCD_*` variables).
    pub warnings: Vec<String>,
}

/// Rewrites `args` (argv, program name first) and `cmd` for etcd's
/// conventions, reading the environment from `env`:
/// - `-flag` → `--flag` for long flags (Go accepts one dash);
/// - a boolean raft-kv flag given `=true` or `=false`;
/// - a no-op etcd flag is dropped (with its value) and warned about; an
///   etcd flag raft-kv does not implement is an error naming it;
/// - `ETCD_<FLAG>` sets a flag unless `RAFT_KV_<FLAG>` does; set together
///   with the flag on the command line it is an error, as in etcd; an
///   `ETCD_*` variable naming no flag is warned about.
pub fn prepare(cmd: &Command, args: impl IntoIterator<Item = OsString>, env: &[(String, String)]) -> Result<Prepared> {
    let mut warnings = Vec::new();
    let mut out = Vec::new();
    let mut on_command_line = BTreeSet::new();
    let mut it = args.into_iter();
    out.extend(it.next());
    while let Some(arg) = it.next() {
        let Some(s) = arg.to_str().map(str::to_owned) else {
            out.push(arg);
            continue;
        };
        if s == "--" {
            out.push(arg);
            out.extend(it.by_ref());
            break;
        }
        let Some(body) = s.strip_prefix("--").or_else(|| s.strip_prefix('-')) else {
            out.push(arg);
            continue;
        };
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (body.to_string(), None),
        };
        if name.len() < 2 {
            out.push(arg); // a short flag (-h, -V): clap's
            continue;
        }
        if let Some(a) = find_arg(cmd, &name) {
            on_command_line.insert(name.clone());
            let takes_value = !is_bool_arg(a);
            match (takes_value, value) {
                (true, Some(v)) => out.push(format!("--{name}={v}").into()),
                (true, None) => {
                    out.push(format!("--{name}").into());
                    out.extend(it.next());
                }
                (false, None) => out.push(format!("--{name}").into()),
                (false, Some(v)) if BOOL_TRUE.contains(&v.as_str()) => out.push(format!("--{name}").into()),
                (false, Some(v)) if BOOL_FALSE.contains(&v.as_str()) => {}
                (false, Some(v)) => bail!("invalid boolean value {v:?} for --{name}"),
            }
            continue;
        }
        let Some(is_bool) = etcd_flag(&name) else {
            out.push(arg); // clap reports it
            continue;
        };
        let value = match value {
            Some(v) => Some(v),
            None if !is_bool => Some(it.next().and_then(|v| v.into_string().ok()).unwrap_or_default()),
            None => None,
        };
        match no_op(&name) {
            Some(n) => {
                on_command_line.insert(name.clone());
                warnings.push(check_no_op(n, value.as_deref(), &format!("--{name}"))?);
            }
            None => bail!("flag --{name} is an etcd flag raft-kv does not implement ({})", refused_why(&name)),
        }
    }

    for (key, value) in env.iter().filter(|(k, _)| k.starts_with("ETCD_")) {
        let name = key["ETCD_".len()..].to_ascii_lowercase().replace('_', "-");
        if on_command_line.contains(&name) {
            bail!(
                "conflicting environment variable {key} is shadowed by corresponding command-line flag \
                 (either unset environment variable or disable flag)"
            );
        }
        if let Some(a) = find_arg(cmd, &name) {
            let raft_kv_set = a.get_env().is_some_and(|e| env.iter().any(|(k, _)| e == k.as_str()));
            if raft_kv_set {
                continue;
            }
            // As if given on the command line (after it, so no conflict).
            let long = a.get_long().unwrap_or(&name).to_string();
            if !is_bool_arg(a) {
                out.push(format!("--{long}={value}").into());
            } else if BOOL_TRUE.contains(&value.as_str()) {
                out.push(format!("--{long}").into());
            } else if !value.is_empty() && !BOOL_FALSE.contains(&value.as_str()) {
                bail!("invalid boolean value {value:?} for {key}");
            }
        } else if let Some(n) = no_op(&name) {
            warnings.push(check_no_op(n, Some(value), key)?);
        } else if etcd_flag(&name).is_some() {
            bail!("{key}: flag --{name} is an etcd flag raft-kv does not implement ({})", refused_why(&name));
        } else if name == "version" {
            // `--version` only makes sense on a command line (images often
            // set ETCD_VERSION for themselves); etcd 3.5 warns the same way.
            warnings.push(format!("cannot set special environment variable {key}={value}"));
        } else {
            warnings.push(format!("unrecognized environment variable {key}={value}"));
        }
    }
    Ok(Prepared { args: out, warnings })
}

/// The flag table of docs/etcd-flags.md: every etcd 3.5.1 flag and its
/// status in raft-kv.
#[cfg(test)]
pub fn docs_table(cmd: &Command) -> String {
    let mut t = String::from("| etcd 3.5.1 flag | `ETCD_*` variable | raft-kv |\n| --- | --- | --- |\n");
    for (name, _) in ETCD_FLAGS {
        let status = match status(cmd, name) {
            Status::Implemented => "implemented".to_string(),
            Status::NoOp => {
                let n = no_op(name).map(|n| (n.why, n.only));
                match n {
                    Some((why, Some(only))) => {
                        let only = match only {
                            o if o == BOOL_TRUE => "true".to_string(),
                            o if o == BOOL_FALSE => "false".to_string(),
                            o => o.join(" / "),
                        };
                        format!("no-op, warns ({why}); only `{only}`, other values refused")
                    }
                    Some((why, None)) => format!("no-op, warns ({why})"),
                    None => String::new(),
                }
            }
            Status::Refused => format!("refused ({})", refused_why(name)),
        };
        t.push_str(&format!("| `--{name}` | `{}` | {status} |\n", etcd_env_name(name)));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, CommandFactory};

    fn cmd() -> Command {
        Command::new("t")
            .arg(Arg::new("name").long("name").env("RAFT_KV_NAME").default_value("default"))
            .arg(Arg::new("data-dir").long("data-dir").env("RAFT_KV_DATA_DIR"))
            .arg(
                Arg::new("force").long("force-new-cluster").action(ArgAction::SetTrue).env("RAFT_KV_FORCE_NEW_CLUSTER"),
            )
    }

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<(clap::ArgMatches, Vec<String>)> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let argv = std::iter::once("t").chain(args.iter().copied()).map(OsString::from);
        let p = prepare(&cmd(), argv, &env)?;
        let m = cmd().try_get_matches_from(p.args)?;
        Ok((m, p.warnings))
    }

    fn name(m: &clap::ArgMatches) -> String {
        m.get_one::<String>("name").cloned().unwrap_or_default()
    }

    #[test]
    fn go_spellings() {
        let (m, w) = run(&["-name=a", "-data-dir", "/d", "--force-new-cluster=true"], &[]).unwrap();
        assert_eq!(name(&m), "a");
        assert_eq!(m.get_one::<String>("data-dir").map(String::as_str), Some("/d"));
        assert!(m.get_flag("force"));
        assert!(w.is_empty());
        let (m, _) = run(&["--force-new-cluster=false"], &[]).unwrap();
        assert!(!m.get_flag("force"));
        assert!(run(&["--force-new-cluster=maybe"], &[]).is_err());
    }

    #[test]
    fn no_op_and_refused_flags() {
        let (m, w) = run(&["--enable-pprof", "--max-wals", "5", "--name=b", "--metrics=extensive"], &[]).unwrap();
        assert_eq!(name(&m), "b", "a no-op flag's separate value is consumed with it");
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("--enable-pprof"), "{w:?}");
        let e = run(&["--metrics=detailed"], &[]).unwrap_err().to_string();
        assert!(e.contains("--metrics=detailed is not supported"), "{e}");
        let e = run(&["--enable-v2"], &[]).unwrap_err().to_string();
        assert!(e.contains("--enable-v2=true"), "{e}");
        let e = run(&["--wal-dir=/w"], &[]).unwrap_err().to_string();
        assert!(e.contains("flag --wal-dir is an etcd flag raft-kv does not implement"), "{e}");
        // raft-kv never checks a dialing member's SANs: skipping is all it
        // does, asking for the check is refused.
        let (_, w) = run(&["--experimental-peer-skip-client-san-verification"], &[]).unwrap();
        assert!(w[0].contains("never checks a dialing member's certificate SANs"), "{w:?}");
        let e = run(&["--experimental-peer-skip-client-san-verification=false"], &[]).unwrap_err().to_string();
        assert!(e.contains("is not supported by raft-kv"), "{e}");
        let e = run(&["--experimental-foo"], &[]).unwrap_err().to_string();
        assert!(e.contains("unexpected argument"), "an unknown flag is clap's error: {e}");
    }

    #[test]
    fn environment() {
        let (m, w) = run(&[], &[("ETCD_NAME", "e")]).unwrap();
        assert_eq!(name(&m), "e");
        assert!(w.is_empty());
        // clap reads RAFT_KV_NAME from the process (not set here): ETCD_NAME
        // must then be left alone.
        let (m, _) = run(&[], &[("ETCD_NAME", "e"), ("RAFT_KV_NAME", "r")]).unwrap();
        assert_eq!(name(&m), "default", "RAFT_KV_* wins over ETCD_*");
        let (m, _) = run(&[], &[("ETCD_FORCE_NEW_CLUSTER", "true"), ("ETCD_DATA_DIR", "/e")]).unwrap();
        assert!(m.get_flag("force"));
        assert_eq!(m.get_one::<String>("data-dir").map(String::as_str), Some("/e"));
        let (m, _) = run(&[], &[("ETCD_FORCE_NEW_CLUSTER", "false")]).unwrap();
        assert!(!m.get_flag("force"));
        let e = run(&["--name=x"], &[("ETCD_NAME", "e")]).unwrap_err().to_string();
        assert!(e.contains("conflicting environment variable ETCD_NAME"), "{e}");
        let (_, w) = run(&[], &[("ETCD_FOO_BAR", "1"), ("ETCD_ENABLE_PPROF", "true")]).unwrap();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().any(|w| w == "unrecognized environment variable ETCD_FOO_BAR=1"), "{w:?}");
        let (_, w) = run(&[], &[("ETCD_VERSION", "3.5.1")]).unwrap();
        assert_eq!(w, ["cannot set special environment variable ETCD_VERSION=3.5.1"]);
        let e = run(&[], &[("ETCD_DISCOVERY", "x")]).unwrap_err().to_string();
        assert!(e.contains("flag --discovery is an etcd flag raft-kv does not implement"), "{e}");
    }

    #[test]
    fn every_no_op_is_an_etcd_flag() {
        for n in NO_OPS {
            assert!(etcd_flag(n.name).is_some(), "{}", n.name);
        }
    }

    /// docs/etcd-flags.md holds the table [`docs_table`] makes from the
    /// server's flags; `UPDATE_DOCS=1` rewrites it.
    #[test]
    fn docs_table_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/etcd-flags.md");
        let doc = std::fs::read_to_string(path).unwrap_or_default();
        let table = docs_table(&crate::Flags::command());
        let start = doc.find("| etcd 3.5.1 flag").unwrap_or(doc.len());
        let end = doc[start..].find("\n\n").map_or(doc.len(), |e| start + e + 1);
        if std::env::var_os("UPDATE_DOCS").is_some() {
            let new = format!("{}{}{}", &doc[..start], table, &doc[end..]);
            std::fs::write(path, new).expect("write docs/etcd-flags.md");
        } else {
            assert_eq!(&doc[start..end], table, "docs/etcd-flags.md is stale: run with UPDATE_DOCS=1");
        }
    }
}
