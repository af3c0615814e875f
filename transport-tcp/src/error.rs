//! [`TransportError`]: why a transport could not start or change its peers.

use std::io;

/// Errors of [`TcpTransport::start`](crate::TcpTransport::start) and the
/// address-book operations.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The configuration is unusable; the message says which field.
    #[error("invalid transport configuration: {0}")]
    InvalidConfig(String),
    /// A peer address is not `host:port` (optionally `http://host:port`).
    #[error("invalid peer address {0:?}: expected host:port")]
    InvalidAddress(String),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: std::net::SocketAddr,
        /// What the operating system said.
        source: io::Error,
    },
    /// A transport thread could not be spawned.
    #[error("cannot spawn transport thread: {0}")]
    Spawn(io::Error),
    /// The transport has been shut down.
    #[error("transport is shut down")]
    Shutdown,
}
