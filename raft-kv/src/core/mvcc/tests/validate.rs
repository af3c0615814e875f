//! Validation scenarios: requests refused before touching the store, and the
//! put/delete clash check of transaction branches.

use super::*;

engine_tests!(validation_errors);

fn validation_errors<E: Engine>(h: &mut H<E>) {
    h.put("a", "1");
    let bad_ranges = [
        RangeRequest::key(Bytes::new()),
        RangeRequest::range(b("b"), b("a")),
        RangeRequest { sort_order: 3, ..RangeRequest::key(b("a")) },
        RangeRequest { sort_target: 9, ..RangeRequest::key(b("a")) },
        RangeRequest { sort_order: -1, ..RangeRequest::key(b("a")) },
    ];
    // As etcd 3.5: a negative limit is no limit, a negative revision the
    // current one.
    for r in [RangeRequest::key(b("a")).with_limit(-1), RangeRequest::key(b("a")).at_revision(-1)] {
        assert_eq!(h.range(r.clone()).map(|r| r.count).ok(), Some(1), "{r:?}");
    }
    for r in bad_ranges {
        assert!(is_invalid(h.range(r.clone())), "{r:?}");
        let op = Op::Txn(TxnRequest::new().and_then(r));
        assert!(is_invalid(Mvcc::<E>::validate(&op)));
        assert!(is_invalid(h.apply(op)));
    }
    let mut bad_compares = vec![
        Compare::version(Bytes::new(), R::Equal, 0),
        Compare { range_end: b("0"), ..Compare::version(b("a"), R::Equal, 0) },
        Compare { result: 4, ..Compare::version(b("a"), R::Equal, 0) },
        Compare { target: 5, ..Compare::version(b("a"), R::Equal, 0) },
        Compare { target_union: None, ..Compare::version(b("a"), R::Equal, 0) },
    ];
    for target in
        [CompareTarget::Version, CompareTarget::Create, CompareTarget::Mod, CompareTarget::Value, CompareTarget::Lease]
    {
        let wrong = if target == CompareTarget::Value { TargetUnion::Version(1) } else { TargetUnion::Value(b("x")) };
        bad_compares.push(Compare {
            target: target as i32,
            target_union: Some(wrong),
            ..Compare::version(b("a"), R::Equal, 0)
        });
    }
    for c in bad_compares {
        let op = Op::Txn(TxnRequest::new().when(c));
        assert!(is_invalid(Mvcc::<E>::validate(&op)), "{op:?}");
        assert!(is_invalid(h.apply(op)));
    }
    let bad_ops = [
        Op::Put(PutRequest::new(Bytes::new(), b("v"))),
        Op::DeleteRange(DeleteRangeRequest::key(Bytes::new())),
        Op::DeleteRange(DeleteRangeRequest { key: b("b"), range_end: b("a"), prev_kv: false }),
        Op::Compact(CompactionRequest { revision: -1, physical: false }),
        Op::Txn(TxnRequest { success: vec![RequestOp { request: None }], ..Default::default() }),
        Op::Txn(TxnRequest::new().or_else(PutRequest::new(Bytes::new(), b("v")))),
        Op::Txn(TxnRequest::new().and_then(TxnRequest::new().and_then(DeleteRangeRequest::key(Bytes::new())))),
    ];
    for op in bad_ops {
        assert!(is_invalid(Mvcc::<E>::validate(&op)), "{op:?}");
        assert!(is_invalid(h.apply(op)));
    }
    // Deep nesting is refused, not a stack overflow.
    let mut deep = TxnRequest::new();
    for _ in 0..200 {
        deep = TxnRequest::new().and_then(deep);
    }
    assert!(is_invalid(h.apply(Op::Txn(deep))));
    // Valid edge cases.
    for r in
        [RangeRequest::range(b("a"), b("a")), RangeRequest::from_key(b("\0")), RangeRequest::key(b("a")).at_revision(2)]
    {
        h.range(r).unwrap();
    }
    assert_eq!(h.m.revision(), 2);
}

/// The linear-logarithmic put/delete clash check agrees with testing every
/// put against every delete, on random branches (keys from a small
/// alphabet so ranges overlap often; owners of nested txns included).
#[test]
fn put_delete_clash_sweep_matches_the_quadratic_check() {
    use super::{check_puts_against_deletes, KeyRange};
    use std::collections::BTreeMap;
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let key = |n: u64| bytes::Bytes::from(vec![b'a' + (n % 6) as u8; 1 + (n / 6) as usize % 2]);
    for _ in 0..2_000 {
        let mut puts: BTreeMap<bytes::Bytes, Option<usize>> = BTreeMap::new();
        for _ in 0..next(6) {
            let owner = if next(2) == 0 { None } else { Some(next(3) as usize) };
            puts.insert(key(next(12)), owner);
        }
        let deletes: Vec<(Option<usize>, KeyRange)> = (0..next(5))
            .map(|_| {
                let owner = if next(2) == 0 { None } else { Some(next(3) as usize) };
                let start = key(next(12));
                let end = match next(3) {
                    0 => Vec::new(),
                    1 => vec![0],
                    _ => key(next(12)).to_vec(),
                };
                (owner, KeyRange::new(&start, &end))
            })
            .collect();
        let naive = puts.iter().any(|(k, owner)| {
            deletes.iter().any(|(d_owner, range)| (d_owner.is_none() || d_owner != owner) && range.contains(k))
        });
        assert_eq!(check_puts_against_deletes(&puts, &deletes).is_err(), naive, "{puts:?} {deletes:?}");
    }
}
