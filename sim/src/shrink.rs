//! Shrinking: a failing seed reduced to a shorter run — fewer operations,
//! fewer faults, fewer clients — that still fails the same way, with the
//! command that replays it.
//!
//! A run is a pure function of its seed and [`SimConfig`], so shrinking
//! searches the configuration: the smallest `ops_per_client` that still
//! fails, then the smallest fault cap ([`SimConfig::max_faults`]), then
//! the fewest clients. "The same way" means a violation of a kind the
//! original run had. Each step tries candidates from the smallest up, so
//! the result is the first (smallest) failing one; the search is bounded.

use std::collections::BTreeSet;

use crate::verdict::run_caught;
use crate::world::RunReport;
use crate::SimConfig;

/// Runs a shrink makes at most.
pub const MAX_RUNS: u32 = 80;

/// A shrunk failing run.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The smallest configuration found that still fails.
    pub cfg: SimConfig,
    /// Its report.
    pub report: RunReport,
    /// Runs the search made.
    pub runs: u32,
}

fn kinds(r: &RunReport) -> BTreeSet<String> {
    r.violations.iter().map(|v| format!("{:?}", v.kind)).collect()
}

/// Candidates below `current`, smallest first: 0 (if `from_zero`), 1, 2,
/// 3, 5, 8, … (roughly ×1.5).
fn candidates(current: u64, from_zero: bool) -> Vec<u64> {
    let mut out = Vec::new();
    let mut c = if from_zero { 0 } else { 1 };
    while c < current {
        out.push(c);
        c = if c < 2 { c + 1 } else { c + c.div_ceil(2) };
    }
    out
}

/// Shrinks the failing run `original` of `seed` and `cfg`.
pub fn shrink(seed: u64, cfg: &SimConfig, original: &RunReport) -> Shrunk {
    let wanted = kinds(original);
    let mut best = Shrunk { cfg: cfg.clone(), report: original.clone(), runs: 0 };
    let still_fails = |c: &SimConfig, runs: &mut u32| -> Option<RunReport> {
        *runs += 1;
        let r = run_caught(seed, c);
        let same = r.violations.iter().any(|v| wanted.contains(&format!("{:?}", v.kind)));
        same.then_some(r)
    };
    let mut runs = 0;
    type Get = fn(&Shrunk) -> u64;
    type Set = fn(&mut SimConfig, u64);
    let knobs: [(Get, Set, bool); 3] = [
        (|s| s.cfg.ops_per_client as u64, |c, v| c.ops_per_client = v as usize, false),
        (|s| s.report.stats.faults.min(s.cfg.max_faults), |c, v| c.max_faults = v, true),
        (|s| s.cfg.clients as u64, |c, v| c.clients = v as usize, false),
    ];
    for (get, set, from_zero) in knobs {
        for v in candidates(get(&best), from_zero) {
            if runs >= MAX_RUNS {
                break;
            }
            let mut c = best.cfg.clone();
            set(&mut c, v);
            if let Some(r) = still_fails(&c, &mut runs) {
                best.cfg = c;
                best.report = r;
                break;
            }
        }
    }
    best.runs = runs;
    best
}

#[cfg(test)]
mod tests {
    use super::candidates;

    #[test]
    fn candidates_grow_and_stay_below_the_current_value() {
        assert_eq!(candidates(10, true), vec![0, 1, 2, 3, 5, 8]);
        assert_eq!(candidates(2, false), vec![1]);
        assert!(candidates(0, true).is_empty());
    }
}
