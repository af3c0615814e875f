//! Panics are verdicts: [`run_caught`] runs one seed and turns a panic in
//! any member (raft-rs's or ours) into a [`ViolationKind::Panic`] of that
//! seed's report, so a sweep reports the seed and its replay command and
//! goes on with the next seed.
//!
//! The default panic hook would print every panic's message and backtrace
//! from whichever sweep thread hit it; [`quiet_panics`] replaces it with
//! one that records the message and location per thread, and the verdict
//! carries them instead.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use crate::checker::{Violation, ViolationKind};
use crate::world::{RunReport, RunStats};
use crate::SimConfig;

thread_local! {
    /// The last panic's message and location on this thread.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Installs (once per process) the panic hook that records a panic's
/// message and location for [`run_caught`] instead of printing it. Panics
/// on threads that are not running a seed are recorded the same way and
/// otherwise silent, so call it only from a program that runs seeds.
pub fn quiet_panics() {
    HOOK.call_once(|| {
        panic::set_hook(Box::new(|info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(non-string panic payload)".to_string());
            let at = info.location().map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg}{at}")));
        }));
    });
}

/// Runs seed `seed` of `cfg` like [`crate::run`], but a panic anywhere in
/// the run becomes a failed report with one [`ViolationKind::Panic`].
pub fn run_caught(seed: u64, cfg: &SimConfig) -> RunReport {
    caught(seed, cfg.members, || crate::run(seed, cfg))
}

/// Runs `run` (the run of seed `seed` on `members` members), turning a
/// panic into a failed report with one [`ViolationKind::Panic`].
pub fn caught(seed: u64, members: usize, run: impl FnOnce() -> RunReport) -> RunReport {
    LAST_PANIC.with(|p| p.borrow_mut().take());
    match panic::catch_unwind(AssertUnwindSafe(run)) {
        Ok(report) => report,
        Err(payload) => {
            let recorded = LAST_PANIC.with(|p| p.borrow_mut().take());
            let detail = recorded.unwrap_or_else(|| {
                payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(non-string panic payload)".to_string())
            });
            RunReport {
                seed,
                members,
                trace_hash: 0,
                sim_time: 0,
                stats: RunStats::default(),
                violations: vec![Violation {
                    kind: ViolationKind::Panic,
                    detail: format!("a member panicked: {detail}"),
                }],
                history: Vec::new(),
            }
        }
    }
}
