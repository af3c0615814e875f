//! Cluster behaviour on real RocksDB over transport-mem.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{retry, Cluster, PATIENCE};
use parking_lot::Mutex;
use raft_kv::{Config, DeleteRangeRequest, Error, Op, PutRequest, RangeRequest};

fn value_of(r: &raft_kv::RangeResponse) -> Option<Bytes> {
    r.kvs.first().map(|kv| kv.value.clone())
}

#[test]
fn three_members_elect_a_leader_and_commit() {
    let c = Cluster::start(3);
    let leader = c.leader();
    let put = retry(|| c.node(leader).put("hello", "world"));
    assert_eq!(put.revision(), 2, "first write of an empty store is revision 2");
    for id in c.running() {
        let r = retry(|| c.node(id).range(RangeRequest::key("hello")));
        assert_eq!(value_of(&r).as_deref(), Some(&b"world"[..]), "member {id}");
        assert_eq!(r.revision(), 2);
    }
}

#[test]
fn ten_thousand_puts_from_eight_threads_through_any_member() {
    let c = Arc::new(Cluster::start(3));
    c.leader();
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                let node = c.node(t % 3 + 1).clone();
                for i in 0..1250u64 {
                    let key = format!("key-{t}-{i:04}");
                    retry(|| node.put(key.clone(), format!("v{i}")));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
    let rev = c.converge();
    assert!(rev >= 10_001, "revision {rev} after 10k puts");
    for id in c.running() {
        let all = retry(|| c.node(id).range(RangeRequest::prefix("key-").serializable()));
        assert_eq!(all.count, 10_000, "member {id}");
        assert_eq!(all.revision(), rev, "member {id}");
        let lin = retry(|| c.node(id).range(RangeRequest::prefix("key-").with_limit(1)));
        assert_eq!(lin.count, 10_000);
        assert!(lin.more);
    }
    let a = c.node(1).range(RangeRequest::prefix("").serializable()).expect("range");
    for id in [2, 3] {
        let b = c.node(id).range(RangeRequest::prefix("").serializable()).expect("range");
        assert_eq!(a.kvs, b.kvs, "members 1 and {id} hold identical key-values and revisions");
    }
}

#[test]
fn compaction_makes_old_revisions_unreadable() {
    let c = Cluster::start(3);
    let leader = c.leader();
    let n = c.node(leader);
    let r1 = retry(|| n.put("k", "v1")).revision();
    let r2 = retry(|| n.put("k", "v2")).revision();
    let r3 = retry(|| n.put("k", "v3")).revision();
    retry(|| n.compact(r2));
    for id in c.running() {
        let node = c.node(id);
        let err = node.range(RangeRequest::key("k").at_revision(r1)).expect_err("below compaction");
        assert_eq!(err, Error::Compacted { requested: r1, compact_revision: r2 });
        let at = retry(|| node.range(RangeRequest::key("k").at_revision(r2)));
        assert_eq!(value_of(&at).as_deref(), Some(&b"v2"[..]));
        let now = retry(|| node.range(RangeRequest::key("k")));
        assert_eq!(value_of(&now).as_deref(), Some(&b"v3"[..]));
        let future = node.range(RangeRequest::key("k").at_revision(r3 + 10)).expect_err("future");
        assert!(matches!(future, Error::FutureRevision { .. }), "{future:?}");
    }
    let again = n.compact(r1).expect_err("compacting below the compact revision");
    assert!(matches!(again, Error::Compacted { .. }));
}

#[test]
fn isolated_leader_steps_aside_and_loses_nothing_acknowledged() {
    let c = Cluster::start(3);
    let old = c.leader();
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..20 {
        let (k, v) = (format!("before-{i}"), format!("{i}"));
        retry(|| c.node(old).put(k.clone(), v.clone()));
        acked.insert(k, v);
    }
    c.net.isolate(old);
    // Proposals to the cut-off leader cannot commit.
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    for i in 0..10 {
        let out = Arc::clone(&outcomes);
        c.node(old).propose_with(
            Op::Put(PutRequest::new(format!("doomed-{i}"), "x")),
            Box::new(move |res| out.lock().push(res.map(|_| ()))),
        );
    }
    let others: Vec<u64> = c.ids.iter().copied().filter(|id| *id != old).collect();
    let new = c.leader_among(&others);
    assert_ne!(new, old);
    for i in 0..20 {
        let (k, v) = (format!("after-{i}"), format!("{i}"));
        retry(|| c.node(others[i % 2]).put(k.clone(), v.clone()));
        acked.insert(k, v);
    }
    c.net.heal();
    let deadline = Instant::now() + PATIENCE;
    while outcomes.lock().len() < 10 {
        assert!(Instant::now() < deadline, "old leader's proposals never completed");
        std::thread::sleep(Duration::from_millis(20));
    }
    for res in outcomes.lock().iter() {
        assert!(
            matches!(res, Err(Error::ProposalDropped) | Err(Error::Timeout) | Err(Error::NotLeader { .. })),
            "uncommitted proposal must fail cleanly, got {res:?}"
        );
    }
    c.converge();
    for id in c.running() {
        let all = retry(|| c.node(id).range(RangeRequest::prefix("")));
        let got: BTreeMap<String, String> = all
            .kvs
            .iter()
            .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), String::from_utf8_lossy(&kv.value).into_owned()))
            .collect();
        assert_eq!(got, acked, "member {id} holds exactly the acknowledged writes");
    }
}

#[test]
fn full_cluster_restart_keeps_every_acknowledged_write() {
    let mut c = Cluster::start(3);
    let leader = c.leader();
    for i in 0..300 {
        retry(|| c.node(leader).put(format!("k{i:03}"), format!("v{i}")));
    }
    retry(|| c.node(leader).delete_range(DeleteRangeRequest::key("k000")));
    let rev = c.converge();
    for id in c.ids.clone() {
        c.stop(id);
    }
    for id in c.ids.clone() {
        c.restart(id);
    }
    let leader = c.leader();
    assert_eq!(c.converge(), rev, "revision survives a full restart");
    for id in c.running() {
        let r = retry(|| c.node(id).range(RangeRequest::prefix("k").serializable()));
        assert_eq!(r.count, 299, "member {id}");
        assert_eq!(r.kvs[0].key, "k001");
    }
    let next = retry(|| c.node(leader).put("after-restart", "x"));
    assert_eq!(next.revision(), rev + 1);
}

#[test]
fn follower_down_during_log_compaction_catches_up_by_snapshot() {
    // Small chunks: the snapshot streams in many pieces.
    let mut c = Cluster::start_with(3, |cfg| Config { snapshot_chunk_bytes: 2048, ..cfg.snapshot_entries(100, 10) });
    let leader = c.leader();
    let lagger = c.ids.iter().copied().find(|id| *id != leader).expect("a follower");
    c.stop(lagger);
    for i in 0..500 {
        retry(|| c.node(leader).put(format!("k{i:03}"), format!("v{i}")));
    }
    let leader_status = c.node(leader).status().expect("status");
    assert!(leader_status.first_index > 100, "leader compacted its log: {leader_status:?}");
    c.restart(lagger);
    let rev = c.converge();
    let s = c.node(lagger).status().expect("status");
    assert!(s.first_index > 100, "the lagging member installed a snapshot: {s:?}");
    let r = c.node(lagger).range(RangeRequest::prefix("k").serializable()).expect("range");
    assert_eq!(r.count, 500);
    assert_eq!(r.revision(), rev);
    // And it keeps up afterwards.
    retry(|| c.node(lagger).put("after", "snapshot"));
    c.converge();
}

/// Linearizable point reads (a ReadIndex barrier on the node thread, the
/// read on the caller's thread) see every write acknowledged before them,
/// on every member, from blocking and async callers alike; wider
/// linearizable ranges (served by the readers) agree.
#[test]
fn linearizable_point_reads_on_every_member_see_the_last_acknowledged_write() {
    let c = Cluster::start(3);
    let leader = c.leader();
    let members = c.running();
    for i in 0..150u64 {
        let writer = members[(i % 3) as usize];
        let put = retry(|| c.node(writer).put("k", i.to_string()));
        for id in &members {
            let node = c.node(*id);
            let r = node.range(RangeRequest::key("k")).expect("linearizable get");
            assert_eq!(value_of(&r), Some(Bytes::from(i.to_string())), "member {id} after write {i}");
            assert!(r.revision() >= put.revision(), "member {id}: revision {} < {}", r.revision(), put.revision());
            let kv = futures_executor_block_on(node.to_async().get("k")).expect("async get");
            assert_eq!(kv.map(|kv| kv.value), Some(Bytes::from(i.to_string())), "member {id}, async, write {i}");
            let wide = node.range(RangeRequest::prefix("k")).expect("linearizable range");
            assert_eq!(value_of(&wide), Some(Bytes::from(i.to_string())), "member {id}, range, write {i}");
        }
    }
    assert_eq!(c.leader(), leader, "no leader change expected on transport-mem");
}

/// Waits for `f` on this thread (the calls need no runtime).
fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(Instant::now() < deadline, "no answer within {PATIENCE:?}");
        std::thread::park_timeout(Duration::from_millis(50));
    }
}
