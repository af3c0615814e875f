//! Inbound raft messages: checked against what a genuine member could send,
//! snapshot chunks staged, the rest stepped into raft.

use raft::eraftpb::{Message, MessageType};

use crate::core::snapshot;
use crate::engine::{Engine, WriteBatch};
use crate::{Error, Result};

use super::{Peer, MAX_TERM_JUMP};

impl<E: Engine, T> Peer<E, T> {
    /// Refuses a message raft-rs would trust blindly (and panic or stop on):
    /// a term no election could have reached, a heartbeat committing beyond
    /// this member's log, an append whose entries are not contiguous, or a
    /// snapshot that
    /// did not come as this transport's chunk stream. A genuine member never
    /// sends any of these. (Senders are not checked against the
    /// configuration: a lagging member must accept a leader added after
    /// the configuration it has applied.)
    pub(super) fn check_peer_message(&self, msg: &Message) -> Result<()> {
        let bad = |why: String| Err(Error::BadPeerMessage(why));
        // A removed member's messages are dropped (etcd's rule), except the
        // hand-over a removed leader sends to its successor.
        if self.members.is_removed(msg.from) && msg.get_msg_type() != MessageType::MsgTimeoutNow {
            return Err(Error::FromRemovedMember(msg.from));
        }
        if msg.term > self.raw.raft.term.saturating_add(MAX_TERM_JUMP) {
            return bad(format!("term {} is implausibly far beyond {}", msg.term, self.raw.raft.term));
        }
        let last = self.raw.raft.raft_log.last_index();
        if msg.get_msg_type() == MessageType::MsgHeartbeat && msg.commit > last {
            return bad(format!("heartbeat commits {} beyond the last index {last}", msg.commit));
        }
        if msg.get_msg_type() == MessageType::MsgAppend {
            // raft-rs appends what it is given; a gap would reach the log
            // store, which refuses it as a storage error and stops.
            for (i, e) in msg.entries.iter().enumerate() {
                if Some(e.index) != msg.index.checked_add(i as u64 + 1) {
                    return bad(format!("append at {} holds entry {} out of sequence", msg.index, e.index));
                }
            }
        }
        // raft-rs reads a ReadIndex request's (and answer's) one context
        // entry without looking: none at all would panic it.
        let read_index = matches!(msg.get_msg_type(), MessageType::MsgReadIndex | MessageType::MsgReadIndexResp);
        if read_index && msg.entries.len() != 1 {
            return bad(format!("ReadIndex message with {} context entries", msg.entries.len()));
        }
        if msg.get_msg_type() == MessageType::MsgSnapshot && !snapshot::is_chunk(msg) {
            return bad("snapshot outside a chunk stream".into());
        }
        Ok(())
    }

    /// Feeds an inbound raft message. Messages from unknown or removed peers
    /// and messages not meant for this member are ignored by raft itself.
    pub fn step(&mut self, msg: Message) -> Result<()> {
        if msg.to != self.cfg.id {
            return Err(Error::BadPeerMessage(format!("message for member {} delivered to {}", msg.to, self.cfg.id)));
        }
        if raft::raw_node::is_local_msg(msg.get_msg_type()) {
            return Err(Error::BadPeerMessage("local raft message received from the network".into()));
        }
        self.check_peer_message(&msg)?;
        let msg = if snapshot::is_chunk(&msg) {
            let mut wb = WriteBatch::new();
            let complete = snapshot::receive_chunk(&mut self.incoming, &mut self.last_stream, msg, &mut wb)?;
            self.engine.write(wb, false)?;
            match complete {
                Some(m) => m,
                None => return Ok(()),
            }
        } else {
            msg
        };
        if msg.get_msg_type() == MessageType::MsgReadIndex && msg.from != self.cfg.id && self.is_leader() {
            return self.hold_forwarded_read(msg);
        }
        // raft-rs reads its log from storage to answer (or to send more).
        let stepped = self.integrity.guard(|| self.raw.step(msg))?;
        self.lead_leases();
        match stepped {
            // A forwarded proposal reaching a member that knows no leader is
            // dropped, as the network might have dropped it.
            Ok(()) | Err(raft::Error::StepPeerNotFound) | Err(raft::Error::ProposalDropped) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
