//! [`Integrity`]: the first corruption any reader of one member's data met.
//!
//! Every stored value carries a checksum (`crate::engine::checksum`); a read
//! that meets a mismatch fails with [`Error::Corruption`] and serves
//! nothing. That protects the one caller. The member must also stop: its
//! disk returns wrong bytes, and what it would write, apply or acknowledge
//! next cannot be trusted (etcd panics on a corrupt bbolt page, so its
//! supervisor restarts it). Reads run on many threads — the peer's own, the
//! readers serving ranges and watch history, callers' threads for
//! serializable point reads — so the peer cannot see the error itself.
//! Each of them reports it here; the peer shares one `Integrity` with its
//! raft log and every view it hands out, and its next
//! [`crate::core::peer::Peer::ready`] fails with the recorded error, which
//! stops the member as any storage error does.
//!
//! raft-rs panics when its storage fails (`fatal!` on anything but a
//! compacted or unavailable entry), so a corrupt raft log entry unwinds
//! through raft. [`Integrity::guard`] turns such a panic, and only one that
//! follows a recorded corruption, into that same error.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

use crate::{Error, Result};

/// Shared record of the first corruption met (see the module docs).
/// Cloning shares it.
#[derive(Clone, Default)]
pub struct Integrity(Arc<OnceLock<String>>);

impl Integrity {
    /// A fresh record: nothing met yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Passes `res` through, recording it if it is a corruption.
    pub fn check<R>(&self, res: Result<R>) -> Result<R> {
        if let Err(Error::Corruption(what)) = &res {
            self.record(what);
        }
        res
    }

    /// Records a corruption described by `what` (the first one sticks).
    pub fn record(&self, what: &str) {
        if crate::mutation::active("corrupt-read-keeps-running") {
            return;
        }
        if self.0.set(what.to_string()).is_ok() {
            tracing::error!(corruption = what, "corrupt data read; the member stops");
        }
    }

    /// Whether a corruption was recorded.
    pub fn failed(&self) -> bool {
        self.0.get().is_some()
    }

    /// The recorded corruption as an error, if one was met.
    pub fn failure(&self) -> Option<Error> {
        self.0.get().map(|what| Error::Corruption(what.clone()))
    }

    /// Runs `f`; a panic in it after a corruption was recorded (raft-rs
    /// panicking on the storage error it was handed) becomes that
    /// corruption's error. Any other panic goes on unwinding: it is a bug.
    pub fn guard<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        self.settle(Self::catch(f))
    }

    /// [`Integrity::guard`] in two halves, for a closure that needs the
    /// whole of its owner mutably: runs `f`, catching a panic...
    pub fn catch<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
        panic::catch_unwind(AssertUnwindSafe(f))
    }

    /// ...and judges the outcome as [`Integrity::guard`] does.
    pub fn settle<R>(&self, caught: std::thread::Result<R>) -> Result<R> {
        match caught {
            Ok(r) => Ok(r),
            Err(payload) => match self.failure() {
                Some(e) => Err(e),
                None => panic::resume_unwind(payload),
            },
        }
    }
}

impl std::fmt::Debug for Integrity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Integrity").field(&self.0.get()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_the_first_corruption_only() {
        let integrity = Integrity::new();
        assert!(integrity.failure().is_none());
        let ok: Result<u8> = Ok(1);
        assert_eq!(integrity.check(ok).unwrap(), 1);
        assert!(integrity.check::<()>(Err(Error::NoLeader)).is_err());
        assert!(integrity.failure().is_none(), "only corruptions are recorded");
        let _ = integrity.check::<()>(Err(Error::Corruption("first".into())));
        let _ = integrity.clone().check::<()>(Err(Error::Corruption("second".into())));
        assert!(matches!(integrity.failure(), Some(Error::Corruption(w)) if w == "first"));
    }

    #[test]
    fn a_panic_after_a_corruption_becomes_its_error() {
        let integrity = Integrity::new();
        assert_eq!(integrity.guard(|| 7).unwrap(), 7);
        integrity.record("raft log entry 5: checksum mismatch");
        let res: Result<()> = integrity.guard(|| panic!("unexpected error: Store(Other(..))"));
        assert!(matches!(res, Err(Error::Corruption(w)) if w.contains("entry 5")));
    }

    #[test]
    fn any_other_panic_unwinds() {
        let integrity = Integrity::new();
        let outer = panic::catch_unwind(|| integrity.guard(|| panic!("a bug")));
        assert!(outer.is_err(), "a panic with no corruption recorded is not swallowed");
    }
}
