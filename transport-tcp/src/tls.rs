//! Peer TLS: [`PeerTls`] (what a user configures) and the connection type
//! both lanes use, cleartext or TLS.
//!
//! With TLS, every connection runs a TLS handshake first and the raft-kv
//! [handshake](crate::handshake) inside it, so a peer whose certificate does
//! not verify is refused by rustls before a byte reaches the handshake or
//! frame decoders. The TLS handshake is driven here, record by record, under
//! one deadline (`handshake_timeout`): a peer that trickles bytes cannot hold
//! a thread longer than that, and it runs inside the acceptor's per-address
//! handshake slots, so a flood of hellos from one host holds at most those.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ConnectionCommon, ServerConnection, SideData, StreamOwned};

/// TLS for both lanes of a transport: the acceptor's and the dialer's rustls
/// configurations. Which certificates are trusted, whether a dialer must
/// present one, and any check on its name are the configurations' business
/// (a `ClientCertVerifier` on `server`, a `ServerCertVerifier` on `client`).
///
/// A dialer names the peer by the host of its address (`host:port`, or the
/// address's IP), so a peer's certificate must carry that host as a SAN.
#[derive(Debug, Clone)]
pub struct PeerTls {
    /// Used on accepted connections.
    pub server: Arc<rustls::ServerConfig>,
    /// Used on dialed connections.
    pub client: Arc<rustls::ClientConfig>,
}

/// One peer connection, cleartext or TLS.
pub(crate) enum PeerStream {
    Plain(TcpStream),
    Server(Box<StreamOwned<ServerConnection, TcpStream>>),
    Client(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl PeerStream {
    /// The socket under the connection (timeouts, shutdown, clones for it).
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            PeerStream::Plain(s) => s,
            PeerStream::Server(s) => &s.sock,
            PeerStream::Client(s) => &s.sock,
        }
    }

    /// Whether the connection is TLS.
    pub(crate) fn is_tls(&self) -> bool {
        !matches!(self, PeerStream::Plain(_))
    }

    /// Runs the server side of a TLS handshake on an accepted socket
    /// within `timeout`.
    pub(crate) fn accept(tls: &PeerTls, mut sock: TcpStream, timeout: Duration) -> io::Result<PeerStream> {
        let mut conn = ServerConnection::new(tls.server.clone()).map_err(io::Error::other)?;
        drive(&mut conn, &mut sock, Instant::now() + timeout)?;
        Ok(PeerStream::Server(Box::new(StreamOwned::new(conn, sock))))
    }

    /// Runs the client side of a TLS handshake with the peer at `addr`
    /// (`host:port`) within `timeout`.
    pub(crate) fn connect(tls: &PeerTls, addr: &str, mut sock: TcpStream, timeout: Duration) -> io::Result<PeerStream> {
        let name = server_name(addr)?;
        let mut conn = ClientConnection::new(tls.client.clone(), name).map_err(io::Error::other)?;
        drive(&mut conn, &mut sock, Instant::now() + timeout)?;
        Ok(PeerStream::Client(Box::new(StreamOwned::new(conn, sock))))
    }
}

/// The TLS server name of `host:port` (`[v6]:port` too): an IP address or a
/// DNS name.
fn server_name(addr: &str) -> io::Result<ServerName<'static>> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host:?} is no TLS server name: {e}")))
}

/// Completes a TLS handshake by `deadline`: each socket read waits at most
/// the time left, and the deadline is checked between records. A rustls
/// error (a certificate that does not verify, garbage instead of a hello)
/// sends rustls's alert, best effort, and fails.
fn drive<D: SideData>(conn: &mut ConnectionCommon<D>, sock: &mut TcpStream, deadline: Instant) -> io::Result<()> {
    while conn.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"));
        }
        sock.set_read_timeout(Some(left))?;
        sock.set_write_timeout(Some(left))?;
        while conn.wants_write() {
            conn.write_tls(sock)?;
        }
        if !conn.is_handshaking() {
            break;
        }
        if conn.read_tls(sock)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed during the TLS handshake"));
        }
        if let Err(e) = conn.process_new_packets() {
            while conn.wants_write() {
                if conn.write_tls(sock).is_err() {
                    break;
                }
            }
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
    }
    // The last flight (a server's Finished, TLS 1.3 session tickets).
    while conn.wants_write() {
        conn.write_tls(sock)?;
    }
    Ok(())
}

impl PeerStream {
    /// Writes as much of `buf` as the socket takes without waiting and
    /// returns how many bytes of `buf` were taken; 0 when the socket is
    /// full. With TLS, taken bytes may still sit encrypted in rustls
    /// ([`has_unsent`](Self::has_unsent)) until a [`flush`](Write::flush).
    pub(crate) fn write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            PeerStream::Plain(s) => write_now_plain(s, buf),
            PeerStream::Server(s) => write_now_tls(&mut s.conn, &s.sock, buf),
            PeerStream::Client(s) => write_now_tls(&mut s.conn, &s.sock, buf),
        }
    }

    /// TLS records written into rustls but not yet onto the socket.
    pub(crate) fn has_unsent(&self) -> bool {
        match self {
            PeerStream::Plain(_) => false,
            PeerStream::Server(s) => s.conn.wants_write(),
            PeerStream::Client(s) => s.conn.wants_write(),
        }
    }
}

/// One non-blocking `send`: `Err(WouldBlock)` when the socket buffer is
/// full, whatever the socket's own blocking mode (a writer thread uses it
/// blocking, with a timeout).
fn send_now(sock: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    socket2::SockRef::from(sock).send_with_flags(buf, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
}

fn write_now_plain(sock: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    let mut taken = 0;
    while taken < buf.len() {
        match send_now(sock, &buf[taken..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => taken += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(taken)
}

/// Hands `buf` to rustls as far as its buffer takes it, pushing records to
/// the socket without waiting as they form.
fn write_now_tls<D: SideData>(conn: &mut ConnectionCommon<D>, sock: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    let mut taken = 0;
    loop {
        while conn.wants_write() {
            match conn.write_tls(&mut NoWait(sock)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(taken),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if taken == buf.len() {
            return Ok(taken);
        }
        match conn.writer().write(&buf[taken..])? {
            0 => return Ok(taken),
            n => taken += n,
        }
    }
}

/// A socket seen through [`send_now`], for rustls's `write_tls`.
struct NoWait<'a>(&'a TcpStream);

impl Write for NoWait<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send_now(self.0, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for PeerStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            PeerStream::Plain(s) => s.read(buf),
            PeerStream::Server(s) => s.read(buf),
            PeerStream::Client(s) => s.read(buf),
        }
    }
}

impl Write for PeerStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            PeerStream::Plain(s) => s.write(buf),
            PeerStream::Server(s) => s.write(buf),
            PeerStream::Client(s) => s.write(buf),
        }
    }

    /// For TLS, writes out the records still buffered in rustls.
    fn flush(&mut self) -> io::Result<()> {
        match self {
            PeerStream::Plain(s) => s.flush(),
            PeerStream::Server(s) => s.flush(),
            PeerStream::Client(s) => s.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        assert!(matches!(server_name("127.0.0.1:2380").unwrap(), ServerName::IpAddress(_)));
        assert!(matches!(server_name("[::1]:2380").unwrap(), ServerName::IpAddress(_)));
        assert!(matches!(server_name("n1:2380").unwrap(), ServerName::DnsName(_)));
        assert!(server_name("bad name:1").is_err());
    }
}
