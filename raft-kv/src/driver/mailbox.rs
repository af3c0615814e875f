//! [`Mailbox`]: the inbound side of a node, where transports deliver.

use std::sync::Arc;

use raft::eraftpb::Message;

use crate::driver::inbox::{Inbox, INBOX_LIMIT};
use crate::driver::input::Input;

/// The inbound side of a node: transports deliver received raft messages
/// here. Cheap to clone.
#[derive(Clone)]
pub struct Mailbox {
    pub(crate) inbox: Arc<Inbox<Input>>,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox").finish_non_exhaustive()
    }
}

impl Mailbox {
    /// Delivers one message. Returns false when the node has stopped. A
    /// member whose inbox is full drops the message (raft tolerates loss).
    pub fn deliver(&self, msg: Message) -> bool {
        !matches!(self.inbox.push_within(Input::Raft(msg), INBOX_LIMIT), Err((_, crate::Error::Stopped)))
    }
}
