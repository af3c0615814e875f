//! Fault injection: partitions, leader isolation and transfer, crashes,
//! tick skew, network weather; healing them, and the final heal.

use raft_kv::engine::DiskFault;
use transport_mem::sim::LinkFaults;

use super::World;
use crate::config::{FaultKind, TICK};
use crate::history::NEVER;

impl World {
    fn random_groups(&mut self) -> (Vec<u64>, Vec<u64>) {
        let ids = self.live_ids();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for id in ids {
            if self.rng_fault.chance(0.5) {
                a.push(id);
            } else {
                b.push(id);
            }
        }
        if a.is_empty() {
            a.extend(b.pop());
        } else if b.is_empty() {
            b.extend(a.pop());
        }
        (a, b)
    }

    fn schedule_heal(&mut self) {
        let (lo, hi) = self.cfg.faults.partition_time;
        self.heal_at = self.now + self.rng_fault.between(lo, hi);
        self.stats.partitions += 1;
    }

    pub(super) fn inject_fault(&mut self) {
        if self.stats.faults >= self.cfg.max_faults {
            return;
        }
        self.stats.faults += 1;
        let weights = self.cfg.faults.weights.as_array();
        let Some(kind) = self.rng_fault.weighted(&weights).and_then(|i| FaultKind::ALL.get(i).copied()) else {
            return;
        };
        let now = self.now;
        let all = self.live_ids();
        match kind {
            FaultKind::Partition | FaultKind::OneWayPartition => {
                if all.len() < 2 {
                    return;
                }
                let (a, b) = self.random_groups();
                if kind == FaultKind::Partition {
                    self.net.partition(&a, &b);
                } else {
                    self.net.partition_one_way(&a, &b);
                }
                self.trace.event(now, format_args!("fault {kind:?} {a:?} | {b:?}"));
                self.schedule_heal();
            }
            FaultKind::IsolateLeader => {
                let target = match self.leader_index() {
                    Some(i) => self.members[i].id,
                    None => *self.rng_fault.pick(&all).unwrap_or(&1),
                };
                self.net.isolate(target, &all);
                self.trace.event(now, format_args!("fault isolate m{target}"));
                self.schedule_heal();
            }
            FaultKind::Crash => {
                if self.rng_fault.chance(self.cfg.faults.crash_all) {
                    self.trace.event(now, format_args!("fault crash all members"));
                    for i in 0..self.members.len() {
                        self.crash(i);
                    }
                } else {
                    let up: Vec<usize> = (0..self.members.len()).filter(|i| self.members[*i].peer.is_some()).collect();
                    let leader = self.leader_index();
                    let target = match leader {
                        Some(l) if self.rng_fault.chance(0.4) => Some(l),
                        _ => self.rng_fault.pick(&up).copied(),
                    };
                    if let Some(i) = target {
                        if self.cfg.faults.torn_writes && self.rng_fault.chance(0.75) {
                            // The crash lands inside one of its next writes
                            // (which a crash may then tear).
                            let after = self.rng_fault.below(3) as u32;
                            self.trace.event(now, format_args!("fault crash m{} in write {after}", self.members[i].id));
                            self.members[i].engine.arm(DiskFault::CrashAfter(after));
                        } else {
                            self.trace.event(now, format_args!("fault crash m{}", self.members[i].id));
                            self.crash(i);
                        }
                    }
                }
            }
            FaultKind::TransferLeader => {
                if let Some(l) = self.leader_index() {
                    let ids = self.client_ids();
                    let to = *self.rng_fault.pick(&ids).unwrap_or(&1);
                    self.trace.event(now, format_args!("fault transfer leader m{} -> m{to}", self.members[l].id));
                    self.stats.transfers += 1;
                    if let Some(peer) = self.members[l].peer.as_mut() {
                        peer.transfer_leader(to);
                    }
                }
            }
            FaultKind::TickSkew => {
                let i = self.rng_fault.below(self.members.len() as u64) as usize;
                let (lo, hi) = self.cfg.faults.tick_period;
                let period = self.rng_fault.between(lo, hi).max(1);
                self.members[i].tick_period = period;
                self.trace.event(now, format_args!("fault m{} ticks every {period}", self.members[i].id));
            }
            FaultKind::NetWeather => {
                let w = self.cfg.faults.worst_weather;
                let faults = LinkFaults {
                    drop: w.drop * self.rng_fault.unit(),
                    duplicate: w.duplicate * self.rng_fault.unit(),
                    min_delay: w.min_delay,
                    max_delay: self.rng_fault.between(w.min_delay, w.max_delay),
                    slow: w.slow * self.rng_fault.unit(),
                    slow_delay: w.slow_delay,
                };
                self.net.set_faults(faults);
                // The snapshot transport slows down with the weather.
                self.snapshot_pipes.chunk_time = self.rng_fault.between(0, 2 * TICK);
                self.trace.event(
                    now,
                    format_args!(
                        "fault weather drop {:.3} dup {:.3} delay {}..{} slow {:.3}",
                        faults.drop, faults.duplicate, faults.min_delay, faults.max_delay, faults.slow
                    ),
                );
            }
            FaultKind::Heal => {
                self.net.heal();
                self.heal_at = NEVER;
                self.trace.event(now, format_args!("fault heal"));
            }
            FaultKind::Membership => self.start_change(),
            FaultKind::Disk => {
                let up: Vec<usize> = (0..self.members.len()).filter(|i| self.members[*i].peer.is_some()).collect();
                let Some(&i) = self.rng_fault.pick(&up) else { return };
                // Half the disk faults are corrupt reads.
                let fault = match self.rng_fault.below(6) {
                    0 => DiskFault::FailWrite,
                    1 => DiskFault::FailSync,
                    2 => DiskFault::CrashAfter(self.rng_fault.below(6) as u32),
                    _ => {
                        // Reads of one log entry or MVCC version return
                        // wrong bytes until the member restarts.
                        let pick = self.rng_fault.below(u64::MAX);
                        if self.members[i].engine.corrupt_read(pick) {
                            self.stats.corrupt_reads += 1;
                            self.trace.event(now, format_args!("fault disk m{}: corrupt read", self.members[i].id));
                            // Half the time a reader meets it at once: a
                            // serializable scan of every key on the member
                            // (the bit is the pick's, so no random stream
                            // moves); otherwise the workload may, later.
                            if (pick >> 40) & 1 == 0 {
                                self.scan_after_corruption(i);
                            }
                        }
                        return;
                    }
                };
                self.members[i].engine.arm(fault);
                self.stats.disk_faults += 1;
                self.trace.event(now, format_args!("fault disk m{}: {fault:?}", self.members[i].id));
            }
            FaultKind::ClockJump => self.jump_clock(),
            FaultKind::DirLoss => self.lose_dir(),
            FaultKind::ClientPartition => {
                let ids = self.client_ids();
                let Some(&id) = self.rng_fault.pick(&ids) else { return };
                let (lo, hi) = self.cfg.faults.partition_time;
                let until = now + self.rng_fault.between(lo, hi);
                self.client_cut.insert(id, until);
                self.stats.client_partitions += 1;
                self.trace.event(now, format_args!("fault clients cut off from m{id} until {until}"));
            }
        }
    }

    /// Longest forward clock jump, in ticks.
    const MAX_JUMP_TICKS: u64 = 3;

    /// [`FaultKind::ClockJump`] on one running member: forward, up to
    /// [`Self::MAX_JUMP_TICKS`] ticks fire at once (recorded as its ticks,
    /// which the lease checks count); back, its ticks stop for 5 to 30
    /// periods.
    fn jump_clock(&mut self) {
        let up: Vec<usize> = (0..self.members.len()).filter(|i| self.members[*i].peer.is_some()).collect();
        let Some(&i) = self.rng_fault.pick(&up) else { return };
        let now = self.now;
        let m = &mut self.members[i];
        self.stats.clock_jumps += 1;
        if self.rng_fault.chance(0.5) {
            let ticks = 1 + self.rng_fault.below(Self::MAX_JUMP_TICKS);
            // Recorded as the member's own ticks: the lease checks judge
            // each member by the ticks it counted.
            if let Some(peer) = m.peer.as_mut() {
                for _ in 0..ticks {
                    peer.tick();
                    m.clock.ticks.push(now);
                }
            }
            self.trace.event(now, format_args!("fault m{}'s clock jumps {ticks} ticks forward", m.id));
        } else {
            let back = m.tick_period * self.rng_fault.between(5, 30);
            m.next_tick += back;
            self.trace.event(now, format_args!("fault m{}'s clock jumps {back} units back", m.id));
        }
    }

    pub(super) fn start_heal(&mut self) {
        self.healing = true;
        self.net.heal();
        self.heal_at = NEVER;
        self.next_fault = NEVER;
        self.client_cut.clear();
        self.net.set_faults(LinkFaults { min_delay: 1, max_delay: 3, ..LinkFaults::reliable() });
        self.snapshot_pipes.chunk_time = 0;
        for m in &mut self.members {
            m.tick_period = TICK;
            // A clock set back catches up now.
            m.next_tick = m.next_tick.min(self.now + TICK);
            // A corruption no read met by now is left out of the checks.
            m.engine.repair();
            if m.peer.is_none() && !m.retired {
                m.restart_at = self.now;
            }
        }
        self.heal_deadline = self.now + self.cfg.heal_time;
        self.next_check = self.now + 20 * TICK;
        self.trace.event(self.now, format_args!("heal everything; workload stops"));
    }
}
