//! Extreme client numbers — 0, −1, i64::MIN, i64::MAX, u64::MAX — in every
//! numeric field a client controls (revisions, limits, revision filters,
//! lease TTLs and ids, watch start revisions and ids, compare targets,
//! member ids). Each call gets an answer (success or a clear error), no
//! member stops or starts an election, and a put completes afterwards.

mod common;

use common::{retry, Cluster};
use raft_kv::{Compare, CompareResult, PutRequest, RangeRequest, TxnRequest, WatchRequest};
use raft_kv::{Error, InvalidRequest};

const SIGNED: [i64; 5] = [0, -1, i64::MIN, i64::MAX, i64::MAX - 1];
const UNSIGNED: [u64; 4] = [0, u64::MAX, u64::MAX - 1, 1 << 63];

#[test]
fn extreme_numbers_get_answers_and_the_cluster_carries_on() {
    let c = Cluster::start(3);
    let leader = c.leader();
    let put = retry(|| c.node(leader).put("/n/a", "1"));
    let current = put.revision();
    let term = c.node(leader).state().term;
    let mut answered = 0;
    for id in c.ids.clone() {
        let n = c.node(id);
        for x in SIGNED {
            // Revisions, limits and filters of a range, both consistencies.
            for serializable in [true, false] {
                let base = RangeRequest { serializable, ..RangeRequest::prefix("/n/") };
                for req in [
                    RangeRequest { revision: x, ..base.clone() },
                    RangeRequest { limit: x, ..base.clone() },
                    RangeRequest { min_mod_revision: x, max_mod_revision: x, ..base.clone() },
                    RangeRequest { min_create_revision: x, max_create_revision: x, ..base.clone() },
                    RangeRequest { sort_order: x as i32, ..base.clone() },
                    RangeRequest { sort_target: x as i32, ..base.clone() },
                ] {
                    match n.range(req.clone()) {
                        Ok(r) => assert!(r.kvs.len() <= 2, "{req:?}: {r:?}"),
                        Err(e) => assert!(!matches!(e, Error::Stopped | Error::Storage(_)), "{req:?}: {e}"),
                    }
                    answered += 1;
                }
            }
            let _ = n.hash(x);
            let _ = n.lease_time_to_live(x, true);
            let _ = n.lease_keep_alive(x);
            let _ = n.lease_revoke(x);
            let _ = n.txn(
                TxnRequest::new()
                    .when(Compare::mod_revision("/n/a", CompareResult::Greater, x))
                    .when(Compare::version("/n/a", CompareResult::Less, x))
                    .when(Compare::lease("/n/a", CompareResult::Equal, x)),
            );
            match n.put_request(PutRequest::new("/n/leased", "v").with_lease(x)) {
                Ok(_) => assert_eq!(x, 0, "a put with lease {x} that does not exist"),
                Err(e) => assert!(matches!(e, Error::LeaseNotFound), "lease {x}: {e}"),
            }
            if let Ok(w) = n.watch(WatchRequest { start_revision: x, ..WatchRequest::prefix("/n/") }) {
                drop(w);
            }
            answered += 7;
        }
        for x in UNSIGNED {
            let _ = n.cancel_watch(x);
            let _ = n.watch_progress(x);
            assert!(n.member_remove(x).is_err(), "removing member {x}");
            assert!(n.member_promote(x).is_err(), "promoting member {x}");
            assert!(n.member_update(x, vec!["http://h:1".into()]).is_err(), "updating member {x}");
            answered += 5;
        }
    }
    // Compaction and lease grants change state: once, on the leader.
    let n = c.node(leader);
    for x in [i64::MAX, i64::MAX - 1, current + 1_000_000] {
        assert!(matches!(n.compact(x), Err(Error::FutureRevision { .. })), "compact {x}");
    }
    assert!(n.compact(-1).is_err(), "compact -1");
    for ttl in [i64::MAX, 9_000_000_001] {
        assert!(matches!(n.lease_grant(ttl, 0), Err(Error::Invalid(InvalidRequest::LeaseTtlTooLarge))), "ttl {ttl}");
    }
    for ttl in [0, -1, i64::MIN] {
        let g = n.lease_grant(ttl, 0).expect("a too short TTL is raised to the minimum");
        assert!(g.ttl >= 1, "ttl {ttl} granted as {}", g.ttl);
    }
    for id in [i64::MAX, -1] {
        match n.lease_grant(60, id) {
            Ok(g) => assert_eq!(g.id, id),
            Err(e) => assert!(matches!(e, Error::Invalid(_) | Error::LeaseExists), "lease id {id}: {e}"),
        }
    }
    assert!(answered > 0);
    // Nobody stopped, nobody campaigned, writes still go through.
    for id in c.ids.clone() {
        let st = c.node(id).state();
        assert!(!st.stopped, "member {id} stopped");
        assert_eq!(st.term, term, "member {id} changed term");
    }
    let after = retry(|| c.node(leader).put("/n/after", "1"));
    assert!(after.revision() > current);
}
