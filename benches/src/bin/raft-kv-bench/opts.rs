//! Command-line options, the operation mix and key formatting: the pure parts
//! of the bench, unit-tested below.

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, ValueEnum};
use rand::Rng;

/// One kind of request the bench issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OpKind {
    /// `KV.Put` of a fresh random value.
    Put,
    /// `KV.Range` of one key, linearizable (etcd's default).
    Range,
    /// `KV.Range` of one key with `serializable` set (a local read).
    RangeSerializable,
    /// `KV.Txn`: compare the key's `mod_revision` (always true: less than
    /// `i64::MAX`), put on success — the transaction path at the cost of one
    /// put.
    Txn,
}

impl OpKind {
    /// The name used on the command line and in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Put => "put",
            OpKind::Range => "range",
            OpKind::RangeSerializable => "range-serializable",
            OpKind::Txn => "txn",
        }
    }
}

/// A weighted operation mix, e.g. `put=50,range=50`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    /// Each operation with its weight (all weights > 0).
    pub weights: Vec<(OpKind, u32)>,
    /// Sum of the weights.
    pub total: u32,
}

impl Mix {
    /// A mix of one operation only.
    pub fn single(op: OpKind) -> Mix {
        Mix { weights: vec![(op, 1)], total: 1 }
    }

    /// Picks an operation with probability proportional to its weight.
    pub fn pick<R: Rng>(&self, rng: &mut R) -> OpKind {
        if let [(op, _)] = self.weights.as_slice() {
            return *op;
        }
        self.pick_at(rng.random_range(0..self.total))
    }

    /// The operation whose weight interval holds `r` (`r < total`).
    pub fn pick_at(&self, mut r: u32) -> OpKind {
        for &(op, w) in &self.weights {
            if r < w {
                return op;
            }
            r -= w;
        }
        // Unreachable for r < total; the last op is a safe answer.
        self.weights.last().map_or(OpKind::Put, |&(op, _)| op)
    }

    /// The name used in the JSON output: the single op's name, or
    /// `mix:put=50,range=50`.
    pub fn name(&self) -> String {
        match self.weights.as_slice() {
            [(op, _)] => op.name().to_string(),
            ws => {
                let parts: Vec<String> = ws.iter().map(|(op, w)| format!("{}={w}", op.name())).collect();
                format!("mix:{}", parts.join(","))
            }
        }
    }
}

/// Parses `put=50,range=50` (operation names as for `--op`).
pub fn parse_mix(s: &str) -> Result<Mix> {
    let mut weights = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, w) = part.split_once('=').with_context(|| format!("`{part}`: expected op=weight"))?;
        let op = OpKind::from_str(name.trim(), false)
            .map_err(|e| anyhow::anyhow!("`{name}`: {e} (put, range, range-serializable, txn)"))?;
        let w: u32 = w.trim().parse().with_context(|| format!("`{part}`: bad weight"))?;
        if w > 0 {
            weights.push((op, w));
        }
    }
    let total = weights.iter().try_fold(0u32, |acc, &(_, w)| acc.checked_add(w));
    match total {
        Some(t) if t > 0 => Ok(Mix { weights, total: t }),
        Some(_) => bail!("`{s}`: the mix needs at least one op with a weight > 0"),
        None => bail!("`{s}`: weights overflow"),
    }
}

/// A cluster load generator speaking etcd's v3 gRPC API (works against
/// raft-kv-server and etcd alike). Prints one JSON line with throughput and
/// latency percentiles on stdout; progress goes to stderr. Exits non-zero when
/// more than 1% of the requests failed.
#[derive(Debug, Parser)]
#[command(name = "raft-kv-bench", version)]
pub struct Args {
    /// Client URLs, comma-separated (`http://127.0.0.1:2379,...`); the
    /// connections are spread over them round robin.
    #[arg(long, value_delimiter = ',', required = true)]
    pub endpoints: Vec<String>,
    /// Concurrent in-flight callers (each one request at a time).
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// gRPC (HTTP/2) connections; the clients share them round robin.
    #[arg(long, default_value_t = 1)]
    pub conns: usize,
    /// Measured operations (0: only `--prefill`).
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Key length in bytes (every key is exactly this long).
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value length in bytes (random, incompressible).
    #[arg(long, default_value_t = 256)]
    pub val_size: usize,
    /// Number of distinct keys; each op picks one uniformly at random.
    #[arg(long, default_value_t = 100_000)]
    pub key_space: u64,
    /// Prepended to every key (counts toward `--key-size`), e.g. to load a
    /// key set disjoint from an earlier run's.
    #[arg(long, default_value = "")]
    pub key_prefix: String,
    /// The operation (ignored when `--mix` is given).
    #[arg(long, value_enum, default_value_t = OpKind::Put)]
    pub op: OpKind,
    /// A weighted op mix instead of `--op`, e.g. `put=50,range=50`.
    #[arg(long, value_parser = parse_mix, conflicts_with = "op")]
    pub mix: Option<Mix>,
    /// Put every key of the key space once before measuring (same clients
    /// and connections, not measured).
    #[arg(long)]
    pub prefill: bool,
    /// Take keys in order (op i uses key i mod key space) instead of at
    /// random: `--total` equal to `--key-space` writes every key once.
    #[arg(long)]
    pub sequential: bool,
    /// Stop the measured phase after this many seconds even if `--total`
    /// operations have not all been issued (a soak: `--total` large).
    #[arg(long)]
    pub duration_secs: Option<f64>,
    /// Per-request deadline in seconds; a request that misses it is an error.
    #[arg(long, default_value_t = 10.0)]
    pub timeout_secs: f64,
    /// Free text copied to the JSON output.
    #[arg(long, default_value = "")]
    pub label: String,
    /// CA bundle (PEM) to verify `https://` endpoints with (etcdctl's flag).
    #[arg(long)]
    pub cacert: Option<String>,
    /// Client certificate (PEM) for servers under `--client-cert-auth`.
    #[arg(long, requires = "key")]
    pub cert: Option<String>,
    /// The client certificate's key (PEM).
    #[arg(long, requires = "cert")]
    pub key: Option<String>,
    /// Tokio worker threads (default: the machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl Args {
    /// Checks the combinations clap cannot express.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.clients > 0, "--clients must be at least 1");
        ensure!(self.conns > 0, "--conns must be at least 1");
        ensure!(self.key_space > 0, "--key-space must be at least 1");
        ensure!(self.endpoints.iter().all(|e| !e.trim().is_empty()), "empty endpoint in --endpoints");
        ensure!(self.timeout_secs.is_finite() && self.timeout_secs > 0.0, "--timeout-secs must be positive");
        if let Some(d) = self.duration_secs {
            ensure!(d.is_finite() && d > 0.0, "--duration-secs must be positive");
        }
        KeyFormat::new(&self.key_prefix, self.key_size, self.key_space)?;
        Ok(())
    }

    /// The op mix: `--mix`, or `--op` alone.
    pub fn mix(&self) -> Mix {
        self.mix.clone().unwrap_or_else(|| Mix::single(self.op))
    }
}

/// Formats key number `n` as exactly `size` bytes: the prefix, then `n` in
/// decimal, zero-padded.
#[derive(Debug, Clone)]
pub struct KeyFormat {
    prefix: Vec<u8>,
    digits: usize,
}

impl KeyFormat {
    /// Fails when the largest key number of the key space (`space - 1`) does
    /// not fit in `size` bytes after the prefix.
    pub fn new(prefix: &str, size: usize, space: u64) -> Result<KeyFormat> {
        let need = decimal_digits(space.saturating_sub(1));
        let Some(digits) = size.checked_sub(prefix.len()) else {
            bail!("--key-prefix `{prefix}` is longer than --key-size {size}");
        };
        ensure!(
            digits >= need,
            "--key-size {size} is too small for --key-space {space} (prefix `{prefix}` + {need} digits)"
        );
        Ok(KeyFormat { prefix: prefix.as_bytes().to_vec(), digits })
    }

    /// Key number `n`, exactly `size` bytes long.
    pub fn key(&self, n: u64) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + self.digits);
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(format!("{n:0width$}", width = self.digits).as_bytes());
        k
    }
}

/// Number of decimal digits of `n` (1 for 0).
fn decimal_digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn keys_have_exactly_key_size_bytes() {
        let f = KeyFormat::new("", 8, 100_000).unwrap();
        assert_eq!(f.key(0), b"00000000");
        assert_eq!(f.key(99_999), b"00099999");
        let f = KeyFormat::new("r", 8, 1_000_000).unwrap();
        assert_eq!(f.key(999_999), b"r0999999");
        let f = KeyFormat::new("", 5, 100_000).unwrap();
        assert_eq!(f.key(7), b"00007");
        assert_eq!(f.key(99_999), b"99999");
        let f = KeyFormat::new("", 1, 1).unwrap();
        assert_eq!(f.key(0), b"0");
        for n in [0, 1, 9, 10, 12_345, 99_999] {
            assert_eq!(KeyFormat::new("ab", 16, 100_000).unwrap().key(n).len(), 16);
        }
    }

    #[test]
    fn key_space_must_fit_in_key_size() {
        assert!(KeyFormat::new("", 4, 100_000).is_err());
        assert!(KeyFormat::new("", 5, 100_001).is_err());
        assert!(KeyFormat::new("abc", 2, 1).is_err());
        assert!(KeyFormat::new("ab", 7, 100_000).is_ok());
        assert!(KeyFormat::new("ab", 6, 100_000).is_err());
    }

    #[test]
    fn decimal_digit_counts() {
        assert_eq!(decimal_digits(0), 1);
        assert_eq!(decimal_digits(9), 1);
        assert_eq!(decimal_digits(10), 2);
        assert_eq!(decimal_digits(99_999), 5);
        assert_eq!(decimal_digits(u64::MAX), 20);
    }

    #[test]
    fn defaults_match_the_documentation() {
        let a = Args::try_parse_from(["raft-kv-bench", "--endpoints", "http://127.0.0.1:2379"]).unwrap();
        assert_eq!(a.endpoints, vec!["http://127.0.0.1:2379"]);
        assert_eq!((a.clients, a.conns, a.key_size, a.val_size, a.key_space), (1, 1, 8, 256, 100_000));
        assert_eq!(a.op, OpKind::Put);
        assert!(!a.prefill && !a.sequential);
        assert_eq!(a.mix(), Mix::single(OpKind::Put));
        a.validate().unwrap();
    }

    #[test]
    fn parses_every_option() {
        let a = Args::try_parse_from([
            "raft-kv-bench",
            "--endpoints",
            "http://a:1,http://b:2,http://c:3",
            "--clients",
            "64",
            "--conns",
            "8",
            "--total",
            "5000",
            "--key-size",
            "10",
            "--val-size",
            "100",
            "--key-space",
            "1000",
            "--op",
            "range-serializable",
            "--prefill",
            "--label",
            "row 3",
        ])
        .unwrap();
        assert_eq!(a.endpoints.len(), 3);
        assert_eq!((a.clients, a.conns, a.total, a.key_size, a.val_size, a.key_space), (64, 8, 5000, 10, 100, 1000));
        assert_eq!(a.op, OpKind::RangeSerializable);
        assert_eq!(a.mix().name(), "range-serializable");
        assert!(a.prefill);
        assert_eq!(a.label, "row 3");
        for (s, op) in [("put", OpKind::Put), ("range", OpKind::Range), ("txn", OpKind::Txn)] {
            let a = Args::try_parse_from(["b", "--endpoints", "http://x:1", "--op", s]).unwrap();
            assert_eq!(a.op, op);
        }
    }

    #[test]
    fn rejects_bad_options() {
        assert!(Args::try_parse_from(["b"]).is_err(), "--endpoints is required");
        assert!(Args::try_parse_from(["b", "--endpoints", "http://x:1", "--op", "delete"]).is_err());
        assert!(Args::try_parse_from(["b", "--endpoints", "http://x:1", "--mix", "put=1", "--op", "put"]).is_err());
        let bad = |extra: &[&str]| {
            let mut v = vec!["b", "--endpoints", "http://x:1"];
            v.extend_from_slice(extra);
            Args::try_parse_from(v).unwrap().validate().is_err()
        };
        assert!(bad(&["--clients", "0"]));
        assert!(bad(&["--conns", "0"]));
        assert!(bad(&["--key-space", "0"]));
        assert!(bad(&["--key-size", "4"]));
        assert!(bad(&["--timeout-secs", "0"]));
        assert!(bad(&["--duration-secs=-1"]));
        assert!(bad(&["--duration-secs", "0"]));
    }

    #[test]
    fn parses_mixes() {
        let m = parse_mix("put=50,range=50").unwrap();
        assert_eq!(m.weights, vec![(OpKind::Put, 50), (OpKind::Range, 50)]);
        assert_eq!(m.total, 100);
        assert_eq!(m.name(), "mix:put=50,range=50");
        let m = parse_mix(" txn=1 , range-serializable=3,put=0").unwrap();
        assert_eq!(m.weights, vec![(OpKind::Txn, 1), (OpKind::RangeSerializable, 3)]);
        assert_eq!(parse_mix("range=7").unwrap().name(), "range");
        assert!(parse_mix("put").is_err());
        assert!(parse_mix("put=x").is_err());
        assert!(parse_mix("get=1").is_err());
        assert!(parse_mix("put=0").is_err());
        assert!(parse_mix("").is_err());
        let a = Args::try_parse_from(["b", "--endpoints", "http://x:1", "--mix", "put=1,txn=3"]).unwrap();
        assert_eq!(a.mix().name(), "mix:put=1,txn=3");
    }

    #[test]
    fn mix_picks_by_weight() {
        let m = parse_mix("put=1,range=3").unwrap();
        assert_eq!(m.pick_at(0), OpKind::Put);
        assert_eq!((1..4).map(|r| m.pick_at(r)).collect::<Vec<_>>(), vec![OpKind::Range; 3]);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let puts = (0..40_000).filter(|_| m.pick(&mut rng) == OpKind::Put).count();
        assert!((9_000..11_000).contains(&puts), "{puts} puts of 40000");
    }
}
