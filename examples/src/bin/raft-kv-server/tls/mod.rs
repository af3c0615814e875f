//! TLS on the client and peer ports, from etcd's flags (issue 14).
//!
//! The client side serves `https://` client URLs: one rustls acceptor for
//! gRPC and the JSON gateway (ALPN `h2` and `http/1.1`; hyper tells them
//! apart after the handshake as on cleartext). The peer side hands
//! transport-tcp a [`PeerTls`] pair: the acceptor verifies members dialing
//! in (`--peer-client-cert-auth`, allowed CN/hostname), the dialer verifies
//! the member it reaches and presents the same certificate.

mod accept;
mod auto;
mod flags;
mod pem;
mod verify;

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoClientAuth, WebPkiClientVerifier};
use rustls::{ClientConfig, ServerConfig};
use transport_tcp::PeerTls;

pub use accept::ClientTls;
pub use flags::TlsFlags;

/// Whether any of `urls` is `https://`.
pub fn any_https(urls: &[String]) -> bool {
    urls.iter().any(|u| u.starts_with("https://"))
}

/// One side's certificate: from files, or auto TLS's kept in `auto_dir`
/// (`<data-dir>/fixtures/client` or `peer`, as etcd), made valid for
/// `validity_years` (`--self-signed-cert-validity`).
fn identity(
    (cert_flag, cert): (&str, &Option<String>),
    (key_flag, key): (&str, &Option<String>),
    (auto, auto_dir): (bool, &Path),
    hosts: Vec<String>,
    validity_years: u32,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok((pem::certs(cert_flag, c)?, pem::key(key_flag, k)?)),
        (None, None) if auto => auto::kept_in(auto_dir, hosts, validity_years),
        (None, None) => bail!("--{cert_flag} and --{key_flag} (or auto TLS) are needed for https:// URLs"),
        _ => bail!("--{cert_flag} and --{key_flag} go together"),
    }
}

/// A WebPKI client verifier over the CA file, with CRLs; revocation is
/// checked for certificates the lists cover (as etcd: a serial listed by
/// their issuer), and other statuses pass.
fn client_verifier(
    provider: &Arc<CryptoProvider>,
    (ca_flag, ca): (&str, &Option<String>),
    (crl_flag, crl): (&str, &Option<String>),
) -> Result<Arc<dyn ClientCertVerifier>> {
    let Some(ca) = ca else { bail!("client certificate authentication needs --{ca_flag}") };
    let mut b = WebPkiClientVerifier::builder_with_provider(Arc::new(pem::roots(ca_flag, ca)?), provider.clone());
    if let Some(crl) = crl {
        b = b.with_crls(pem::crls(crl_flag, crl)?).allow_unknown_revocation_status();
    }
    b.build().context("cannot build the client certificate verifier")
}

/// The client port's TLS, when a listen client URL is `https://`; auto TLS
/// keeps its certificate under `data_dir`.
pub fn client(flags: &TlsFlags, data_dir: &Path, listen: &[String], advertise: &[String]) -> Result<Option<ClientTls>> {
    if !any_https(listen) {
        if flags.cert_file.is_some() || flags.auto_tls {
            tracing::warn!("client TLS is configured but no --listen-client-urls is https://; serving cleartext");
        }
        return Ok(None);
    }
    let provider = Arc::new(flags::provider(flags)?);
    let (certs, key) = identity(
        ("cert-file", &flags.cert_file),
        ("key-file", &flags.key_file),
        (flags.auto_tls, &data_dir.join("fixtures").join("client")),
        auto::hosts(listen.iter().chain(advertise)),
        flags.self_signed_cert_validity,
    )?;
    // As etcd: a trusted CA alone also requires client certificates (but
    // only --client-cert-auth makes their CN the user).
    let cert_auth = flags.client_cert_auth || flags.trusted_ca_file.is_some();
    let verifier: Arc<dyn ClientCertVerifier> = if cert_auth {
        let inner = client_verifier(
            &provider,
            ("trusted-ca-file", &flags.trusted_ca_file),
            ("client-crl-file", &flags.client_crl_file),
        )?;
        match &flags.client_cert_allowed_hostname {
            Some(h) => {
                let hostname = ServerName::try_from(h.clone()).context("--client-cert-allowed-hostname")?;
                Arc::new(verify::AllowedNames { inner, cn: None, hostname: Some(hostname) })
            }
            None => inner,
        }
    } else {
        if flags.client_cert_allowed_hostname.is_some() {
            bail!("--client-cert-allowed-hostname needs --trusted-ca-file");
        }
        Arc::new(NoClientAuth)
    };
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&flags::versions(flags)?)
        .context("TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .context("--cert-file/--key-file: the key does not match the certificate or is unsupported")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(ClientTls::new(Arc::new(cfg), flags.client_cert_auth)))
}

/// The peer transport's TLS, when the listen peer URL is `https://`; auto
/// TLS keeps its certificate under `data_dir`.
pub fn peer(flags: &TlsFlags, data_dir: &Path, listen: &[String], advertise: &[String]) -> Result<Option<PeerTls>> {
    if !any_https(listen) {
        if flags.peer_cert_file.is_some() || flags.peer_auto_tls {
            tracing::warn!("peer TLS is configured but --listen-peer-urls is not https://; peers use cleartext");
        }
        return Ok(None);
    }
    let provider = Arc::new(flags::provider(flags)?);
    let versions = flags::versions(flags)?;
    let (certs, key) = identity(
        ("peer-cert-file", &flags.peer_cert_file),
        ("peer-key-file", &flags.peer_key_file),
        (flags.peer_auto_tls, &data_dir.join("fixtures").join("peer")),
        auto::hosts(listen.iter().chain(advertise)),
        flags.self_signed_cert_validity,
    )?;
    let auto_only = flags.peer_auto_tls && flags.peer_cert_file.is_none();
    let names_checked = flags.peer_cert_allowed_cn.is_some() || flags.peer_cert_allowed_hostname.is_some();
    let cert_auth = flags.peer_client_cert_auth || flags.peer_trusted_ca_file.is_some();
    let verifier: Arc<dyn ClientCertVerifier> = if cert_auth && !auto_only {
        let inner = client_verifier(
            &provider,
            ("peer-trusted-ca-file", &flags.peer_trusted_ca_file),
            ("peer-crl-file", &flags.peer_crl_file),
        )?;
        if names_checked {
            let hostname = match &flags.peer_cert_allowed_hostname {
                Some(h) => Some(ServerName::try_from(h.clone()).context("--peer-cert-allowed-hostname")?),
                None => None,
            };
            Arc::new(verify::AllowedNames { inner, cn: flags.peer_cert_allowed_cn.clone(), hostname })
        } else {
            inner
        }
    } else {
        if names_checked {
            bail!("--peer-cert-allowed-cn and --peer-cert-allowed-hostname need --peer-trusted-ca-file");
        }
        if cert_auth {
            tracing::warn!("--peer-client-cert-auth is ignored under --peer-auto-tls without --peer-cert-file");
        }
        Arc::new(NoClientAuth)
    };
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .context("TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs.clone(), key.clone_key())
        .context("--peer-cert-file/--peer-key-file: the key does not match the certificate or is unsupported")?;
    let dialer = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .context("TLS versions")?;
    let dialer = match &flags.peer_trusted_ca_file {
        Some(ca) => dialer.with_webpki_verifier(
            WebPkiServerVerifier::builder_with_provider(
                Arc::new(pem::roots("peer-trusted-ca-file", ca)?),
                provider.clone(),
            )
            .build()
            .context("cannot build the peer certificate verifier")?,
        ),
        None if flags.peer_auto_tls => dialer.dangerous().with_custom_certificate_verifier(Arc::new(
            verify::AnyServerCert(provider.signature_verification_algorithms),
        )),
        None => bail!("peer TLS needs --peer-trusted-ca-file (or --peer-auto-tls) to verify other members"),
    };
    let client = dialer
        .with_client_auth_cert(certs, key)
        .context("--peer-cert-file/--peer-key-file: the key does not match the certificate or is unsupported")?;
    Ok(Some(PeerTls { server: Arc::new(server), client: Arc::new(client) }))
}
