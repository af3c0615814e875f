//! Simple tokens (etcd's `--auth-token simple`): opaque strings every
//! member registers when the `Authenticate` entry that carries one
//! applies, so a token issued by one member is valid on all of them.
//!
//! Like etcd's they live in memory only (a restarted member forgets them and
//! clients sign in again) and expire after their TTL without use; each use
//! restarts the TTL. Time is the peer's tick count, so the table needs no
//! clock of its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// The most tokens a member keeps; past it the one closest to expiry is
/// dropped, so sign-ins in a loop cannot grow memory without bound.
pub const MAX_TOKENS: usize = 65_536;

struct Entry {
    user: String,
    ttl_ticks: u64,
    deadline: u64,
}

/// The simple tokens of one member, shared by the node thread (which
/// registers them) and the server (which checks them).
#[derive(Default)]
pub struct SimpleTokens {
    now: AtomicU64,
    table: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for SimpleTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens themselves: they are secrets.
        f.debug_struct("SimpleTokens").field("count", &self.table.lock().len()).finish()
    }
}

impl SimpleTokens {
    /// Sets the current tick; drops expired tokens now and then.
    pub(crate) fn tick(&self, now: u64) {
        self.now.store(now, Ordering::Relaxed);
        if now.is_multiple_of(128) {
            self.table.lock().retain(|_, e| e.deadline > now);
        }
    }

    /// Registers `token` for `user`, valid `ttl_ticks` ticks after its last
    /// use.
    pub(crate) fn insert(&self, token: String, user: String, ttl_ticks: u64) {
        let now = self.now.load(Ordering::Relaxed);
        let mut t = self.table.lock();
        if t.len() >= MAX_TOKENS && !t.contains_key(&token) {
            t.retain(|_, e| e.deadline > now);
            if t.len() >= MAX_TOKENS {
                if let Some(k) = t.iter().min_by_key(|(_, e)| e.deadline).map(|(k, _)| k.clone()) {
                    t.remove(&k);
                }
            }
        }
        t.insert(token, Entry { user, ttl_ticks, deadline: now.saturating_add(ttl_ticks) });
    }

    /// The user of a valid `token`, restarting its TTL.
    pub fn validate(&self, token: &str) -> Option<String> {
        let now = self.now.load(Ordering::Relaxed);
        let mut t = self.table.lock();
        let e = t.get_mut(token)?;
        if e.deadline <= now {
            t.remove(token);
            return None;
        }
        e.deadline = now.saturating_add(e.ttl_ticks);
        Some(e.user.clone())
    }

    /// Forgets every token of `user` (deleted, or its password changed).
    pub(crate) fn invalidate_user(&self, user: &str) {
        self.table.lock().retain(|_, e| e.user != user);
    }

    /// Forgets every token (auth disabled, or the state replaced by a
    /// snapshot).
    pub(crate) fn clear(&self) {
        self.table.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_without_use_and_uses_extend_them() {
        let t = SimpleTokens::default();
        t.insert("tok".into(), "alice".into(), 10);
        t.tick(9);
        assert_eq!(t.validate("tok").as_deref(), Some("alice"));
        t.tick(18);
        assert_eq!(t.validate("tok").as_deref(), Some("alice"), "the use at 9 extended it");
        t.tick(40);
        assert_eq!(t.validate("tok"), None);
        assert_eq!(t.validate("other"), None);
        t.insert("a".into(), "bob".into(), 10);
        t.insert("b".into(), "carol".into(), 10);
        t.invalidate_user("bob");
        assert_eq!(t.validate("a"), None);
        assert_eq!(t.validate("b").as_deref(), Some("carol"));
    }

    #[test]
    fn the_table_is_bounded() {
        let t = SimpleTokens::default();
        for i in 0..MAX_TOKENS + 10 {
            t.insert(format!("t{i}"), "u".into(), 100 + i as u64);
        }
        assert_eq!(t.table.lock().len(), MAX_TOKENS);
        assert!(t.validate(&format!("t{}", MAX_TOKENS + 9)).is_some());
    }
}
