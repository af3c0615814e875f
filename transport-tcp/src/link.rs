//! [`Outlet`]: one lane's outbound connection, shared by its writer thread
//! and the senders, so that a sender writes a message itself when the lane
//! is idle.
//!
//! A 1-client put crosses two transports: the leader's append to a
//! follower and the follower's answer. When every message went through the
//! lane's queue, each crossing also woke a writer thread, two thread
//! hand-offs on the put's critical path. Now a sender that finds the lane
//! idle encodes the message and writes it with a non-blocking `send`
//! ([`Outlet::write_now`]; one `send` for all of a step's messages to the
//! peer, as the writer coalesces what queued up). It never waits: if the
//! writer holds the link (it is writing), anything is queued, the link has
//! no connection, or the socket is full from the start, the message goes
//! down the queue as before.
//! What a full socket does not take of a started frame stays in the link,
//! and the writer, rung, finishes it before anything else.
//!
//! Order per lane is kept: `queued` counts messages handed to the queue
//! that the writer has not yet written or dropped, and a sender writes
//! directly only when it is zero and nothing is left unfinished, both read
//! under the link's lock, which the writer holds while it writes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use raft::eraftpb::MessageType;
use raft_kv::RaftMessage;

use crate::frame::encode_message;
use crate::metrics::{Counter, Tally};
use crate::tls::PeerStream;

/// What a lane's senders and writer share (see the module docs).
#[derive(Default)]
pub(crate) struct Outlet {
    pub(crate) link: Mutex<Link>,
    /// Messages handed to the queue and not yet written or dropped by the
    /// writer. Raised before a message is queued, lowered by the writer
    /// under the link's lock once it has written or dropped it.
    pub(crate) queued: AtomicUsize,
    /// The link holds something only the writer may finish (bytes a sender
    /// could not write, or a failed connection): its wake-up condition.
    pub(crate) needs_writer: AtomicBool,
}

/// The connection itself, under the outlet's lock.
#[derive(Default)]
pub(crate) struct Link {
    /// The connection, once the writer has dialed it.
    pub(crate) stream: Option<PeerStream>,
    /// The peer address generation `stream` was dialed at.
    pub(crate) generation: u64,
    /// The tail of a frame a sender started but the socket did not take.
    pub(crate) rest: Vec<u8>,
    /// A sender's write failed: the writer must drop the connection.
    pub(crate) broken: bool,
    /// A sender's encoding buffer, kept for the next message.
    scratch: Vec<u8>,
}

impl Link {
    /// Nothing is waiting to be written on this link.
    fn is_clear(&self) -> bool {
        self.rest.is_empty() && !self.broken && !self.stream.as_ref().is_some_and(PeerStream::has_unsent)
    }
}

/// Messages encoded into one write buffer, by the writer or a sender.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    /// Messages encoded.
    pub(crate) count: u64,
    /// Whether a heartbeat is among them (for the round-trip sample).
    pub(crate) heartbeat: bool,
}

impl Frames {
    /// Encodes `msg` as a frame onto `buf`; a message over
    /// `max_frame_bytes` is dropped and counted instead.
    pub(crate) fn add(&mut self, msg: &RaftMessage, max_frame_bytes: usize, buf: &mut Vec<u8>, tally: &Tally) {
        match encode_message(msg, max_frame_bytes, buf) {
            Ok(_) => {
                self.count += 1;
                self.heartbeat |= msg.get_msg_type() == MessageType::MsgHeartbeat;
            }
            Err(e) => {
                tracing::warn!(to = msg.to, msg_type = ?msg.get_msg_type(), error = %e, "dropping message");
                tally.add(Counter::Dropped, 1);
            }
        }
    }
}

/// What [`Outlet::write_now`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direct {
    /// Written (or dropped and counted); nothing for the writer to do.
    Done,
    /// Written in part, or the write failed: ring the writer.
    RingWriter,
    /// Not taken: queue it.
    Queue,
}

impl Outlet {
    /// Writes `msgs` (one peer's raft messages of one step, in order) at
    /// once, in one `send`, if the lane is idle and connected at address
    /// `generation`, or says to queue them all. Never blocks.
    pub(crate) fn write_now(
        &self,
        msgs: &[RaftMessage],
        generation: u64,
        max_frame_bytes: usize,
        sample_heartbeats: bool,
        tally: &Tally,
    ) -> Direct {
        let Some(mut guard) = self.link.try_lock() else { return Direct::Queue };
        let link = &mut *guard;
        if self.queued.load(Ordering::Acquire) != 0 || !link.is_clear() || link.generation != generation {
            return Direct::Queue;
        }
        let Some(stream) = link.stream.as_mut() else { return Direct::Queue };
        link.scratch.clear();
        let mut frames = Frames::default();
        for msg in msgs {
            frames.add(msg, max_frame_bytes, &mut link.scratch, tally);
        }
        let Frames { count, heartbeat } = frames;
        if count == 0 {
            return Direct::Done;
        }
        let frame = &link.scratch;
        // Sampled before the write, so an answer can never beat it.
        let sampled = heartbeat && sample_heartbeats && tally.peer.heartbeat.sending(Instant::now());
        match stream.write_now(frame) {
            // A full socket before the first byte: the writer will wait for it.
            Ok(0) if !stream.has_unsent() => {
                if sampled {
                    tally.peer.heartbeat.failed();
                }
                Direct::Queue
            }
            Ok(taken) => {
                tally.add(Counter::Sent, count);
                tally.add(Counter::SentBytes, frame.len() as u64);
                link.rest.extend_from_slice(&frame[taken..]);
                if link.is_clear() {
                    return Direct::Done;
                }
                self.needs_writer.store(true, Ordering::Release);
                Direct::RingWriter
            }
            Err(e) => {
                if sampled {
                    tally.peer.heartbeat.failed();
                }
                tracing::warn!(error = %e, "write failed; the writer reconnects");
                tally.add(Counter::Dropped, count);
                link.broken = true;
                self.needs_writer.store(true, Ordering::Release);
                Direct::RingWriter
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameDecoder;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;

    const MAX_FRAME: usize = 8 << 20;

    fn tally() -> Tally {
        Tally { peer: Arc::default(), total: Arc::default() }
    }

    /// An outlet connected to a loopback socket, and that socket's far end.
    fn connected() -> (Outlet, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let near = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (far, _) = listener.accept().expect("accept");
        let outlet = Outlet::default();
        outlet.link.lock().stream = Some(PeerStream::Plain(near));
        (outlet, far)
    }

    fn append(to: u64, index: u64, payload: usize) -> RaftMessage {
        let mut m = RaftMessage { to, msg_type: MessageType::MsgAppend, index, ..Default::default() };
        m.entries.push(raft::eraftpb::Entry { index: index + 1, data: vec![7; payload].into(), ..Default::default() });
        m
    }

    /// Reads from `far` until `n` messages have decoded.
    fn read_messages(far: &mut TcpStream, n: usize) -> Vec<RaftMessage> {
        let mut dec = FrameDecoder::new(MAX_FRAME);
        let mut out = Vec::new();
        let mut buf = vec![0; 1 << 16];
        while out.len() < n {
            while let Some(m) = dec.next_message().expect("frame") {
                out.push(m);
            }
            if out.len() == n {
                break;
            }
            let got = far.read(&mut buf).expect("read");
            assert!(got > 0, "closed after {} messages", out.len());
            dec.extend(&buf[..got]);
        }
        out
    }

    #[test]
    fn an_idle_connected_lane_is_written_at_once() {
        let (outlet, mut far) = connected();
        let t = tally();
        for i in 0..3 {
            assert_eq!(outlet.write_now(&[append(2, i, 100)], 0, MAX_FRAME, false, &t), Direct::Done);
        }
        // A step's messages to the peer: one write, in order.
        let step = [append(2, 3, 100), append(2, 4, 100)];
        assert_eq!(outlet.write_now(&step, 0, MAX_FRAME, false, &t), Direct::Done);
        let got = read_messages(&mut far, 5);
        assert_eq!(got.iter().map(|m| m.index).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        assert_eq!(t.total.snapshot().messages_sent, 5);
        assert!(!outlet.needs_writer.load(Ordering::Acquire));
    }

    #[test]
    fn a_busy_unconnected_or_moved_lane_is_left_to_the_queue() {
        let (outlet, _far) = connected();
        let t = tally();
        let msg = append(2, 1, 10);
        // Something queued: the message must not overtake it.
        outlet.queued.store(1, Ordering::Release);
        assert_eq!(outlet.write_now(std::slice::from_ref(&msg), 0, MAX_FRAME, false, &t), Direct::Queue);
        outlet.queued.store(0, Ordering::Release);
        // The writer holds the link (it is writing).
        {
            let _writing = outlet.link.lock();
            assert_eq!(outlet.write_now(std::slice::from_ref(&msg), 0, MAX_FRAME, false, &t), Direct::Queue);
        }
        // The peer's address changed since the connection was dialed.
        assert_eq!(outlet.write_now(std::slice::from_ref(&msg), 1, MAX_FRAME, false, &t), Direct::Queue);
        // No connection.
        let idle = Outlet::default();
        assert_eq!(idle.write_now(std::slice::from_ref(&msg), 0, MAX_FRAME, false, &t), Direct::Queue);
        assert_eq!(t.total.snapshot().messages_sent, 0);
    }

    /// A peer that stops reading fills the socket: the sender leaves the
    /// frame's tail for the writer and queues everything after it; the
    /// bytes on the wire are whole frames, in order, once it is finished.
    #[test]
    fn a_full_socket_leaves_the_tail_to_the_writer_and_keeps_order() {
        let (outlet, mut far) = connected();
        let t = tally();
        let mut written = 0u64;
        let outcome = loop {
            match outlet.write_now(&[append(2, written, 64 << 10)], 0, MAX_FRAME, false, &t) {
                Direct::Done => written += 1,
                other => break other,
            }
            assert!(written < 10_000, "the socket never filled");
        };
        let mut expected = written;
        if outcome == Direct::RingWriter {
            // The frame was started: it counts, and its tail waits.
            expected += 1;
            assert!(!outlet.link.lock().rest.is_empty());
            assert!(outlet.needs_writer.load(Ordering::Acquire));
        }
        // Nothing goes directly while a tail is unfinished.
        assert_eq!(outlet.write_now(&[append(2, 99_999, 10)], 0, MAX_FRAME, false, &t), Direct::Queue);
        // The writer's part, on another thread while the peer reads.
        let finisher = std::thread::spawn(move || {
            let mut link = outlet.link.lock();
            let rest = std::mem::take(&mut link.rest);
            let stream = link.stream.as_mut().expect("connected");
            std::io::Write::write_all(stream, &rest).expect("finish the tail");
        });
        let got = read_messages(&mut far, expected as usize);
        finisher.join().expect("finisher");
        assert_eq!(got.iter().map(|m| m.index).collect::<Vec<_>>(), (0..expected).collect::<Vec<_>>());
    }

    #[test]
    fn a_failed_write_marks_the_link_for_the_writer() {
        let (outlet, far) = connected();
        drop(far);
        let t = tally();
        // The first sends may still land in the socket before the reset
        // comes back; within a few the write fails.
        let mut failed = false;
        for i in 0..1_000 {
            if outlet.write_now(&[append(2, i, 1_000)], 0, MAX_FRAME, false, &t) == Direct::RingWriter {
                failed = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(failed, "writes to a closed peer never failed");
        assert!(outlet.link.lock().broken);
        assert!(outlet.needs_writer.load(Ordering::Acquire));
        assert_eq!(outlet.write_now(&[append(2, 0, 10)], 0, MAX_FRAME, false, &t), Direct::Queue);
    }
}
