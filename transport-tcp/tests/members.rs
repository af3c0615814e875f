//! `Transport::set_members`: the address book follows the cluster's
//! membership.

use raft_kv::{Mailbox, Member, Node, Transport};
use transport_tcp::{TcpConfig, TcpTransport};

fn member(id: u64, url: &str) -> Member {
    Member { id, name: format!("m{id}"), peer_ur_ls: vec![url.into()], client_ur_ls: Vec::new(), is_learner: false }
}

fn mailbox() -> Mailbox {
    Node::builder(raft_kv::Config::new(1)).mailbox()
}

#[test]
fn set_members_adds_moves_and_removes_peers() {
    let cfg = TcpConfig::new(1, 7, "127.0.0.1:0".parse().unwrap()).peer(9, "127.0.0.1:1999");
    let mut t = TcpTransport::start(cfg, mailbox()).unwrap();
    // An empty list (a joining member before its snapshot) keeps the book.
    t.set_members(&[]);
    assert_eq!(t.peers().len(), 1);
    t.set_members(&[
        member(1, "http://127.0.0.1:2001"),
        member(2, "http://127.0.0.1:2002"),
        member(3, "127.0.0.1:2003"),
    ]);
    let peers = t.peers();
    assert_eq!(peers.keys().copied().collect::<Vec<_>>(), vec![2, 3], "self ignored, non-member 9 removed");
    assert_eq!(peers[&2], "127.0.0.1:2002");
    t.set_members(&[member(1, "http://127.0.0.1:2001"), member(2, "http://127.0.0.1:3002")]);
    let peers = t.peers();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[&2], "127.0.0.1:3002");
    // A bad URL is logged and skipped, never a panic.
    t.set_members(&[member(2, "not a url"), member(4, "http://127.0.0.1:2004")]);
    assert!(t.peers().contains_key(&4));
    t.shutdown();
}
