//! The end-of-run checks on runs that stop early.

use super::watch_driver::WatchOwner;
use super::*;

/// A run stopped in the middle of its workload (faults still on, members
/// perhaps down), as a run that stops on a violation is, before its
/// end-of-run checks: it has not converged.
fn stopped_early(seed: u64) -> World {
    let cfg = SimConfig { members: 3, ops_per_client: 60, ..SimConfig::default() };
    let stop_at = cfg.workload_time / 4;
    let mut world = World::new(seed, cfg);
    for i in 0..world.members.len() {
        world.start_member(i);
    }
    while world.now < stop_at && !world.stopped {
        let next = world.next_event();
        if next == NEVER {
            break;
        }
        world.now = next;
        world.step();
    }
    assert!(world.converged.is_empty() && !world.healing, "seed {seed} got to its end");
    world
}

/// The first client watch that delivered at least two messages inside its
/// covered spans, and the index of one such message (not the last).
fn busy_watch(world: &World) -> Option<(usize, usize)> {
    world.watches.iter().enumerate().find_map(|(w, slot)| {
        if !matches!(slot.owner, WatchOwner::Client(_)) {
            return None;
        }
        let covered = |rev: i64| slot.log.spans.iter().any(|&(from, to)| (from..=to).contains(&rev));
        let inside: Vec<usize> = (0..slot.log.received.len()).filter(|&i| covered(slot.log.received[i].0)).collect();
        (inside.len() >= 2).then(|| (w, inside[0]))
    })
}

fn watch_verdicts(report: &RunReport) -> Vec<&str> {
    report.violations.iter().filter(|v| v.kind == ViolationKind::Watch).map(|v| v.detail.as_str()).collect()
}

/// A run that did not converge still has its watches checked: what they
/// delivered is judged against the history that can be proven, so a
/// duplicate or a dropped event is caught, and an honest run has no watch
/// verdict.
#[test]
fn watch_checks_judge_runs_that_did_not_converge() {
    let seed = (0..30u64)
        .find(|&seed| busy_watch(&stopped_early(seed)).is_some())
        .expect("a run that stops early with a busy client watch");
    let honest = stopped_early(seed).finish();
    let watch_kinds = [ViolationKind::Watch, ViolationKind::EventHistory, ViolationKind::WatchCompacted];
    assert!(!honest.violations.iter().any(|v| watch_kinds.contains(&v.kind)), "{:?}", honest.violations);

    // A message delivered twice.
    let mut world = stopped_early(seed);
    let (w, _) = busy_watch(&world).expect("busy watch");
    let last = world.watches[w].log.received.last().cloned().expect("a message");
    world.watches[w].log.deliver(last.0, last.1);
    let report = world.finish();
    assert!(watch_verdicts(&report).iter().any(|d| d.contains("duplicate")), "{:?}", report.violations);

    // A message inside a covered span that never came: a gap.
    let mut world = stopped_early(seed);
    let (w, i) = busy_watch(&world).expect("busy watch");
    let log = &mut world.watches[w].log;
    log.received.remove(i);
    log.received_at.remove(i);
    // Opens and progress notifications keep their places among the rest.
    for at in log.opens.iter_mut().chain(log.progress.iter_mut().map(|(at, _)| at)) {
        if *at > i {
            *at -= 1;
        }
    }
    let report = world.finish();
    assert!(watch_verdicts(&report).iter().any(|d| d.contains("gap")), "{:?}", report.violations);
}
