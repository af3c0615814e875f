//! [`Trace`]: the run's event log and its hash.
//!
//! Every event of a run (faults, client invocations and completions, crashes,
//! elections, and every message delivery) is folded into a 64-bit FNV-1a
//! hash. Two runs of one seed must produce the same hash; `--trace` prints
//! the events as they happen.

use std::fmt::{self, Write as _};

use raft::eraftpb::MessageType;
use raft_kv::hash::Fnv64;
use transport_mem::sim::Envelope;

/// How much of the trace to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum TraceLevel {
    /// Nothing (the hash is still computed).
    #[default]
    Off,
    /// Faults, client operations, crashes, leaders.
    Events,
    /// Also every message delivery.
    Messages,
}

/// The event log of one run. See the module docs.
///
/// ```
/// use sim::trace::{Trace, TraceLevel};
/// let mut a = Trace::new(TraceLevel::Off);
/// let mut b = Trace::new(TraceLevel::Off);
/// a.event(5, format_args!("crash m{}", 2));
/// b.event(5, format_args!("crash m{}", 2));
/// assert_eq!(a.hash(), b.hash());
/// ```
#[derive(Debug, Clone)]
pub struct Trace {
    hash: Fnv64,
    level: TraceLevel,
    buf: String,
    events: u64,
}

impl Trace {
    /// An empty trace printing at `level`.
    pub fn new(level: TraceLevel) -> Self {
        Trace { hash: Fnv64::new(), level, buf: String::new(), events: 0 }
    }

    fn mix(&mut self, bytes: &[u8]) {
        self.hash.write(bytes);
    }

    /// Records an event at virtual time `now`.
    pub fn event(&mut self, now: u64, args: fmt::Arguments<'_>) {
        self.events += 1;
        self.buf.clear();
        // Writing to a String cannot fail.
        let _ = write!(self.buf, "{now:>8} {args}");
        let buf = std::mem::take(&mut self.buf);
        self.mix(buf.as_bytes());
        if self.level >= TraceLevel::Events {
            println!("{buf}");
        }
        self.buf = buf;
    }

    /// Records the delivery of a message at `now`.
    pub fn delivery(&mut self, now: u64, env: &Envelope) {
        self.events += 1;
        let m = &env.msg;
        let ty = m.get_msg_type();
        for x in [now, env.from, env.to, ty as u64, m.term, m.index, m.log_term, m.commit, m.entries.len() as u64] {
            self.mix(&x.to_le_bytes());
        }
        self.mix(&[u8::from(m.reject)]);
        if self.level >= TraceLevel::Messages {
            let ctx = match ty {
                MessageType::MsgReadIndex | MessageType::MsgReadIndexResp | MessageType::MsgHeartbeat => {
                    let data = m.entries.first().map(|e| e.data.to_vec()).unwrap_or_else(|| m.context.to_vec());
                    if data.is_empty() {
                        String::new()
                    } else {
                        format!(" ctx {data:02x?}")
                    }
                }
                _ => String::new(),
            };
            println!(
                "{now:>8}   net {} -> {} {:?} term {} index {} log_term {} commit {} entries {}{}{}{ctx}",
                env.from,
                env.to,
                ty,
                m.term,
                m.index,
                m.log_term,
                m.commit,
                m.entries.len(),
                if m.reject { " reject" } else { "" },
                if ty == MessageType::MsgSnapshot { " (snapshot)" } else { "" },
            );
        }
    }

    /// The hash of every event so far.
    pub fn hash(&self) -> u64 {
        self.hash.finish()
    }

    /// Number of events recorded.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// True when events are printed.
    pub fn printing(&self) -> bool {
        self.level >= TraceLevel::Events
    }
}
