//! `--auto-compaction-mode` and `--auto-compaction-retention`: the leader
//! compacts history on its own, with etcd 3.5's semantics (its `periodic`
//! and `revision` compactors). A compaction is proposed through raft like a
//! client's `Compact`, so every member compacts at the same revision.
//!
//! - **periodic**: the retention is a duration (`1h`, `30m`, `90s`) or a
//!   bare number of hours. The revision is sampled every check interval —
//!   the retention itself up to one hour, a tenth of it beyond — and, once
//!   a retention has passed since the last success, the store is compacted
//!   to the oldest sample still kept: the revision from one retention ago.
//!   The first compaction comes one retention after start, later ones
//!   every check interval.
//! - **revision**: keep the last N revisions. Every check interval (etcd's
//!   five minutes) the store is compacted to `current - N`, unless that is
//!   not positive or was already done.
//!
//! Only the leader compacts: on a follower the loop keeps sampling but
//! proposes nothing (etcd pauses its compactor likewise). A compaction that
//! finds the revision already compacted counts as done.

use std::collections::VecDeque;
use std::time::Duration;

use clap::ValueEnum;
use raft_kv::{AsyncNode, Error, Role};
use tokio::time::Instant;

/// etcd's `--auto-compaction-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Keep a window of time.
    Periodic,
    /// Keep a number of revisions.
    Revision,
}

/// What the compactor keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Auto-compaction is off (retention 0, etcd's default).
    Off,
    /// History younger than this.
    Period(Duration),
    /// This many of the latest revisions.
    Revisions(i64),
}

/// etcd's periodic compactor checks a tenth of a retention longer than an
/// hour at a time; a shorter retention is its own check interval.
const PERIODIC_DIVISOR: u32 = 10;

/// Parses `--auto-compaction-retention` for `mode` as etcd 3.5 does: a
/// bare non-negative integer is hours (periodic) or revisions (revision);
/// otherwise a Go duration, which only the periodic mode takes.
pub fn parse_retention(mode: Mode, s: &str) -> Result<Retention, String> {
    if let Ok(n) = s.trim().parse::<i64>() {
        if n < 0 {
            return Err(format!("--auto-compaction-retention {s:?} must not be negative"));
        }
        return Ok(match (n, mode) {
            (0, _) => Retention::Off,
            (n, Mode::Revision) => Retention::Revisions(n),
            (n, Mode::Periodic) => Retention::Period(Duration::from_secs(3600u64.saturating_mul(n as u64))),
        });
    }
    match mode {
        Mode::Revision => Err(format!("--auto-compaction-retention {s:?}: revision mode keeps a number of revisions")),
        Mode::Periodic => match go_duration(s)? {
            d if d.is_zero() => Ok(Retention::Off),
            d => Ok(Retention::Period(d)),
        },
    }
}

/// A Go duration: one or more decimal numbers, each with a unit (`ns`,
/// `us`, `µs`, `ms`, `s`, `m`, `h`), e.g. `1h30m`, `1.5h`, `500ms`.
pub fn go_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration (like 1h30m, 90s or 500ms)");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let secs = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * secs;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// Runs the compactor for `retention` until the member stops; `revision_interval` is
/// the revision mode's check interval (etcd: five minutes).
pub async fn run(node: AsyncNode, retention: Retention, revision_interval: Duration) {
    match retention {
        Retention::Off => {}
        Retention::Period(period) => periodic(node, period).await,
        Retention::Revisions(keep) => revisions(node, keep, revision_interval).await,
    }
}

async fn periodic(node: AsyncNode, period: Duration) {
    let interval = if period > Duration::from_secs(3600) { period / PERIODIC_DIVISOR } else { period };
    let kept = ((period.as_secs_f64() / interval.as_secs_f64()).round() as usize).max(1);
    let mut revs: VecDeque<i64> = VecDeque::with_capacity(kept + 1);
    let mut last_success = Instant::now();
    // The first compaction waits a whole retention; later ones an interval.
    let mut wait = period;
    tracing::info!(retention = ?period, check = ?interval, "periodic auto-compaction enabled");
    loop {
        revs.push_back(node.state().revision);
        if revs.len() > kept {
            revs.pop_front();
        }
        tokio::time::sleep(interval).await;
        let st = node.state();
        if st.stopped {
            return;
        }
        if st.role != Role::Leader || last_success.elapsed() < wait {
            continue;
        }
        wait = interval;
        let Some(&rev) = revs.front() else { continue };
        if compact(&node, rev, "periodic").await {
            last_success = Instant::now();
        }
    }
}

async fn revisions(node: AsyncNode, keep: i64, interval: Duration) {
    let mut done = 0;
    tracing::info!(keep, check = ?interval, "revision auto-compaction enabled");
    loop {
        tokio::time::sleep(interval).await;
        let st = node.state();
        if st.stopped {
            return;
        }
        let rev = st.revision - keep;
        if st.role != Role::Leader || rev <= 0 || rev == done {
            continue;
        }
        if compact(&node, rev, "revision").await {
            done = rev;
        }
    }
}

/// Proposes a compaction to `rev`; true when it applied or was already
/// done.
async fn compact(node: &AsyncNode, rev: i64, mode: &str) -> bool {
    if rev <= 0 {
        return false;
    }
    tracing::info!(revision = rev, mode, "starting auto-compaction");
    match node.compact(rev).await {
        Ok(_) | Err(Error::Compacted { .. }) => {
            tracing::info!(revision = rev, "finished auto-compaction");
            true
        }
        Err(e) => {
            tracing::warn!(revision = rev, error = %e, "auto-compaction failed; retrying at the next check");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_parses_like_etcd() {
        let h = Duration::from_secs(3600);
        assert_eq!(parse_retention(Mode::Periodic, "1"), Ok(Retention::Period(h)));
        assert_eq!(parse_retention(Mode::Periodic, "0"), Ok(Retention::Off));
        assert_eq!(parse_retention(Mode::Periodic, "30m"), Ok(Retention::Period(h / 2)));
        assert_eq!(parse_retention(Mode::Periodic, "1h30m"), Ok(Retention::Period(h * 3 / 2)));
        assert_eq!(parse_retention(Mode::Periodic, "1.5h"), Ok(Retention::Period(h * 3 / 2)));
        assert_eq!(parse_retention(Mode::Periodic, "500ms"), Ok(Retention::Period(Duration::from_millis(500))));
        assert_eq!(parse_retention(Mode::Revision, "1000"), Ok(Retention::Revisions(1000)));
        assert_eq!(parse_retention(Mode::Revision, "0"), Ok(Retention::Off));
        for (mode, bad) in
            [(Mode::Revision, "1h"), (Mode::Periodic, "-1"), (Mode::Periodic, "1d"), (Mode::Periodic, "")]
        {
            assert!(parse_retention(mode, bad).is_err(), "{mode:?} {bad:?}");
        }
    }
}
