//! Inbound side: the accept loop and one reader thread per connection.
//!
//! A reader runs the TLS handshake when the transport has TLS (a peer whose
//! certificate does not verify is closed there), checks the raft-kv
//! handshake, answers with a verdict, then decodes
//! frames and delivers each message into the node's mailbox. Anything wrong
//! (a refused handshake, a malformed or oversized frame, a message that does
//! not come from the handshake's sender or is not for this member) is logged
//! and closes that connection only.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::eraftpb::MessageType;
use raft_kv::Mailbox;

use crate::ctx::Ctx;
use crate::frame::FrameDecoder;
use crate::handshake::{Handshake, HandshakeError, Verdict, HANDSHAKE_LEN};
use crate::metrics::Counter;
use crate::tls::PeerStream;

/// How often an idle accept loop or reader looks at the shutdown flag.
const POLL: Duration = Duration::from_millis(50);
/// Size of one socket read.
const READ_CHUNK: usize = 64 * 1024;

/// Accepts peer connections until shutdown.
pub(crate) fn accept_loop(ctx: Arc<Ctx>, listener: TcpListener, mailbox: Mailbox) {
    while !ctx.is_shutdown() {
        match listener.accept() {
            Ok((stream, remote)) => {
                let active = ctx.inbound_active.fetch_add(1, Ordering::AcqRel);
                if active >= ctx.cfg.max_inbound_connections {
                    ctx.inbound_active.fetch_sub(1, Ordering::AcqRel);
                    tracing::warn!(%remote, active, "too many inbound peer connections; closing");
                    continue;
                }
                let (c, mb) = (ctx.clone(), mailbox.clone());
                let spawned = ctx.spawn(format!("raft-kv-tcp-in-{remote}"), move || {
                    serve(&c, stream, remote, &mb);
                    c.inbound_active.fetch_sub(1, Ordering::AcqRel);
                });
                if let Err(e) = spawned {
                    ctx.inbound_active.fetch_sub(1, Ordering::AcqRel);
                    tracing::warn!(%remote, error = %e, "cannot spawn reader thread");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Live inbound connections from senders outside the address book, at most:
/// a member just added may dial before this member applied its addition,
/// but forged sender ids cannot take every slot.
pub(crate) const UNKNOWN_SENDER_SLOTS: usize = 16;

/// Connections from one address in their handshake at once, at most: idle
/// connections that never handshake hold these (for `handshake_timeout`),
/// so one host cannot take every inbound slot.
pub(crate) const HANDSHAKES_PER_ADDRESS: usize = 16;

/// Serves one inbound connection until it closes, fails or shutdown.
fn serve(ctx: &Ctx, stream: TcpStream, remote: SocketAddr, mailbox: &Mailbox) {
    if !ctx.start_handshake(remote.ip(), HANDSHAKES_PER_ADDRESS) {
        ctx.totals.add(Counter::HandshakesRejected, 1);
        tracing::warn!(%remote, "too many peer connections from one address in their handshake; closing");
        let _ = stream.shutdown(Shutdown::Both);
        return;
    }
    let handshake = match secure(ctx, stream) {
        Ok(mut s) => match accept_handshake(ctx, &mut s) {
            Ok(hs) => Ok((s, hs)),
            Err(e) => Err((e, Some(s))),
        },
        Err(refusal) => Err(refusal),
    };
    ctx.end_handshake(remote.ip());
    let (mut stream, (hs, unknown)) = match handshake {
        Ok(accepted) => accepted,
        Err((e, sock)) => {
            ctx.totals.add(Counter::HandshakesRejected, 1);
            tracing::warn!(%remote, error = %e, "rejected peer connection");
            if let Some(sock) = sock {
                let _ = sock.tcp().shutdown(Shutdown::Both);
            }
            return;
        }
    };
    let conn_id = ctx.register_inbound(&hs, stream.tcp());
    tracing::debug!(%remote, from = hs.from, lane = ?hs.lane, "peer connected");
    if let Err(e) = read_frames(ctx, &mut stream, &hs, mailbox) {
        tracing::warn!(%remote, from = hs.from, lane = ?hs.lane, error = %e, "closing peer connection");
    }
    let _ = stream.tcp().shutdown(Shutdown::Both);
    ctx.unregister_inbound(&hs, conn_id);
    if unknown {
        ctx.unknown_active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A handshake that failed, with the socket to close when one is left (a
/// failed TLS handshake has consumed it).
type Refusal = (HandshakeError, Option<PeerStream>);

/// Sets the socket up for the handshakes and, with TLS, runs the TLS
/// handshake (bounded by `handshake_timeout`).
fn secure(ctx: &Ctx, stream: TcpStream) -> Result<PeerStream, Refusal> {
    let setup = |s: &TcpStream| -> io::Result<()> {
        s.set_nonblocking(false)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(ctx.cfg.handshake_timeout))?;
        s.set_write_timeout(Some(ctx.cfg.handshake_timeout))
    };
    if let Err(e) = setup(&stream) {
        return Err((e.into(), Some(PeerStream::Plain(stream))));
    }
    let Some(tls) = &ctx.cfg.tls else { return Ok(PeerStream::Plain(stream)) };
    let closer = stream.try_clone().ok().map(PeerStream::Plain);
    PeerStream::accept(tls, stream, ctx.cfg.handshake_timeout).map_err(|e| (HandshakeError::Tls(e), closer))
}

/// Reads, checks and answers the handshake; also says whether the sender is
/// outside the address book (it then holds one of the
/// [`UNKNOWN_SENDER_SLOTS`], released by the caller).
fn accept_handshake(ctx: &Ctx, stream: &mut PeerStream) -> Result<(Handshake, bool), HandshakeError> {
    let mut buf = [0u8; HANDSHAKE_LEN];
    stream.read_exact(&mut buf)?;
    let hs = match Handshake::decode(&buf) {
        Ok(hs) => hs,
        Err(e) => {
            let _ = stream.write_all(&Verdict::Unsupported.reply()).and_then(|()| stream.flush());
            return Err(e);
        }
    };
    let mut verdict = hs.check(ctx.cfg.cluster_id, ctx.cfg.id);
    let unknown = verdict == Verdict::Accepted && !ctx.known.lock().contains(&hs.from);
    if unknown && ctx.unknown_active.fetch_add(1, Ordering::AcqRel) >= UNKNOWN_SENDER_SLOTS {
        ctx.unknown_active.fetch_sub(1, Ordering::AcqRel);
        verdict = Verdict::Busy;
    }
    let holds_slot = unknown && verdict == Verdict::Accepted;
    if let Err(e) = stream.write_all(&verdict.reply()).and_then(|()| stream.flush()) {
        if holds_slot {
            ctx.unknown_active.fetch_sub(1, Ordering::AcqRel);
        }
        return Err(e.into());
    }
    if verdict != Verdict::Accepted {
        tracing::warn!(
            from = hs.from,
            to = hs.to,
            cluster_id = hs.cluster_id,
            own_cluster_id = ctx.cfg.cluster_id,
            ?verdict,
            "refusing peer handshake"
        );
        return Err(HandshakeError::Refused(verdict));
    }
    if let Err(e) = stream.tcp().set_read_timeout(Some(POLL)) {
        if holds_slot {
            ctx.unknown_active.fetch_sub(1, Ordering::AcqRel);
        }
        return Err(e.into());
    }
    Ok((hs, holds_slot))
}

/// Why a reader closed its connection.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    #[error("bad frame: {0}")]
    Frame(#[from] crate::frame::FrameError),
    #[error("message from {from} to {to} on a connection from {expected_from} to {expected_to}")]
    Misaddressed { from: u64, to: u64, expected_from: u64, expected_to: u64 },
}

fn read_frames(ctx: &Ctx, stream: &mut PeerStream, hs: &Handshake, mailbox: &Mailbox) -> Result<(), ReadError> {
    let tally = ctx.tally(hs.from);
    let mut dec = FrameDecoder::new(ctx.cfg.max_frame_bytes);
    let mut chunk = vec![0u8; READ_CHUNK];
    while !ctx.is_shutdown() {
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A TLS peer that closed its socket without close_notify (every
            // writer does): the same as a cleartext EOF.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && stream.is_tls() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        tally.add(Counter::ReceivedBytes, n as u64);
        dec.extend(&chunk[..n]);
        loop {
            let msg = match dec.next_message() {
                Ok(Some(msg)) => msg,
                Ok(None) => break,
                Err(e) => {
                    tally.add(Counter::FramesRejected, 1);
                    return Err(e.into());
                }
            };
            if msg.from != hs.from || msg.to != hs.to {
                tally.add(Counter::FramesRejected, 1);
                return Err(ReadError::Misaddressed {
                    from: msg.from,
                    to: msg.to,
                    expected_from: hs.from,
                    expected_to: hs.to,
                });
            }
            tally.add(Counter::Received, 1);
            if let Some(hook) = &ctx.cfg.on_round_trip {
                if msg.get_msg_type() == MessageType::MsgHeartbeatResponse {
                    if let Some(took) = tally.peer.heartbeat.answered(Instant::now()) {
                        (hook.0)(hs.from, took);
                    }
                }
            }
            if !mailbox.deliver(msg) {
                return Ok(());
            }
        }
    }
    Ok(())
}
