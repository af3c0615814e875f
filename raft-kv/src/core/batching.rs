//! Append batching: the appends one step sends a follower, merged into as
//! few messages as raft allows.
//!
//! raft-rs sends one `MsgAppend` per proposal, so a leader that took 64
//! proposals in one step sends each follower 64 appends and hears 64
//! responses. [`batch_appends`] merges each append into the message sent
//! just before it to the same follower when that one is an append of the
//! same leader and term whose entries end exactly where the next one's
//! begin (its log position, index and term, is the last entry carried so
//! far). The merged message carries the later commit index. Nothing else
//! moves: messages to one follower keep their order, and an append that
//! does not continue the previous one leaves as it is.
//!
//! raft-rs's own `batch_append` option is not used: it merges new entries
//! into an earlier append that carries none without comparing positions.
//! When a follower's progress moves back within the step (an accepting
//! response turns a probe into replication from the follower's match), the
//! merged message claims the entries follow the empty append's later
//! position; the follower counts its last index from there, reports a
//! match past the entries it holds, and a later heartbeat commits it past
//! its log (the simulator's "to_commit 65 is out of range [last_index
//! 64]").

use std::collections::HashMap;

use raft::eraftpb::{Message, MessageType};

/// Merges consecutive contiguous appends to the same follower (see the
/// module docs), keeping each merged message's entries within `max_bytes`
/// of entry data (a message is never split: one that is larger on its own
/// stays as it is). Returns the messages in their original order per
/// destination.
pub fn batch_appends(msgs: Vec<Message>, max_bytes: u64) -> Vec<Message> {
    if msgs.len() < 2 {
        return msgs;
    }
    let mut out: Vec<Message> = Vec::with_capacity(msgs.len());
    // Per destination: the position in `out` of the last message to it.
    let mut last: HashMap<u64, usize> = HashMap::new();
    for m in msgs {
        if let Some(&at) = last.get(&m.to) {
            if let Some(prev) = out.get_mut(at) {
                if continues(prev, &m) && entry_bytes(prev).saturating_add(entry_bytes(&m)) <= max_bytes {
                    merge(prev, m);
                    continue;
                }
            }
        }
        last.insert(m.to, out.len());
        out.push(m);
    }
    out
}

/// True when `next` is an append that carries on exactly where `prev`, an
/// append from the same leader in the same term, ends.
fn continues(prev: &Message, next: &Message) -> bool {
    let append = |m: &Message| m.get_msg_type() == MessageType::MsgAppend;
    if !append(prev) || !append(next) || prev.from != next.from || prev.term != next.term {
        return false;
    }
    // `prev`'s end: its last entry, or the position it appends after.
    let (end_index, end_term) = match prev.entries.last() {
        Some(e) => (e.index, e.term),
        None => (prev.index, prev.log_term),
    };
    next.index == end_index && next.log_term == end_term
}

/// Appends `next`'s entries to `prev` and takes its (later) commit index.
fn merge(prev: &mut Message, mut next: Message) {
    let mut entries: Vec<_> = prev.take_entries().into();
    entries.extend(next.take_entries());
    prev.set_entries(entries.into());
    prev.commit = prev.commit.max(next.commit);
}

/// The entry data an append carries, as raft-rs's message size limit
/// counts it (data and context).
fn entry_bytes(m: &Message) -> u64 {
    m.entries.iter().map(|e| (e.data.len() + e.context.len()) as u64).sum()
}

#[cfg(test)]
mod tests {
    use raft::eraftpb::{Entry, Message, MessageType};

    use super::batch_appends;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry { index, term, data: data.to_vec().into(), ..Default::default() }
    }

    /// An append from 1 to `to` in term 2 after (`index`, `log_term`)
    /// carrying entries `first..=last` of term 2, committing `commit`.
    fn append(to: u64, index: u64, log_term: u64, entries: std::ops::RangeInclusive<u64>, commit: u64) -> Message {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.from = 1;
        m.to = to;
        m.term = 2;
        m.index = index;
        m.log_term = log_term;
        m.commit = commit;
        m.set_entries(entries.map(|i| entry(i, 2, b"v")).collect::<Vec<_>>().into());
        m
    }

    /// An append from 1 to `to` in term 2 after (`index`, `log_term`)
    /// carrying no entries.
    fn empty(to: u64, index: u64, log_term: u64, commit: u64) -> Message {
        let mut m = append(to, index, log_term, 1..=1, commit);
        m.clear_entries();
        m
    }

    fn indexes(m: &Message) -> Vec<u64> {
        m.entries.iter().map(|e| e.index).collect()
    }

    #[test]
    fn contiguous_appends_to_one_follower_become_one_with_the_later_commit() {
        let msgs = vec![append(2, 4, 2, 5..=5, 4), append(3, 4, 2, 5..=5, 4), append(2, 5, 2, 6..=6, 5)];
        let out = batch_appends(msgs, 1 << 20);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].to, out[0].index, out[0].log_term, out[0].commit), (2, 4, 2, 5));
        assert_eq!(indexes(&out[0]), vec![5, 6]);
        assert_eq!((out[1].to, indexes(&out[1])), (3, vec![5]));
    }

    #[test]
    fn an_empty_append_takes_only_entries_that_follow_its_position() {
        // An empty append after index 4, then entries after index 6 (the
        // follower's progress moved in between): merging them would claim
        // entries 7.. follow index 4 — raft-rs's `batch_append` does that.
        let out = batch_appends(vec![empty(2, 4, 2, 4), append(2, 6, 2, 7..=7, 4)], 1 << 20);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!((out[1].index, indexes(&out[1])), (6, vec![7]));
        // Or rewound: an accepting response made the follower replicate
        // from its match (index 2) after an empty probe at 4 left. Merged,
        // the follower would count entries 3..=5 after index 4 and report
        // a match past the leader's last index.
        let out = batch_appends(vec![empty(2, 4, 2, 4), append(2, 2, 2, 3..=5, 4)], 1 << 20);
        assert_eq!(out.len(), 2, "{out:?}");
        // After exactly its position, they merge.
        let out = batch_appends(vec![empty(2, 4, 2, 4), append(2, 4, 2, 5..=6, 5)], 1 << 20);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].index, indexes(&out[0]), out[0].commit), (4, vec![5, 6], 5));
    }

    #[test]
    fn appends_that_do_not_continue_or_differ_in_term_stay_apart() {
        // A gap, a rewind (a probe after a rejection) and a log term that
        // does not match the last entry carried.
        for next in [append(2, 6, 2, 7..=7, 4), append(2, 3, 1, 4..=4, 4), append(2, 5, 1, 6..=6, 4)] {
            let out = batch_appends(vec![append(2, 4, 2, 5..=5, 4), next.clone()], 1 << 20);
            assert_eq!(out, vec![append(2, 4, 2, 5..=5, 4), next]);
        }
        let mut newer = append(2, 5, 2, 6..=6, 5);
        newer.term = 3;
        assert_eq!(batch_appends(vec![append(2, 4, 2, 5..=5, 4), newer], 1 << 20).len(), 2);
    }

    #[test]
    fn a_message_between_two_appends_to_the_follower_keeps_them_apart() {
        let mut hb = Message::default();
        hb.set_msg_type(MessageType::MsgHeartbeat);
        hb.to = 2;
        let out = batch_appends(vec![append(2, 4, 2, 5..=5, 4), hb, append(2, 5, 2, 6..=6, 5)], 1 << 20);
        let types: Vec<_> = out.iter().map(|m| m.get_msg_type()).collect();
        assert_eq!(types, vec![MessageType::MsgAppend, MessageType::MsgHeartbeat, MessageType::MsgAppend]);
    }

    #[test]
    fn merged_entries_stay_within_the_size_limit() {
        let msgs: Vec<_> = (5..=8).map(|i| append(2, i - 1, 2, i..=i, 4)).collect();
        // One byte of data per entry: at most two per message.
        let out = batch_appends(msgs, 2);
        assert_eq!(out.iter().map(indexes).collect::<Vec<_>>(), vec![vec![5, 6], vec![7, 8]]);
        assert_eq!((out[1].index, out[1].log_term), (6, 2));
    }
}
