//! Key-range permissions: does the union of a user's permissions of one
//! kind cover the keys a request touches?
//!
//! A permission or a request names keys as etcd does: `range_end` empty is
//! the single key `key`, `range_end == "\0"` is every key from `key` on,
//! anything else is `[key, range_end)`. A request is permitted when the
//! permissions' intervals, merged, cover its whole interval — a range may
//! be covered by several permissions together, as etcd's interval tree
//! allows.

use crate::pb::authpb::permission::Type;
use crate::pb::authpb::Permission;

/// What a request does to its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads them (ranges, compares, watches, `prev_kv`).
    Read,
    /// Writes them (puts, deletes, lease revokes).
    Write,
}

/// A half-open key interval; `end == None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Interval {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Interval {
    /// etcd's reading of `key` and `range_end`.
    fn of(key: &[u8], range_end: &[u8]) -> Self {
        match range_end {
            [] => {
                let mut end = key.to_vec();
                end.push(0);
                Interval { start: key.to_vec(), end: Some(end) }
            }
            [0] => Interval { start: key.to_vec(), end: None },
            // An inverted range selects nothing; checking it as its first
            // key keeps a malformed request from passing unchecked.
            end if end <= key => Interval::of(key, &[]),
            end => Interval { start: key.to_vec(), end: Some(end.to_vec()) },
        }
    }
}

/// True if permission type `t` grants `access`.
fn grants(t: i32, access: Access) -> bool {
    match Type::try_from(t) {
        Ok(Type::Readwrite) => true,
        Ok(Type::Read) => access == Access::Read,
        Ok(Type::Write) => access == Access::Write,
        Err(_) => false,
    }
}

/// True if the permissions of `perms` that grant `access`, together, cover
/// `[key, range_end)` (in etcd's reading of the pair).
pub fn covered<'a>(perms: impl Iterator<Item = &'a Permission>, access: Access, key: &[u8], range_end: &[u8]) -> bool {
    let want = Interval::of(key, range_end);
    let mut have: Vec<Interval> =
        perms.filter(|p| grants(p.perm_type, access)).map(|p| Interval::of(&p.key, &p.range_end)).collect();
    have.sort_by(|a, b| a.start.cmp(&b.start));
    // Sweep from the wanted start, extending the covered prefix while the
    // next interval starts inside it.
    let mut reached: Option<Vec<u8>> = Some(want.start.clone());
    for iv in have {
        let Some(at) = reached.as_ref() else { break };
        if iv.start > *at {
            break;
        }
        reached = match (iv.end, reached.take()) {
            (None, _) => None,
            (Some(e), Some(r)) => Some(if e > r { e } else { r }),
            (Some(_), None) => None,
        };
    }
    match (reached, want.end) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(r), Some(e)) => r >= e && r > want.start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(t: Type, key: &str, end: &[u8]) -> Permission {
        Permission { perm_type: t as i32, key: key.as_bytes().to_vec().into(), range_end: end.to_vec().into() }
    }

    #[test]
    fn single_key_prefix_and_range() {
        let perms = [
            perm(Type::Read, "a", b""),
            perm(Type::Readwrite, "/app/", b"/app0"),
            perm(Type::Write, "k1", b"k5"),
            perm(Type::Read, "z", b"\0"),
        ];
        let ok = |a, k: &str, e: &[u8]| covered(perms.iter(), a, k.as_bytes(), e);
        assert!(ok(Access::Read, "a", b""));
        assert!(!ok(Access::Write, "a", b""));
        assert!(!ok(Access::Read, "ab", b""));
        assert!(!ok(Access::Read, "a", b"b"), "a range beyond the single key");
        assert!(ok(Access::Read, "/app/x", b""));
        assert!(ok(Access::Write, "/app/", b"/app0"));
        assert!(ok(Access::Write, "/app/a", b"/app/b"));
        assert!(!ok(Access::Write, "/app/", b"/app1"));
        assert!(ok(Access::Write, "k1", b""));
        assert!(ok(Access::Write, "k4zzz", b""));
        assert!(!ok(Access::Write, "k5", b""));
        assert!(!ok(Access::Read, "k1", b""));
        assert!(ok(Access::Read, "zz", b"\0"));
        assert!(ok(Access::Read, "zzz", b""));
        assert!(!ok(Access::Read, "y", b"\0"));
        assert!(!ok(Access::Write, "zz", b""));
    }

    #[test]
    fn ranges_covered_by_several_permissions_together() {
        let perms = [perm(Type::Read, "a", b"c"), perm(Type::Readwrite, "c", b"e"), perm(Type::Read, "f", b"\0")];
        let ok = |k: &str, e: &[u8]| covered(perms.iter(), Access::Read, k.as_bytes(), e);
        assert!(ok("a", b"e"));
        assert!(ok("b", b"d"));
        assert!(!ok("a", b"f"), "a gap at [e, f)");
        assert!(ok("f", b"\0"));
        assert!(!ok("", b"\0"));
        assert!(!covered([].iter(), Access::Read, b"a", b""));
    }

    #[test]
    fn inverted_range_is_checked_as_its_key() {
        let perms = [perm(Type::Read, "b", b"")];
        assert!(covered(perms.iter(), Access::Read, b"b", b"a"));
        assert!(!covered(perms.iter(), Access::Read, b"c", b"a"));
    }
}
