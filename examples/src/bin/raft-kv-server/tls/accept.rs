//! The client port's TLS handshake, on the tokio side.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::verify::common_name;
use crate::identity::ClientCertCn;

/// Time a client may take for its TLS handshake (the same bound as an
/// HTTP/1.1 request's headers).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The client port's rustls acceptor, and whether it verified a client
/// certificate (`--client-cert-auth`) whose CN then names the user.
#[derive(Clone)]
pub struct ClientTls {
    acceptor: TlsAcceptor,
    cert_auth: bool,
}

impl ClientTls {
    pub(super) fn new(cfg: Arc<rustls::ServerConfig>, cert_auth: bool) -> Self {
        ClientTls { acceptor: TlsAcceptor::from(cfg), cert_auth }
    }

    /// Runs the handshake on an accepted connection (bounded in time; the
    /// caller's connection slot bounds how many run at once). Returns the
    /// stream and, under `--client-cert-auth`, the verified certificate's
    /// CN for every request of the connection.
    pub async fn accept(&self, stream: TcpStream) -> io::Result<(TlsStream<TcpStream>, Option<ClientCertCn>)> {
        let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        let cn = if self.cert_auth {
            tls.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(common_name).map(ClientCertCn)
        } else {
            None
        };
        Ok((tls, cn))
    }
}
