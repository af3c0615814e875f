//! Who a client request comes from, as the connection established it.
//!
//! The TLS acceptor puts a [`ClientCertCn`] in the extensions of every
//! request that arrived on a connection whose client certificate it verified
//! (`--client-cert-auth`); authentication reads it, because under
//! `--client-cert-auth` etcd takes the certificate's common name as the user.

/// The subject common name of the client certificate verified for this
/// request's connection.
#[allow(dead_code)] // set by the TLS acceptor, read by auth (issue 14)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertCn(pub String);
